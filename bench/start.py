#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pod start time against bare units and podman.

Runs in a throwaway systemd (tests/bed.py) and prints medians, and ratios against
baselines measured in the same rounds (the median of each round's ratio):

- warm: `systemctl start` of a 3-app pod until every app unit is active, with the
  org.podmgr1 service running;
- cold: the same with the service not running, so D-Bus activation starts it first;
- bare floor: three transient units with the same RootDirectory=, network and IPC
  namespaces, started at once by systemd-run;
- confined floor: the same three units with the rest of the [Service] settings of the
  pod's own app units too (their sandboxing, user, bind mounts and log fields), so that
  what is compared is podmgr's share, not what systemd does for the confinement
  (target: warm at most 1.5x of it, as of the bare floor);
- podman (only when installed): `podman pod start` of a pod of 2 containers (target:
  cold at most 0.5x of it);
- the service's own start: its imports alone (`python3 -c "import podmgr.bus.service"`,
  the bound under any cold start), and each step of its start and of the prepare as the
  service logs it with SYSTEMD_LOG_LEVEL=debug (one cold start more, after the others).

Each stop is followed by a pause, so that what a stop leaves for systemd, the bus and the
service to finish (releasing the pod, collecting units) is not counted in the next start.

Usage: bench/start.py [ROUNDS]   (as root; `make bench` installs podmgr first)
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bed import Bed  # found through the path set above
from report import Report  # bench/, this script's own directory

CHECKOUT = Path(__file__).resolve().parent.parent
ROOTFS = "/var/lib/machines/podmgr-busybox"
APPS = ("a", "b", "c")
RUNTIME = "/run/podmgr/pods/bench"  # the pod's runtime directory (prepare.py)
FLOOR = "/run/floor"  # the floor's namespaces and /etc files
# Settings of an app unit that the floor has its own of, or that do not configure a run.
NOT_COPIED = ("ExecStart", "Type", "Slice", "RootDirectory")

# Runs inside the bed: each round measures every kind once, so that drift (other work on
# the machine) hits each alike and the ratios hold even when the figures move.
MEASURE = textwrap.dedent("""
    import json, subprocess, sys, time

    rounds, apps, floor_props, confined_props = (
        int(sys.argv[1]), sys.argv[2].split(","), json.loads(sys.argv[3]),
        json.loads(sys.argv[4]))
    podman = sys.argv[5] == "podman"  # its pod made by PODMAN
    pod_units = ["pod@bench.service"] + [f"podapp@bench:{a}.service" for a in apps]

    def run(*argv):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    def stop(*argv):
        run(*argv)
        time.sleep(0.3)  # what the stop left to finish is not the next start's

    def timed(*argv):
        begin = time.perf_counter()
        run(*argv)
        return (time.perf_counter() - begin) * 1000

    def timed_floor(props):
        begin = time.perf_counter()
        children = [subprocess.Popen(["systemd-run", "--quiet", f"--unit=floor-{a}",
                                      *props, "/bin/sleep", "infinity"]) for a in apps]
        if any(child.wait() for child in children):
            sys.exit("systemd-run failed")
        return (time.perf_counter() - begin) * 1000

    def monotonic(unit, prop):
        out = subprocess.run(["systemctl", "show", "--value", "-p", prop, unit],
                             check=True, capture_output=True, text=True).stdout
        return int(out) / 1000

    results = {kind: [] for kind in
               ("warm", "cold", "floor", "confined", "prepare", "apps", "imports", "podman")}
    for _ in range(rounds):
        # Cold: the org.podmgr1 service is not running, so D-Bus activation starts it.
        stop("systemctl", "stop", "podmgr1.service")
        results["cold"].append(timed("systemctl", "start", *pod_units))
        stop("systemctl", "stop", "pod@bench.service")
        results["warm"].append(timed("systemctl", "start", *pod_units))
        # Where the time went, from systemd's own timestamps of the units.
        prepared = monotonic(pod_units[0], "ActiveEnterTimestampMonotonic")
        results["prepare"].append(
            prepared - monotonic(pod_units[0], "InactiveExitTimestampMonotonic"))
        results["apps"].append(max(monotonic(u, "ActiveEnterTimestampMonotonic")
                                   for u in pod_units[1:]) - prepared)
        stop("systemctl", "stop", "pod@bench.service")
        for kind, props in (("floor", floor_props), ("confined", confined_props)):
            results[kind].append(timed_floor(props))
            stop("systemctl", "stop", *[f"floor-{a}.service" for a in apps])
        # The service's imports alone: the bound under any cold start.
        results["imports"].append(timed("/usr/bin/python3", "-c", "import podmgr.bus.service"))
        if podman:
            results["podman"].append(timed("podman", "pod", "start", "bench"))
            stop("podman", "pod", "stop", "-t", "0", "bench")
    print(json.dumps(results))
""")

# A podman pod of 2 containers on the same root, made once.
PODMAN = textwrap.dedent("""
    import subprocess, sys
    def run(*argv):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    # podman's overlay storage cannot live on the bed's overlay root.
    run("mkdir", "-p", "/var/lib/containers")
    run("mount", "-t", "tmpfs", "tmpfs", "/var/lib/containers")
    # No infra container: its pause image would need a registry, and the pod's apps
    # are what is compared.
    run("podman", "pod", "create", "--name", "bench", "--infra=false")
    for name in ("a", "b"):
        run("podman", "create", "--pod", "bench", "--name", name, "--rootfs", sys.argv[1],
            "/bin/sleep", "infinity")
""")

DEBUG_DROP_IN = "/run/systemd/system/podmgr1.service.d/bench-debug.conf"


