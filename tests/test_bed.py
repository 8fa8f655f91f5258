# SPDX-License-Identifier: LGPL-2.1-or-later
"""The test bed itself: a real systemd, isolated from the host, gone without a trace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bed import Bed, _hierarchies, _own_cgroup, sweep_stale_beds

pytestmark = pytest.mark.integration

CHECKOUT = Path(__file__).resolve().parent.parent


def bed_cgroups(name: str) -> list[Path]:
    return [point / _own_cgroup(options).lstrip("/") / f"bed-{name}"
            for point, options in _hierarchies().items()]


def test_systemd_boots_with_bus_journal_and_polkit(fresh_bed: Bed) -> None:
    bed = fresh_bed
    assert bed.run("cat", "/proc/1/comm").stdout.strip() == "systemd"
    assert bed.run("systemctl", "is-system-running", check=False).stdout.strip() in (
        "running", "degraded")
    assert "org.freedesktop.systemd1" in bed.run("busctl", "list", "--no-legend").stdout
    bed.run("systemd-cat", "-t", "bedtest", "echo", "hello from the bed")
    time.sleep(0.2)
    assert "hello from the bed" in bed.run("journalctl", "-t", "bedtest", "--no-pager").stdout
    # polkitd is D-Bus activated on the first call.
    bed.run("busctl", "introspect", "org.freedesktop.PolicyKit1",
            "/org/freedesktop/PolicyKit1/Authority")
    assert bed.run("hostname").stdout.strip().startswith("bed-")


def test_nothing_reaches_the_host(beds_allowed: None) -> None:
    marker = Path("/tmp") / f"bed-marker-{os.getpid()}"
    marker.write_text("host")
    mountinfo = Path("/proc/self/mountinfo").read_text()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True,
                           check=True).stdout
    try:
        with Bed("isolation", CHECKOUT) as bed:
            name = f"bedtest-{os.getpid()}"
            for directory in ("/tmp", "/etc", "/var"):
                bed.run("touch", f"{directory}/{name}")
            bed.run("ip", "link", "add", "bedtest0", "type", "veth", "peer", "name", "bedtest1")
            # The bed's /tmp is its own tmpfs: the host's files are not there to delete.
            assert bed.run("test", "-e", str(marker), check=False).returncode == 1
            for directory in ("/tmp", "/etc", "/var"):
                assert not Path(directory, name).exists()
            assert "bedtest0" not in subprocess.run(["ip", "-o", "link"], capture_output=True,
                                                    text=True, check=True).stdout
        assert marker.read_text() == "host"
        assert Path("/proc/self/mountinfo").read_text() == mountinfo
        assert subprocess.run(["ip", "-o", "link"], capture_output=True, text=True,
                              check=True).stdout == links
    finally:
        marker.unlink()


def test_memory_limits_are_enforced(fresh_bed: Bed) -> None:
    bed = fresh_bed
    bed.run("systemd-run", "--unit=hog", "-p", "MemoryMax=20M", "/bin/sh", "-c",
            "head -c 200M /dev/zero | tail; echo tail: $?; exec sleep infinity")
    deadline = time.monotonic() + 15
    while "tail: 137" not in bed.run("journalctl", "-u", "hog", "--no-pager").stdout:
        assert time.monotonic() < deadline, "tail was not OOM-killed"
        time.sleep(0.1)
    cgroup = bed.run("systemctl", "show", "--value", "-p", "ControlGroup", "hog").stdout.strip()
    events = bed.run("sh", "-c", f"cat /sys/fs/cgroup/memory{cgroup}/memory.oom_control "
                     f"|| cat /sys/fs/cgroup{cgroup}/memory.events").stdout
    assert "oom_kill 1" in events


def test_two_beds_at_once_do_not_collide(beds_allowed: None) -> None:
    with Bed("one", CHECKOUT) as one, Bed("two", CHECKOUT) as two:
        for bed in (one, two):
            bed.run("systemd-run", "--unit=same-name", "/bin/sleep", "infinity")
        one.run("systemctl", "stop", "same-name")
        assert two.run("systemctl", "is-active", "same-name").stdout.strip() == "active"
        assert one.run("systemctl", "is-active", "same-name", check=False).stdout.strip() \
            == "inactive"


def test_shutdown_leaves_no_process_or_cgroup(beds_allowed: None) -> None:
    bed = Bed("teardown", CHECKOUT)
    bed.boot()
    pid, cgroups = bed.pid, bed_cgroups(bed.name)
    assert all(c.exists() for c in cgroups)
    bed.shutdown()
    assert not Path(f"/proc/{pid}").exists()
    assert not any(c.exists() for c in cgroups)


CRASHING = """
import sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from bed import Bed
bed = Bed("crash", Path({checkout!r}))
bed.boot()
print(bed.pid, bed.name, flush=True)
time.sleep(600)
"""


def test_a_killed_test_run_leaves_no_bed(beds_allowed: None) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", CRASHING.format(tests=str(CHECKOUT / "tests"),
                                               checkout=str(CHECKOUT))],
        stdout=subprocess.PIPE, text=True)
    assert owner.stdout
    pid, name = owner.stdout.readline().split()
    assert Path(f"/proc/{pid}").exists()
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "the bed outlived the process that made it"
        time.sleep(0.05)
    sweep_stale_beds()
    assert not any(c.exists() for c in bed_cgroups(name))
