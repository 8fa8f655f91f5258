# SPDX-License-Identifier: LGPL-2.1-or-later
"""mount(2) and umount2(2), the mount table, and host paths opened literally, for
prepare and release.

Called through ctypes rather than mount(8): prepare runs on every pod start, and a
process per mount would cost more than the mounts.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import stat
from pathlib import Path

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def mount(source: str, target: Path, fstype: str | None = None, flags: int = 0,
          options: str | None = None) -> None:
    _check(_libc.mount(source.encode(), bytes(target), fstype.encode() if fstype else None,
                       flags, options.encode() if options else None),
           f"mount {source} on {target}")


def umount(target: Path) -> None:
    """Detach ``target``: it goes now, and the file system once nothing uses it."""
    _check(_libc.umount2(bytes(target), MNT_DETACH), f"umount {target}")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mount_points_under(directory: Path, mountinfo: Path = Path("/proc/self/mountinfo")
                       ) -> list[Path]:
    """Mount points at or below ``directory``, deepest first, so they can be unmounted in order."""
    prefix = str(directory).rstrip("/") + "/"
    found = []
    for line in mountinfo.read_text().splitlines():
        point = _unescape(line.split(" ")[4])
        if point == str(directory) or point.startswith(prefix):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


class LinkInPath(Exception):
    """A component of a path that must be taken literally is a symbolic link."""

    def __init__(self, link: str) -> None:
        super().__init__(link)
        self.link = link


def open_directory_literally(path: str) -> int:
    """An O_PATH descriptor of directory ``path`` (absolute, normalized), opened one
    component at a time without following a symbolic link anywhere on the way.

    Raises LinkInPath naming the first component that is a link, NotADirectoryError or
    FileNotFoundError (with the path) when it is not a directory.  Mounting the
    descriptor (/proc/self/fd/N) mounts what was checked, not what the path names by
    then: the kernel does not walk a descriptor's path again.
    """
    return open_literally(path, directory=True)


def open_literally(path: str, directory: bool) -> int:
    """An O_PATH descriptor of ``path``, opened as open_directory_literally does; with
    ``directory`` false the last component may be anything but a symbolic link (the
    caller checks what it is: an O_PATH open never opens a device or a FIFO itself)."""
    flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open("/", flags)
    walked = ""
    parts = [p for p in path.split("/") if p]
    try:
        for index, part in enumerate(parts):
            walked += "/" + part
            last = index == len(parts) - 1
            try:
                next_fd = os.open(part, flags & ~os.O_DIRECTORY if last and not directory
                                  else flags, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ENOTDIR, errno.ELOOP) and stat.S_ISLNK(
                        os.lstat(part, dir_fd=fd).st_mode):
                    raise LinkInPath(walked) from None
                raise type(error)(error.errno, error.strerror, walked) from None
            os.close(fd)
            fd = next_fd
        # O_PATH|O_NOFOLLOW opens a link itself rather than refusing it.
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise LinkInPath(walked)
    except BaseException:
        os.close(fd)
        raise
    return fd


def first_link(path: str) -> str | None:
    """The first component of ``path`` that is a symbolic link, if any (for warnings:
    what exists now may change before a start, which checks again)."""
    walked = ""
    for part in (p for p in path.split("/") if p):
        walked += "/" + part
        try:
            if stat.S_ISLNK(os.lstat(walked).st_mode):
                return walked
        except OSError:
            return None
    return None