def manifest(apps: tuple[str, ...]) -> str:
    return "".join(
        f'[app.{app}]\nrootfs = "{ROOTFS}"\nexec = ["/bin/sleep", "infinity"]\n\n' for app in apps
    )


def floor_properties() -> list[str]:
    """systemd-run's -p arguments of the bare floor: the apps' root and namespaces."""
    return [
        f"-p{setting}"
        for setting in (
            "Type=exec",
            f"RootDirectory={ROOTFS}",
            "MountAPIVFS=yes",
            f"NetworkNamespacePath={FLOOR}/net",
            f"IPCNamespacePath={FLOOR}/ipc",
        )
    ]


def confined_properties(unit_file: str) -> list[str]:
    """The bare floor's settings and every other [Service] setting of an app unit, as
    `systemctl cat` shows it, with the pod's runtime paths pointed at the floor's."""
    settings, section = [], ""
    for line in unit_file.splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key = line.split("=", 1)[0]
            if key not in NOT_COPIED and not key.endswith("NamespacePath"):
                settings.append(line.replace(f"{RUNTIME}/etc", f"{FLOOR}/etc"))
    assert any(s.startswith("CapabilityBoundingSet=") for s in settings), unit_file
    return floor_properties() + [f"-p{setting}" for setting in settings]


def debug_steps(journal: str) -> list[tuple[str, float]]:
    """The steps the service logged at debug (prepare.timed): ("what", ms)."""
    found = []
    for line in journal.splitlines():
        if match := re.fullmatch(r"(.+): ([0-9.]+) ms", line.strip()):
            found.append((match[1], float(match[2])))
    return found


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with Bed("bench", CHECKOUT) as bed:
        bed.install_project()
        bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
        bed.run(
            "sh",
            "-c",
            "mkdir -p /etc/podmgr/pods && cat > /etc/podmgr/pods/bench.toml",
            input=manifest(APPS),
        )
        bed.run("systemctl", "daemon-reload")
        bed.run(
            "sh",
            "-c",
            f"mkdir -p {FLOOR}/etc && touch {FLOOR}/net {FLOOR}/ipc && "
            f"unshare --net={FLOOR}/net --ipc={FLOOR}/ipc true && "
            f"cp /etc/hosts /etc/hostname /etc/resolv.conf {FLOOR}/etc/",
        )
        unit_file = bed.run("systemctl", "cat", f"podapp@bench:{APPS[0]}.service").stdout
        podman = bed.run("sh", "-c", "command -v podman", check=False).returncode == 0
        args = [
            ",".join(APPS),
            json.dumps(floor_properties()),
            json.dumps(confined_properties(unit_file)),
            "podman" if podman else "",
        ]
        if podman:
            bed.run("/usr/bin/python3", "-c", PODMAN, ROOTFS)
        # One untimed round, so first-use costs (page cache, pyc) are not counted.
        bed.run("/usr/bin/python3", "-c", MEASURE, "1", *args)
        # A round takes some 5 s (7 pauses, 5 starts); a busy machine may take far longer.
        times: dict[str, list[float]] = json.loads(
            bed.run(
                "/usr/bin/python3", "-c", MEASURE, str(rounds), *args, timeout=120 + 60 * rounds
            ).stdout
        )
        median = {kind: statistics.median(values or [0]) for kind, values in times.items()}

        def paired(kind: str, baseline: str) -> float:
            """The median of each round's own ratio: drift between rounds cancels."""
            return statistics.median(
                a / b for a, b in zip(times[kind], times[baseline], strict=True)
            )

        # One cold start more, with the service logging its steps.
        bed.run(
            "sh",
            "-c",
            f"mkdir -p $(dirname {DEBUG_DROP_IN}) && cat > {DEBUG_DROP_IN}",
            input="[Service]\nEnvironment=SYSTEMD_LOG_LEVEL=debug\n",
        )
        bed.run("systemctl", "daemon-reload")
        bed.run("systemctl", "stop", "pod@bench.service", "podmgr1.service")
        cursor = bed.run("journalctl", "-n0", "--show-cursor", "-q").stdout.split("cursor: ")[-1]
        bed.run("systemctl", "start", "pod@bench.service")
        journal = bed.run(
            "journalctl", f"--after-cursor={cursor.strip()}", "-u", "podmgr1.service", "-o", "cat"
        ).stdout

        warm, cold = median["warm"], median["cold"]
        floor, confined = median["floor"], median["confined"]
        n = len(APPS)
        with Report("start", f"Pod start, {n} apps, until every app is active") as report:
            report.figure("warm: org.podmgr1 running (median)", warm, "ms")
            report.figure("cold: org.podmgr1 started by D-Bus activation (median)", cold, "ms")
            report.figure(f"bare floor: {n} transient units, same root (median)", floor, "ms")
            report.figure(
                f"confined floor: {n} transient units as the app units (median)", confined, "ms"
            )
            report.ratio("warm / confined floor", paired("warm", "confined"), at_most=1.5)
            report.ratio("warm / bare floor", paired("warm", "floor"), at_most=1.5)
            report.figure("  of warm: prepare (pod@.service active)", median["prepare"], "ms")
            report.figure("  of warm: then every app active", median["apps"], "ms")
            report.figure(
                "  of cold: the service's imports alone (python3 -c)", median["imports"], "ms"
            )
            if podman:
                report.figure("podman pod start, 2 containers (median)", median["podman"], "ms")
                report.ratio("cold / podman pod start", paired("cold", "podman"), at_most=0.5)
            else:
                print("  podman: not installed, so not measured (apt-get install podman)")
            for what, ms in debug_steps(journal):
                report.figure(f"  cold, as the service logs it: {what}", ms, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
