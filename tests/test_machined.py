# SPDX-License-Identifier: LGPL-2.1-or-later
"""Running pods in systemd-machined: machinectl list, status, terminate, ps -o machine,
and never a stale machine (bus/machined.py says how)."""

from __future__ import annotations

import os
import re
import string
from pathlib import Path

import pytest
from bed import Bed
from hypothesis import given
from hypothesis import strategies as st
from test_pods import CHECKOUT, ROOTFS, install, main_pid, mounts_of, reload, show, wait_for

from podmgr import names
from podmgr.bus import machined
from podmgr.manifest import model
from podmgr.network import links

integration = pytest.mark.integration


def hostname_is_valid(name: str) -> bool:
    """systemd 252's hostname_is_valid(name, 0) (src/basic/hostname-util.c), step by
    step: what machined checks a machine's name with."""
    if not name:
        return False
    dot = hyphen = True
    for char in name:
        if char == ".":
            if dot or hyphen:
                return False
            dot, hyphen = True, False
        elif char == "-":
            if dot:
                return False
            dot, hyphen = False, True
        else:
            if not (char.isascii() and char.isalnum()):
                return False
            dot = hyphen = False
    return not dot and not hyphen and len(name) <= 64


@given(st.text(alphabet=string.ascii_lowercase[:3] + string.digits[:2] + "_.-", max_size=70))
def test_the_machine_name_rule_is_machineds(name: str) -> None:
    assert names.is_valid_machine_name(name) == hostname_is_valid(name)


@pytest.mark.parametrize("name", ["a_b", "web-", "a.-b", "a-.b", "a..b", "web."])
def test_validate_warns_of_a_pod_machined_would_refuse(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[app.main]\nrootfs = "{tmp_path}"\nexec = ["/bin/true"]\n')
    found = [str(problem) for problem in model.warnings(model.load(path))]
    assert any("not be registered with systemd-machined" in line for line in found), found


def test_validate_is_silent_of_a_pod_machined_takes(tmp_path: Path) -> None:
    path = tmp_path / "web-1.a.toml"
    path.write_text(f'[app.main]\nrootfs = "{tmp_path}"\nexec = ["/bin/true"]\n')
    assert model.warnings(model.load(path)) == []


@pytest.fixture(scope="module")
def machine_bed(bed: Bed) -> Bed:
    if not Path("/lib/systemd/systemd-machined").exists():
        reason = "the machined tests need systemd-container (make deps installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    return bed


def two_apps(network: str = "bridge", restart: str = "no") -> str:
    """A pod whose first app starts before its second, so that it leads."""
    return f"""
        [network]
        mode = "{network}"

        [app.first]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
        restart = "{restart}"

        [app.second]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "100000"]
        after = ["first"]
    """


def machine(bed: Bed, name: str) -> dict[str, str] | None:
    """machinectl show NAME as a dict; None when machined has no such machine."""
    shown = bed.run("machinectl", "show", name, check=False)
    if shown.returncode != 0:
        return None
    return dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)


def interfaces(bed: Bed, name: str) -> list[int]:
    """The machine's NetworkInterfaces (machinectl show leaves arrays out)."""
    reply = bed.run(
        "busctl", "call", "org.freedesktop.machine1", "/org/freedesktop/machine1",
        "org.freedesktop.machine1.Manager", "GetMachine", "s", name,
    ).stdout  # fmt: skip
    path = reply.split('"')[1]
    value = bed.run(
        "busctl", "get-property", "org.freedesktop.machine1", path,
        "org.freedesktop.machine1.Machine", "NetworkInterfaces",
    ).stdout.split()  # fmt: skip
    return [int(index) for index in value[2:]]  # "ai N I1 I2 ..."


def listed(bed: Bed) -> list[list[str]]:
    out = bed.run("machinectl", "list", "--no-legend", "--no-pager").stdout
    return [line.split() for line in out.splitlines() if line.strip()]


