# SPDX-License-Identifier: LGPL-2.1-or-later
"""Reading the files of an image layout, from a directory or straight from a tar archive.

Layouts are untrusted input: names are checked, and a directory layout is read without
following symlinks, so a layout cannot point podmgr at files of the host.
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from podmgr.image.transports.base import SourceError


class Files(Protocol):
    def open(self, name: str) -> BinaryIO: ...

    def exists(self, name: str) -> bool: ...

    def close(self) -> None: ...


def _parts(name: str, where: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or name.startswith("/"):
        raise SourceError(f"{where}: {name!r} is not a name inside the layout")
    return parts


def read(files: Files, name: str, limit: int = 4 << 20) -> bytes:
    with files.open(name) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise SourceError(f"{name}: larger than {limit} bytes, which no metadata file is")
    return data


class DirFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            self.fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            raise SourceError(
                f"{root}: {error.strerror} (give the path of an image layout directory)"
            ) from None

    def _open(self, name: str) -> int:
        parts = _parts(name, str(self.root))
        fd = self.fd
        opened = []
        try:
            for part in parts[:-1]:
                fd = os.open(
                    part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                )
                opened.append(fd)
            result = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        finally:
            for each in opened:
                os.close(each)
        if not stat.S_ISREG(os.fstat(result).st_mode):
            os.close(result)
            raise SourceError(f"{self.root}/{name}: not a regular file")
        return result

    def open(self, name: str) -> BinaryIO:
        try:
            return os.fdopen(self._open(name), "rb")
        except OSError as error:
            raise SourceError(f"{self.root}/{name}: {error.strerror}") from None

    def exists(self, name: str) -> bool:
        try:
            os.close(self._open(name))
        except (OSError, SourceError):
            return False
        return True

    def close(self) -> None:
        os.close(self.fd)


class _Part:
    """``size`` bytes of ``file`` from ``offset``: a member of an archive, read in place."""

    def __init__(self, file: BinaryIO, offset: int, size: int) -> None:
        self.file = file
        self.left = size
        file.seek(offset)

    def read(self, n: int = -1) -> bytes:
        data = self.file.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> _Part:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()


class TarFiles:
    """Members of a tar archive by name; the archive is read in place, not unpacked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.archive = tarfile.open(path, mode="r:")  # noqa: SIM115 -- closed by close()
            self.members = {
                "/".join(_parts(m.name, str(path))): m
                for m in self.archive.getmembers()
                if m.name not in (".", "./")
            }
        except OSError as error:  # the path, not Python's wording of it
            reason = (error.strerror or str(error)).lower()
            raise SourceError(f"{path}: cannot read the archive: {reason}") from None
        except tarfile.TarError as error:
            raise SourceError(f"{path}: cannot read the archive ({error})") from None

    def _member(self, name: str) -> tarfile.TarInfo:
        member = self.members.get("/".join(_parts(name, str(self.path))))
        if member is None or not member.isfile():
            raise SourceError(f"{self.path}: has no file {name} (is it the right kind of archive?)")
        return member

    def open(self, name: str) -> BinaryIO:
        member = self._member(name)
        if member.sparse is not None:
            raise SourceError(f"{self.path}: {name} is a sparse file, which no blob is")
        assert self.archive.fileobj is not None
        # The same archive (not whatever has its path now), through an offset of its own:
        # layers unpacked side by side read their blobs at once.
        number = cast(BinaryIO, self.archive.fileobj).fileno()
        fd = os.open(f"/proc/self/fd/{number}", os.O_RDONLY | os.O_CLOEXEC)
        return cast(BinaryIO, _Part(os.fdopen(fd, "rb"), member.offset_data, member.size))

    def exists(self, name: str) -> bool:
        try:
            self._member(name)
        except SourceError:
            return False
        return True

    def close(self) -> None:
        self.archive.close()
