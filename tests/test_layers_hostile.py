# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hostile and malformed layers: every one is a typed one-line error naming the layer and
the entry, or unpacks without touching anything outside its directory; sparse files are
holes; fds and memory stay bounded whatever the layer's shape; and a fuzzed corpus of
tar streams finds no other outcome."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import imagebuild as ib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podmgr.errors import PodmgrError
from podmgr.image import dirtree, layerstream, unpack

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="unpacking sets owners and makes whiteouts: needs root",
)

CHECKOUT = Path(__file__).resolve().parent.parent
WHAT = "layer sha256:" + "ab" * 32


def pax(
    name: str, headers: dict[str, str], content: bytes = b"", kind: bytes = tarfile.REGTYPE
) -> ib.Entry:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime = kind, len(content), 1_700_000_000
    info.pax_headers = headers
    return info, content


def gnu_tar(entries: list[ib.Entry]) -> bytes:
    """GNU format: numbers too large for octal are written base-256, negative ones too."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for info, content in entries:
            archive.addfile(info, io.BytesIO(content) if info.isfile() else None)
    return buffer.getvalue()


def with_mode(name: str, mode: int) -> bytes:
    """A file whose header's mode field holds ``mode`` in GNU base-256 (tarfile masks
    modes when it writes them, so the field is written here)."""
    data = bytearray(gnu_tar([ib.file(name, b"x")]))
    data[100:108] = bytes([0xFF if mode < 0 else 0x80]) + (mode % 256**7).to_bytes(7, "big")
    data[148:156] = b" " * 8
    data[148:156] = b"%06o\0 " % sum(data[:512])
    return bytes(data)


def pax_chain(count: int) -> bytes:
    """``count`` PAX headers in a row before one file: tarfile parses them recursively."""
    record = b"13 comment=x\n"
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, len(record)
    block = header.tobuf(tarfile.USTAR_FORMAT) + record.ljust(512, b"\0")
    return block * count + ib.tar([ib.file("f", b"x")])


def global_headers(count: int) -> bytes:
    """``count`` entries, each after a global PAX header adding 100 KB to all that follow."""
    blocks = []
    for index in range(count):
        record = f"{index}.comment=" + "x" * 100_000 + "\n"
        record = f"{len(record) + len(str(len(record))) + 1} {record}"
        header = tarfile.TarInfo("././@PaxHeader")
        header.type, header.size = tarfile.XGLTYPE, len(record)
        data = record.encode()
        blocks.append(
            header.tobuf(tarfile.USTAR_FORMAT)
            + data
            + bytes(-len(data) % 512)
            + ib.tar([ib.file(f"f{index}")])[:512]
        )
    return b"".join(blocks) + bytes(1024)


def sparse_tar(apparent: int, regions: list[tuple[int, bytes]]) -> bytes:
    """A GNU sparse file (PAX format 1.0) of ``apparent`` bytes with data ``regions``."""
    lines = [str(len(regions))] + [f"{o}\n{len(d)}" for o, d in regions]
    sparse_map = ("\n".join(lines) + "\n").encode().ljust(512, b"\0")
    data = sparse_map + b"".join(d for _, d in regions)
    info = tarfile.TarInfo("GNUSparseFile.0/sparse")
    info.size, info.mtime = len(data), 1_700_000_000
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": "sparse",
        "GNU.sparse.realsize": str(apparent),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


LONG = "n" * 300
# Each: the tar stream, and what the one-line error must say (with the entry's name).
HOSTILE: dict[str, tuple[bytes, str]] = {
    "nul-in-pax-path": (ib.tar([pax("x", {"path": "etc/pass\0wd"})]), "etc/pass\\x00wd: a NUL"),
    "uid-2**40": (ib.tar([pax("f", {"uid": str(2**40)})]), "f: uid 1099511627776 is out"),
    "gid-negative": (ib.tar([pax("f", {"gid": "-1"})]), "f: gid -1 is out of range"),
    "uid-minus-one-as-unsigned": (ib.tar([pax("f", {"uid": str(2**32 - 1)})]), "f: uid"),
    "mtime-nan": (ib.tar([pax("f", {"mtime": "nan"})]), "f: mtime nan is not a time"),
    "mtime-inf": (ib.tar([pax("f", {"mtime": "1e400"})]), "f: mtime inf is not a time"),
    "mtime-huge": (ib.tar([pax("f", {"mtime": "1" + "0" * 30})]), "f: mtime"),
    "hard-link-to-itself": (
        ib.tar([ib.file("self", b"x"), ib.hardlink("self", "self")]),
        "self: a hard link to itself",
    ),
    "hard-link-below-itself": (
        ib.tar([ib.directory("d"), ib.file("d/f", b"x"), ib.hardlink("d", "d/f")]),
        "d: a hard link to itself",
    ),
    "hard-link-to-a-directory": (
        ib.tar([ib.directory("d"), ib.hardlink("l", "d")]),
        "l: a hard link to 'd'",
    ),
    "300-byte-name": (ib.tar([ib.file(LONG, b"x")]), "longer than 255 bytes"),
    "300-byte-directory-on-the-way": (ib.tar([ib.file(f"a/{LONG}/f", b"x")]), "255 bytes"),
    "300-byte-whiteout": (ib.tar([ib.file(f".wh.{LONG}")]), "255 bytes"),
    "300-byte-hard-link-target": (ib.tar([ib.hardlink("l", LONG)]), "255 bytes"),
    "name-of-100-kib": (ib.tar([ib.file("d/" * 50_000 + "f", b"x")]), "bytes (at most"),
    "negative-mode": (with_mode("f", -1), "f: mode -1 is out of range"),
    "huge-mode": (with_mode("f", 2**50), "f: mode 1125899906842624 is out of range"),
    "huge-device-major": (gnu_tar([ib.device("dev/x", 2**30, 1)]), "device major"),
    "symlink-loop-then-write": (
        ib.tar([ib.symlink("a", "b"), ib.symlink("b", "a"), ib.file("a/x", b"x")]),
        "a/x: a is a symlink",
    ),
    "symlink-target-of-5000-bytes": (ib.tar([ib.symlink("l", "t" * 5000)]), "l: a symlink target"),
    "symlink-target-empty": (ib.tar([ib.symlink("l", "")]), "l: a symlink target"),
    "pax-size-negative": (ib.tar([pax("f", {"size": "-5"})]), "f: size -5 is out of range"),
    "pax-header-of-2-mib": (
        ib.tar([pax("f", {"comment": "x" * (2 << 20)})]),
        "an extended header of",
    ),
    "a-thousand-pax-headers-in-a-row": (pax_chain(1000), "more than 16 extended headers"),
    "global-headers-piling-up": (global_headers(20), "global extended headers of more than"),
    "sparse-map-out-of-order": (
        ib.tar([pax("f", {"GNU.sparse.map": "100,1,0,1", "GNU.sparse.size": "200"}, b"ab")]),
        "f: its sparse map is out of order",
    ),
    "sparse-map-garbage": (
        ib.tar([pax("f", {"GNU.sparse.map": "1,x", "GNU.sparse.size": "2"}, b"ab")]),
        "not a valid tar",
    ),
    "truncated-file-data": (ib.tar([ib.file("f", b"x" * 100_000)])[:4096], "f: its data"),
    "bad-capability-xattr": (
        ib.tar([pax("f", {"SCHILY.xattr.security.capability": "junk"})]),
        "f: ",
    ),
    "xattr-value-over-64-kib": (
        ib.tar([pax("f", {"SCHILY.xattr.user.big": "x" * 70_000})]),
        "f: extended attribute user.big",
    ),
    "unknown-entry-type": (ib.tar([pax("v", {}, kind=b"V")]), "v: unsupported tar entry type"),
    "not-a-tar-at-all": (b"\x89PNG" * 500, "not a valid tar"),
    "whiteout-of-dot-dot": (ib.tar([ib.file("a/.wh...")]), "a whiteout of '..'"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_layers_are_one_line_typed_errors(case: str, layer_dir: tuple[Path, int]) -> None:
    data, message = HOSTILE[case]
    with pytest.raises(unpack.BadLayer) as raised:
        unpack.unpack(
            io.BytesIO(data), layer_dir[1], WHAT, unpack.Limits(devices=case == "huge-device-major")
        )
    text = str(raised.value)
    assert text.startswith(WHAT + ": ")
    assert "\n" not in text
    assert message in text


def test_a_sparse_map_claiming_a_billion_regions_is_refused(layer_dir: tuple[Path, int]) -> None:
    data = sparse_tar(1 << 20, [(0, b"x")])
    assert b"1\n0\n1\n" in data
    data = data.replace(b"1\n0\n1\n", b"999999999\n0\n1\n", 1)
    with pytest.raises(unpack.BadLayer, match="a sparse map of more than 65536 regions"):
        unpack.unpack(io.BytesIO(data), layer_dir[1], WHAT)


def test_odd_but_valid_entries_unpack(layer_dir: tuple[Path, int]) -> None:
    layer, fd = layer_dir
    odd = tarfile.TarInfo("odd-\udcff\udcfe")  # not UTF-8: Linux takes any bytes
    odd.size, odd.mtime = 1, 1_700_000_000
    entries = [
        (odd, b"x"),
        ib.file("dup", b"one"),
        ib.file("dup", b"two"),  # the later entry wins
        ib.file("was-a-file", b"x"),
        ib.directory("was-a-file"),
        ib.directory("was-a-dir"),
        ib.file("was-a-dir/inside"),
        ib.file("was-a-dir", b"f"),
        pax("pre-1970", {"mtime": "-86400.5"}),
        ib.file("n" * 255, b"255 bytes is the most a component may have"),
        ib.symlink("long-link", "t" * 4095),
    ]
    unpack.unpack(io.BytesIO(ib.tar(entries)), fd, WHAT)
    assert (layer / "odd-\udcff\udcfe").read_bytes() == b"x"
    assert os.fsencode("odd-\udcff\udcfe") == b"odd-\xff\xfe"
    assert (layer / "dup").read_bytes() == b"two"
    assert (layer / "was-a-file").is_dir()
    assert (layer / "was-a-dir").read_bytes() == b"f"
    assert (layer / "pre-1970").stat().st_mtime == -86400.5
    assert len(os.readlink(layer / "long-link")) == 4095


def test_sparse_files_are_written_as_holes(layer_dir: tuple[Path, int]) -> None:
    layer, fd = layer_dir
    apparent = 1 << 30
    data = sparse_tar(apparent, [(4096, b"a" * 4096), (512 << 20, b"b" * 100)])
    unpack.unpack(io.BytesIO(data), fd, WHAT, unpack.Limits(ratio=10**6), len(data))
    info = (layer / "sparse").stat()
    assert info.st_size == apparent
    assert info.st_blocks * 512 < 1 << 20  # not a gigabyte of zeros on disk
    with (layer / "sparse").open("rb") as sparse:
        assert sparse.read(8192) == bytes(4096) + b"a" * 4096
        sparse.seek(512 << 20)
        assert sparse.read(200) == b"b" * 100 + bytes(100)


def test_a_small_layer_cannot_unpack_to_gigabytes(layer_dir: tuple[Path, int]) -> None:
    # 8 GiB of sparse file in 20 KB, under the 64 GiB default max_layer_size.
    layer, fd = layer_dir
    data = sparse_tar(8 << 30, [(0, os.urandom(16 << 10))])
    assert len(data) <= 20 << 10
    with pytest.raises(unpack.BadLayer, match="more than 2000 times its compressed size"):
        unpack.unpack(io.BytesIO(data), fd, WHAT, unpack.Limits(), len(data))
    assert not (layer / "sparse").exists() or (layer / "sparse").stat().st_blocks < 1 << 12
    # The tar stream counts too: a compressed stream of many empty entries.
    many = ib.Image([ib.tar([ib.file(f"f{i}") for i in range(4000)])], "zstd")
    blobs, _ = many.blobs()
    [blob] = [b for b in blobs.values() if b.startswith(b"\x28\xb5\x2f\xfd")]
    assert len(blob) * 100 < 4000 * 512  # its tar stream is 2 MB
    with pytest.raises(unpack.BadLayer, match="more than 100 times its compressed size"):
        layerstream.unpack_blob(
            io.BytesIO(blob),
            ib.COMPRESSIONS["zstd"][0],
            fd,
            unpack.Limits(ratio=100),
            WHAT,
            len(blob),
        )


def test_malformed_compression_is_a_bad_layer(layer_dir: tuple[Path, int]) -> None:
    for compression, junk in (
        ("gzip", b"\x1f\x8b\x08\x00" + os.urandom(2000)),
        ("zstd", b"\x28\xb5\x2f\xfd" + os.urandom(2000)),
    ):
        with pytest.raises(unpack.BadLayer, match=f"{WHAT}: "):
            layerstream.unpack_blob(
                io.BytesIO(junk),
                ib.COMPRESSIONS[compression][0],
                layer_dir[1],
                unpack.Limits(),
                WHAT,
                len(junk),
            )


# Runs in a process of its own under a low RLIMIT_NOFILE: 20,000 directories side by
# side and 5,000 nested, entries in an order that misses the fd cache, a whiteout of the
# deep tree and a file replacing it; then counts the fds left open.
SHAPES = textwrap.dedent("""
    import io, os, resource, sys, tarfile
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
    import imagebuild as ib
    from podmgr.image import unpack
    entries = [ib.directory(f"wide/d{i // 100}/e{i}") for i in range(20_000)]
    deep = "/".join(["n"] * 5000)
    entries += [ib.directory("/".join(["n"] * k)) for k in range(1, 5001)]
    entries += [ib.file(deep + "/bottom", b"b"), ib.file("wide/d0/e0/f", b"f"),
                ib.file("/".join(["n"] * 2500) + "/middle", b"m"),
                ib.file("wide/d199/e19999/g", b"g")]
    entries += [ib.directory("m/" + "/".join(["m"] * k)) for k in range(3000)]
    entries += [ib.file(".wh.m"), ib.directory("gone/" + "/".join(["g"] * 2000)),
                ib.file("gone", b"a file now")]
    data = ib.tar(entries)
    resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))
    before = len(os.listdir("/proc/self/fd"))
    fd = os.open(sys.argv[2], os.O_RDONLY | os.O_DIRECTORY)
    stats = unpack.unpack(io.BytesIO(data), fd, "layer")
    os.close(fd)
    print(stats.entries, len(os.listdir("/proc/self/fd")) - before)