def leads(bed: Bed, pod: str, app: str) -> bool:
    """The pod is registered, led by the live main process of app ``app``."""
    found = machine(bed, pod)
    unit = f"podapp@{pod}:{app}.service"
    return (
        found is not None
        and found["Unit"] == unit
        and show(bed, unit, "ActiveState") == "active"
        and int(found["Leader"]) == main_pid(bed, pod, app)
    )


def registration_units(bed: Bed, pod: str) -> list[str]:
    out = bed.run(
        "systemctl", "list-units", "--all", "--plain", "--no-legend", f"podmachine@{pod}:*"
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def start(bed: Bed, pod: str, text: str) -> None:
    install(bed, pod, text)
    reload(bed)
    bed.run("podmgr", "start", pod)


def assert_released(bed: Bed, pod: str) -> None:
    """Nothing of the pod is left: no apps, runtime dir, mounts, veth, machine."""
    for unit in (f"pod@{pod}.service", f"podapp@{pod}:first.service"):
        assert show(bed, unit, "ActiveState") in ("inactive", "failed"), unit
    assert bed.run("test", "-e", f"/run/podmgr/pods/{pod}", check=False).returncode == 1
    assert mounts_of(bed, pod) == []
    veth = links.veth_name(pod, names.DEFAULT_NETWORK)
    assert bed.run("ip", "link", "show", veth, check=False).returncode != 0
    assert machine(bed, pod) is None
    wait_for(lambda: registration_units(bed, pod) == [], what="no registration unit")


@integration
def test_machined_runs_in_the_bed(machine_bed: Bed) -> None:
    """It is D-Bus activated, as on a host: nothing to enable."""
    bed = machine_bed
    assert bed.run("machinectl", "list", "--no-legend").returncode == 0
    assert show(bed, "systemd-machined.service", "ActiveState") == "active"


@integration
def test_a_running_pod_is_a_container_with_its_leader_root_and_interfaces(
    machine_bed: Bed,
) -> None:
    bed = machine_bed
    start(bed, "web", two_apps())
    wait_for(lambda: leads(bed, "web", "first"), what="web to be registered")
    assert listed(bed)[0][:3] == ["web", "container", "podmgr"]
    found = machine(bed, "web")
    assert found is not None
    assert found["Class"] == "container"
    assert found["RootDirectory"] == "/run/podmgr/pods/web/apps/first/rootfs"
    veth = links.veth_name("web", names.DEFAULT_NETWORK)
    # ("3: vp...@if2: <...") -- not /sys/class/net: the bed's sysfs is the host's.
    index = bed.run("ip", "-o", "link", "show", veth).stdout.split(":", 1)[0]
    assert interfaces(bed, "web") == [int(index)]
    status = bed.run("machinectl", "status", "web", "--no-pager").stdout
    leader = main_pid(bed, "web", "first")
    assert re.search(rf"Leader: {leader} \(sleep\)", status), status
    assert "Root: /run/podmgr/pods/web/apps/first/rootfs" in status
    assert f"Iface: {veth}" in status
    assert "Unit: podapp@web:first.service" in status
    # ps names the leading app's processes.
    ps = bed.run("ps", "-e", "-o", "pid=,machine=,cmd=").stdout
    assert re.search(rf"^\s*{leader}\s+web\s+/bin/sleep infinity$", ps, re.MULTILINE), ps
    bed.run("podmgr", "stop", "web")
    assert_released(bed, "web")


@integration
def test_machinectl_terminate_stops_the_whole_pod_and_releases_it(machine_bed: Bed) -> None:
    bed = machine_bed
    start(bed, "term", two_apps())
    wait_for(lambda: leads(bed, "term", "first"), what="term to be registered")
    bed.run("machinectl", "terminate", "term")
    wait_for(
        lambda: show(bed, "pod@term.service", "ActiveState") == "inactive",
        what="pod@term.service to stop",
    )
    assert show(bed, "podapp@term:second.service", "ActiveState") == "inactive"
    assert_released(bed, "term")


@integration
def test_stopping_the_pod_unregisters_it(machine_bed: Bed) -> None:
    bed = machine_bed
    start(bed, "stopped", two_apps(network="private"))
    wait_for(lambda: leads(bed, "stopped", "first"), what="stopped to be registered")
    found = machine(bed, "stopped")
    assert found is not None
    assert interfaces(bed, "stopped") == []  # a private network has no host end
    bed.run("systemctl", "stop", "pod@stopped.service")
    assert machine(bed, "stopped") is None
    assert_released(bed, "stopped")


@integration
def test_stopping_the_leading_app_alone_leaves_the_pod_led_by_another(machine_bed: Bed) -> None:
    bed = machine_bed
    start(bed, "alone", two_apps(network="host"))
    wait_for(lambda: leads(bed, "alone", "first"), what="alone to be registered")
    found = machine(bed, "alone")
    assert found is not None
    assert interfaces(bed, "alone") == []  # the host's network is the host's
    bed.run("systemctl", "stop", "podapp@alone:first.service")
    # Stopping one app is what it was: the others and the pod run on.
    assert show(bed, "pod@alone.service", "ActiveState") == "active"
    assert show(bed, "podapp@alone:second.service", "ActiveState") == "active"
    wait_for(lambda: leads(bed, "alone", "second"), what="second to lead")
    bed.run("systemctl", "start", "podapp@alone:first.service")
    bed.run("podmgr", "stop", "alone")
    assert machine(bed, "alone") is None


@integration
def test_a_restarting_leader_is_never_left_registered_dead(machine_bed: Bed) -> None:
    bed = machine_bed
    start(bed, "again", two_apps(restart="always"))
    wait_for(lambda: leads(bed, "again", "first"), what="again to be registered")
    for _ in range(3):
        found = machine(bed, "again")
        assert found is not None
        dead = int(found["Leader"])
        bed.run("kill", str(dead))

        def led_anew(dead: int = dead) -> bool:
            found = machine(bed, "again")
            return (
                found is not None
                and int(found["Leader"]) != dead
                and (leads(bed, "again", "first") or leads(bed, "again", "second"))
            )

        wait_for(led_anew, what="a live leader")
    bed.run("systemctl", "restart", "podapp@again:first.service")
    wait_for(
        lambda: leads(bed, "again", "first") or leads(bed, "again", "second"),
        what="a live leader after a restart",
    )
    bed.run("podmgr", "stop", "again")
    assert_released(bed, "again")


@integration
def test_a_killed_service_and_app_leave_no_stale_machine(machine_bed: Bed) -> None:
    bed = machine_bed
    start(bed, "crash", two_apps())
    wait_for(lambda: leads(bed, "crash", "first"), what="crash to be registered")
    bed.run("systemctl", "kill", "--signal=KILL", "podmgr1.service")
    wait_for(lambda: show(bed, "podmgr1.service", "ActiveState") != "active", what="the kill")
    bed.run("kill", "-9", str(main_pid(bed, "crash", "first")))
    wait_for(
        lambda: show(bed, "podapp@crash:first.service", "ActiveState") == "failed",
        what="the killed app to fail",
    )
    wait_for(lambda: leads(bed, "crash", "second"), what="second to lead")
    bed.run("kill", "-9", str(main_pid(bed, "crash", "second")))
    wait_for(lambda: machine(bed, "crash") is None, what="no machine without an app")
    bed.run("systemctl", "stop", "pod@crash.service")
    assert_released(bed, "crash")


@integration
def test_a_failing_app_leaves_no_machine(machine_bed: Bed) -> None:
    bed = machine_bed
    start(
        bed,
        "fails",
        f"""
        [app.first]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sh", "-c", "sleep 1; exit 3"]
        """,
    )
    wait_for(
        lambda: show(bed, "podapp@fails:first.service", "ActiveState") == "failed",
        what="the app to fail",
    )
    wait_for(lambda: machine(bed, "fails") is None, what="no machine")
    wait_for(lambda: registration_units(bed, "fails") == [], what="no registration unit")
    bed.run("systemctl", "stop", "pod@fails.service")


@integration
def test_two_pods_are_two_machines(machine_bed: Bed) -> None:
    bed = machine_bed
    start(bed, "one", two_apps())
    start(bed, "two", two_apps())
    wait_for(lambda: leads(bed, "one", "first") and leads(bed, "two", "first"), what="both")
    assert {row[0] for row in listed(bed)} >= {"one", "two"}
    one, two = machine(bed, "one"), machine(bed, "two")
    assert one is not None
    assert two is not None
    assert interfaces(bed, "one") != interfaces(bed, "two")
    bed.run("podmgr", "stop", "one")
    assert machine(bed, "one") is None
    assert leads(bed, "two", "first")
    bed.run("podmgr", "stop", "two")
    assert machine(bed, "two") is None


@integration
def test_a_name_machined_refuses_runs_unregistered_and_says_so(machine_bed: Bed) -> None:
    bed = machine_bed
    start(bed, "a_b", two_apps())
    assert show(bed, "podapp@a_b:first.service", "ActiveState") == "active"
    validated = bed.run("podmgr", "validate", "/etc/podmgr/pods/a_b.toml")
    assert "not be registered with systemd-machined" in validated.stderr
    wait_for(
        lambda: (
            "pod a_b: not registered with systemd-machined"
            in bed.run("journalctl", "-u", "podmgr1.service", "--no-pager").stdout
        ),
        what="the journal to say why",
    )
    assert machine(bed, "a_b") is None
    # machined itself refuses it, for the same reason.
    refused = bed.run(
        "busctl", "call", "org.freedesktop.machine1", "/org/freedesktop/machine1",
        "org.freedesktop.machine1.Manager", "RegisterMachine", "sayssus",
        "a_b", "0", "podmgr", "container", str(main_pid(bed, "a_b", "first")), "/",
        check=False,
    )  # fmt: skip
    assert "Invalid machine name" in refused.stderr
    bed.run("podmgr", "stop", "a_b")


@integration
def test_a_machine_of_someone_else_is_left_alone(machine_bed: Bed) -> None:
    bed = machine_bed
    bed.run("systemd-run", "--unit=other-web", "/bin/sleep", "infinity")
    pid = show(bed, "other-web.service", "MainPID")
    bed.run(
        "busctl", "call", "org.freedesktop.machine1", "/org/freedesktop/machine1",
        "org.freedesktop.machine1.Manager", "RegisterMachine", "sayssus",
        "taken", "0", "nspawn", "container", pid, "/",
    )  # fmt: skip
    start(bed, "taken", two_apps())
    wait_for(
        lambda: (
            "pod taken: not registered with systemd-machined: a machine of that name"
            in bed.run("journalctl", "-u", "podmgr1.service", "--no-pager").stdout
        ),
        what="the journal to say why",
    )
    bed.run("podmgr", "stop", "taken")
    found = machine(bed, "taken")
    assert found is not None
    assert found["Unit"] == "other-web.service"
    bed.run("systemctl", "stop", "other-web.service")


_NAMES = st.from_regex(names.NAME_PATTERN, fullmatch=True)


@given(pod=_NAMES, other=_NAMES, app=_NAMES, service=st.sampled_from(["podmgr", "nspawn", ""]))
def test_only_a_machine_podmgr_registered_for_the_pod_is_its_own(
    pod: str, other: str, app: str, service: str
) -> None:
    """The service unregisters or acts on no machine but its own (machined.py)."""
    for unit in (names.app_unit(other, app), f"systemd-nspawn@{pod}.service", names.pod_unit(pod)):
        found = machined.Machine(pod, "/m", unit, 2, "running", service)
        assert found.belongs_to(pod) == (service == "podmgr" and unit == names.app_unit(pod, app))
        if found.belongs_to(pod):
            assert found.app == app
