# SPDX-License-Identifier: LGPL-2.1-or-later
"""The .rpm: built by make rpm from the release tarball on this Debian machine with
Fedora's paths and scriptlets (packaging/rpm/macros.podmgr), rpmlint-clean, the same
files with the same modes as the .deb, installed, verified and erased in a scratch root,
and its scriptlets run under a real systemd in a bed.

The packages are built once per session on the host (tests/packages.py)."""

from __future__ import annotations

import io
import re
import shutil
import stat
import subprocess
import sysconfig
import tarfile
from pathlib import Path

import pytest
from bed import Bed
from packages import CHECKOUT, VERSION, debs, rpms
from test_bus import busctl
from test_pods import ROOTFS, show, wait_for

SPEC = CHECKOUT / "packaging/rpm/podmgr.spec"
# N+1 of the upgrade: a snapshot of this tree with the next patch version.
_major, _minor, _patch = VERSION.split(".")
NEXT = f"{_major}.{_minor}.{int(_patch) + 1}"
RPMDIR = CHECKOUT / "packaging/rpm"
# Fedora's Python path (the posix_prefix scheme), where the .deb has Debian's.
FEDORA_PYTHON = sysconfig.get_path("purelib", "posix_prefix", vars={"base": "/usr"})
DEBIAN_PYTHON = "/usr/lib/python3/dist-packages"
# Debian 12's systemd reads units from /lib, Fedora's from /usr/lib.
MOVED = (
    ("/lib/systemd/", "/usr/lib/systemd/"),
    (DEBIAN_PYTHON + "/", FEDORA_PYTHON + "/"),
    # zsh's fpath: Debian's vendor directory, Fedora's site-functions
    ("/usr/share/zsh/vendor-completions/", "/usr/share/zsh/site-functions/"),
)
# Each distribution's own files about a package: Debian's changelog, copyright,
# README.Debian and lintian overrides; Fedora's license directory (its changelog is in
# the package's header).  And the store's directory, which the .rpm owns (rpm -e removes
# it when empty) and the .deb leaves to tmpfiles.d (its postrm removes it when empty).
DEBIAN_ONLY = (
    "/usr/share/doc/{name}/README.Debian",
    "/usr/share/doc/{name}/changelog.gz",
    "/usr/share/doc/{name}/copyright",
    "/usr/share/lintian/overrides/{name}",
    "/usr/share/lintian/overrides",
    "/usr/share/lintian",
)
FEDORA_ONLY = (
    "/usr/share/licenses/{name}",
    "/usr/share/licenses/{name}/LGPL-2.1-or-later.txt",
    "/var/lib/podmgr",
)


# Every unit podmgr ships or names (podmgr/names.py), and no other: "pod*" would also
# match podman's units on a host that has podman.
PODMGR_UNITS = (
    "pod.slice",
    "pod-*.slice",
    "pod@*",
    "podapp@*",
    "podsocket@*",
    "podenter@*",
    "podmachine@*",
    "podhealth*",
    "podmgr*",
)


def rpm(*argv: str) -> str:
    """rpm's output; Debian's rpm warns on stderr that it is not dpkg."""
    return subprocess.run(["rpm", *argv], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    made = rpms(tmp_path_factory)
    assert set(made) == {"podmgr"} | ({"cockpit-podmgr"} & set(made))
    return made


@pytest.fixture(scope="module")
def package(built: dict[str, Path]) -> Path:
    return built["podmgr"]


# The files of a package: path -> (file type, permission bits, owner, group).
Entries = dict[str, tuple[str, int, str, str]]


def _kind(mode: int) -> str:
    return "dir" if stat.S_ISDIR(mode) else "link" if stat.S_ISLNK(mode) else "file"


def rpm_entries(path: Path) -> Entries:
    listing = rpm(
        "-qp",
        "--qf",
        "[%{FILEMODES:octal} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]",
        str(path),
    )
    entries: Entries = {}
    for line in listing.splitlines():
        mode, user, group, name = line.split(" ", 3)
        bits = int(mode, 8)
        entries[name] = (_kind(bits), stat.S_IMODE(bits), user, group)
    return entries


def deb_entries(path: Path) -> Entries:
    """The .deb's data, with Fedora's unit and Python directories, as rpm lists them:
    the directories it creates but not the ones it only passes through."""
    data = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(path)], capture_output=True, check=True
    )
    entries: Entries = {}
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as archive:
        for member in archive.getmembers():
            name = "/" + member.name.removeprefix("./").rstrip("/")
            for debian, fedora in MOVED:
                if name.startswith(debian):
                    name = fedora + name.removeprefix(debian)
            # Debian compresses documentation (README.md.gz); Fedora does not.
            if name.startswith("/usr/share/doc/") and name.endswith(".md.gz"):
                name = name.removesuffix(".gz")
            kind = "dir" if member.isdir() else "link" if member.issym() else "file"
            entries[name] = (kind, stat.S_IMODE(member.mode), member.uname, member.gname)
    return entries


