# SPDX-License-Identifier: LGPL-2.1-or-later
"""Host volumes: their sources are taken literally, never through a symbolic link."""

from __future__ import annotations

import os
import tempfile
import textwrap
from pathlib import Path

import pytest
from bed import Bed
from hypothesis import given
from hypothesis import strategies as st
from refusals import assert_start_refused
from test_host_paths import scratch_base

from podmgr import hostpaths
from podmgr.manifest import model

ROOTFS = "/var/lib/machines/podmgr-busybox"
CHECKOUT = str(Path(__file__).resolve().parent.parent)


def test_a_directory_opens_as_itself(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    fd = hostpaths.open_directory_literally(str(tmp_path / "a" / "b"))
    try:
        assert os.fstat(fd).st_ino == os.stat(tmp_path / "a" / "b").st_ino
    finally:
        os.close(fd)


@pytest.mark.parametrize("where", ["last", "middle"])
def test_a_link_in_any_component_is_refused(tmp_path: Path, where: str) -> None:
    (tmp_path / "real" / "data").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" if where == "middle" else "/")
    path = str(tmp_path / "link" / "data") if where == "middle" else str(tmp_path / "link")
    with pytest.raises(hostpaths.LinkInPath) as refused:
        hostpaths.open_directory_literally(path)
    assert refused.value.link == str(tmp_path / "link")
    assert hostpaths.first_link(path) == str(tmp_path / "link")


def test_what_is_not_a_directory_says_its_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="file"):
        hostpaths.open_directory_literally(str(tmp_path / "file" / "below"))
    with pytest.raises(FileNotFoundError, match="missing"):
        hostpaths.open_directory_literally(str(tmp_path / "missing"))


# A path of up to four components under a scratch dir, each a directory or a link to
# one (a sibling, the parent, or the scratch dir by its absolute path).  The dir lies
# four levels below the temporary one, so no chain of ".." links leaves it.
COMPONENTS = st.lists(
    st.tuples(st.sampled_from("abc"), st.sampled_from(["dir", "up", "root", "sibling"])),
    min_size=1,
    max_size=4,
)


@given(components=COMPONENTS)
def test_opened_only_when_no_component_is_a_link(components: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = path = scratch_base(tmp)
        for name, kind in components:
            (path / "sibling").mkdir(exist_ok=True)
            target = path / name
            if not target.exists() and not target.is_symlink():
                if kind == "dir":
                    target.mkdir()
                else:
                    target.symlink_to({"up": "..", "root": str(base), "sibling": "sibling"}[kind])
            path = target
        links = [str(p) for p in reversed([path, *path.parents]) if p.is_symlink()]
        if links:
            with pytest.raises(hostpaths.LinkInPath) as refused:
                hostpaths.open_directory_literally(str(path))
            assert refused.value.link == links[0] == hostpaths.first_link(str(path))
            return
        fd = hostpaths.open_directory_literally(str(path))
        try:
            assert os.fstat(fd).st_ino == os.lstat(path).st_ino
            assert hostpaths.first_link(str(path)) is None
        finally:
            os.close(fd)


def test_validate_warns_of_a_linked_source(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/")
    pod = model.parse(
        textwrap.dedent(f"""
        [volume.data]
        type = "host"
        source = "{tmp_path}/link/srv"

        [app.main]
        rootfs = "/srv/rootfs"
        exec = ["/bin/true"]
    """),
        Path("/etc/podmgr/pods/web.toml"),
    )
    assert [str(w) for w in model.warnings(pod)] == [
        f"volume.data.source: {tmp_path}/link is a symbolic link: the pod will not start, as "
        "podmgr does not follow links in a host volume's source (name the directory itself)"
    ]


def volume_pod(source: str) -> str:
    return textwrap.dedent(f"""
        [volume.data]
        type = "host"
        source = "{source}"

        [app.main]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]

        [[app.main.mount]]
        volume = "data"
        path = "/data"
    """)


@pytest.fixture(scope="module")
def volumes_bed(bed: Bed) -> Bed:
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run("mkdir", "-p", "/etc/podmgr/pods", "/srv/real/data", "/srv/plain")
    bed.run(
        "sh",
        "-c",
        "echo real > /srv/real/data/file && echo plain > /srv/plain/file && "
        "ln -s / /srv/to-root && ln -s /srv/real /srv/via",
    )
    return bed


def install(bed: Bed, name: str, text: str) -> None:
    bed.run("sh", "-c", f"cat > /etc/podmgr/pods/{name}.toml", input=text)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("pod", "source", "link"),
    [
        ("tolink", "/srv/to-root", "/srv/to-root"),
        ("middle", "/srv/via/data", "/srv/via"),
    ],
)
def test_a_linked_source_fails_the_start(
    volumes_bed: Bed, pod: str, source: str, link: str
) -> None:
    bed = volumes_bed
    install(bed, pod, volume_pod(source))
    bed.run("systemctl", "daemon-reload")
    inner = "" if link == source else f": {link}"
    message = (
        f"pod {pod}: volume.data.source: {source}{inner} is a symbolic link, which "
        "podmgr does not follow in a host volume's source (name the directory itself)"
    )
    assert_start_refused(bed, pod, message, f"volume.data.source: {link}")


@pytest.mark.integration
def test_a_directory_is_bound_as_it_was_checked(volumes_bed: Bed) -> None:
    bed = volumes_bed
    install(bed, "plain", volume_pod("/srv/plain"))
    bed.run("systemctl", "daemon-reload")
    bed.run("podmgr", "start", "plain")
    unit = "podapp@plain:main.service"

    def seen() -> str:
        pid = bed.run("systemctl", "show", "--value", "-p", "MainPID", unit).stdout.strip()
        return bed.run("cat", f"/proc/{pid}/root/data/file").stdout

    assert seen() == "plain\n"
    # Swapped for a link once the pod runs: the app, restarted, still has what was checked.
    bed.run("sh", "-c", "mv /srv/plain /srv/plain.old && ln -s /srv/real/data /srv/plain")
    bed.run("systemctl", "restart", unit)
    assert seen() == "plain\n"
    bed.run("podmgr", "stop", "plain")
    # Release unmounted the bind, and nothing of the source went with it.
    assert bed.run("cat", "/srv/plain.old/file").stdout == "plain\n"
    assert "/run/podmgr/pods/plain" not in bed.run("cat", "/proc/1/mountinfo").stdout
    bed.run("sh", "-c", "rm /srv/plain && mv /srv/plain.old /srv/plain")
