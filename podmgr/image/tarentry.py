# SPDX-License-Identifier: LGPL-2.1-or-later
"""The entries of a layer's tar stream, as typed values the unpacker may trust.

tarfile parses the formats (ustar, GNU long names and sparse files, PAX).  Two things
here stand between it and a hostile layer:

- ``Header`` bounds what tarfile reads for one entry: extended (PAX, GNU long name)
  headers of at most MAX_HEADER bytes, at most MAX_CHAIN of them before an entry (they
  are parsed recursively), sparse maps of at most MAX_SPARSE_REGIONS regions, read
  without trusting their counts;
- ``entry_of`` turns a member into an ``Entry`` whose every field is range-checked as
  the kernel will take it: names without NUL, components of at most NAME_MAX bytes, no
  "..", ids that chown accepts, finite times, sparse maps in order and inside the file.
  What it refuses raises BadLayer (UnsafeLayer for a name that would leave the layer),
  naming the layer and the entry.
"""

from __future__ import annotations

import enum
import math
import re
import tarfile
from dataclasses import dataclass

from podmgr.errors import PodmgrError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
# Extended attributes an image may set: file capabilities (ping), and user.* data.
XATTRS = ("security.capability", "user.")

MAX_HEADER = 1 << 20  # bytes of one PAX or GNU long name header
MAX_CHAIN = 16  # extended headers before one entry
MAX_SPARSE_REGIONS = 1 << 16
MAX_PATH = 64 << 10  # bytes of a name; deeper trees than PATH_MAX are fine fd-relative
NAME_MAX = 255  # bytes of one component (Linux)
SYMLINK_MAX = 4095  # bytes of a symlink's target (PATH_MAX - 1)
ID_MAX = 2**32 - 2  # (uid_t) -1 means "leave as is" to chown
TIME_MAX = (2**63 - 1) // 10**9  # seconds that fit a struct timespec in nanoseconds
_LONG_COMPONENT = re.compile(rb"[^/]{%d}" % (NAME_MAX + 1))
# tarfile's parser of a header's number fields (octal, or GNU base-256).
_nti = tarfile.nti  # type: ignore[attr-defined]
_EXTENDED = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


class BadLayer(PodmgrError):
    """A layer podmgr cannot unpack: malformed, or beyond a limit."""

    code = "BadLayer"


class UnsafeLayer(BadLayer):
    """A layer entry that would reach outside the layer."""

    code = "UnsafeLayer"


class HeaderProblem(ValueError):
    """Raised inside tarfile's parsing; the unpacker adds the layer and position."""


