# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the store holds is root's alone, the confined unpacker writes only its layer, and
a store that cannot hold a layer (full, or on overlayfs) is a one-line error that leaves
no part of the layer behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import imagebuild as ib
import pytest
from bed import Bed

from podmgr import config
from podmgr.image import pull, sandbox
from podmgr.image.store import Store
from podmgr.image.trust import TrustStore

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true", reason="the store is root's: needs root"
)

CHECKOUT = Path(__file__).resolve().parent.parent
NOBODY = ["runuser", "-u", "nobody", "--"]


def setuid_image() -> ib.Image:
    """A layer with a setuid-root program (a copy of /bin/true) and a file capability."""
    tool = ib.file("bin/tool", Path("/bin/true").read_bytes(), mode=0o4755)
    capable = ib.file("bin/capable", Path("/bin/true").read_bytes(), mode=0o755)
    # cap_net_raw+ep, as ping has it (VFS_CAP_REVISION_2).
    capable[0].pax_headers = {
        "SCHILY.xattr.security.capability": (
            b"\x01\x00\x00\x02\x00\x20\x00\x00" + bytes(12)
        ).decode("utf-8", "surrogateescape")
    }
    return ib.Image([ib.tar([ib.directory("bin"), tool, capable])], "gzip")


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NOBODY, *argv], capture_output=True, text=True, check=False)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory that everyone may traverse (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="podmgr-store-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def test_an_old_store_is_tightened_and_nobody_reaches_a_layer(open_dir: Path) -> None:
    store = Store(open_dir / "store")
    with store.locked():
        pass
    layer = store.layers / ("ab" * 32)
    (layer / "bin").mkdir(parents=True)
    (layer / "bin" / "tool").write_bytes(Path("/bin/true").read_bytes())
    os.chmod(layer / "bin" / "tool", 0o4755)  # noqa: S103 -- what an image holds
    layer.chmod(0o755)
    # What older podmgr left: traversable by everyone.
    for directory in (store.root, store.layers.parent, store.layers):
        directory.chmod(0o711)
    assert as_nobody(str(layer / "bin" / "tool")).returncode == 0  # CVE-2021-41091's class
    with store.locked():
        pass
    for directory in (
        store.root,
        store.blobs,
        store.layers.parent,
        store.layers,
        store.images,
        store.tmp,
    ):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for argv in (
        ["ls", str(store.root)],
        ["ls", str(store.layers)],
        ["stat", str(layer)],
        [str(layer / "bin" / "tool")],
    ):
        refused = as_nobody(*argv)
        assert refused.returncode != 0, argv
        assert "Permission denied" in refused.stderr, argv
    # The image's own bits are kept: the pods that run it need them.
    assert stat.S_IMODE((layer / "bin" / "tool").stat().st_mode) == 0o4755


def test_setuid_bits_and_file_capabilities_in_images_are_kept(tmp_path: Path) -> None:
    ib.write_layout(tmp_path / "layout", {"1": setuid_image()})
    store = Store(tmp_path / "store")
    policy = config.ImagePolicy(("example.org",), 10**6, 1 << 30, False, False)
    record = pull.fetch(
        f"oci:{tmp_path}/layout:1",
        "example.org/t/app:1",
        store,
        config.Config(policy, {}),
        TrustStore(tmp_path / "k", tmp_path / "v"),
    )
    layer = store.layer_path(record.layers[0])
    assert stat.S_IMODE((layer / "bin" / "tool").stat().st_mode) == 0o4755
    assert os.getxattr(layer / "bin" / "capable", "security.capability")[:4] == b"\x01\x00\x00\x02"
    assert stat.S_IMODE(layer.stat().st_mode) == 0o755  # the root directory pods see


def test_the_confined_unpacker_cannot_write_outside_its_layer(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    layer = tmp_path / "layer"
    layer.mkdir()
    fd = os.open(layer, os.O_RDONLY | os.O_DIRECTORY)
    try:
        report = sandbox.run(
            "sandbox_probe:probe",
            {"victim": str(victim), "host_pid": os.getpid()},
            fd,
            open(os.devnull, "rb"),  # noqa: SIM115
            "probe",
        )
    finally:
        os.close(fd)
    assert isinstance(report, dict)
    refusals = {"ENOENT", "EROFS", "EPERM", "EACCES", "ESRCH"}
    inside = {"write inside the target", "make a whiteout inside", "chown inside"}
    for step, outcome in report.items():
        if step in inside:
            assert outcome == "ok", (step, outcome)
        else:
            assert outcome in refusals, (step, outcome)
    assert victim.read_text() == "untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer", "victim"]
    assert sorted(p.name for p in layer.iterdir()) == ["inside", "wh"]
    assert (layer / "inside").stat().st_uid == 1234


def test_a_failing_confined_process_is_a_one_line_error(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(
            sandbox.SandboxFailed,
            match=r"^probe: the confined process failed "
            r"\(exit status 1\): AttributeError: .*no attribute 'nothing'",
        ):
            sandbox.run(
                "sandbox_probe:nothing",
                {},
                fd,
                open(os.devnull, "rb"),  # noqa: SIM115
                "probe",
            )
    finally:
        os.close(fd)


# Imports an image into a store on a file system made for the test, in a mount namespace
# of its own: a small tmpfs (full), or an overlay (cannot hold whiteouts).
IMPORT = textwrap.dedent("""
    import json, os, subprocess, sys
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
    from pathlib import Path
    from podmgr import config
    from podmgr.errors import PodmgrError
    from podmgr.image import pull
    from podmgr.image.store import Store
    from podmgr.image.trust import TrustStore
    kind, source, work = sys.argv[2], sys.argv[3], Path(sys.argv[4])
    store = work / "store"
    store.mkdir()
    if kind == "full":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "full", str(store)], check=True)
    else:
        for part in ("lower", "upper", "work"):
            (work / part).mkdir()
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={work}/lower,"
                        f"upperdir={work}/upper,workdir={work}/work", str(store)], check=True)
    policy = config.ImagePolicy(("example.org",), 10**6, 1 << 34, False, False)
    try:
        pull.fetch(source, "example.org/t/app:1", Store(store), config.Config(policy, {}),
                     TrustStore(work / "k", work / "v"))
        outcome = {"stored": True}
    except PodmgrError as error:
        outcome = {"code": error.code, "message": str(error)}
    outcome["layers"] = sorted(os.listdir(store / "layers" / "sha256"))
    print(json.dumps(outcome))
""")


def import_into(kind: str, image: ib.Image, tmp_path: Path) -> dict[str, object]:
    ib.write_layout(tmp_path / "layout", {"1": image})
    (tmp_path / "work").mkdir()
    result = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            sys.executable,
            "-c",
            IMPORT,
            str(CHECKOUT),
            kind,
            f"oci:{tmp_path}/layout:1",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome: dict[str, object] = json.loads(result.stdout)
    return outcome


def test_a_full_store_is_a_one_line_error_and_keeps_no_part_of_the_layer(tmp_path: Path) -> None:
    big = ib.Image([ib.tar([ib.file(f"data/{i}", os.urandom(1 << 20)) for i in range(4)])], "gzip")
    outcome = import_into("full", big, tmp_path)
    assert outcome["code"] == "StoreFailed"
    message = str(outcome["message"])
    assert message.startswith("layer sha256:")
    assert ": data/" in message
    assert "no space left on the store's file system" in message
    assert "\n" not in message
    assert [
        name
        for name in outcome["layers"]  # type: ignore[attr-defined]
        if not name.endswith(".lock")
    ] == []


def test_a_store_on_overlayfs_names_the_cause(tmp_path: Path) -> None:
    image = ib.Image(
        [ib.tar([ib.file("etc/motd", b"hi")]), ib.tar([ib.file("etc/.wh.motd")])], "gzip"
    )
    outcome = import_into("overlay", image, tmp_path)
    assert outcome["code"] == "StoreFailed"
    assert str(outcome["message"]).endswith(
        ": etc/.wh.motd: /var/lib/podmgr is on overlayfs, "
        "which cannot hold whiteouts; give it its own "
        "file system"
    )
    # Not even the first layer, unpacked beside the second: an image is stored whole or
    # not at all.
    assert [
        n
        for n in outcome["layers"]  # type: ignore[attr-defined]
        if not n.endswith(".lock")
    ] == []


BUILD = f"""
import sys
sys.path.insert(0, "{CHECKOUT}/tests")
from pathlib import Path
import imagebuild as ib
rootfs = ib.tar(ib.tree(Path("/tmp/rootfs")))
tool = ib.file("bin/tool", Path("/bin/true").read_bytes(), mode=0o4755)
say = ["/bin/sh", "-c", "echo from the image; exec sleep infinity"]
ib.write_layout(Path("/tmp/layout"), {{"1": ib.Image([rootfs, ib.tar([tool])], "gzip",
                                                    {{"Cmd": say}})}})
"""


@pytest.mark.integration
def test_nobody_reaches_the_store_and_pods_still_start(bed: Bed) -> None:
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", "/tmp/rootfs")
    bed.run("/usr/bin/python3", "-c", BUILD)
    bed.run(
        "sh",
        "-c",
        "mkdir -p /etc/podmgr && cat > /etc/podmgr/podmgr.toml",
        input='[images]\ninsecure = ["example.org/t"]\n',
    )
    bed.run(
        "podmgr",
        "image",
        "import",
        "oci:/tmp/layout:1",
        "--name",
        "example.org/t/app:1",
        timeout=300,
    )
    inspected = json.loads(
        bed.run(
            "runuser", "-u", "nobody", "--", "podmgr", "image", "inspect", "example.org/t/app:1"
        ).stdout
    )
    top = inspected["layers"][-1]["path"]
    assert bed.run("stat", "-c", "%a", f"{top}/bin/tool").stdout.strip() == "4755"
    for argv in (
        ["ls", "/var/lib/podmgr"],
        ["ls", "/var/lib/podmgr/layers/sha256"],
        ["ls", top],
        [f"{top}/bin/tool"],
    ):
        refused = bed.run("runuser", "-u", "nobody", "--", *argv, check=False)
        assert refused.returncode != 0, argv
        assert "Permission denied" in refused.stderr, (argv, refused.stderr)
    assert bed.run("stat", "-c", "%a", "/var/lib/podmgr").stdout.strip() == "700"
    # The kernel reads the lower layers as root: the pod starts, and runs as the image says.
    bed.run(
        "sh",
        "-c",
        "cat > /etc/podmgr/pods/fromimage.toml",
        input='[app.main]\nimage = "example.org/t/app:1"\nuser = "65534"\n',
    )
    bed.run("systemctl", "daemon-reload")
    bed.run("systemctl", "start", "pod@fromimage.service", timeout=120)
    deadline = time.monotonic() + 15
    while (
        "from the image" not in bed.run("journalctl", "PODMGR_POD=fromimage", "--no-pager").stdout
    ):
        assert time.monotonic() < deadline, "the app from the image did not run"
        time.sleep(0.1)
    bed.run("systemctl", "stop", "pod@fromimage.service", timeout=120)
