# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every path of a manifest that podmgr or systemd resolves on the host, as root, is taken
literally: an app's rootfs and environment files as host volumes' sources
(test_volumes.py), never through a symbolic link."""

from __future__ import annotations

import os
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from bed import Bed
from hypothesis import given
from hypothesis import strategies as st
from refusals import assert_start_refused

from podmgr import hostpaths, tables
from podmgr.errors import ManifestError
from podmgr.generator import generator
from podmgr.manifest import model, schema
from podmgr.values import AbsolutePath, ListOf

ROOTFS = "/var/lib/machines/podmgr-busybox"
CHECKOUT = str(Path(__file__).resolve().parent.parent)

# Each absolute path key, by where it is resolved: on the host (so taken literally, with
# the manifest that sets it to a path under a link), or inside the app's own root.
HOST_PATHS: dict[str, Callable[[str], str]] = {
    "volume.source": lambda path: (
        f'[volume.v]\ntype = "host"\nsource = "{path}"\n'
        f'[app.main]\nrootfs = "/srv/r"\nexec = ["/bin/true"]\n'
    ),
    "app.rootfs": lambda path: f'[app.main]\nrootfs = "{path}"\nexec = ["/bin/true"]\n',
    "app.environment_files": lambda path: (
        '[app.main]\nrootfs = "/srv/r"\nexec = ["/bin/true"]'
        f'\nenvironment_files = ["/srv/e", "{path}"]\n'
    ),
}
WARNED_AT = {
    "volume.source": "volume.v.source",
    "app.rootfs": "app.main.rootfs",
    "app.environment_files": "app.main.environment_files[1]",
}
INSIDE_THE_APP = {"mount.path", "app.working_directory"}


def absolute_path_keys(section: tables.Section) -> set[str]:
    """Keys of ``section`` and below that hold absolute paths, as "SECTION.KEY"."""
    found = set()
    for key in section.keys:
        value = key.type.item if isinstance(key.type, ListOf) else key.type
        if isinstance(value, AbsolutePath):
            found.add(f"{section.name}.{key.name}")
    for sub in section.subsections:
        found |= absolute_path_keys(sub)
    return found


def test_every_path_key_is_known_to_be_taken_literally_or_inside_the_app() -> None:
    # A new key of paths must be added to one of these, and a host path checked as
    # prepare checks these.
    assert absolute_path_keys(schema.MANIFEST) == set(HOST_PATHS) | INSIDE_THE_APP


@pytest.mark.parametrize("key", sorted(HOST_PATHS))
@pytest.mark.parametrize("where", ["last", "middle"])
def test_validate_warns_of_a_link_in_every_host_path(tmp_path: Path, key: str, where: str) -> None:
    (tmp_path / "real" / "below").mkdir(parents=True)
    (tmp_path / "real" / "below" / "file").write_text("")
    (tmp_path / "link").symlink_to(
        tmp_path / "real" / "below" if where == "last" else tmp_path / "real"
    )
    path = f"{tmp_path}/link" if where == "last" else f"{tmp_path}/link/below"
    pod = model.parse(HOST_PATHS[key](path), Path("/etc/podmgr/pods/web.toml"))
    warned = [w for w in model.warnings(pod) if w.where == WARNED_AT[key]]
    assert len(warned) == 1
    assert warned[0].message.startswith(
        f"{tmp_path}/link is a symbolic link: the pod will "
        "not start, as podmgr does not follow links in "
    )


def test_a_plain_host_path_is_not_warned_of(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    for text_with in HOST_PATHS.values():
        pod = model.parse(text_with(f"{tmp_path}/dir"), Path("/etc/podmgr/pods/w.toml"))
        assert model.warnings(pod) == []


def test_a_file_opens_literally(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file").write_text("A=1\n")
    (tmp_path / "to-file").symlink_to(tmp_path / "dir" / "file")
    (tmp_path / "to-dir").symlink_to(tmp_path / "dir")
    fd = hostpaths.open_literally(str(tmp_path / "dir" / "file"), directory=False)
    try:
        assert os.fstat(fd).st_ino == os.stat(tmp_path / "dir" / "file").st_ino
    finally:
        os.close(fd)
    for linked in ("to-file", "to-dir/file"):
        with pytest.raises(hostpaths.LinkInPath) as refused:
            hostpaths.open_literally(str(tmp_path / linked), directory=False)
        assert refused.value.link == str(tmp_path / linked.split("/")[0])
    with pytest.raises(hostpaths.LinkInPath):
        hostpaths.open_literally(str(tmp_path / "to-dir"), directory=True)


# A path of up to four directories or links to one, then a file or a link to one.
COMPONENTS = st.lists(
    st.tuples(st.sampled_from("ab"), st.sampled_from(["dir", "up", "root"])), max_size=4
)


def scratch_base(tmp: str) -> Path:
    """Where a generated path starts: as many levels below ``tmp`` as a path has
    components, so that no chain of ".." links leads out of ``tmp`` and the test never
    makes a directory or a link outside it."""
    base = Path(tmp, *"1234")
    base.mkdir(parents=True)
    return base


@given(components=COMPONENTS, last=st.sampled_from(["file", "link"]))
def test_a_file_opens_only_when_no_component_is_a_link(
    components: list[tuple[str, str]], last: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = path = scratch_base(tmp)
        (path / "real.env").write_text("A=1\n")
        for name, kind in components:
            target = path / name
            if not target.exists() and not target.is_symlink():
                if kind == "dir":
                    target.mkdir()
                else:
                    target.symlink_to(".." if kind == "up" else base)
            path = target
        path /= "x.env"
        if not path.exists() and not path.is_symlink():
            if last == "file":
                path.write_text("A=1\n")
            else:
                path.symlink_to(base / "real.env")
        links = [str(p) for p in reversed([path, *path.parents]) if p.is_symlink()]
        if links:
            with pytest.raises(hostpaths.LinkInPath) as refused:
                hostpaths.open_literally(str(path), directory=False)
            assert refused.value.link == links[0] == hostpaths.first_link(str(path))
            return
        fd = hostpaths.open_literally(str(path), directory=False)
        try:
            assert os.fstat(fd).st_ino == os.lstat(path).st_ino
        finally:
            os.close(fd)


def test_users_are_not_looked_up_through_a_linked_rootfs(tmp_path: Path) -> None:
    # The generator reads the rootfs's /etc/passwd as root: through a link, that would
    # be the host's (or any directory's) users.
    (tmp_path / "real" / "etc").mkdir(parents=True)
    (tmp_path / "real" / "etc" / "passwd").write_text("web:x:33:33::/srv:/bin/sh\n")
    (tmp_path / "via").symlink_to(tmp_path / "real")
    text = f'[app.main]\nrootfs = "{tmp_path}/via"\nexec = ["/bin/true"]\nuser = "web"\n'
    pod = model.parse(text, Path("/etc/podmgr/pods/web.toml"))
    with pytest.raises(ManifestError) as refused:
        generator.outputs_of(pod)
    assert [str(p) for p in refused.value.problems] == [
        f"app.main.rootfs: cannot read {tmp_path}/via: {tmp_path}/via is a symbolic link, "
        "which podmgr does not follow in an app's rootfs (name the directory itself)"
    ]
    # The directory itself is read as before.
    plain = model.parse(text.replace("/via", "/real"), Path("/etc/podmgr/pods/web.toml"))
    assert "User=33\n" in "".join(getattr(o, "text", "") for o in generator.outputs_of(plain))


def pod_with(rootfs: str, env_file: str | None = None) -> str:
    # Numbers: the generator needs no file of the rootfs, so a linked one is found at start
    # (for names it is found by the generator: test_users_are_not_looked_up_...).
    env = f'environment_files = ["{env_file}"]\n' if env_file else ""
    return (
        textwrap.dedent(f"""
        [app.main]
        rootfs = "{rootfs}"
        exec = ["/bin/sleep", "infinity"]
        user = 0
        group = 0
    """)
        + env
    )


@pytest.fixture(scope="module")
def paths_bed(bed: Bed) -> Bed:
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run("mkdir", "-p", "/etc/podmgr/pods", "/srv/roots", "/srv/env/real")
    bed.run(
        "sh",
        "-c",
        f"cp -a {ROOTFS} /srv/roots/checked && echo checked > "
        f"/srv/roots/checked/marker && cp -a {ROOTFS} /srv/other && echo other > "
        "/srv/other/marker && ln -s /srv/roots /srv/roots-via && "
        "ln -s /srv/other /srv/roots/to-other && echo SECRET=host > /srv/secret.env && "
        "echo PLAIN=yes > /srv/env/plain.env && echo REAL=yes > /srv/env/real/r.env && "
        "ln -s /srv/secret.env /srv/env/to-secret.env && ln -s /srv/env/real /srv/env/via",
    )
    return bed


def install(bed: Bed, name: str, text: str) -> None:
    bed.run("sh", "-c", f"cat > /etc/podmgr/pods/{name}.toml", input=text)
    bed.run("systemctl", "daemon-reload")


def main_pid(bed: Bed, pod: str) -> str:
    return bed.run(
        "systemctl", "show", "--value", "-p", "MainPID", f"podapp@{pod}:main.service"
    ).stdout.strip()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("pod", "rootfs", "link"),
    [
        ("rootlink", "/srv/roots/to-other", "/srv/roots/to-other"),
        ("rootmiddle", "/srv/roots-via/checked", "/srv/roots-via"),
    ],
)
def test_a_linked_rootfs_fails_the_start(paths_bed: Bed, pod: str, rootfs: str, link: str) -> None:
    install(paths_bed, pod, pod_with(rootfs))
    inner = "" if link == rootfs else f": {link}"
    assert_start_refused(
        paths_bed,
        pod,
        f"pod {pod}: app.main.rootfs: {rootfs}{inner} is a "
        "symbolic link, which podmgr does not follow in an app's rootfs (name "
        "the directory itself)",
        f"app.main.rootfs: {link}",
    )


@pytest.mark.integration
def test_the_rootfs_is_the_directory_that_was_checked(paths_bed: Bed) -> None:
    bed = paths_bed
    install(bed, "rooted", pod_with("/srv/roots/checked"))
    bed.run("podmgr", "start", "rooted")
    assert bed.run("cat", f"/proc/{main_pid(bed, 'rooted')}/root/marker").stdout == "checked\n"
    # Swapped for a link once the pod runs: the app, restarted, still runs on what was
    # checked.
    bed.run(
        "sh",
        "-c",
        "mv /srv/roots/checked /srv/roots/checked.old && ln -s /srv/other /srv/roots/checked",
    )
    bed.run("systemctl", "restart", "podapp@rooted:main.service")
    assert bed.run("cat", f"/proc/{main_pid(bed, 'rooted')}/root/marker").stdout == "checked\n"
    bed.run("podmgr", "stop", "rooted")
    assert "/run/podmgr/pods/rooted" not in bed.run("cat", "/proc/1/mountinfo").stdout
    assert bed.run("cat", "/srv/roots/checked.old/marker").stdout == "checked\n"
    bed.run("sh", "-c", "rm /srv/roots/checked && mv /srv/roots/checked.old /srv/roots/checked")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("pod", "file", "link"),
    [
        ("envlink", "/srv/env/to-secret.env", "/srv/env/to-secret.env"),
        ("envmiddle", "/srv/env/via/r.env", "/srv/env/via"),
    ],
)
def test_a_linked_environment_file_fails_the_start(
    paths_bed: Bed, pod: str, file: str, link: str
) -> None:
    install(paths_bed, pod, pod_with(ROOTFS, file))
    inner = "" if link == file else f": {link}"
    assert_start_refused(
        paths_bed,
        pod,
        f"pod {pod}: app.main.environment_files[0]: "
        f"{file}{inner} is a symbolic link, which podmgr does not follow in "
        "an app's environment files (name the file itself)",
        f"app.main.environment_files[0]: {link}",
    )


@pytest.mark.integration
def test_an_environment_file_is_what_was_checked(paths_bed: Bed) -> None:
    bed = paths_bed
    install(bed, "envplain", pod_with(ROOTFS, "/srv/env/plain.env"))
    bed.run("podmgr", "start", "envplain")

    def environ() -> list[str]:
        pid = main_pid(bed, "envplain")
        return bed.run("cat", f"/proc/{pid}/environ").stdout.split("\0")

    assert "PLAIN=yes" in environ()
    # Swapped for a link once the pod runs: a restarted app still gets what was checked.
    bed.run(
        "sh",
        "-c",
        "mv /srv/env/plain.env /srv/env/plain.old && ln -s /srv/secret.env /srv/env/plain.env",
    )
    bed.run("systemctl", "restart", "podapp@envplain:main.service")
    assert "PLAIN=yes" in environ()
    assert "SECRET=host" not in environ()
    bed.run("podmgr", "stop", "envplain")
    bed.run("sh", "-c", "rm /srv/env/plain.env && mv /srv/env/plain.old /srv/env/plain.env")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("what", "make"),
    [
        ("a FIFO", "mkfifo /srv/env/fifo.env"),
        ("a directory", "mkdir /srv/env/dir.env"),
        ("too large", "head -c 1048577 /dev/zero | tr '\\0' x > /srv/env/big.env"),
    ],
)
def test_an_environment_file_must_be_a_small_regular_file(
    paths_bed: Bed, what: str, make: str
) -> None:
    bed = paths_bed
    file = make.rsplit(maxsplit=1)[-1]
    bed.run("sh", "-c", make)
    install(bed, "envodd", pod_with(ROOTFS, file))
    failed = bed.run("podmgr", "start", "envodd", check=False)
    assert failed.returncode == 1, what
    assert (
        f"pod envodd: app.main.environment_files[0]: {file} is not a regular file of at "
        "most 1M (name a file of VAR=value lines)"
    ) in failed.stderr
    assert failed.stderr.count("\n") == 1
    bed.run("systemctl", "reset-failed", "pod@envodd.service")
    bed.run("rm", "-rf", file)


@pytest.mark.integration
def test_a_plan_of_an_older_generator_still_prepares(paths_bed: Bed) -> None:
    # Until the next daemon-reload after an upgrade, pods start from plans without
    # environment_files; their units still name the files themselves.
    bed = paths_bed
    install(bed, "oldplan", pod_with(ROOTFS))
    plan = "/run/systemd/generator/pod@oldplan.service.d/podmgr-plan.json"
    bed.run("sh", "-c", f"sed 's/\"environment_files\": \\[\\], //' {plan} > /tmp/old.json")
    assert "environment_files" not in bed.run("cat", "/tmp/old.json").stdout
    env = {"PODMGR_PLAN": "/tmp/old.json"}
    bed.run("/usr/lib/podmgr/podmgr-pod", "prepare", "oldplan", env=env)
    assert (
        bed.run(
            "mountpoint", "-q", "/run/podmgr/pods/oldplan/apps/main/rootfs", check=False
        ).returncode
        == 0
    )
    bed.run("/usr/lib/podmgr/podmgr-pod", "release", "oldplan")
