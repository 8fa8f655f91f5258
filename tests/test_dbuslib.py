# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr on either D-Bus library (podmgr/bus/dbuslib.py): which one a program picks,
what it says when it cannot, the bus tests passed on the library this run does not use,
and the service, its clients and polkit under a real systemd on dbus-fast."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bed import Bed
from busfakes import fake
from test_bus import busctl
from test_pods import ROOTFS, show, wait_for

from podmgr.bus import api, dbuslib, dispatch
from podmgr.bus.dbuslib import FORCE, LIBRARIES, MessageBus

CHECKOUT = Path(__file__).resolve().parent.parent
SITE = Path("/usr/lib/python3/dist-packages")  # where Debian's packages of both are


def found(name: str) -> Path:
    """Where this run's Python finds library ``name``: Debian's dbus-next, and the test
    venv's dbus-fast (tests/requirements.txt), since Debian 12's 1.84 is refused."""
    spec = importlib.util.find_spec(name)
    assert spec is not None, name
    assert spec.submodule_search_locations, name
    return Path(next(iter(spec.submodule_search_locations)))


# The tests that speak D-Bus without a bed: each also runs on the other library.
BUS_TESTS = (
    "test_private_bus.py",
    "test_dispatch.py",
    "test_bus_layer.py",
    "test_dbuslib.py",
    "test_enter.py",
)

installed = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in LIBRARIES),
    reason="needs python3-dbus-next and python3-dbus-fast (make deps)",
)


def pick(
    tmp_path: Path, libraries: tuple[str, ...], forced: str | None = None, debian: bool = False
) -> tuple[int, str]:
    """Import the seam in a Python that has only ``libraries`` (python3 -S, a sys.path of
    the checkout and a directory holding just those; ``debian``: Debian's own packages of
    them): its exit code and output."""
    site = tmp_path / "site"
    site.mkdir()
    for name in libraries:
        (site / name).symlink_to(SITE / name if debian else found(name))
    code = (
        f"import sys; sys.path[:0] = [{str(CHECKOUT)!r}, {str(site)!r}]\n"
        "from podmgr.bus import dbuslib, connection\n"
        "print(dbuslib.NAME, connection.Bus.__mro__[1].__module__)\n"
    )
    env = {"PATH": "/usr/bin:/bin"} | ({FORCE: forced} if forced is not None else {})
    result = subprocess.run(
        ["/usr/bin/python3", "-S", "-c", code], capture_output=True, text=True, env=env, check=False
    )
    return result.returncode, result.stdout + result.stderr


@installed
@pytest.mark.parametrize(
    ("libraries", "forced", "chosen"),
    [
        (("dbus_next", "dbus_fast"), None, "dbus_next"),  # Debian with both
        (("dbus_next", "dbus_fast"), "", "dbus_next"),  # set but empty: not forced
        (("dbus_next", "dbus_fast"), "dbus_fast", "dbus_fast"),
        (("dbus_next", "dbus_fast"), "dbus_next", "dbus_next"),
        (("dbus_fast",), None, "dbus_fast"),  # Fedora
        (("dbus_next",), None, "dbus_next"),
    ],
)
def test_the_library_is_the_one_installed_or_forced(
    tmp_path: Path, libraries: tuple[str, ...], forced: str | None, chosen: str
) -> None:
    assert pick(tmp_path, libraries, forced) == (0, f"{chosen} {chosen}.aio.message_bus\n")


@installed
@pytest.mark.parametrize(
    ("libraries", "forced", "said"),
    [
        (
            ("dbus_next", "dbus_fast"),
            "dbus-fast",
            "podmgr: PODMGR_DBUS='dbus-fast' is not a D-Bus library podmgr uses "
            "(set dbus_next or dbus_fast, or unset it)",
        ),
        (
            ("dbus_next",),
            "dbus_fast",
            "podmgr: PODMGR_DBUS=dbus_fast, but dbus_fast is not installed "
            "(install python3-dbus-fast, or unset PODMGR_DBUS)",
        ),
        (
            (),
            None,
            "podmgr: needs a D-Bus library: install python3-dbus-next or python3-dbus-fast",
        ),
    ],
)
def test_without_a_library_to_use_a_program_says_so_in_one_line(
    tmp_path: Path, libraries: tuple[str, ...], forced: str | None, said: str
) -> None:
    assert pick(tmp_path, libraries, forced) == (1, said + "\n")


@installed
def test_a_dbus_fast_that_miscounts_non_ascii_strings_is_refused(tmp_path: Path) -> None:
    """Debian 12's dbus-fast 1.84 writes a string's length in characters, not bytes: any
    name, message or manifest with a non-ASCII character would corrupt the message."""
    assert pick(tmp_path, ("dbus_fast",), debian=True) == (
        1,
        "podmgr: this dbus_fast writes non-ASCII strings with wrong lengths, which corrupts "
        "messages (install python3-dbus-next, or python3-dbus-fast 2.12 or later, which has "
        "the fix)\n",
    )


GI_CHECK = """
import sys
from podmgr.bus import dbuslib
loaded = "gi" in sys.modules
import gi  # what a program that wants GLib does after: the seam must not have broken it
print(dbuslib.NAME, loaded, gi.__name__)
"""


