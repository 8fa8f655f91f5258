# SPDX-License-Identifier: LGPL-2.1-or-later
"""The .deb as a user meets it: built by make deb from the release tarball, checked by
lintian, then installed, used, upgraded, removed and purged under a real systemd, each
in a fresh bed that has no podmgr (no make install: only what the package brings).

The packages are built once per session on the host (tests/packages.py); the bed sees
them through copy_in, since the host's temporary directories are not in it."""

from __future__ import annotations

import ast
import functools
import io
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import imagebuild as ib
import pytest
from bed import Bed
from packages import CHECKOUT, VERSION, deb_log, debs, source_ref, tarball
from test_pods import wait_for

from podmgr.image import layerstream, unpack
from podmgr.image.tarentry import BadLayer

# N+1 of the upgrade: a snapshot of this tree with the next patch version.
_major, _minor, _patch = VERSION.split(".")
NEXT = f"{_major}.{_minor}.{int(_patch) + 1}"

ROOTFS = "/var/lib/machines/podmgr-busybox"
EXAMPLES = "/usr/share/doc/podmgr/examples"
DPKG_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# Where the package puts what systemd, D-Bus and polkit read: after removal, none of
# its files may be left there.
INTEGRATION_DIRS = (
    "/lib/systemd/system/",
    "/lib/systemd/system-generators/",
    "/usr/lib/systemd/",
    "/usr/share/dbus-1/",
    "/usr/share/polkit-1/",
    "/usr/lib/sysusers.d/",
    "/usr/lib/tmpfiles.d/",
    "/usr/share/cockpit/",
)


