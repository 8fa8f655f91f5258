# SPDX-License-Identifier: LGPL-2.1-or-later
"""Where an app's root file system comes from.

An app names one source in its manifest table; today that is ``rootfs = "/path"`` (a
directory).  A source tells prepare which directories to stack as the read-only lower
layers of the app's overlay, and lets the generator read a file of it (/etc/passwd)
without ever leaving it.  New kinds of source implement ``Source`` and register in
``source_of``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from typing import Protocol

from podmgr.manifest import App

# /etc/passwd and /etc/group of a rootfs are read whole; anything larger is not one.
MAX_READ = 4 << 20


class Source(Protocol):
    def lowerdirs(self) -> list[str]:
        """The overlay's lower layers, top-most first."""
        ...

    def read_file(self, path: str) -> bytes | None:
        """A regular file of the rootfs (``path`` relative to its root), or None if absent."""
        ...


@dataclass(frozen=True)
class DirectorySource:
    root: str

    def lowerdirs(self) -> list[str]:
        return [self.root]

    def read_file(self, path: str) -> bytes | None:
        return read_beneath(self.root, path)


def source_of(app: App) -> Source:
    return DirectorySource(app.rootfs)


def read_beneath(root: str, path: str) -> bytes | None:
    """Read ``root``/``path`` without following any symlink, so a rootfs whose
    /etc/passwd links to the host's is not read through to the host."""
    parts = [p for p in path.split("/") if p]
    with contextlib.ExitStack() as stack:
        try:
            fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            stack.callback(os.close, fd)
            for part in parts[:-1]:
                fd = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=fd)
                stack.callback(os.close, fd)
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=fd)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_READ:
                return None
            return file.read(MAX_READ)