@pytest.mark.skipif(not importlib.util.find_spec("gi"), reason="needs python3-gi")
@pytest.mark.parametrize("library", [name for name in LIBRARIES if importlib.util.find_spec(name)])
def test_the_library_loads_without_gi_and_leaves_it_importable(library: str) -> None:
    """Both libraries import PyGObject for their GLib main loop, which podmgr never uses:
    the seam keeps it from loading, and a later import of gi still works."""
    result = subprocess.run(
        [sys.executable, "-c", GI_CHECK],  # the test venv's: it has a dbus-fast to use
        capture_output=True,
        text=True,
        check=False,
        cwd=CHECKOUT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(CHECKOUT), FORCE: library},
    )
    assert (result.returncode, result.stdout) == (0, f"{library} False gi\n"), result.stderr


def test_this_run_uses_the_library_it_was_told_to() -> None:
    """The classes every module takes from the seam are that library's own."""
    default = next(name for name in LIBRARIES if importlib.util.find_spec(name))
    assert (os.environ.get(FORCE) or default) == dbuslib.NAME
    assert MessageBus.__module__ == f"{dbuslib.NAME}.aio.message_bus"
    for name in ("Message", "MessageType", "Variant", "BusType", "NameFlag", "SignatureTree"):
        assert getattr(dbuslib, name).__module__.split(".")[0] == dbuslib.NAME


def test_the_librarys_own_parser_reads_the_introspection_data() -> None:
    """A client of either library (its proxy objects) reads what the dispatcher says."""
    introspection = importlib.import_module(f"{dbuslib.NAME}.introspection")

    class Bus:
        def add_message_handler(self, handler: object) -> None:
            pass

    async def xml() -> str:
        dispatcher = dispatch.Dispatcher(Bus(), object())  # type: ignore[arg-type]
        dispatcher.export(api.MANAGER_PATH, api.MANAGER, fake(api.MANAGER))
        dispatcher.work.shutdown()
        return dispatcher.introspect(api.MANAGER_PATH)

    import asyncio  # noqa: PLC0415

    node = introspection.Node.parse(asyncio.run(xml()))
    [manager] = [i for i in node.interfaces if i.name == api.MANAGER.name]
    assert [m.name for m in manager.methods] == [m.name for m in api.MANAGER.methods]
    for parsed, method in zip(manager.methods, api.MANAGER.methods, strict=True):
        assert parsed.in_signature == method.in_signature
        assert parsed.out_signature == method.out_signature
    assert [s.name for s in manager.signals] == [s.name for s in api.MANAGER.signals]


@installed
@pytest.mark.parametrize("library", [name for name in LIBRARIES if name != dbuslib.NAME])
def test_the_bus_tests_pass_on_the_other_library(library: str) -> None:
    """This run's library ran BUS_TESTS already; here they run again on the other one."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not integration",
            f"--deselect=tests/test_dbuslib.py::{test_the_bus_tests_pass_on_the_other_library.__name__}",
            *(f"tests/{name}" for name in BUS_TESTS),
        ],
        cwd=CHECKOUT,
        check=False,
        capture_output=True,
        text=True,
        env=os.environ | {FORCE: library},
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    assert "skipped" not in result.stdout, result.stdout[-2000:]


@pytest.mark.integration
def test_the_service_its_clients_and_polkit_on_dbus_fast(bed: Bed) -> None:
    """Under a real systemd, polkitd and system bus: podmgr1.service forced to dbus-fast
    is activated by a pod's start, prepares and releases it, refuses a user polkit does
    not allow, and answers the CLI, itself on dbus-fast."""
    if importlib.util.find_spec("dbus_fast") is None:
        pytest.skip("needs python3-dbus-fast (make deps)")
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run("useradd", "--create-home", "alice")
    # Debian 12's own dbus-fast is refused (see above): the service and the CLI get the
    # test venv's, from a directory that holds only it.
    bed.run("mkdir", "-p", "/etc/systemd/system/podmgr1.service.d", "/run/dbus-fast")
    bed.run("ln", "-s", str(found("dbus_fast")), "/run/dbus-fast/dbus_fast")
    bed.run(
        "sh",
        "-c",
        "cat > /etc/systemd/system/podmgr1.service.d/dbus-fast.conf",
        input=f"[Service]\nEnvironment={FORCE}=dbus_fast PYTHONPATH=/run/dbus-fast\n",
    )
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
    service = bed.run("systemctl", "show", "-P", "MainPID", "podmgr1.service").stdout.strip()
    assert service != "0", "pod@web's start did not activate podmgr1.service"
    # Forced, the seam uses dbus-fast or exits (test_the_library_is_the_one_installed_or_
    # forced): a service that runs with this environment runs on the venv's dbus-fast.
    environment = bed.run("cat", f"/proc/{service}/environ").stdout.split("\0")
    assert f"{FORCE}=dbus_fast" in environment
    assert "PYTHONPATH=/run/dbus-fast" in environment

    refused = busctl(bed, "StopPod", "s", "web", user="alice", check=False)
    assert refused.returncode != 0
    assert "org.podmgr1.manage-pods" in refused.stderr, refused.stderr
    assert bed.run("systemctl", "is-active", "pod@web").stdout == "active\n"

    client = {FORCE: "dbus_fast", "PYTHONPATH": "/run/dbus-fast"}
    listing = json.loads(bed.run("podmgr", "list", "--json", env=client).stdout)
    assert {"name": "web", "state": "active"}.items() <= next(
        pod for pod in listing if pod["name"] == "web"
    ).items()
    bed.run("podmgr", "stop", "web", env=client)
    assert bed.run("systemctl", "is-active", "pod@web", check=False).stdout == "inactive\n"
    assert bed.run("systemctl", "show", "-P", "Result", "pod@web").stdout == "success\n"
    # ReleasePod ran in the service: nothing of the pod is left under /run/podmgr.
    left = bed.run("find", "/run/podmgr", "-path", "*web*", check=False).stdout
    assert left == ""