class Header(tarfile.TarInfo):
    """tarfile.TarInfo that refuses headers whose size or count a layer could inflate."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        # Global PAX headers (XGLTYPE) add to what every later entry carries.
        if (
            archive.pax_headers
            and sum(len(k) + len(v) for k, v in archive.pax_headers.items()) > MAX_HEADER
        ):
            raise HeaderProblem(f"global extended headers of more than {MAX_HEADER} bytes")
        chain = getattr(archive, "podmgr_chain", 0)
        if self.type in _EXTENDED:
            if self.size > MAX_HEADER:
                raise HeaderProblem(
                    f"an extended header of {self.size} bytes (at most {MAX_HEADER})"
                )
            if chain >= MAX_CHAIN:
                raise HeaderProblem(f"more than {MAX_CHAIN} extended headers for one entry")
            archive.podmgr_chain = chain + 1  # type: ignore[attr-defined]
        else:
            archive.podmgr_chain = 0  # type: ignore[attr-defined]
        return super()._proc_member(archive)  # type: ignore[misc,no-any-return]

    def _proc_sparse(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        """An old GNU sparse entry: its map continues in extension blocks for as long as
        each says so, so their number is bounded here."""
        regions, extended, real_size = self._sparse_structs  # type: ignore[attr-defined]
        del self._sparse_structs  # type: ignore[attr-defined]
        assert archive.fileobj is not None
        while extended:
            if len(regions) > MAX_SPARSE_REGIONS:
                raise HeaderProblem(f"a sparse map of more than {MAX_SPARSE_REGIONS} regions")
            block = archive.fileobj.read(tarfile.BLOCKSIZE)
            if len(block) < tarfile.BLOCKSIZE:
                raise HeaderProblem("the stream ends inside a sparse map")
            for start in range(0, 21 * 24, 24):
                try:
                    offset = _nti(block[start : start + 12])
                    count = _nti(block[start + 12 : start + 24])
                except tarfile.HeaderError:
                    break
                if offset or count:
                    regions.append((offset, count))
            extended = bool(block[504])
        self.sparse = regions
        self.offset_data = archive.fileobj.tell()
        archive.offset = self.offset_data + self._block(self.size)  # type: ignore[attr-defined]
        self.size = real_size
        return self

    def _proc_gnusparse_10(
        self, following: tarfile.TarInfo, pax_headers: dict[str, str], archive: tarfile.TarFile
    ) -> None:
        """A PAX 1.0 sparse map: decimal lines at the start of the data, the first the
        number of regions; read line by line, never more than it may hold."""
        assert archive.fileobj is not None
        buffer = b""
        numbers: list[int] = []
        wanted: int | None = None
        while wanted is None or len(numbers) < wanted:
            while b"\n" not in buffer:
                if len(buffer) > 64:
                    raise HeaderProblem("a sparse map line is not a number")
                block = archive.fileobj.read(tarfile.BLOCKSIZE)
                if not block:
                    raise HeaderProblem("the stream ends inside a sparse map")
                buffer += block
            line, buffer = buffer.split(b"\n", 1)
            if not line.isdigit() or len(line) > 20:
                raise HeaderProblem("a sparse map line is not a number")
            if wanted is None:
                if int(line) > MAX_SPARSE_REGIONS:
                    raise HeaderProblem(f"a sparse map of more than {MAX_SPARSE_REGIONS} regions")
                wanted = 2 * int(line)
            else:
                numbers.append(int(line))
        following.offset_data = archive.fileobj.tell()
        following.sparse = list(zip(numbers[::2], numbers[1::2], strict=True))  # type: ignore[assignment]


class Kind(enum.Enum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hard link"
    FIFO = "fifo"
    CHARACTER = "character device"
    BLOCK = "block device"
    WHITEOUT = "whiteout"
    OPAQUE = "opaque marker"


@dataclass(frozen=True, slots=True)
class Entry:
    kind: Kind
    parent: str  # "a/b", normalized; "" for the layer root
    base: str  # the last component; for a whiteout, the name it hides
    shown: str  # the name for messages: one line, printable
    mode: int  # permission bits (07777)
    uid: int
    gid: int
    mtime_ns: int
    size: int  # a file's apparent size
    sparse: tuple[tuple[int, int], ...] | None  # (offset, bytes) data regions, holes between
    link: tuple[str, str] | None  # a hard link's target (parent, base)
    symlink: str  # a symlink's target, stored as text, never followed
    device: tuple[int, int]
    xattrs: tuple[tuple[str, bytes], ...]

    @property
    def path(self) -> str:
        return f"{self.parent}/{self.base}" if self.parent else self.base


def shown(name: str, limit: int = 200) -> str:
    """``name`` as one printable line of valid UTF-8: what messages may carry."""
    if len(name) <= limit and name.isprintable():
        return name
    cut = name[:limit]
    text = cut.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = "".join(
        c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
        for c in text
    )
    return text if len(name) <= limit else text + "..."


def split(name: str, what: str, display: str) -> tuple[str, str]:
    """(parent, base) of a member name, refusing names that leave the layer or that no
    file system takes."""
    if "\0" in name:
        raise BadLayer(f"{what}: {display}: a NUL in the name (the layer is malformed)")
    try:
        encoded = name.encode("utf-8", "surrogateescape")
    except UnicodeError:
        raise BadLayer(f"{what}: {display}: the name is not a byte string") from None
    if len(encoded) > MAX_PATH:
        raise BadLayer(f"{what}: {display}: a name of {len(encoded)} bytes (at most {MAX_PATH})")
    if name.startswith("/"):
        raise UnsafeLayer(
            f"{what}: {display}: absolute names are refused (the layer is malformed or hostile)"
        )
    parts = name.split("/")
    if "" in parts or "." in parts:
        parts = [p for p in parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayer(
            f"{what}: {display}: '..' in a name is refused (the layer is malformed or hostile)"
        )
    if len(encoded) > NAME_MAX and _LONG_COMPONENT.search(encoded):
        raise BadLayer(
            f"{what}: {display}: a name component longer than {NAME_MAX} "
            "bytes, which no Linux file system takes"
        )
    if not parts:
        return "", ""
    return "/".join(parts[:-1]), parts[-1]


def _number(value: object, low: int, high: int, field: str, what: str, display: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadLayer(
            f"{what}: {display}: {field} {shown(str(value), 40)} is out of range ({low} to {high})"
        )
    return value


def _mtime_ns(value: object, what: str, display: str) -> int:
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) > TIME_MAX:
            raise BadLayer(f"{what}: {display}: mtime {shown(str(value), 40)} is not a time")
        return int(value * 10**9)
    return _number(value, -TIME_MAX, TIME_MAX, "mtime", what, display) * 10**9


def _kind(member: tarfile.TarInfo, base: str, what: str, display: str) -> Kind:
    if base == OPAQUE:
        return Kind.OPAQUE
    if base.startswith(WHITEOUT):
        return Kind.WHITEOUT
    for test, kind in (
        (member.isreg, Kind.FILE),
        (member.isdir, Kind.DIRECTORY),
        (member.issym, Kind.SYMLINK),
        (member.islnk, Kind.HARDLINK),
        (member.isfifo, Kind.FIFO),
        (member.ischr, Kind.CHARACTER),
        (member.isblk, Kind.BLOCK),
    ):
        if test():
            return kind
    raise BadLayer(f"{what}: {display}: unsupported tar entry type {shown(str(member.type))}")


def _sparse(
    member: tarfile.TarInfo, size: int, what: str, display: str
) -> tuple[tuple[int, int], ...] | None:
    regions = getattr(member, "sparse", None)
    if regions is None:
        return None
    end = 0
    for offset, count in regions:
        if (
            not (isinstance(offset, int) and isinstance(count, int))
            or offset < end
            or count < 0
            or offset + count > size
        ):
            raise BadLayer(
                f"{what}: {display}: its sparse map is out of order or beyond the "
                "file's size (the layer is malformed)"
            )
        end = offset + count
    return tuple(regions)


def _xattrs(member: tarfile.TarInfo, what: str, display: str) -> tuple[tuple[str, bytes], ...]:
    found = []
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key.removeprefix("SCHILY.xattr.")
            if not (name.startswith(XATTRS) or name in XATTRS):
                continue
            data = value.encode("utf-8", "surrogateescape")
            # Linux: names of at most 255 bytes, values of at most 64 KiB.
            if (
                "\0" in name
                or len(name.encode("utf-8", "surrogateescape")) > 255
                or len(data) > 65536
            ):
                raise BadLayer(
                    f"{what}: {display}: extended attribute {shown(name, 60)} "
                    "is not one Linux takes"
                )
            found.append((name, data))
    return tuple(found)


def entry_of(member: tarfile.TarInfo, what: str) -> Entry | None:
    """The checked entry of ``member``; None for the layer root itself (".")."""
    display = shown(member.name)
    parent, base = split(member.name, what, display)
    if not base:
        return None
    kind = _kind(member, base, what, display)
    if kind is Kind.WHITEOUT:
        base = base.removeprefix(WHITEOUT)
        if base in ("", ".", ".."):
            raise UnsafeLayer(
                f"{what}: {display}: a whiteout of {base or 'nothing'!r} is "
                "refused (the layer is malformed or hostile)"
            )
    size = _number(member.size, 0, 2**63 - 1, "size", what, display)
    link = None
    symlink = ""
    if kind is Kind.HARDLINK:
        link = split(member.linkname, what, f"{display} (its target {shown(member.linkname)})")
        if not link[1]:
            raise BadLayer(f"{what}: {display}: a hard link to the layer's root")
    elif kind is Kind.SYMLINK:
        symlink = member.linkname
        encoded = symlink.encode("utf-8", "surrogateescape")
        if not symlink or "\0" in symlink or len(encoded) > SYMLINK_MAX:
            raise BadLayer(
                f"{what}: {display}: a symlink target that is empty, holds a NUL "
                f"or is longer than {SYMLINK_MAX} bytes"
            )
    device = (0, 0)
    if kind in (Kind.CHARACTER, Kind.BLOCK):
        # Linux's dev_t: 12 bits of major, 20 of minor.
        device = (
            _number(member.devmajor, 0, 2**12 - 1, "device major", what, display),
            _number(member.devminor, 0, 2**20 - 1, "device minor", what, display),
        )
    mode = _number(member.mode, 0, 2**32 - 1, "mode", what, display) & 0o7777
    return Entry(
        kind=kind,
        parent=parent,
        base=base,
        shown=display,
        mode=mode,
        uid=_number(member.uid, 0, ID_MAX, "uid", what, display),
        gid=_number(member.gid, 0, ID_MAX, "gid", what, display),
        mtime_ns=_mtime_ns(member.mtime, what, display),
        size=size,
        sparse=_sparse(member, size, what, display) if kind is Kind.FILE else None,
        link=link,
        symlink=symlink,
        device=device,
        xattrs=_xattrs(member, what, display),
    )
