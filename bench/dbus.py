#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The org.podmgr1 service: activation, ListPods at scale, memory, idle exit.

In a throwaway systemd (tests/bed.py), against baselines measured in the same run:

- the first call, D-Bus activation included (target: median at most 150 ms), beside
  a call to an already running systemd (busctl's own cost);
- ListPods with 1000 pods against systemd's ListUnits (target: at most 2x);
- RSS of the service while active (target: at most 35 MiB), and no process when idle.

Pod start with the service warm and cold is in bench/start.py.

Usage: bench/dbus.py [ROUNDS]   (as root)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(CHECKOUT / "tests"))

from bed import Bed  # noqa: E402 -- found through the path set above
from report import Report  # noqa: E402 -- bench/ is this script's own directory

PODMGR = ["busctl", "call", "org.podmgr1", "/org/podmgr1", "org.podmgr1.Manager"]
SYSTEMD = [
    "busctl",
    "call",
    "org.freedesktop.systemd1",
    "/org/freedesktop/systemd1",
    "org.freedesktop.systemd1.Manager",
]
IDLE = 2


def timed(bed: Bed, *argv: str) -> float:
    """Milliseconds for ``argv`` inside the bed, timed there (no nsenter in the figure)."""
    script = (
        "import subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print((time.perf_counter() - t) * 1000)"
    )
    return float(bed.run("/usr/bin/python3", "-c", script, *argv).stdout)


def wait_idle(bed: Bed) -> float:
    """Seconds until the service has exited by itself."""
    start = time.monotonic()
    while bed.run("pgrep", "-f", "/usr/lib/podmgr/podmgr1", check=False).returncode == 0:
        if time.monotonic() - start > IDLE + 30:
            raise SystemExit("the service did not exit when idle")
        time.sleep(0.1)
    return time.monotonic() - start


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    title = "The org.podmgr1 service: activation, ListPods at scale, memory, idle exit"
    with Report("dbus", title) as report, Bed("dbus", CHECKOUT) as bed:
        bed.install_project()
        bed.run(
            "sh",
            "-c",
            "cat > /etc/podmgr/podmgr.toml",
            input=f'[service]\nidle_timeout = "{IDLE}s"\n',
        )
        cold, systemd_calls = [], []
        for _ in range(rounds):
            bed.run("systemctl", "stop", "podmgr1.service")
            cold.append(timed(bed, *PODMGR, "ListPods"))
            systemd_calls.append(timed(bed, *SYSTEMD, "ListUnits"))
        report.figure(
            "first call, activation included (median)", statistics.median(cold), "ms", 150
        )
        report.figure(
            "a call to running systemd (median)",
            statistics.median(systemd_calls),
            "ms",
            note="busctl itself",
        )

        manifest = '[app.main]\nrootfs = "/srv"\nexec = ["/bin/true"]\n'
        bed.run(
            "sh",
            "-c",
            "mkdir -p /run/podmgr/pods && for i in $(seq -w 0 999); do "
            "printf '%s' \"$0\" > /run/podmgr/pods/scale$i.toml; done",
            manifest,
        )
        bed.run("systemctl", "daemon-reload", timeout=300)
        bed.run(*PODMGR, "ListPods")  # the service reads the new pods
        pods, units = [], []
        for _ in range(rounds):
            pods.append(timed(bed, *PODMGR, "ListPods"))
            units.append(timed(bed, *SYSTEMD, "ListUnits"))
        count = bed.run(*PODMGR, "ListPods").stdout.split()[1]
        loaded = bed.run(*SYSTEMD, "ListUnits").stdout.split()[1]
        listed = report.figure(f"ListPods, {count} pods (median)", statistics.median(pods), "ms")
        units_listed = report.figure(
            f"ListUnits, {loaded} units (median)", statistics.median(units), "ms"
        )
        report.ratio("ListPods / ListUnits", listed / units_listed, 2)

        pid = bed.run("pgrep", "-f", "/usr/lib/podmgr/podmgr1").stdout.split()[0]
        rss = next(
            int(line.split()[1])
            for line in bed.run("cat", f"/proc/{pid}/status").stdout.splitlines()
            if line.startswith("VmRSS:")
        )
        report.figure(f"RSS while active, {count} pods", rss / 1024, "MiB", 35)
        report.figure(
            "exits when idle, after",
            wait_idle(bed),
            "s",
            note=f"idle_timeout {IDLE} s; then no process",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
