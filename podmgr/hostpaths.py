# SPDX-License-Identifier: LGPL-2.1-or-later
"""Host paths opened literally: one component at a time, never following a symbolic link,
for the manifest's warnings, an app's directory root file system and prepare's volumes."""

from __future__ import annotations

import errno
import os
import stat


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
                next_fd = os.open(
                    part, flags & ~os.O_DIRECTORY if last and not directory else flags, dir_fd=fd
                )
            except OSError as error:
                if error.errno in (errno.ENOTDIR, errno.ELOOP) and stat.S_ISLNK(
                    os.lstat(part, dir_fd=fd).st_mode
                ):
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
