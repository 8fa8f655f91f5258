# SPDX-License-Identifier: LGPL-2.1-or-later
"""A pod's lifecycle when its manifest changes under it, and how failed starts read."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
from bed import Bed

pytestmark = pytest.mark.integration

ROOTFS = "/var/lib/machines/podmgr-busybox"
CHECKOUT = str(Path(__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def life_bed(bed: Bed) -> Bed:
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    return bed


def install(bed: Bed, name: str, text: str) -> None:
    bed.run("mkdir", "-p", "/etc/podmgr/pods")
    bed.run("sh", "-c", f"cat > /etc/podmgr/pods/{name}.toml", input=textwrap.dedent(text))


def show(bed: Bed, unit: str, prop: str) -> str:
    return bed.run("systemctl", "show", "--value", "-p", prop, unit).stdout.strip()


def app(name: str) -> str:
    return f"""
        [app.{name}]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
    """


def running_app_units(bed: Bed, pod: str) -> list[str]:
    """Every podapp unit of ``pod`` systemd has loaded that is not inactive or failed."""
    out = bed.run(
        "systemctl", "list-units", "--all", "--plain", "--no-legend", f"podapp@{pod}:*"
    ).stdout
    return [
        line.split()[0]
        for line in out.splitlines()
        if line.split() and line.split()[2] not in ("inactive", "failed")
    ]


def processes_in_slice(bed: Bed, pod: str) -> list[str]:
    script = f"""
        for root in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
            if [ -d "$root/pod.slice/pod-{pod}.slice" ]; then
                find "$root/pod.slice/pod-{pod}.slice" -name cgroup.procs -exec cat {{}} +
            fi
        done
    """
    return bed.run("sh", "-c", script).stdout.split()


def mounts_of(bed: Bed, pod: str) -> list[str]:
    lines = bed.run("cat", "/proc/1/mountinfo").stdout.splitlines()
    return [line for line in lines if f"/run/podmgr/pods/{pod}" in line.split()[4]]


@pytest.mark.parametrize("stop", [["podmgr", "stop"], ["systemctl", "stop"]])
def test_stopping_a_pod_stops_apps_gone_from_its_manifest(life_bed: Bed, stop: list[str]) -> None:
    bed = life_bed
    pod = "shrink" if stop[0] == "podmgr" else "shrink2"
    install(bed, pod, app("stays") + app("goes"))
    bed.run("systemctl", "daemon-reload")
    bed.run("podmgr", "start", pod)
    assert sorted(running_app_units(bed, pod)) == [
        f"podapp@{pod}:goes.service",
        f"podapp@{pod}:stays.service",
    ]
    install(bed, pod, app("stays"))
    bed.run("systemctl", "daemon-reload")
    target = pod if stop[0] == "podmgr" else f"pod@{pod}.service"
    bed.run(*stop, target)
    assert running_app_units(bed, pod) == []
    assert processes_in_slice(bed, pod) == []
    assert mounts_of(bed, pod) == []
    assert bed.run("test", "-e", f"/run/podmgr/pods/{pod}", check=False).returncode == 1


def test_a_restart_leaves_only_the_apps_of_the_manifest(life_bed: Bed) -> None:
    bed = life_bed
    install(bed, "renew", app("stays") + app("goes"))
    bed.run("systemctl", "daemon-reload")
    bed.run("podmgr", "start", "renew")
    install(bed, "renew", app("stays"))
    bed.run("systemctl", "daemon-reload")
    bed.run("podmgr", "restart", "renew")
    assert running_app_units(bed, "renew") == ["podapp@renew:stays.service"]
    assert sorted(m.split()[4] for m in mounts_of(bed, "renew") if "/apps/" in m.split()[4]) == [
        "/run/podmgr/pods/renew/apps/stays/rootfs",
    ]
    bed.run("podmgr", "stop", "renew")
    assert processes_in_slice(bed, "renew") == []


def test_an_app_added_to_a_running_pod_starts_with_the_next_start(life_bed: Bed) -> None:
    bed = life_bed
    install(bed, "grow", app("first"))
    bed.run("systemctl", "daemon-reload")
    bed.run("podmgr", "start", "grow")
    install(bed, "grow", app("first") + app("second"))
    bed.run("systemctl", "daemon-reload")
    # The running pod was prepared for the old manifest: the new app has no root yet.
    alone = bed.run("systemctl", "start", "podapp@grow:second.service", check=False)
    assert alone.returncode != 0
    # systemd's own status says why, rather than failing to set up the app's namespace.
    assert "Assertion failed on job for podapp@grow:second.service" in alone.stderr
    assert show(bed, "podapp@grow:second.service", "AssertResult") == "no"
    assert (
        "AssertPathIsMountPoint=/run/podmgr/pods/grow/apps/second/rootfs was not met"
        in bed.run(
            "systemctl", "status", "--no-pager", "podapp@grow:second.service", check=False
        ).stdout
    )
    assert running_app_units(bed, "grow") == ["podapp@grow:first.service"]
    started = bed.run("podmgr", "start", "grow", check=False)
    assert (started.returncode, started.stderr) == (
        1,
        (
            "podmgr: pod grow: podapp@grow:second.service did not start: it was added to the "
            "manifest after pod grow started (restart the pod: podmgr restart grow)\n"
        ),
    )
    assert running_app_units(bed, "grow") == ["podapp@grow:first.service"]
    bed.run("podmgr", "restart", "grow")
    assert sorted(running_app_units(bed, "grow")) == [
        "podapp@grow:first.service",
        "podapp@grow:second.service",
    ]
    bed.run("podmgr", "stop", "grow")
    assert processes_in_slice(bed, "grow") == []
    assert mounts_of(bed, "grow") == []


def test_release_never_unmounts_under_a_running_app(life_bed: Bed) -> None:
    bed = life_bed
    install(bed, "busy", app("main"))
    bed.run("systemctl", "daemon-reload")
    bed.run("podmgr", "start", "busy")
    # Asked directly, as pod@.service's fallback does, while the app still runs.
    refused = bed.run("/usr/lib/podmgr/podmgr-pod", "release", "busy", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "pod busy: podapp@busy:main.service still runs, so its root file system stays "
        "mounted (stop the pod: systemctl stop pod@busy.service)"
    )
    assert show(bed, "podapp@busy:main.service", "ActiveState") == "active"
    assert mounts_of(bed, "busy")
    bed.run("podmgr", "stop", "busy")
    assert mounts_of(bed, "busy") == []


def start_limit(bed: Bed, unit: str, burst: int) -> None:
    """At most ``burst`` starts of ``unit`` an hour, as an administrator's drop-in says."""
    bed.run("mkdir", "-p", f"/etc/systemd/system/{unit}.d")
    bed.run(
        "sh",
        "-c",
        f"cat > /etc/systemd/system/{unit}.d/limit.conf",
        input=f"[Unit]\nStartLimitIntervalSec=1h\nStartLimitBurst={burst}\n",
    )


