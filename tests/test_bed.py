# SPDX-License-Identifier: LGPL-2.1-or-later
"""The test bed itself: a real systemd, isolated from the host, gone without a trace."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bed import Bed, BedCommandError, hierarchies, sweep_stale_beds

pytestmark = pytest.mark.integration

CHECKOUT = Path(__file__).resolve().parent.parent


def bed_cgroups(name: str) -> list[Path]:
    return [hierarchy.bed(name) for hierarchy in hierarchies()]


def host(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def wait_until_dead(pid: int, timeout: float = 10) -> None:
    """A dead PID 1 may stay a zombie until the host's init reaps it: that is dead too."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return
        assert time.monotonic() < deadline, f"PID {pid} is still running"
        time.sleep(0.02)


def test_systemd_boots_with_bus_journal_and_polkit(fresh_bed: Bed) -> None:
    bed = fresh_bed
    assert bed.run("cat", "/proc/1/comm").stdout.strip() == "systemd"
    assert bed.run("systemctl", "is-system-running", check=False).stdout.strip() in (
        "running",
        "degraded",
    )
    status = bed.run("busctl", "status").stdout.splitlines()
    assert "BusAddress=unix:path=/run/dbus/system_bus_socket" in status
    assert "org.freedesktop.systemd1" in bed.run("busctl", "list", "--no-legend").stdout
    bed.run("systemd-cat", "-t", "bedtest", "echo", "hello from the bed")
    bed.run("journalctl", "--sync")
    assert (
        "hello from the bed"
        in bed.run("journalctl", "-t", "bedtest", "_TRANSPORT=stdout", "--no-pager").stdout
    )
    # polkitd is D-Bus activated on the first call.
    authority = bed.run(
        "busctl",
        "introspect",
        "org.freedesktop.PolicyKit1",
        "/org/freedesktop/PolicyKit1/Authority",
    ).stdout
    assert "CheckAuthorization" in authority
    hostname = bed.run("hostname").stdout.strip()
    assert hostname == f"bed-{bed.name}" != socket.gethostname()