""")


@pytest.fixture
def deep_layer_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for a layer that is removed without recursion afterwards: pytest's own
    clean-up of old temporary directories recurses, and fails on 5,000 levels."""
    (tmp_path / "layer").mkdir()
    yield tmp_path / "layer"
    dirtree.remove_path(str(tmp_path / "layer"))


def test_any_shape_of_layer_unpacks_with_bounded_fds(deep_layer_dir: Path) -> None:
    tmp_path = deep_layer_dir.parent
    result = subprocess.run(
        [sys.executable, "-c", SHAPES, str(CHECKOUT), str(tmp_path / "layer")],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    entries, leaked = map(int, result.stdout.split())
    assert entries == 20_000 + 5000 + 4 + 3000 + 3
    assert leaked == 0
    layer = tmp_path / "layer"
    assert len(os.listdir(layer / "wide")) == 200
    fd = os.open(layer, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(5000):
            next_fd = os.open("n", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        assert os.listdir(fd) == ["bottom"]
    finally:
        os.close(fd)
    assert stat.S_ISCHR((layer / "m").lstat().st_mode)
    assert (layer / "gone").read_bytes() == b"a file now"


# The fuzzer's alphabet: names that leave, collide, nest, or break rules.
_names = st.lists(
    st.sampled_from(
        [
            "a",
            "b",
            "..",
            ".",
            "",
            "/",
            ".wh.a",
            ".wh..wh..opq",
            ".wh..",
            "n" * 256,
            "\0",
            "\udcff",
            "x\ny",
        ]
    ),
    min_size=1,
    max_size=4,
).map("/".join)
_numbers = st.one_of(
    st.integers(-2, 70_000),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**32 - 1, 2**32 - 2, 2**31, 2**63]),
)
_pax_values = st.one_of(
    st.sampled_from(
        ["nan", "inf", "-1", "1e400", "x", "", "0,1,x", "9" * 5000, "4294967295", "1.5"]
    ),
    _numbers.map(str),
    _names,
)
_types = st.sampled_from(
    [
        tarfile.REGTYPE,
        tarfile.AREGTYPE,
        tarfile.LNKTYPE,
        tarfile.SYMTYPE,
        tarfile.CHRTYPE,
        tarfile.BLKTYPE,
        tarfile.DIRTYPE,
        tarfile.FIFOTYPE,
        tarfile.CONTTYPE,
        b"V",
        b"Z",
    ]
)


@st.composite
def _entry(draw: st.DrawFn) -> ib.Entry:
    info = tarfile.TarInfo(draw(_names))
    info.type = draw(_types)
    info.linkname = draw(_names)
    info.mode = draw(st.integers(0, 0o7777))
    info.mtime = draw(st.integers(0, 2**33))
    info.devmajor, info.devminor = draw(st.integers(0, 300)), draw(st.integers(0, 300))
    content = draw(st.binary(max_size=600)) if info.isreg() else b""
    info.size = len(content)
    keys = st.sampled_from(
        [
            "path",
            "linkpath",
            "uid",
            "gid",
            "mtime",
            "size",
            "uname",
            "GNU.sparse.map",
            "GNU.sparse.size",
            "GNU.sparse.major",
            "GNU.sparse.minor",
            "GNU.sparse.realsize",
            "GNU.sparse.name",
            "SCHILY.xattr.user.x",
            "SCHILY.xattr.security.capability",
            "hdrcharset",
        ]
    )
    info.pax_headers = draw(st.dictionaries(keys, _pax_values, max_size=3))
    return info, content


def _build(entries: list[ib.Entry]) -> bytes | None:
    try:
        return ib.tar(entries)
    except (ValueError, UnicodeError, OverflowError, tarfile.TarError):
        return None  # tarfile would not write it; the raw-bytes corpus covers such


def _check(data: bytes, limits: unpack.Limits) -> None:
    """Unpack into a fresh directory beside a victim: typed error or success, nothing
    outside touched."""
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        (root / "victim").write_text("untouched")
        (root / "layer").mkdir()
        fd = os.open(root / "layer", os.O_RDONLY | os.O_DIRECTORY)
        failure: PodmgrError | None = None
        try:
            unpack.unpack(io.BytesIO(data), fd, WHAT, limits, max(len(data), 1))
        except PodmgrError as error:  # anything else fails the test
            failure = error
        finally:
            os.close(fd)
        if failure is not None:
            assert isinstance(failure, (unpack.BadLayer, unpack.StoreFailed))
            assert str(failure).startswith(WHAT + ": ")
            assert "\n" not in str(failure)
        assert sorted(p.name for p in root.iterdir()) == ["layer", "victim"]
        assert (root / "victim").read_text() == "untouched"


# Seconds in the default run; PODMGR_FUZZ_EXAMPLES=N runs a longer, random campaign.
_CAMPAIGN = int(os.environ.get("PODMGR_FUZZ_EXAMPLES", "0"))
_fuzz = settings(
    max_examples=_CAMPAIGN or 250,
    deadline=None,
    derandomize=not _CAMPAIGN,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_fuzz
@given(st.lists(_entry(), min_size=1, max_size=6), st.booleans())
def test_fuzzed_tar_headers_are_typed_errors_or_stay_inside(
    entries: list[ib.Entry], devices: bool
) -> None:
    data = _build(entries)
    if data is not None:
        _check(data, unpack.Limits(devices=devices, entries=50, bytes=1 << 20))


@_fuzz
@given(
    st.lists(_entry(), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=12),
    st.integers(0, 4096),
)
def test_fuzzed_tar_bytes_are_typed_errors_or_stay_inside(
    entries: list[ib.Entry], flips: list[tuple[int, int]], cut: int
) -> None:
    data = _build(entries) or ib.tar([ib.file("a/b", b"x" * 700), ib.symlink("c", "a")])
    raw = bytearray(data[: max(cut, 512)] if cut else data)
    for offset, value in flips:  # header bytes: checksums are recomputed below or not
        if offset < len(raw):
            raw[offset] = value
    _check(bytes(raw), unpack.Limits(entries=50, bytes=1 << 20))


def test_the_confined_unpacker_sends_typed_errors_and_opaque_directories_back(
    layer_dir: tuple[Path, int],
) -> None:
    layer, fd = layer_dir
    media_type = ib.COMPRESSIONS[""][0]
    for case, kind in (
        ("uid-2**40", unpack.BadLayer),
        ("symlink-loop-then-write", unpack.UnsafeLayer),
        ("truncated-file-data", unpack.BadLayer),
    ):
        data, message = HOSTILE[case]
        with pytest.raises(kind) as raised:
            layerstream.unpack_blob_confined(
                io.BytesIO(data), media_type, fd, unpack.Limits(), WHAT, len(data)
            )
        assert type(raised.value) is kind
        assert str(raised.value).startswith(WHAT + ": ")
        assert message in str(raised.value)
        for child in layer.iterdir():
            subprocess.run(["rm", "-rf", str(child)], check=True)
    # Opaque markers need CAP_SYS_ADMIN, which the confined process lacks: the caller sets
    # them, except on a directory a later entry replaced.
    data = ib.tar(
        [
            ib.directory("cache"),
            ib.file("cache/.wh..wh..opq"),
            ib.directory("gone"),
            ib.file("gone/.wh..wh..opq"),
            ib.file("gone", b"f"),
        ]
    )
    diff_id = layerstream.unpack_blob_confined(
        io.BytesIO(data), media_type, fd, unpack.Limits(), WHAT, len(data)
    )
    assert diff_id == ib.sha256(data)
    assert os.getxattr(layer / "cache", "trusted.overlay.opaque") == b"y"
    assert (layer / "gone").read_bytes() == b"f"


# A gzip member of 256 MiB of zeros is 256 KiB: read in 1 MiB pieces, it must never be
# inflated whole.
GZIP_BOMB = textwrap.dedent("""
    import io, resource, sys, zlib
    sys.path[:0] = [sys.argv[1]]
    from podmgr.image import layerstream
    squeeze = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1 << 20)
    bomb = b"".join(squeeze.compress(zeros) for _ in range(256)) + squeeze.flush()
    del zeros
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reader = layerstream.Decompressing(io.BytesIO(bomb), sys.argv[2], "bomb")
    total = 0
    while chunk := reader.read(1 << 20):
        total += len(chunk)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(len(bomb), total, grown)
""")


def test_decompression_holds_a_few_mib_whatever_the_ratio() -> None:
    result = subprocess.run(
        [sys.executable, "-c", GZIP_BOMB, str(CHECKOUT), ib.COMPRESSIONS["gzip"][0]],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    compressed, total, grown_kib = map(int, result.stdout.split())
    assert compressed < 1 << 20
    assert total == 256 << 20
    assert grown_kib < 48 << 10  # the queue holds 16 chunks of 1 MiB, and one being read