def test_a_pod_at_its_start_limit_says_so(life_bed: Bed) -> None:
    bed = life_bed
    install(bed, "limited", app("main"))
    start_limit(bed, "pod@limited.service", 1)
    bed.run("systemctl", "daemon-reload")
    bed.run("podmgr", "start", "limited")
    message = (
        "podmgr: pod limited hit systemd's start limit (restarted too often); run "
        "systemctl reset-failed pod@limited.service, then start again\n"
    )
    hit = bed.run("podmgr", "restart", "limited", check=False)
    assert (hit.returncode, hit.stderr) == (1, message)
    assert show(bed, "pod@limited.service", "Result") == "start-limit-hit"
    again = bed.run("podmgr", "start", "limited", check=False)
    assert (again.returncode, again.stderr) == (1, message)
    # The same over D-Bus, to any client.
    call = bed.run(
        "busctl",
        "call",
        "org.podmgr1",
        "/org/podmgr1",
        "org.podmgr1.Manager",
        "StartPod",
        "s",
        "limited",
        check=False,
    )
    assert call.returncode == 1
    assert "pod limited hit systemd's start limit" in call.stderr
    bed.run("systemctl", "reset-failed", "pod@limited.service")
    bed.run("podmgr", "start", "limited")
    bed.run("podmgr", "stop", "limited")


def test_an_app_at_its_start_limit_says_so(life_bed: Bed) -> None:
    bed = life_bed
    install(
        bed,
        "flappy",
        app("steady")
        + f"""
        [app.flap]
        rootfs = "{ROOTFS}"
        exec = ["/bin/false"]
        restart = "always"
    """,
    )
    start_limit(bed, "podapp@flappy:flap.service", 2)
    bed.run("systemctl", "daemon-reload")
    bed.run("podmgr", "start", "flappy", check=False)  # may see it restarting or failed
    unit = "podapp@flappy:flap.service"
    deadline = time.monotonic() + 15
    # systemd stops restarting it at the limit; its Result= stays exit-code.
    while show(bed, unit, "ActiveState") != "failed":
        assert time.monotonic() < deadline, show(bed, unit, "ActiveState")
        time.sleep(0.1)
    again = bed.run("podmgr", "start", "flappy", check=False)
    assert (again.returncode, again.stderr) == (
        1,
        (
            f"podmgr: pod flappy: {unit} hit systemd's start limit (restarted too often); run "
            f"systemctl reset-failed {unit}, then start again\n"
        ),
    )
    bed.run("podmgr", "stop", "flappy")


def test_a_failed_app_says_its_result(life_bed: Bed) -> None:
    bed = life_bed
    install(
        bed,
        "broken-app",
        app("steady")
        + f"""
        [app.crash]
        rootfs = "{ROOTFS}"
        exec = ["/bin/no-such-program"]
    """,
    )
    bed.run("systemctl", "daemon-reload")
    failed = bed.run("podmgr", "start", "broken-app", check=False)
    unit = "podapp@broken-app:crash.service"
    assert (failed.returncode, failed.stderr) == (
        1,
        (
            f"podmgr: pod broken-app: {unit} did not start: it failed with result 'exit-code' "
            f"(see journalctl -u {unit})\n"
        ),
    )
    bed.run("podmgr", "stop", "broken-app")
    bed.run("systemctl", "reset-failed", unit)
