# SPDX-License-Identifier: LGPL-2.1-or-later
"""Noticing manifest files that change on disk, through inotify(7).

An administrator who edits /etc/podmgr/pods/web.toml with an editor, while a client
shows the pod, should see the change at once, not at the next daemon-reload: so the
service watches the manifest directories and rescans when a NAME.toml in one is
written, replaced, moved, removed or has its mode changed.  Events come in bursts (an
editor writes a temporary file and renames it), so a rescan waits for a short quiet
moment.  The standard library has no inotify; libc has, through ctypes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
MASK = (
    IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)
EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name
QUIET = 0.2  # seconds without events before a rescan


def _names(data: bytes) -> Iterable[str]:
    """The file names of a buffer of inotify events ("" for an event of the directory)."""
    offset = 0
    while offset + EVENT.size <= len(data):
        _, _, _, length = EVENT.unpack_from(data, offset)
        start = offset + EVENT.size
        yield data[start : start + length].split(b"\0", 1)[0].decode(errors="replace")
        offset = start + length


class ManifestWatch:
    """Calls ``changed`` (after a quiet moment) when a manifest in ``dirs`` changes."""

    def __init__(self, changed: Callable[[], None]) -> None:
        self.changed = changed
        self.fd = -1
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            # Without a watch, changes show after the next daemon-reload: not fatal.
            log.warning("cannot watch manifests: %s", os.strerror(ctypes.get_errno()))
            return
        self.fd = fd
        asyncio.get_running_loop().add_reader(fd, self._read)

    def watch(self, dirs: Iterable[Path]) -> None:
        """Watch each of ``dirs`` that exists (again after a rescan: one made since is
        watched then; watching a directory twice is harmless)."""
        if self.fd < 0:
            return
        for directory in dirs:
            if directory.is_dir():
                self._libc.inotify_add_watch(self.fd, os.fsencode(directory), MASK)

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        if any(name == "" or name.endswith(".toml") for name in _names(data)):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(QUIET, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.changed()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.fd >= 0:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
