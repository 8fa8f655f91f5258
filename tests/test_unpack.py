# SPDX-License-Identifier: LGPL-2.1-or-later
"""Unpacking layers: a corpus of hostile layers touches nothing outside the layer, and
whiteouts stack under overlayfs exactly as `tar -x` of the layers in order, with the
OCI whiteouts applied, would leave them."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import imagebuild as ib
import pytest

from podmgr.image import unpack

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="unpacking sets owners and makes whiteouts: needs root",
)


def run(entries: list[ib.Entry], fd: int, limits: unpack.Limits | None = None) -> unpack.Stats:
    return unpack.unpack(io.BytesIO(ib.tar(entries)), fd, "test layer", limits or unpack.Limits())


HOSTILE = {
    "dot-dot": ([ib.file("../outside/victim", b"owned")], "'..' in a name"),
    "dot-dot-deep": ([ib.file("a/../../outside/victim", b"owned")], "'..' in a name"),
    "absolute": ([ib.file("/outside/victim", b"owned")], "absolute names"),
    "symlink-then-write": (
        [ib.symlink("escape", "../outside"), ib.file("escape/victim", b"owned")],
        "is a symlink",
    ),
    "absolute-symlink-then-write": (
        [ib.symlink("etc", "/etc"), ib.file("etc/podmgr-test-owned", b"owned")],
        "is a symlink",
    ),
    "hardlink-escape": ([ib.hardlink("link", "../outside/victim")], "'..' in a name"),
    "hardlink-to-host": ([ib.hardlink("link", "etc/passwd")], "not a file of this layer"),
    "hardlink-not-yet-extracted": (
        [ib.hardlink("link", "later"), ib.file("later", b"x")],
        "not a file of this layer",
    ),
    "whiteout-of-dot-dot": ([ib.file("sub/.wh...")], "a whiteout of '..'"),
    "whiteout-of-dot": ([ib.file(".wh..")], "a whiteout of '.'"),
    "device": ([ib.device("dev/mem", 1, 1)], "device nodes are refused"),
    "file-under-a-file": (
        [ib.file("plain", b"x"), ib.file("plain/inside", b"y")],
        "not a directory",
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_layers_are_refused(case: str, layer_dir: tuple[Path, int]) -> None:
    entries, message = HOSTILE[case]
    with pytest.raises(unpack.UnsafeLayer, match=message):
        run(entries, layer_dir[1])
    assert not Path("/etc/podmgr-test-owned").exists()


def test_a_dot_symlink_cannot_replace_the_layer_root(layer_dir: tuple[Path, int]) -> None:
    # CVE-2021-29136: an entry "." that is a symlink must not redirect what follows.
    layer, fd = layer_dir
    run(
        [
            ib.symlink(".", "../outside"),
            ib.symlink("./", "../outside"),
            ib.file("victim", b"inside"),
        ],
        fd,
    )
    assert (layer / "victim").read_text() == "inside"
    assert not layer.is_symlink()


def sparse_bomb(apparent_size: int) -> bytes:
    """A tar holding one GNU sparse file (PAX format 1.0) of ``apparent_size`` bytes, all
    hole: a few hundred bytes that would unpack to as much as one likes."""
    info = tarfile.TarInfo("GNUSparseFile.0/bomb")
    sparse_map = b"1\n0\n0\n".ljust(512, b"\0")  # one region: offset 0, 0 bytes
    info.size = len(sparse_map)
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": "bomb",
        "GNU.sparse.realsize": str(apparent_size),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(sparse_map))
    return buffer.getvalue()


def test_a_huge_sparse_file_is_refused_by_size_not_written(layer_dir: tuple[Path, int]) -> None:
    layer, fd = layer_dir
    bomb = sparse_bomb(1 << 40)  # 1 TiB
    assert len(bomb) <= 10240  # one tar record
    with pytest.raises(unpack.BadLayer, match="more than 1073741824 bytes"):
        unpack.unpack(io.BytesIO(bomb), fd, "bomb", unpack.Limits(bytes=1 << 30))
    assert not (layer / "bomb").exists()


def test_too_many_entries(layer_dir: tuple[Path, int]) -> None:
    with pytest.raises(unpack.BadLayer, match="more than 10 entries"):
        run([ib.file(f"f{i}") for i in range(11)], layer_dir[1], unpack.Limits(entries=10))


def test_what_is_kept_and_what_is_dropped(layer_dir: tuple[Path, int]) -> None:
    layer, fd = layer_dir
    tool = ib.file("bin/tool", b"#!/bin/sh\n", mode=0o4755, uid=7)
    tool[0].pax_headers = {
        "SCHILY.xattr.user.note": "kept",
        "SCHILY.xattr.trusted.overlay.opaque": "y",
        "SCHILY.xattr.security.selinux": "system_u:object_r:x",
    }
    run(
        [
            ib.directory("bin", 0o750),
            tool,
            ib.symlink("bin/sh", "busybox"),
            ib.hardlink("bin/tool2", "bin/tool"),
            ib.device("dev/null"),
        ],
        fd,
        unpack.Limits(devices=True),
    )
    info = (layer / "bin/tool").stat()
    assert stat.S_IMODE(info.st_mode) == 0o4755
    assert info.st_uid == 7
    assert info.st_nlink == 2
    assert stat.S_IMODE((layer / "bin").stat().st_mode) == 0o750
    assert os.readlink(layer / "bin/sh") == "busybox"
    assert stat.S_ISCHR((layer / "dev/null").lstat().st_mode)
    assert os.getxattr(layer / "bin/tool", "user.note") == b"kept"
    assert set(os.listxattr(layer / "bin/tool")) == {"user.note"}
    # On request, setuid and setgid bits are dropped.
    (layer / "bin/tool").unlink()
    (layer / "bin/tool2").unlink()
    run([ib.file("bin/tool", b"x", mode=0o6755)], fd, unpack.Limits(strip_setuid=True))
    assert stat.S_IMODE((layer / "bin/tool").stat().st_mode) == 0o755


def test_whiteouts_become_overlayfs_whiteouts(layer_dir: tuple[Path, int]) -> None:
    layer, fd = layer_dir
    run([ib.file("etc/.wh.motd"), ib.directory("var/cache"), ib.file("var/cache/.wh..wh..opq")], fd)
    motd = (layer / "etc/motd").lstat()
    assert stat.S_ISCHR(motd.st_mode)
    assert motd.st_rdev == os.makedev(0, 0)
    assert os.getxattr(layer / "var/cache", "trusted.overlay.opaque") == b"y"
    assert not (layer / "etc/.wh.motd").exists()


# Three layers exercising whiteouts, opaque directories and replacements.
STACK = [
    [
        ib.directory("etc"),
        ib.file("etc/motd", b"one"),
        ib.file("etc/keep", b"keep"),
        ib.directory("var/cache"),
        ib.file("var/cache/a", b"a"),
        ib.file("var/cache/b", b"b"),
        ib.directory("opt/tool"),
        ib.file("opt/tool/bin", b"v1"),
        ib.file("swap", b"file"),
    ],
    [
        ib.file("etc/.wh.motd"),
        ib.file("var/cache/.wh..wh..opq"),
        ib.file("var/cache/c", b"c"),
        ib.file("opt/.wh.tool"),
        ib.directory("swap"),
        ib.file("swap/inside", b"now a dir"),
    ],
    [ib.file("etc/motd", b"three"), ib.file("opt/tool", b"a file now"), ib.file("var/cache/.wh.c")],
]


def _listing(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its type and, for files, a content digest."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            found[relative] = "link:" + os.readlink(path)
        elif path.is_dir():
            found[relative] = "dir"
        else:
            found[relative] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return found


def _tar_x_with_whiteouts(layers: list[bytes], root: Path) -> None:
    """The reference: tar -x each layer in order, applying its whiteouts first."""
    root.mkdir()
    for index, layer in enumerate(layers):
        stage = root.parent / f"stage{index}"
        stage.mkdir()
        subprocess.run(["tar", "-x", "-C", str(stage)], input=layer, check=True)
        for marker in sorted(stage.rglob(".wh.*")):
            target = root / marker.relative_to(stage).parent
            if marker.name == ".wh..wh..opq":
                for child in target.glob("*") if target.is_dir() else []:
                    subprocess.run(["rm", "-rf", str(child)], check=True)
            else:
                hidden = target / marker.name.removeprefix(".wh.")
                subprocess.run(["rm", "-rf", str(hidden)], check=True)
            marker.unlink()
        for path in sorted(stage.rglob("*")):  # a file replacing a dir, or a dir a file
            existing = root / path.relative_to(stage)
            if existing.exists() and (existing.is_dir() != path.is_dir() or path.is_symlink()):
                subprocess.run(["rm", "-rf", str(existing)], check=True)
        subprocess.run(["cp", "-a", f"{stage}/.", str(root)], check=True)


def test_stacked_layers_show_what_tar_x_in_order_shows(tmp_path: Path) -> None:
    lowers: list[str] = []
    for index, entries in enumerate(STACK):
        layer = tmp_path / f"layer{index}"
        layer.mkdir()
        fd = os.open(layer, os.O_RDONLY | os.O_DIRECTORY)
        try:
            run(entries, fd)
        finally:
            os.close(fd)
        lowers.insert(0, str(layer))  # overlayfs wants the top-most first
    _tar_x_with_whiteouts([ib.tar(entries) for entries in STACK], tmp_path / "reference")
    merged = tmp_path / "merged"
    merged.mkdir()
    # In a mount namespace of its own, so no mount is left behind on the host.
    script = (
        f"mount -t overlay overlay -o lowerdir={':'.join(lowers)} {merged} && "
        f"cp -a {merged}/. {tmp_path}/copy"
    )
    subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script], check=True
    )
    assert _listing(tmp_path / "copy") == _listing(tmp_path / "reference")
    assert (
        _listing(tmp_path / "copy")["etc/motd"]
        == "file:" + hashlib.sha256(b"three").hexdigest()[:12]
    )