def test_a_failed_command_says_what_and_why(fresh_bed: Bed) -> None:
    with pytest.raises(BedCommandError) as failed:
        fresh_bed.run("sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
    message = str(failed.value)
    for part in ("sh -c", "exited 3", "to-stdout", "to-stderr"):
        assert part in message
    assert fresh_bed.run("sh", "-c", "exit 3", check=False).returncode == 3
    assert fresh_bed.run("cat", input="in\n").stdout == "in\n"
    assert fresh_bed.run("sh", "-c", "echo $X", env={"X": "y"}).stdout == "y\n"


def test_nothing_reaches_the_host(beds_allowed: None) -> None:
    marker = Path("/tmp") / f"bed-marker-{os.getpid()}"
    marker.write_text("host")
    mountinfo = Path("/proc/self/mountinfo").read_text()
    links = host("ip", "-o", "link")
    sysctls = {
        key: Path("/proc/sys", key).read_text()
        for key in ("fs/file-max", "kernel/pid_max", "net/ipv4/ip_forward")
    }
    name = f"bedtest-{os.getpid()}"
    try:
        with Bed("isolation", CHECKOUT) as bed:
            for directory in ("/tmp", "/etc", "/var"):
                bed.run("touch", f"{directory}/{name}")
            bed.run("ip", "link", "add", "bedtest0", "type", "veth", "peer", "name", "bedtest2")
            bed.run("ip", "link", "add", "bedtest1", "type", "bridge")
            # The network's sysctls are the bed's own, the kernel's are read-only.
            bed.run("sysctl", "-w", "net.ipv4.ip_forward=1")
            assert bed.run("sysctl", "-w", "kernel.pid_max=4321", check=False).returncode != 0
            # The bed's /tmp is its own tmpfs: the host's files are not there to delete.
            assert bed.run("test", "-e", str(marker), check=False).returncode == 1
            for directory in ("/tmp", "/etc", "/var"):
                assert not Path(directory, name).exists()
            assert "bedtest" not in host("ip", "-o", "link")
            assert Path("/proc/self/mountinfo").read_text() == mountinfo
        assert marker.read_text() == "host"
        after = Path("/proc/self/mountinfo").read_text()
        assert len(after.splitlines()) == len(mountinfo.splitlines())
        assert after == mountinfo
        assert host("ip", "-o", "link") == links
        for key, value in sysctls.items():
            assert Path("/proc/sys", key).read_text() == value, key
    finally:
        marker.unlink()


def oom_kills(bed: Bed, unit: str) -> int:
    """OOM kills in ``unit``'s cgroup, as the kernel counts them (in v1, only its own)."""
    cgroup = bed.run("systemctl", "show", "--value", "-p", "ControlGroup", unit).stdout.strip()
    assert cgroup, f"{unit} has no cgroup"
    counters = bed.run(
        "sh",
        "-c",
        f"cat /sys/fs/cgroup/memory{cgroup}/memory.oom_control "
        f"2>/dev/null || cat /sys/fs/cgroup{cgroup}/memory.events",
    ).stdout
    return int(dict(line.split() for line in counters.splitlines())["oom_kill"])


def test_cgroup_limits_are_enforced(fresh_bed: Bed) -> None:
    bed = fresh_bed
    hog = ("python3", "-c", "b = bytearray(200 * 1024 * 1024)")
    bed.run("systemd-run", "--wait", "--unit=hog", "-p", "MemoryMax=20M", "--", *hog, check=False)
    show = bed.run("systemctl", "show", "-p", "Result,ExecMainStatus", "hog").stdout.split()
    # systemd reports oom-kill only when memory is on cgroup2; in hybrid mode it sees the
    # SIGKILL, and the kernel's count below tells that it was the OOM killer's.
    if bed.run("test", "-d", "/sys/fs/cgroup/memory", check=False).returncode == 0:
        assert show == ["Result=signal", "ExecMainStatus=9"]
    else:
        assert "Result=oom-kill" in show
    # The unit outlives its hog here, so that its cgroup can be read.
    bed.run(
        "systemd-run",
        "--unit=outlives",
        "-p",
        "MemoryMax=20M",
        "-p",
        "OOMPolicy=continue",
        "--",
        "sh",
        "-c",
        f"{shlex.join(hog)}; echo $? > /run/hog; exec sleep infinity",
    )
    deadline = time.monotonic() + 15
    while bed.run("test", "-e", "/run/hog", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the hog neither finished nor was killed"
        time.sleep(0.05)
    assert bed.run("cat", "/run/hog").stdout.strip() == "137"  # 128 + SIGKILL
    assert oom_kills(bed, "outlives") == 1, "the kernel OOM-killed nothing"
    bed.run(
        "systemd-run",
        "--wait",
        "--unit=forks",
        "-p",
        "TasksMax=3",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6; do sleep 10 & done; wait",
        check=False,
    )
    show = bed.run("systemctl", "show", "-p", "Result", "forks").stdout.split()
    assert show == ["Result=exit-code"], "TasksMax= did not stop the forks"


def test_two_beds_at_once_do_not_collide(beds_allowed: None) -> None:
    with Bed("one", CHECKOUT) as one, Bed("two", CHECKOUT) as two:
        assert one.pid != two.pid
        for bed in (one, two):
            bed.run(
                "systemd-run",
                "--unit=same-name",
                f"--description=in {bed.name}",
                "/bin/sleep",
                "infinity",
            )
        for bed in (one, two):
            assert (
                bed.run(
                    "systemctl", "show", "--value", "-p", "Description", "same-name"
                ).stdout.strip()
                == f"in {bed.name}"
            )
        one.run("systemctl", "stop", "same-name")
        assert two.run("systemctl", "is-active", "same-name").stdout.strip() == "active"
        assert (
            one.run("systemctl", "is-active", "same-name", check=False).stdout.strip() == "inactive"
        )


def test_shutdown_leaves_no_process_or_cgroup(beds_allowed: None) -> None:
    bed = Bed("teardown", CHECKOUT)
    bed.boot()
    pid, cgroups = bed.pid, bed_cgroups(bed.name)
    assert all(c.is_dir() for c in cgroups)
    sweep_stale_beds()  # a bed whose owner lives is not stale
    assert all(c.is_dir() for c in cgroups)
    assert bed.run("true").returncode == 0
    bed.shutdown()
    assert not Path(f"/proc/{pid}").exists()
    assert not any(c.exists() for c in cgroups)
    bed.shutdown()


def test_cli_passes_output_and_exit_code_through(beds_allowed: None) -> None:
    cli = subprocess.run(
        [
            sys.executable,
            str(CHECKOUT / "tests" / "bed.py"),
            "--name",
            "cli",
            "--",
            "sh",
            "-c",
            "cat; hostname; exit 7",
        ],
        input="from stdin\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 7, cli.stderr
    lines = cli.stdout.splitlines()
    assert lines[0] == "from stdin"
    assert lines[1].startswith("bed-")
    assert lines[1].endswith("-cli")


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
        [
            sys.executable,
            "-c",
            CRASHING.format(tests=str(CHECKOUT / "tests"), checkout=str(CHECKOUT)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout
    pid, name = owner.stdout.readline().split()
    cgroups = bed_cgroups(name)
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "systemd"
    assert all(c.is_dir() for c in cgroups)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    wait_until_dead(int(pid), timeout=5)
    sweep_stale_beds()
    assert not any(c.exists() for c in cgroups)
