# SPDX-License-Identifier: LGPL-2.1-or-later
"""Isolation levels in a real systemd: a "fly" pod's apps run from their root file system in
the host's namespaces with every capability; a "container" pod's beside it keep their own."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from bed import Bed

pytestmark = pytest.mark.integration

ROOTFS = "/var/lib/machines/podmgr-busybox"
CHECKOUT = str(Path(__file__).resolve().parent.parent)

FLY = f"""
    [pod]
    isolation = "fly"

    [volume.state]
    type = "tmpfs"

    [app.main]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sleep", "infinity"]

    [[app.main.mount]]
    volume = "state"
    path = "/state"
"""
CONTAINER = f"""
    [app.main]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sleep", "infinity"]
"""


@pytest.fixture(scope="module")
def iso_bed(bed: Bed) -> Bed:
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run("mkdir", "-p", "/etc/podmgr/pods")
    for name, text in (("flown", FLY), ("boxed", CONTAINER)):
        bed.run("sh", "-c", f"cat > /etc/podmgr/pods/{name}.toml", input=textwrap.dedent(text))
    bed.run("systemctl", "daemon-reload")
    return bed


def main_pid(bed: Bed, pod: str) -> str:
    return bed.run(
        "systemctl", "show", "-P", "MainPID", f"podapp@{pod}:main.service"
    ).stdout.strip()


def status_field(bed: Bed, pid: str, field: str) -> str:
    for line in bed.run("cat", f"/proc/{pid}/status").stdout.splitlines():
        if line.startswith(f"{field}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def namespace(bed: Bed, pid: str, kind: str) -> str:
    return bed.run("readlink", f"/proc/{pid}/ns/{kind}").stdout.strip()


def identity(bed: Bed, path: str) -> str:
    return bed.run("stat", "-L", "-c", "%d:%i", path).stdout.strip()


def leftovers(bed: Bed, pod: str) -> list[str]:
    """Mounts, pinned namespaces and files a released pod would have left."""
    runtime = f"/run/podmgr/pods/{pod}"
    mounts = [
        line
        for line in bed.run("cat", "/proc/1/mountinfo").stdout.splitlines()
        if runtime in line.split()[4]
    ]
    exists = bed.run("test", "-e", runtime, check=False).returncode == 0
    return mounts + ([runtime] if exists else [])


def test_validate_warns_that_fly_gives_up_isolation(iso_bed: Bed) -> None:
    result = iso_bed.run("podmgr", "validate", "/etc/podmgr/pods/flown.toml")
    assert result.stdout == "/etc/podmgr/pods/flown.toml: ok\n"
    assert result.stderr == (
        '/etc/podmgr/pods/flown.toml: warning: pod.isolation: "fly" gives up isolation: '
        "the apps run in the host's namespaces with every capability, as root can (use "
        '"container" unless the apps must manage the host)\n'
    )


def test_a_fly_app_lives_in_the_hosts_namespaces_with_every_capability(iso_bed: Bed) -> None:
    bed = iso_bed
    bed.run("podmgr", "start", "flown")
    bed.run("podmgr", "start", "boxed")
    try:
        fly, boxed = main_pid(bed, "flown"), main_pid(bed, "boxed")
        status = json.loads(bed.run("podmgr", "status", "--json", "flown").stdout)
        assert (status["State"], status["Addresses"]) == ("active", [])  # the host's are its
        assert "0" not in (fly, boxed)
        for kind in ("net", "ipc"):
            assert namespace(bed, fly, kind) == namespace(bed, "1", kind), kind
            assert namespace(bed, boxed, kind) != namespace(bed, "1", kind), kind
        host_bounding = status_field(bed, "1", "CapBnd")
        assert status_field(bed, fly, "CapBnd") == host_bounding
        assert status_field(bed, boxed, "CapBnd") != host_bounding
        assert (status_field(bed, fly, "NoNewPrivs"), status_field(bed, fly, "Seccomp")) == (
            "0",
            "0",
        )
        # Its root is its rootfs's overlay, not the host's /; its volume is mounted there.
        root = "/run/podmgr/pods/flown/apps/main/rootfs"
        assert identity(bed, f"/proc/{fly}/root") == identity(bed, root)
        assert identity(bed, f"/proc/{fly}/root") != identity(bed, "/")
        assert bed.run("test", "-x", f"/proc/{fly}/root/bin/busybox", check=False).returncode == 0
        assert bed.run("grep", "-c", " /state ", f"/proc/{fly}/mountinfo").stdout.strip() == "1"
        # The host's /etc files, as the host has them (the app is on its network).
        for name in ("resolv.conf", "hosts"):
            seen = bed.run("cat", f"/proc/{fly}/root/etc/{name}").stdout
            assert seen == bed.run("cat", f"/etc/{name}").stdout, name
        # The host's /dev, not PrivateDevices='s minimal one.
        assert bed.run("ls", f"/proc/{fly}/root/dev").stdout == bed.run("ls", "/dev").stdout
        # Prepare made neither namespaces nor /etc files for it.
        made = bed.run("ls", "/run/podmgr/pods/flown").stdout.split()
        assert {"ns", "etc"}.isdisjoint(made), made
    finally:
        bed.run("podmgr", "stop", "flown")
        bed.run("podmgr", "stop", "boxed")
    assert bed.run("systemctl", "is-active", "pod@flown.service", check=False).stdout == (
        "inactive\n"
    )
    assert leftovers(bed, "flown") == []
    assert leftovers(bed, "boxed") == []