def compiled(name: str) -> bool:
    """Byte code: the .rpm carries it; Debian compiles it when the .deb is installed."""
    return "/__pycache__" in name


def test_the_spec_is_the_version() -> None:
    """podmgr.spec is committed (a distribution takes it as it is): its Version and the
    top %changelog entry are podmgr/version.py's.  make rpm refuses another Version, and
    the build's %check compares `podmgr --version` with it."""
    text = SPEC.read_text()
    version = re.search(r"^Version:\s+(\S+)$", text, re.M)
    assert version
    assert version.group(1) == VERSION
    top = re.search(r"^%changelog\n\* .+ - (\S+)$", text, re.M)
    assert top
    assert top.group(1) == f"{VERSION}-1", "podmgr.spec: add a %changelog entry"


def test_rpmlint_reports_nothing(built: dict[str, Path]) -> None:
    """make rpm fails on any message (--strict); the filters say why each applies
    (podmgr.rpmlintrc), the configuration is Fedora's where Debian's differs."""
    result = subprocess.run(
        [
            "rpmlint",
            "--strict",
            "-c",
            str(RPMDIR / "rpmlint.toml"),
            "-r",
            str(RPMDIR / "podmgr.rpmlintrc"),
            str(SPEC),
            *map(str, built.values()),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    assert "0 errors, 0 warnings, 0 badness" in result.stdout, result.stdout
    said = False  # a comment above a filter, or above the filters right after it
    for line in RPMDIR.joinpath("podmgr.rpmlintrc").read_text().splitlines():
        if line.startswith("addFilter"):
            assert said, f"podmgr.rpmlintrc: {line}: say why, in a comment above it"
        said = line.startswith(("#", "addFilter")) and (said or line.startswith("#"))


def test_what_it_requires_is_what_the_code_imports_and_runs(package: Path) -> None:
    requires = set(rpm("-qp", "--requires", str(package)).splitlines())
    assert {r for r in requires if not r.startswith(("rpmlib(", "/bin/sh"))} == {
        "/usr/bin/python3",
        f"python(abi) = {sysconfig.get_python_version()}",
        "dbus",
        "gnupg2",
        "nftables",
        "polkit",
        "python3-dbus-fast >= 2.12",
        "python3-gnupg",
        "python3-nftables",
        "python3-pyroute2",
        "systemd",
    }
    assert rpm("-qp", "--recommends", str(package)).split() == ["python3-zstandard"]
    assert rpm("-qp", "--qf", "%{VERSION} %{ARCH}", str(package)) == f"{VERSION} noarch"


def test_the_timers_are_shipped_and_never_enabled(package: Path) -> None:
    """No preset is applied to them on install (README: the administrator enables them);
    one that was enabled is disabled and stopped on removal."""
    listed = rpm("-qlp", str(package)).split()
    for unit in ("podmgr-auto-update", "podmgr-gc"):
        assert {f"/usr/lib/systemd/system/{unit}.{kind}" for kind in ("service", "timer")} <= set(
            listed
        )
    scripts = rpm("-qp", "--scripts", str(package))
    assert "install-system-units podmgr-" not in scripts
    assert "remove-system-units podmgr-auto-update.timer podmgr-gc.timer" in scripts


def test_the_cockpit_page_requires_the_bridge_and_this_podmgr(built: dict[str, Path]) -> None:
    requires = rpm("-qp", "--requires", str(built["cockpit-podmgr"])).splitlines()
    assert [r for r in requires if not r.startswith("rpmlib(")] == [
        "cockpit-bridge",
        f"podmgr = {VERSION}-1",
    ]


def test_the_rpms_install_what_the_debs_do(
    built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same files and directories with the same modes and owners, but for the unit
    and Python directories, byte code, and each distribution's own files."""
    made = debs(tmp_path_factory)
    assert set(made) == set(built)
    for name, package in built.items():
        deb = deb_entries(made[name])
        fedora = rpm_entries(package)
        ours = {n: e for n, e in fedora.items() if not compiled(n)}
        # The .deb lists every directory on the way; rpm lists the ones it owns.
        passed = {n for n, (kind, *_) in deb.items() if kind == "dir" and "podmgr" not in n}
        theirs = {n: e for n, e in deb.items() if n not in passed and n != "/"}
        fedora_only = {path.format(name=name) for path in FEDORA_ONLY}
        debian_only = {path.format(name=name) for path in DEBIAN_ONLY}
        assert {n: e for n, e in ours.items() if n not in fedora_only} == {
            n: e for n, e in theirs.items() if n not in debian_only
        }, name
    fedora = rpm_entries(built["podmgr"])
    assert fedora["/var/lib/podmgr"] == ("dir", 0o700, "root", "root")  # as tmpfiles.d says
    assert "/usr/share/man/man1/podmgr.1.gz" in fedora
    assert {n for n in fedora if compiled(n) and n.endswith(".pyc")}  # Fedora ships them


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    """An empty root with an rpm database and a shell for the scriptlets (busybox's): no
    systemd runs there, as in an image being built."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("needs busybox-static (make deps)")
    shutil.copy(busybox, root / "bin/busybox")
    (root / "bin/sh").symlink_to("busybox")
    rpm("--root", str(root), "--initdb")
    return root


def files_under(root: Path) -> set[str]:
    return {"/" + str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


def test_installed_verified_and_erased_in_a_scratch_root(
    built: dict[str, Path], scratch_root: Path
) -> None:
    """rpm -i with the scriptlets, which do nothing without a running systemd; rpm -V
    finds every file as the packages have it; rpm -e leaves nothing of them behind."""
    root = str(scratch_root)
    before = files_under(scratch_root)
    names = sorted(built)
    rpm("--root", root, "-i", "--nodeps", *map(str, built.values()))
    assert rpm("--root", root, "-q", *names).split() == [f"{n}-{VERSION}-1.noarch" for n in names]
    assert rpm("--root", root, "-V", "--nodeps", *names) == ""
    listed = rpm("-qlp", *map(str, built.values())).split()
    assert all(Path(root + name).exists() or Path(root + name).is_symlink() for name in listed)
    assert (scratch_root / "var/lib/podmgr").stat().st_mode & 0o777 == 0o700
    (scratch_root / "usr/bin/podmgr").write_text("changed\n")
    changed = subprocess.run(
        ["rpm", "--root", root, "-V", "--nodeps", "podmgr"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert changed.returncode == 1
    assert re.search(r"^S\.5.*/usr/bin/podmgr$", changed.stdout, re.M), changed.stdout

    rpm("--root", root, "-e", "--nodeps", *names)
    left = [name for name in listed if Path(root + name).exists()]
    assert left == []
    dbpath = rpm("--eval", "%_dbpath").strip()  # Debian's rpm: ~/.rpmdb
    database = {n for n in files_under(scratch_root) if n not in before}
    assert all(n.startswith(dbpath + "/") for n in database), database


@pytest.mark.integration
def test_installed_used_upgraded_and_erased_under_systemd(
    package: Path, tmp_path_factory: pytest.TempPathFactory, fresh_bed: Bed
) -> None:
    """rpm -i into a bed's / (an overlay: nothing reaches the host), upgraded with rpm -U
    and erased: an upgrade leaves a running pod alone (the old package's %preun stops
    pods only on removal), and removal stops it while what releases it is still there;
    nothing of the package is left loaded or installed.

    Fedora's half of the scriptlets (%systemd_post, %systemd_preun's stop of the service,
    %systemd_postun_with_restart) calls systemd-update-helper, and Fedora's systemd
    package reloads, restarts, creates the group and the directories in its file
    triggers; Debian has neither, so here those scriptlets find no helper and do nothing,
    and the test does by hand what the triggers do (daemon-reload, systemd-sysusers,
    systemd-tmpfiles).  Debian's Python is told where Fedora's site-packages are."""
    bed = fresh_bed
    assert bed.run("test", "-e", "/usr/bin/podmgr", check=False).returncode == 1
    path = bed.copy_in(package, "/tmp")
    site = bed.run(
        "/usr/bin/python3", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"
    )
    bed.run("sh", "-c", f"echo {FEDORA_PYTHON} > {site.stdout.strip()}/fedora.pth")
    bed.run("rpm", "--initdb")
    bed.run("rpm", "-i", "--nodeps", path)

    def triggers() -> None:  # what Fedora's systemd does after a transaction
        bed.run("systemd-sysusers")
        bed.run("systemd-tmpfiles", "--create")
        bed.run("systemctl", "daemon-reload")

    triggers()
    assert bed.run("podmgr", "--version").stdout == f"podmgr {VERSION}\n"
    assert bed.run("rpm", "-V", "--nodeps", "podmgr").stdout == ""
    assert bed.run("getent", "group", "podmgr").stdout.startswith("podmgr:x:")
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run(
        "sh",
        "-c",
        "cat > /etc/podmgr/pods/web.toml",
        input=f'[app.main]\nrootfs = "{ROOTFS}"\nexec = ["/bin/sleep", "infinity"]\n',
    )
    bed.run("systemctl", "daemon-reload")
    bed.run("systemctl", "start", "pod@web")
    wait_for(
        lambda: show(bed, "podapp@web:main.service", "ActiveState") == "active",
        30,
        "the pod's app to become active",
    )
    bed.run("useradd", "alice")
    refused = busctl(bed, "StopPod", "s", "web", user="alice", check=False)
    assert "org.podmgr1.manage-pods" in refused.stderr, refused.stderr

    app = bed.run("systemctl", "show", "-P", "MainPID", "podapp@web:main.service").stdout
    upgrade = bed.copy_in(rpms(tmp_path_factory, NEXT)["podmgr"], "/tmp")
    bed.run("rpm", "-U", "--nodeps", upgrade)
    triggers()
    assert bed.run("rpm", "-q", "podmgr").stdout == f"podmgr-{NEXT}-1.noarch\n"
    assert bed.run("podmgr", "--version").stdout == f"podmgr {NEXT}\n"
    assert bed.run("systemctl", "is-active", "pod@web").stdout == "active\n"
    assert bed.run("systemctl", "show", "-P", "MainPID", "podapp@web:main.service").stdout == app

    listed = bed.run("rpm", "-ql", "podmgr").stdout.split()
    erased = bed.run("rpm", "-e", "--nodeps", "podmgr")
    assert erased.returncode == 0
    for unit in ("pod@web.service", "podapp@web:main.service"):
        state = bed.run("systemctl", "is-active", unit, check=False).stdout
        assert state == "inactive\n", f"{unit} is {state}"
    assert bed.run("systemctl", "show", "-P", "Result", "pod@web.service").stdout == "success\n"
    # Fedora's %systemd_preun has systemd-update-helper disable and stop the service
    # (which the pods' releases had activated), before its unit file goes; stopped here.
    scripts = bed.run("rpm", "-qp", "--scripts", path).stdout
    assert "systemd-update-helper remove-system-units podmgr1.service" in scripts
    bed.run("systemctl", "stop", "podmgr1.service")
    triggers()
    left = [name for name in listed if bed.run("test", "-e", name, check=False).returncode == 0]
    # What is the administrator's stays: the directories holding a manifest or images.
    assert set(left) <= {"/etc/podmgr", "/etc/podmgr/pods", "/var/lib/podmgr"}, left
    loaded = bed.run("systemctl", "list-units", "--all", "--no-legend", *PODMGR_UNITS)
    assert loaded.stdout == ""
    assert bed.run("test", "-e", "/etc/podmgr/pods/web.toml", check=False).returncode == 0
