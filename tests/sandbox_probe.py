# SPDX-License-Identifier: LGPL-2.1-or-later
"""Unpacking code subverted by a layer, as a test stands it in: run in the sandbox
(sandbox.run), it tries every way out it can think of and reports how each went."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import stat
from collections.abc import Callable

from podmgr.image.sandbox import Context


def _attempt(action: Callable[[], object]) -> str:
    try:
        action()
    except OSError as error:
        return errno.errorcode.get(error.errno or 0, str(error))
    return "ok"


def _libc_call(name: str, *arguments: object) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*arguments) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def _write(path: str, dir_fd: int | None = None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=dir_fd)
    os.write(fd, b"owned")
    os.close(fd)


def _through_parent(target_fd: int) -> None:
    up = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=target_fd)
    try:
        _write("escaped", up)
    finally:
        os.close(up)


def _connect(path: str) -> None:
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)


def probe(context: Context, victim: str, host_pid: int) -> dict[str, str]:
    fd = context.target_fd
    return {
        "write the victim by its host path": _attempt(lambda: _write(victim)),
        "create a file at the root": _attempt(lambda: _write("/escaped")),
        "create a file through the target's ..": _attempt(lambda: _through_parent(fd)),
        "chroot elsewhere": _attempt(lambda: os.chroot("/target")),
        "mount a tmpfs": _attempt(lambda: _libc_call("mount", b"x", b"/target", b"tmpfs", 0, None)),
        "unmount the root": _attempt(lambda: _libc_call("umount2", b"/", 2)),
        "make a block device": _attempt(
            lambda: os.mknod("disk", stat.S_IFBLK | 0o600, os.makedev(8, 0), dir_fd=fd)
        ),
        "signal a host process": _attempt(lambda: os.kill(host_pid, 0)),
        "reach the system bus": _attempt(lambda: _connect("/run/dbus/system_bus_socket")),
        # keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING): uid 0's keys (x86_64's 250)
        "use the keyrings": _attempt(lambda: _libc_call("syscall", 250, 0, -4, 0)),
        "make a new namespace": _attempt(lambda: _libc_call("unshare", 0x00020000)),
        "set a trusted xattr": _attempt(lambda: os.setxattr(fd, "trusted.x", b"y")),
        "write inside the target": _attempt(lambda: _write("inside", fd)),
        "make a whiteout inside": _attempt(
            lambda: os.mknod("wh", stat.S_IFCHR, os.makedev(0, 0), dir_fd=fd)
        ),
        "chown inside": _attempt(lambda: os.chown("inside", 1234, 5678, dir_fd=fd)),
    }
