# SPDX-License-Identifier: LGPL-2.1-or-later
"""Unpack one image layer (a tar stream) into a directory, safely, for overlayfs.

Never ``tarfile.extractall``.  Every entry is created relative to a directory fd of the
layer directory, and every path component is opened with O_NOFOLLOW, so no entry can
reach outside the layer whatever symlinks earlier entries made.  What is refused (the
layer fails, and nothing of it is kept) and what is dropped:

- refused: absolute names; ".." components; a path through a symlink or a non-directory;
  a hard link to a name outside the layer, not yet extracted from it, or to itself; a
  whiteout of "." or ".."; device nodes unless ``Limits.devices``; names, ids, modes and
  times the kernel would not take (tarentry.py); more than ``Limits.entries`` entries,
  ``Limits.bytes`` bytes of files (sparse files count their full size), or more than
  ``Limits.ratio`` times the layer's compressed size, counting both the tar stream and
  the files' apparent sizes;
- dropped: the entry "." itself (the layer's root keeps podmgr's mode); extended
  attributes outside ``XATTRS``; setuid/setgid bits when ``Limits.strip_setuid``.

Setuid and setgid bits and file capabilities are kept by default: images need them
(ping, sudo, su), and they are harmless in the store, which no one but root can
traverse (store.py), so only a pod's apps ever run them.

Sparse files are written as holes.  Memory and file descriptors stay bounded whatever
the layer's shape: tarfile's member list is emptied as it goes, directory fds are held
by an LRU (dirtree.py), and nothing recurses on the depth of a path.

OCI whiteouts become overlayfs ones, so layers stack with a plain overlay mount:
".wh.NAME" becomes a 0/0 character device NAME, and ".wh..wh..opq" marks its
directory opaque with the trusted.overlay.opaque xattr (OCI image spec, layer.md;
kernel Documentation/filesystems/overlayfs.rst).

Every failure a layer can cause is a BadLayer (UnsafeLayer for an escape) or, for the
store's file system (full, read-only, overlayfs), a StoreFailed, each one line naming
the layer and the entry.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Protocol, cast

from podmgr.errors import PodmgrError
from podmgr.image import dirtree
from podmgr.image.store import StoreFailed, store_failure
from podmgr.image.tarentry import (
    OPAQUE,
    WHITEOUT,
    XATTRS,
    BadLayer,
    Entry,
    Header,
    Kind,
    UnsafeLayer,
    entry_of,
    shown,
)

__all__ = [
    "OPAQUE",
    "OVERLAY_OPAQUE",
    "WHITEOUT",
    "XATTRS",
    "BadLayer",
    "Limits",
    "OpaqueReport",
    "Stats",
    "StoreFailed",
    "UnsafeLayer",
    "unpack",
]

OVERLAY_OPAQUE = "trusted.overlay.opaque"
_COPY_CHUNK = 1 << 20
# The least a layer may unpack to whatever its compressed size: tar pads small archives
# to 10 KiB records, which compress to almost nothing.
_RATIO_FLOOR = 1 << 20
# What a malformed stream makes tarfile (or int(), or a decoder) raise while reading.
_READ_ERRORS = (tarfile.TarError, ValueError, OverflowError, UnicodeError, EOFError, IndexError)


# Called with the path of each opaque directory, instead of setting its xattr.
OpaqueReport = Callable[[str], None]


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Limits:
    entries: int = 1_000_000
    bytes: int = 64 << 30
    devices: bool = False
    strip_setuid: bool = False
    ratio: int = 2000  # gzip cannot compress by more than about 1030:1


@dataclass
class Stats:
    entries: int = 0
    bytes: int = 0


class _Forward:
    """The tar stream, read forward only, for tarfile's seekable mode: tarfile's own
    stream mode copies every byte through a 10 KiB buffer that it slices at each read,
    while here file data is handed out as views of the chunks the stream gives.  Its
    position counts the bytes of the tar stream (for ``Limits.ratio``).  A seek backwards
    is refused (tarfile never asks one of a well-formed archive)."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.chunk = memoryview(b"")
        self.offset = 0  # into chunk
        self.position = 0  # of the stream

    def _fill(self) -> bool:
        if self.offset == len(self.chunk):
            self.chunk, self.offset = memoryview(self.stream.read(_COPY_CHUNK)), 0
        return self.offset < len(self.chunk)

    def view(self, n: int) -> memoryview:
        """At most ``n`` (> 0) bytes, without a copy; empty at the end of the stream."""
        if not self._fill():
            return self.chunk[:0]
        part = self.chunk[self.offset : self.offset + n]
        self.offset += len(part)
        self.position += len(part)
        return part

    def read(self, n: int = -1) -> bytes:
        parts = []
        while n != 0 and len(part := self.view(_COPY_CHUNK if n < 0 else n)):
            parts.append(part)
            n -= len(part) if n > 0 else 0
        return b"".join(parts)

    def tell(self) -> int:
        return self.position

    def seek(self, position: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET or position < self.position:
            raise tarfile.StreamError("the layer's tar stream seeks backwards")
        while self.position < position and len(self.view(position - self.position)):
            pass
        return self.position


@dataclass
class _Unpacking:
    tree: dirtree.Tree
    limits: Limits
    what: str
    opaque: OpaqueReport | None
    file_system: str


def unpack(
    stream: Readable,
    root_fd: int,
    what: str,
    limits: Limits = Limits(),
    compressed: int | None = None,
    opaque: OpaqueReport | None = None,
    file_system: str = "",
) -> Stats:
    """Unpack the uncompressed tar ``stream`` into the directory ``root_fd``.

    ``compressed`` is the size of the blob ``stream`` came from (for ``Limits.ratio``);
    ``opaque``, when given, is called with the path of each opaque directory instead of
    setting its xattr (which needs CAP_SYS_ADMIN); ``file_system`` is the type of the
    store's file system, for messages, when /proc cannot tell."""
    work = _Unpacking(dirtree.Tree(root_fd), limits, what, opaque, file_system)
    allowed = None if compressed is None else max(limits.ratio * compressed, _RATIO_FLOOR)
    meter = _Forward(stream)
    stats = Stats()
    last = "the start of the stream"
    try:
        archive = _open(meter, what)
        with archive:
            while (member := _next(archive, what, last)) is not None:
                # Stream mode keeps every member otherwise: memory a layer could inflate.
                archive.members.clear()  # type: ignore[attr-defined]
                stats.entries += 1
                if stats.entries > limits.entries:
                    raise BadLayer(
                        f"{what}: more than {limits.entries} entries (raise "
                        "max_layer_entries in podmgr.toml if the image is "
                        "legitimate)"
                    )
                entry = entry_of(member, what)
                if entry is None:
                    continue
                last = entry.shown
                if entry.kind is Kind.FILE:
                    stats.bytes += entry.size
                    if stats.bytes > limits.bytes:
                        raise BadLayer(
                            f"{what}: more than {limits.bytes} bytes of files "
                            "(raise max_layer_size in podmgr.toml if the image "
                            "is legitimate)"
                        )
                if allowed is not None and max(stats.bytes, meter.position) > allowed:
                    raise BadLayer(
                        f"{what}: {entry.shown}: the layer unpacks to more than "
                        f"{limits.ratio} times its compressed size of {compressed} "
                        "bytes (raise max_layer_ratio in podmgr.toml if the image "
                        "is legitimate)"
                    )
                _extract_checked(archive, member, entry, work)
        try:
            work.tree.close()  # sets the directories' times
        except OSError as error:
            raise _failure(error, what, None, work) from None
    finally:
        work.tree.abandon()
    return stats


def _open(meter: _Forward, what: str) -> tarfile.TarFile:
    try:
        # Seekable mode over a stream that seeks forward only; it reads the first header
        # at once.
        return tarfile.TarFile(
            fileobj=cast(IO[bytes], meter),
            mode="r",
            tarinfo=Header,
            errorlevel=2,
            encoding="utf-8",
            errors="surrogateescape",
        )
    except _READ_ERRORS as error:
        raise BadLayer(f"{what}: not a valid tar stream ({shown(str(error), 120)})") from None


def _next(archive: tarfile.TarFile, what: str, last: str) -> tarfile.TarInfo | None:
    try:
        return archive.next()
    except _READ_ERRORS as error:
        raise BadLayer(
            f"{what}: after {last}: not a valid tar header ({shown(str(error), 120)})"
        ) from None


def _extract_checked(
    archive: tarfile.TarFile, member: tarfile.TarInfo, entry: Entry, work: _Unpacking
) -> None:
    what = work.what
    try:
        _extract(archive, member, entry, work)
    except dirtree.Blocked as blocked:
        raise UnsafeLayer(
            f"{what}: {entry.shown}: {shown(blocked.path)} is a symlink or not "
            "a directory, so the entry would land outside its place (the layer "
            "is malformed or hostile)"
        ) from None
    except OSError as error:
        raise _failure(error, what, entry, work) from None
    except _READ_ERRORS as error:
        raise BadLayer(
            f"{what}: {entry.shown}: its data is cut short or malformed ({shown(str(error), 120)})"
        ) from None


def _failure(error: OSError, what: str, entry: Entry | None, work: _Unpacking) -> PodmgrError:
    where = f"{what}: {entry.shown}" if entry else what
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return store_failure(where, error)
    if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
        return StoreFailed(f"{where}: out of resources ({error.strerror})")
    if entry and entry.kind is Kind.WHITEOUT and error.errno == errno.EPERM:
        file_system = work.file_system or dirtree.file_system_type(work.tree.root_fd)
        if file_system == "overlay":
            return StoreFailed(
                f"{where}: /var/lib/podmgr is on overlayfs, which cannot "
                "hold whiteouts; give it its own file system"
            )
    kind = entry.kind.value if entry else "directory times"
    return BadLayer(
        f"{where}: {error.strerror or error} (making the {kind}; the layer is "
        "malformed, or the store's file system does not take it)"
    )


def _extract(
    archive: tarfile.TarFile, member: tarfile.TarInfo, entry: Entry, work: _Unpacking
) -> None:
    tree, kind = work.tree, entry.kind
    if kind in (Kind.CHARACTER, Kind.BLOCK) and not work.limits.devices:
        raise UnsafeLayer(
            f"{work.what}: {entry.shown}: device nodes are refused (allow them "
            "in podmgr.toml if the image needs them)"
        )
    if kind is Kind.OPAQUE:
        fd = tree.directory(entry.parent)
        if work.opaque is not None:
            work.opaque(entry.parent)
        else:
            os.setxattr(fd, OVERLAY_OPAQUE, b"y")
    elif kind is Kind.WHITEOUT:
        parent_fd = tree.directory(entry.parent)
        tree.forget(entry.path)
        dirtree.remove(parent_fd, entry.base)
        os.mknod(entry.base, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent_fd)
    elif kind is Kind.DIRECTORY:
        _directory(entry, work)
    elif kind is Kind.FILE:
        _file(archive, member, entry, work)
    elif kind is Kind.HARDLINK:
        _hard_link(entry, work)
    else:
        _special(entry, work)


def _mode(entry: Entry, limits: Limits) -> int:
    if limits.strip_setuid:
        return entry.mode & ~(stat.S_ISUID | stat.S_ISGID)
    return entry.mode


def _directory(entry: Entry, work: _Unpacking) -> None:
    tree = work.tree
    parent_fd = tree.directory(entry.parent)
    try:
        existing = os.stat(entry.base, dir_fd=parent_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISDIR(existing):
        tree.forget(entry.path)
        dirtree.remove(parent_fd, entry.base)
        existing = None
    if existing is None:
        os.mkdir(entry.base, 0o700, dir_fd=parent_fd)
    fd = tree.directory(entry.path)  # parent_fd may be closed from here on
    os.chown(fd, entry.uid, entry.gid)
    os.chmod(fd, _mode(entry, work.limits))
    for name, value in entry.xattrs:
        os.setxattr(fd, name, value)
    tree.set_times(entry.path, entry.mtime_ns)


def _file(
    archive: tarfile.TarFile, member: tarfile.TarInfo, entry: Entry, work: _Unpacking
) -> None:
    parent_fd = work.tree.directory(entry.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(entry.base, flags, 0o600, dir_fd=parent_fd)
    except FileExistsError:  # an earlier entry of this layer: this one replaces it
        work.tree.forget(entry.path)
        dirtree.remove(parent_fd, entry.base)
        fd = os.open(entry.base, flags, 0o600, dir_fd=parent_fd)
    try:
        # The file's data (for a sparse file, its regions' data, one after another)
        # follow the header in the stream; only they are written, holes stay holes.
        stream = cast(_Forward, archive.fileobj)
        stream.seek(member.offset_data)  # forward only: where the stream is already
        if entry.sparse is None:
            _copy(stream, fd, 0, entry.size, entry, work.what)
        else:
            for offset, count in entry.sparse:
                _copy(stream, fd, offset, count, entry, work.what)
            os.ftruncate(fd, entry.size)
        os.fchown(fd, entry.uid, entry.gid)
        os.fchmod(fd, _mode(entry, work.limits))  # after chown, which clears setuid bits
        for name, value in entry.xattrs:
            os.setxattr(fd, name, value)
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
    finally:
        os.close(fd)


def _copy(stream: _Forward, fd: int, offset: int, count: int, entry: Entry, what: str) -> None:
    """Copy ``count`` bytes from ``stream`` to ``fd`` at ``offset``."""
    while count > 0:
        view = stream.view(min(_COPY_CHUNK, count))
        if not view:
            raise BadLayer(f"{what}: {entry.shown}: its data is cut short (the stream ends)")
        count -= len(view)
        while view:
            written = os.pwrite(fd, view, offset)
            offset += written
            view = view[written:]


def _hard_link(entry: Entry, work: _Unpacking) -> None:
    tree, what = work.tree, work.what
    assert entry.link is not None
    target_parent, target_base = entry.link
    target = f"{target_parent}/{target_base}" if target_parent else target_base
    if target == entry.path or target.startswith(entry.path + "/"):
        raise BadLayer(
            f"{what}: {entry.shown}: a hard link to itself or to a name below it "
            "(the layer is malformed)"
        )
    source_fd = tree.directory(target_parent)
    try:
        info = os.stat(target_base, dir_fd=source_fd, follow_symlinks=False)
    except FileNotFoundError:
        info = None
    # The layer directory started empty: a regular file in it came from this layer.
    if info is None or not stat.S_ISREG(info.st_mode):
        raise UnsafeLayer(
            f"{what}: {entry.shown}: a hard link to {shown(target)!r}, which "
            "is not a file of this layer, is refused (the layer is malformed "
            "or hostile)"
        )
    parent_fd = tree.directory(entry.parent)  # the LRU keeps source_fd: it is newer
    tree.forget(entry.path)
    dirtree.remove(parent_fd, entry.base)
    # The link shares the target's inode: owner, mode and times come with it.
    os.link(
        target_base, entry.base, src_dir_fd=source_fd, dst_dir_fd=parent_fd, follow_symlinks=False
    )


def _special(entry: Entry, work: _Unpacking) -> None:
    """Symlinks, fifos and device nodes."""
    parent_fd = work.tree.directory(entry.parent)
    work.tree.forget(entry.path)
    dirtree.remove(parent_fd, entry.base)
    base = entry.base
    if entry.kind is Kind.SYMLINK:
        # The target is stored as text and never followed while unpacking.
        os.symlink(entry.symlink, base, dir_fd=parent_fd)
    elif entry.kind is Kind.FIFO:
        os.mkfifo(base, 0o600, dir_fd=parent_fd)
    else:
        kind = stat.S_IFCHR if entry.kind is Kind.CHARACTER else stat.S_IFBLK
        os.mknod(base, kind | 0o600, os.makedev(*entry.device), dir_fd=parent_fd)
    os.chown(base, entry.uid, entry.gid, dir_fd=parent_fd, follow_symlinks=False)
    if entry.kind is not Kind.SYMLINK:  # just made here, not a symlink: chmod cannot stray
        os.chmod(base, _mode(entry, work.limits), dir_fd=parent_fd)
    os.utime(base, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=parent_fd, follow_symlinks=False)