class Session:
    """Commands typed into a root shell of a bed, with what they printed (the
    transcript of a user's install)."""

    def __init__(self, bed: Bed) -> None:
        self.bed = bed
        self.transcript: list[str] = []

    def __call__(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = self.bed.run("sh", "-c", command, check=check, env=DPKG_ENV, timeout=300)
        self.transcript.append(f"# {command}\n{result.stdout}{result.stderr}")
        return result


def active(bed: Bed, unit: str) -> bool:
    state = bed.run("systemctl", "is-active", unit, check=False).stdout.strip()
    return state == "active"


def main_pid(bed: Bed, unit: str) -> int:
    return int(bed.run("systemctl", "show", "-P", "MainPID", unit).stdout)


def busctl(bed: Bed, *argv: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    command = ["busctl", "--json=short", *argv]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    return bed.run(*command, check=False)


def version_property(bed: Bed) -> str:
    got = busctl(
        bed, "get-property", "org.podmgr1", "/org/podmgr1", "org.podmgr1.Manager", "Version"
    )
    assert got.returncode == 0, got.stderr
    value: str = json.loads(got.stdout)["data"]
    return value


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return debs(tmp_path_factory)


@pytest.fixture(scope="module")
def next_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return debs(tmp_path_factory, NEXT)


def install(
    bed: Bed, packages: dict[str, Path], shell: Session | None = None, tool: str = "apt-get"
) -> str:
    """Install the packages, as a user installs downloaded .debs (apt-get install, or
    dpkg -i: the same maintainer scripts, without apt's cache); its output."""
    # /tmp, where a download lands: apt's _apt user can read it (not so /root).
    paths = shlex.join(bed.copy_in(path, "/tmp") for path in packages.values())
    run = shell or Session(bed)
    return run(f"apt-get install -y {paths}" if tool == "apt-get" else f"dpkg -i {paths}").stdout


def sleeping_pod(bed: Bed, name: str, volume: bool = False) -> None:
    """A pod of one app that sleeps (and keeps a file in an empty volume)."""
    text = f'[app.main]\nrootfs = "{ROOTFS}"\n'
    if volume:
        text += 'exec = ["/bin/sh", "-c", "echo kept > /data/file; exec sleep infinity"]\n'
        text += '[[app.main.mount]]\nvolume = "data"\npath = "/data"\n[volume.data]\n'
        text += 'type = "empty"\n'
    else:
        text += 'exec = ["/bin/sleep", "infinity"]\n'
    bed.run("sh", "-c", f"cat > /etc/podmgr/pods/{name}.toml", input=text)


# Without a bed


def test_the_changelog_agrees_with_the_version() -> None:
    """debian/changelog is committed (a distribution takes it as it is); make deb refuses
    to build when its top entry is not podmgr/version.py's version, and this test finds
    the disagreement before a build does."""
    top = subprocess.run(
        ["dpkg-parsechangelog", "-l", str(CHECKOUT / "packaging/deb/changelog"), "-S", "Version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert top == VERSION, "packaging/deb/changelog: add an entry for podmgr/version.py's version"


def test_the_tarball_is_the_tree_with_its_version(tmp_path_factory: pytest.TempPathFactory) -> None:
    """git archive of the tree, under podmgr-VERSION/; a snapshot of another version has
    that version in its one place, its man pages and its changelog."""
    files = subprocess.run(
        ["git", "-C", str(CHECKOUT), "ls-tree", "-r", "--name-only", source_ref()],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    with tarfile.open(tarball(tmp_path_factory)) as release:
        names = release.getnames()
        assert sorted(
            n.removeprefix(f"podmgr-{VERSION}/") for n in names if release.getmember(n).isfile()
        ) == sorted(files)
        assert all(release.getmember(n).uid == 0 for n in names)
    with tarfile.open(tarball(tmp_path_factory, NEXT)) as snapshot:

        def text(path: str) -> str:
            member = snapshot.extractfile(f"podmgr-{NEXT}/{path}")
            assert member
            return member.read().decode()

        assert f'__version__ = "{NEXT}"' in text("podmgr/version.py")
        assert text("docs/podmgr.1").startswith(f'.TH PODMGR 1 "" "podmgr {NEXT}"')
        assert text("packaging/deb/changelog").startswith(f"podmgr ({NEXT}) unstable;")


def test_lintian_reports_nothing(
    packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """make deb runs lintian --pedantic -I and fails on an error or warning; pedantic and
    informational tags are overridden only with a comment that says why
    (packaging/deb/*.lintian-overrides), so it reports nothing at all."""
    log = deb_log(tmp_path_factory).splitlines()
    # After the build, lintian's tags (none), its end, then the files made.
    after = log[log.index("dpkg-buildpackage: info: binary-only upload (no source included)") + 1 :]
    assert [line for line in after if not line.startswith("/")] == ["lintian --pedantic -I: done"]
    assert set(packages) == {"podmgr", "cockpit-podmgr"}


# Imported modules the package only recommends: without one, what needs it says so.
OPTIONAL = {"zstandard": "zstd layers (podmgr/image/layerstream.py)"}
# Programs podmgr runs, and the file that runs each (checked to still be there).
PROGRAMS = {
    "busctl": "units/pod@.service",
    "journalctl": "podmgr/bus/jobs.py",
    "gpg": "podmgr/image/gpgchild.py",  # python-gnupg runs it
    "gpgconf": "podmgr/image/gpgchild.py",
}
# What neither an import nor a program shows: the interpreter, the system bus the
# service is on and polkitd, which reads the actions and the rule; nft(8), recommended
# to look at podmgr's rules (README, Networks).
SERVICES = [{"python3"}, {"default-dbus-system-bus", "dbus-system-bus"}, {"polkitd"}]
ADMIN_TOOLS = [{"nftables"}]


def _relations(deb: Path, field: str) -> list[set[str]]:
    """A relation field of a built package: its groups of alternatives, bare names."""
    text = subprocess.run(
        ["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=True
    ).stdout
    groups = [
        {re.sub(r"\(.*?\)|:any", "", alternative).strip() for alternative in group.split("|")}
        for group in text.split(",")
    ]
    return [group for group in groups if group != {""}]


def _owner(path: str) -> str:
    """The host package that has ``path`` (merged /usr: also as /bin or /usr/bin)."""
    for candidate in dict.fromkeys(
        [path, os.path.realpath(path), path.replace("/usr/bin/", "/bin/")]
    ):
        found = subprocess.run(
            ["dpkg", "-S", candidate], capture_output=True, text=True, check=False
        )
        if found.returncode == 0:
            return found.stdout.split(":", 1)[0]
    raise AssertionError(f"{path} belongs to no package")


def _third_party_imports() -> set[str]:
    """Top-level modules podmgr imports that are neither its own nor the standard library's,
    deferred imports included."""
    found = set()
    for path in (CHECKOUT / "podmgr").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"podmgr"}


def _distribution_origin(module: str) -> str:
    """Where the distribution's Python finds ``module``: what the package runs on, not
    the test venv (which may bring a newer library of its own)."""
    found = subprocess.run(
        [
            "/usr/bin/python3",
            "-I",
            "-c",
            "import importlib.util, sys; spec = importlib.util.find_spec(sys.argv[1]); "
            "print(spec.origin if spec else '')",
            module,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert found, f"podmgr imports {module}, which the distribution's Python lacks here"
    return found


def test_the_dependencies_are_what_the_code_imports_and_runs(packages: dict[str, Path]) -> None:
    depends = _relations(packages["podmgr"], "Depends")
    recommends = _relations(packages["podmgr"], "Recommends")
    modules = {}
    for module in sorted(_third_party_imports()):
        modules[module] = _owner(_distribution_origin(module))
    needed = []
    for module, package in modules.items():
        relation = recommends if module in OPTIONAL else depends
        [group] = [g for g in relation if package in g] or [set()]
        assert group, f"podmgr imports {module} ({package}): not in the package's relations"
        needed.append(group)
    for program, user in PROGRAMS.items():
        assert program in (CHECKOUT / user).read_text(), f"{user} no longer runs {program}"
        path = shutil.which(program)
        assert path, program
        package = _owner(path)
        [group] = [g for g in depends if package in g] or [set()]
        assert group, f"podmgr runs {program} ({package}): not in Depends"
        needed.append(group)
    # Nothing else: no package the code does not use (pystemd, xdg, toml ...).
    unneeded = [g for g in depends + recommends if g not in needed + SERVICES + ADMIN_TOOLS]
    assert unneeded == []
    assert set(OPTIONAL) <= set(modules)


def _deb_files(deb: Path) -> dict[str, str]:
    """Each regular file or symlink of a package and its mode, as dpkg-deb lists them."""
    listing = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    files = {}
    for line in listing.splitlines():
        mode, _, _, _, _, path = line.split(None, 5)
        if not mode.startswith("d"):
            files[path.removeprefix(".").split(" -> ")[0]] = mode
    return files


def test_make_install_installs_what_the_packages_hold(
    packages: dict[str, Path], tmp_path: Path
) -> None:
    """A development install is the package's install: the same files with the same modes,
    less what debhelper adds (copyright, changelog, README files, lintian overrides) and
    with the man pages compressed."""
    subprocess.run(
        [
            "make",
            "-C",
            str(CHECKOUT),
            "--no-print-directory",
            "install",
            f"DESTDIR={tmp_path}",
            "UNITDIR=/lib/systemd/system",
            "GENERATORDIR=/lib/systemd/system-generators",
        ],
        capture_output=True,
        check=True,
    )
    installed = {}
    for file in sorted(tmp_path.rglob("*")):
        if not file.is_dir() and "__pycache__" not in file.parts:
            mode = "-" + stat.filemode(file.lstat().st_mode)[1:]
            installed["/" + str(file.relative_to(tmp_path))] = mode
    packaged = {}
    for deb in packages.values():
        for path, mode in _deb_files(deb).items():
            doc = re.match(r"/usr/share/doc/[^/]+/(copyright|changelog\.gz|README\..*)$", path)
            if not doc and not path.startswith("/usr/share/lintian/overrides/"):
                packaged[path.removesuffix(".gz") if "/man/" in path else path] = mode
    # README.md and cockpit/README are the packages' documentation, not installed files.
    packaged.pop("/usr/share/doc/cockpit-podmgr/README")
    assert installed == packaged


def test_a_zstd_layer_without_zstandard_says_what_to_install(
    layer_dir: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """python3-zstandard is a Recommends: without it, an image of zstd layers is refused
    in one line naming the layer and the package, before the confined unpacker starts
    (which would die on the import, saying only ModuleNotFoundError)."""
    layer, fd = layer_dir
    [blob] = [
        b
        for b in ib.Image([ib.tar([ib.file("etc/hostname", b"x")])], "zstd").blobs()[0].values()
        if b.startswith(b"\x28\xb5\x2f\xfd")
    ]
    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if it were not installed
    what = "layer sha256:" + "ab" * 32
    with pytest.raises(BadLayer) as refused:
        layerstream.unpack_blob_confined(
            io.BytesIO(blob), ib.COMPRESSIONS["zstd"][0], fd, unpack.Limits(), what, len(blob)
        )
    assert str(refused.value) == (
        f"{what}: is zstd-compressed, and the Python module zstandard is not installed "
        "(install python3-zstandard)"
    )
    assert list(layer.iterdir()) == []


# In a fresh bed


@pytest.fixture
def new_host(fresh_bed: Bed) -> Bed:
    """A bed as a freshly installed machine is: no podmgr, and no policy-rc.d.  Where
    the host is a container image, its /usr/sbin/policy-rc.d forbids maintainer scripts
    to start, restart or stop services (deb-systemd-invoke asks it), as a container's
    image build wants; a booted machine has none."""
    assert fresh_bed.run("test", "-e", "/usr/bin/podmgr", check=False).returncode == 1
    fresh_bed.run("rm", "-f", "/usr/sbin/policy-rc.d")
    return fresh_bed


@pytest.mark.integration
def test_a_new_users_install(new_host: Bed, packages: dict[str, Path]) -> None:
    bed = new_host
    shell = Session(bed)
    install(bed, packages, shell)
    assert shell("podmgr --version").stdout == f"podmgr {VERSION}\n"
    for page in ("podmgr", "podmgr.toml", "org.podmgr1"):
        assert shell(f"man -w {page}").stdout.startswith("/usr/share/man/")
    assert "org.podmgr1.Manager" in shell("MANWIDTH=80 man org.podmgr1").stdout
    assert shell("getent group podmgr").stdout.startswith("podmgr:x:")
    assert shell("stat -c '%a %U' /var/lib/podmgr").stdout == "700 root\n"
    # The package ships the rule in polkitd's rules.d, which stays polkitd's own.
    rules = bed.run("stat", "-c", "%a %U", "/usr/share/polkit-1/rules.d").stdout
    assert rules == "700 polkitd\n"
    assert bed.run("test", "-x", "/lib/systemd/system-generators/podmgr-generator").returncode == 0
    # Cockpit finds the page where the package put it.
    listed = shell("cockpit-bridge --packages | grep podmgr").stdout.split()
    assert (listed[0], listed[-1]) == ("podmgr", "/usr/share/cockpit/podmgr")  # name, label, path
    # Activation: nothing runs until the first call.
    assert shell("systemctl is-active podmgr1.service", check=False).stdout == "inactive\n"
    # The timers are shipped, and left disabled (README: how to enable them).
    for timer in ("podmgr-auto-update.timer", "podmgr-gc.timer"):
        assert shell(f"systemctl is-enabled {timer}", check=False).stdout == "disabled\n"
    assert json.loads(
        shell(
            "busctl --json=short call org.podmgr1 /org/podmgr1 org.podmgr1.Manager ListPods"
        ).stdout
    )["data"] == [[]]
    assert active(bed, "podmgr1.service")
    assert version_property(bed) == VERSION
    # The example pod, as the README and the issue show it.
    shell(f"sh {EXAMPLES}/busybox-rootfs.sh {ROOTFS}")
    shell(f"cp {EXAMPLES}/demo.toml /etc/podmgr/pods/web.toml")
    shell("systemctl daemon-reload && systemctl start pod@web")
    wait_for(lambda: active(bed, "podapp@web:web.service"), 30, "the web app to be active")
    wait_for(
        lambda: (
            "hello from demo" in bed.run("curl", "-s", "http://127.0.0.1:8080/", check=False).stdout
        ),
        30,
        "the page to be served",
    )
    shell("curl -s http://127.0.0.1:8080/")
    shell("systemctl status --no-pager --lines=0 pod@web.service podapp@web:web.service | head -12")
    # polkit: a user outside the group is refused, a member allowed by the shipped rule.
    shell("useradd alice && useradd --groups podmgr bob")
    refused = shell(
        "runuser -u alice -- busctl call org.podmgr1 /org/podmgr1 org.podmgr1.Manager"
        " StopPod s web",
        check=False,
    )
    assert refused.returncode != 0
    assert "org.podmgr1.manage-pods" in refused.stderr
    assert active(bed, "pod@web.service")
    start = ("call", "org.podmgr1", "/org/podmgr1", "org.podmgr1.Manager", "StartPod", "s", "web")
    # polkitd reads rules.d asynchronously after the install.
    wait_for(
        lambda: busctl(bed, *start, user="bob").returncode == 0,
        30,
        "bob to be allowed to manage pods",
    )
    shell("runuser -u bob -- podmgr status web | head -3")
    # README.Debian: an earlier rule that decides keeps an action with administrators.
    bed.run(
        "sh",
        "-c",
        "cat > /etc/polkit-1/rules.d/49-podmgr-local.rules",
        input="polkit.addRule(function(action, subject) {\n"
        '    if (action.id == "org.podmgr1.manage-pods") return polkit.Result.AUTH_ADMIN;\n'
        "});\n",
    )
    wait_for(lambda: busctl(bed, *start, user="bob").returncode != 0, 30, "bob to be refused again")
    print("\n".join(shell.transcript))  # pytest -s shows what the user saw


@pytest.mark.integration
def test_an_upgrade_keeps_pods_running_and_restarts_the_service(
    new_host: Bed, packages: dict[str, Path], next_packages: dict[str, Path]
) -> None:
    bed = new_host
    install(bed, packages, tool="dpkg")
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    # The service must outlive the upgrade's start to be seen restarted.
    bed.run("sh", "-c", "cat > /etc/podmgr/podmgr.toml", input='[service]\nidle_timeout = "1h"\n')
    for name in ("alpha", "beta"):
        sleeping_pod(bed, name)
    bed.run("systemctl", "daemon-reload")
    bed.run("systemctl", "start", "pod@alpha", "pod@beta")
    apps = ("podapp@alpha:main.service", "podapp@beta:main.service")
    for app in apps:
        wait_for(functools.partial(active, bed, app), 30, f"{app} to be active")
    before = {app: main_pid(bed, app) for app in apps}
    service = main_pid(bed, "podmgr1.service")
    assert service
    assert version_property(bed) == VERSION
    # A manifest added without a daemon-reload: its app unit exists once the generator ran.
    sleeping_pod(bed, "gamma")
    gamma = "podapp@gamma:main.service"
    assert bed.run("systemctl", "show", "-P", "LoadState", gamma).stdout == "not-found\n"

    install(bed, next_packages, tool="dpkg")

    assert bed.run("podmgr", "--version").stdout == f"podmgr {NEXT}\n"
    assert {app: main_pid(bed, app) for app in apps} == before
    assert all(active(bed, unit) for unit in ("pod@alpha.service", "pod@beta.service", *apps))
    assert bed.run("systemctl", "show", "-P", "LoadState", gamma).stdout == "loaded\n"
    restarted = main_pid(bed, "podmgr1.service")
    assert restarted not in (0, service)
    assert version_property(bed) == NEXT  # the new code runs
    for unit in ("pod@alpha.service", *apps, "podmgr1.service"):
        assert bed.run("systemctl", "show", "-P", "NeedDaemonReload", unit).stdout == "no\n"
    # The pods still stop cleanly with the new code.
    bed.run("systemctl", "stop", "pod@alpha", "pod@beta")
    assert bed.run("ls", "/run/podmgr/pods").stdout.split() == []


@pytest.mark.integration
def test_remove_leaves_config_and_state_and_purge_what_the_readme_says(
    new_host: Bed, packages: dict[str, Path]
) -> None:
    bed = new_host
    install(bed, packages)
    listed = bed.run("dpkg", "-L", "podmgr", "cockpit-podmgr").stdout.splitlines()
    shipped = [path for path in listed if path.startswith(INTEGRATION_DIRS)]
    assert "/lib/systemd/system/pod@.service" in shipped
    assert "/usr/share/cockpit/podmgr/manifest.json" in shipped
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    sleeping_pod(bed, "web", volume=True)
    bed.run("systemctl", "daemon-reload")
    bed.run("systemctl", "start", "pod@web")
    wait_for(
        lambda: (
            bed.run("test", "-s", "/var/lib/podmgr/volumes/web/data/file", check=False).returncode
            == 0
        ),
        30,
        "the app to write its file",
    )

    # As the user does: the page goes with podmgr, which it depends on.
    removed = bed.run("apt-get", "remove", "-y", "podmgr", env=DPKG_ENV).stdout
    assert "Removing cockpit-podmgr" in removed

    left = [path for path in shipped if bed.run("test", "-f", path, check=False).returncode == 0]
    assert left == []
    for directory in (
        "/usr/share/cockpit/podmgr",
        "/usr/lib/podmgr",
        "/usr/lib/python3/dist-packages/podmgr",
    ):
        assert bed.run("test", "-e", directory, check=False).returncode == 1, directory
    units = bed.run(
        "systemctl",
        "list-units",
        "--all",
        "--plain",
        "--no-legend",
        "pod@*",
        "podapp@*",
        "pod.slice",
        "pod-*.slice",
        "podmgr1.service",
    ).stdout
    assert units == "", units
    assert bed.run("busctl", "status", "org.podmgr1", check=False).returncode != 0
    # No pod left prepared: no mounts, namespaces or runtime files of it.
    assert "/run/podmgr" not in bed.run("findmnt", "-rn", "-o", "TARGET").stdout
    kept = ("/etc/podmgr/pods/web.toml", "/var/lib/podmgr/volumes/web/data/file")
    for path in kept:
        assert bed.run("test", "-f", path, check=False).returncode == 0, path
    assert bed.run("getent", "group", "podmgr", check=False).returncode == 0

    # cockpit-podmgr has nothing to purge: its removal left nothing of it.
    bed.run("apt-get", "purge", "-y", "podmgr", env=DPKG_ENV)

    for package in ("podmgr", "cockpit-podmgr"):
        status = bed.run("dpkg-query", "-W", "-f=${db:Status-Status}", package, check=False)
        assert status.stdout in ("", "not-installed"), package
    # README, Install: purge keeps what administrators and pods stored.
    for path in kept:
        assert bed.run("test", "-f", path, check=False).returncode == 0, path
    assert bed.run("getent", "group", "podmgr", check=False).returncode == 0


# What gnupg brings beyond gpg and gpgconf, which are what podmgr runs.
GNUPG_EXTRAS = ("gnupg", "dirmngr", "gpg-agent", "gpgsm", "gpg-wks-client", "gpg-wks-server")
SIGNED_IMAGE = f"""
import sys
sys.path.insert(0, "{CHECKOUT}/tests")
from pathlib import Path
import imagebuild as ib
image = ib.Image([ib.tar([ib.directory("etc"), ib.file("etc/version", b"1.4")])], "gzip")
ib.write_layout(Path("/tmp/work/layout"), {{"1.4": image}})
ib.write_archive(Path("/tmp/work/app.tar"), Path("/tmp/work/layout"))
"""
RELEASE_KEY = """\
%no-protection
Key-Type: RSA
Key-Length: 2048
Name-Real: Release
Name-Email: release@example.org
Expire-Date: 0
%commit
"""


@pytest.mark.integration
def test_signatures_are_checked_with_gpg_and_gpgconf_alone(
    new_host: Bed, packages: dict[str, Path]
) -> None:
    """Depends names gpg and gpgconf, not gnupg: a signed image is imported with nothing
    else of GnuPG installed (no gpg-agent, no dirmngr)."""
    bed = new_host
    install(bed, packages, tool="dpkg")
    # Made while gnupg is whole: generating a key needs gpg-agent.
    bed.run("mkdir", "-p", "/tmp/work")
    bed.run("/usr/bin/python3", "-c", SIGNED_IMAGE)
    bed.run(
        "sh",
        "-c",
        "mkdir -m 700 /tmp/gnupg && gpg --batch --quiet --gen-key"
        " && gpg --armor --export release@example.org > /tmp/work/release.asc"
        " && gpg --batch --armor --detach-sign /tmp/work/app.tar && gpgconf --kill all",
        env={"GNUPGHOME": "/tmp/gnupg"},
        input=RELEASE_KEY,
    )
    bed.run("dpkg", "--purge", "--force-depends", *GNUPG_EXTRAS, env=DPKG_ENV)
    for program in ("gpg-agent", "dirmngr"):
        assert bed.run("sh", "-c", f"command -v {program}", check=False).returncode != 0
    bed.run(
        "podmgr", "trust", "add", "--yes", "--prefix", "example.org/sig", "/tmp/work/release.asc"
    )
    bed.run(
        "podmgr",
        "image",
        "import",
        "oci-archive:/tmp/work/app.tar:1.4",
        "--name",
        "example.org/sig/app:1.4",
    )
    [image] = json.loads(bed.run("podmgr", "image", "list", "--json").stdout)
    assert image["name"] == "example.org/sig/app:1.4"
    assert image["signed_by"], image
