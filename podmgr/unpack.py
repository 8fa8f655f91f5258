# SPDX-License-Identifier: LGPL-2.1-or-later
"""Unpack one image layer (a tar stream) into a directory, safely, for overlayfs.

Never ``tarfile.extractall``.  Every entry is created relative to a directory fd of the
layer directory, and every path component is opened with O_NOFOLLOW, so no entry can
reach outside the layer whatever symlinks earlier entries made.  What is refused (the
layer fails, and nothing of it is kept) and what is dropped:

- refused: absolute names; ".." components; a path through a symlink or a non-directory;
  a hard link to a name outside the layer or not yet extracted from it; a whiteout of
  "." or ".."; device nodes unless ``Limits.devices``; more than ``Limits.entries``
  entries or ``Limits.bytes`` bytes of file content (sparse files count their full size);
- dropped: the entry "." itself (the layer's root keeps podmgr's mode); extended
  attributes outside ``XATTRS``; setuid/setgid bits when ``Limits.strip_setuid``.

OCI whiteouts become overlayfs ones, so layers stack with a plain overlay mount:
".wh.NAME" becomes a 0/0 character device NAME, and ".wh..wh..opq" marks its
directory opaque with the trusted.overlay.opaque xattr (OCI image spec, layer.md;
kernel Documentation/filesystems/overlayfs.rst).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from dataclasses import dataclass
from typing import IO, Protocol, cast

from podmgr.errors import PodmgrError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE = "trusted.overlay.opaque"
# Extended attributes an image may set: file capabilities (ping), and user.* data.
XATTRS = ("security.capability", "user.")
_COPY_CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class UnsafeLayer(PodmgrError):
    code = "UnsafeLayer"


@dataclass(frozen=True)
class Limits:
    entries: int = 1_000_000
    bytes: int = 64 << 30
    devices: bool = False
    strip_setuid: bool = False


@dataclass
class Stats:
    entries: int = 0
    bytes: int = 0


class _Tree:
    """Directory fds of the layer being unpacked, opened without following symlinks."""

    def __init__(self, root_fd: int, what: str) -> None:
        self.root_fd = root_fd
        self.what = what
        self.fds: dict[str, int] = {"": root_fd}

    def close(self) -> None:
        for path, fd in self.fds.items():
            if path:
                os.close(fd)
        self.fds = {"": self.root_fd}

    def forget(self, path: str) -> None:
        """``path`` is about to change: close the fds of it and of everything below it."""
        if path not in self.fds:
            return  # a directory's fd is cached only with its parent's: nothing below either
        for cached in [p for p in self.fds if p == path or p.startswith(path + "/")]:
            if cached:
                os.close(self.fds.pop(cached))

    def directory(self, path: str, name: str) -> int:
        """The fd of directory ``path`` (made if missing, as tar does) for entry ``name``."""
        if path in self.fds:
            return self.fds[path]
        parent, _, base = path.rpartition("/")
        parent_fd = self.directory(parent, name)
        with contextlib.suppress(FileExistsError):
            os.mkdir(base, 0o755, dir_fd=parent_fd)
        try:
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=parent_fd)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeLayer(f"{self.what}: {name}: {path} is a symlink or not a "
                                  "directory, so the entry would land outside its place "
                                  "(the layer is malformed or hostile)") from None
            raise
        self.fds[path] = fd
        return fd


def _split(name: str, what: str) -> tuple[str, str]:
    """(parent, base) of a member name, refusing names that leave the layer."""
    if name.startswith("/"):
        raise UnsafeLayer(f"{what}: {name}: absolute names are refused (the layer is "
                          "malformed or hostile)")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayer(f"{what}: {name}: '..' in a name is refused (the layer is "
                          "malformed or hostile)")
    if not parts:
        return "", ""
    return "/".join(parts[:-1]), parts[-1]


def _remove(parent_fd: int, base: str) -> None:
    """Remove ``base`` in ``parent_fd`` whatever it is; a directory with its contents."""
    try:
        info = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(base, dir_fd=parent_fd)
        return
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                 dir_fd=parent_fd)
    try:
        for entry in os.listdir(fd):
            _remove(fd, entry)
    finally:
        os.close(fd)
    os.rmdir(base, dir_fd=parent_fd)


def _xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    found = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key.removeprefix("SCHILY.xattr.")
            if name.startswith(XATTRS) or name in XATTRS:
                found[name] = value.encode("utf-8", "surrogateescape")
    return found


def unpack(stream: Readable, root_fd: int, what: str, limits: Limits = Limits()) -> Stats:
    """Unpack the uncompressed tar ``stream`` into the directory ``root_fd``."""
    tree = _Tree(root_fd, what)
    stats = Stats()
    seen_files: set[str] = set()  # regular files of this layer, the only hard link targets
    directories: list[tuple[str, tarfile.TarInfo]] = []
    try:
        # Stream mode ("r|") only ever calls read(): any Readable will do.
        with tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|",
                          errorlevel=2) as archive:
            for member in archive:
                stats.entries += 1
                if stats.entries > limits.entries:
                    raise UnsafeLayer(f"{what}: more than {limits.entries} entries (raise "
                                      "the limit in podmgr.toml if the image is legitimate)")
                if member.isfile():
                    stats.bytes += member.size
                    if stats.bytes > limits.bytes:
                        raise UnsafeLayer(f"{what}: more than {limits.bytes} bytes of files "
                                          "(raise the limit in podmgr.toml if the image is "
                                          "legitimate)")
                _extract(archive, member, tree, limits, seen_files, directories, what)
        # Directory times last: creating entries inside changed them.  A directory a
        # later entry removed or replaced is no longer in the tree's fds: skip it.
        for path, member in reversed(directories):
            if (fd := tree.fds.get(path)) is not None:
                os.utime(fd, ns=_mtime(member))
    except tarfile.TarError as error:
        raise UnsafeLayer(f"{what}: not a valid tar stream ({error})") from None
    finally:
        tree.close()
    return stats


def _mtime(member: tarfile.TarInfo) -> tuple[int, int]:
    ns = int(member.mtime * 10**9)
    return ns, ns


def _extract(archive: tarfile.TarFile, member: tarfile.TarInfo, tree: _Tree, limits: Limits,
             seen_files: set[str], directories: list[tuple[str, tarfile.TarInfo]],
             what: str) -> None:
    parent, base = _split(member.name, what)
    if not base:
        return  # "." itself: the layer root keeps its own mode
    path = f"{parent}/{base}" if parent else base
    if base == OPAQUE:
        os.setxattr(tree.directory(parent, member.name), OVERLAY_OPAQUE, b"y")
    elif base.startswith(WHITEOUT):
        _whiteout(tree, parent, base.removeprefix(WHITEOUT), member.name, what)
    elif member.isdir():
        _directory(tree, parent, base, path, member, _mode(member, limits))
        directories.append((path, member))
    elif member.isfile():
        parent_fd = tree.directory(parent, member.name)
        _file(archive, member, tree, path, parent_fd, base, _mode(member, limits))
        seen_files.add(path)
    else:
        parent_fd = tree.directory(parent, member.name)
        tree.forget(path)
        _remove(parent_fd, base)
        if member.islnk():
            _hard_link(tree, member, parent_fd, base, seen_files, what)
        else:
            _special(member, parent_fd, base, _mode(member, limits), limits, what)


def _mode(member: tarfile.TarInfo, limits: Limits) -> int:
    mode = member.mode & 0o7777
    return mode & ~(stat.S_ISUID | stat.S_ISGID) if limits.strip_setuid else mode


def _whiteout(tree: _Tree, parent: str, hidden: str, name: str, what: str) -> None:
    if hidden in ("", ".", ".."):
        raise UnsafeLayer(f"{what}: {name}: a whiteout of {hidden or 'nothing'!r} is refused "
                          "(the layer is malformed or hostile)")
    parent_fd = tree.directory(parent, name)
    tree.forget(f"{parent}/{hidden}" if parent else hidden)
    _remove(parent_fd, hidden)
    os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent_fd)


def _directory(tree: _Tree, parent: str, base: str, path: str, member: tarfile.TarInfo,
               mode: int) -> None:
    parent_fd = tree.directory(parent, member.name)
    try:
        if not stat.S_ISDIR(os.stat(base, dir_fd=parent_fd, follow_symlinks=False).st_mode):
            tree.forget(path)
            _remove(parent_fd, base)
            os.mkdir(base, 0o700, dir_fd=parent_fd)
    except FileNotFoundError:
        os.mkdir(base, 0o700, dir_fd=parent_fd)
    fd = tree.directory(path, member.name)
    os.chown(fd, member.uid, member.gid)
    os.chmod(fd, mode)
    for name, value in _xattrs(member).items():
        os.setxattr(fd, name, value)


def _file(archive: tarfile.TarFile, member: tarfile.TarInfo, tree: _Tree, path: str,
          parent_fd: int, base: str, mode: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(base, flags, 0o600, dir_fd=parent_fd)
    except FileExistsError:  # an earlier entry of this layer: this one replaces it
        tree.forget(path)
        _remove(parent_fd, base)
        fd = os.open(base, flags, 0o600, dir_fd=parent_fd)
    try:
        source = archive.extractfile(member)
        assert source is not None
        while chunk := source.read(_COPY_CHUNK):
            os.write(fd, chunk)
        os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, mode)  # after chown, which clears setuid bits
        for name, value in _xattrs(member).items():
            os.setxattr(fd, name, value)
        os.utime(fd, ns=_mtime(member))
    finally:
        os.close(fd)


def _hard_link(tree: _Tree, member: tarfile.TarInfo, parent_fd: int, base: str,
               seen_files: set[str], what: str) -> None:
    target_parent, target_base = _split(member.linkname, what)
    target = f"{target_parent}/{target_base}" if target_parent else target_base
    if target not in seen_files:
        raise UnsafeLayer(f"{what}: {member.name}: a hard link to {member.linkname!r}, which "
                          "is not a file of this layer, is refused (the layer is malformed or "
                          "hostile)")
    # The link shares the target's inode: owner, mode and times come with it.
    os.link(target_base, base, src_dir_fd=tree.directory(target_parent, member.name),
            dst_dir_fd=parent_fd, follow_symlinks=False)


def _special(member: tarfile.TarInfo, parent_fd: int, base: str, mode: int, limits: Limits,
             what: str) -> None:
    """Symlinks, fifos and device nodes."""
    if member.issym():
        # The target is stored as text and never followed while unpacking.
        os.symlink(member.linkname, base, dir_fd=parent_fd)
    elif member.isfifo():
        os.mkfifo(base, 0o600, dir_fd=parent_fd)
    elif member.ischr() or member.isblk():
        if not limits.devices:
            raise UnsafeLayer(f"{what}: {member.name}: device nodes are refused (allow them "
                              "in podmgr.toml if the image needs them)")
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                 dir_fd=parent_fd)
    else:
        raise UnsafeLayer(f"{what}: {member.name}: unsupported tar entry type "
                          f"{member.type!r}")
    os.chown(base, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)
    if not member.issym():  # just made here, not a symlink: chmod cannot be led astray
        os.chmod(base, mode, dir_fd=parent_fd)
    os.utime(base, ns=_mtime(member), dir_fd=parent_fd, follow_symlinks=False)
