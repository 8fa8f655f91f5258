#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pod start time against bare units and podman.

Runs in a throwaway systemd (tests/bed.py) and prints medians and ratios against
baselines measured in the same run:

- pod start: `systemctl start` of a 3-app pod until every app unit is active, with the
  org.podmgr1 service running, against the floor: three transient units with the same
  RootDirectory=, network and IPC namespaces, started at once by systemd-run (target:
  at most 2x);
- the same with the service not running, so D-Bus activation starts it first;
- podman (only when installed): `podman pod start` of a pod of 2 containers (target:
  the cold pod start at most 0.5x of it);

Usage: bench/start.py [ROUNDS]   (as root; `make bench` installs podman first)
"""

from __future__ import annotations

import json
import statistics
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bed import Bed  # found through the path set above

CHECKOUT = Path(__file__).resolve().parent.parent
ROOTFS = "/var/lib/machines/podmgr-busybox"
APPS = ("a", "b", "c")

# Runs inside the bed: alternates pod and floor rounds so drift hits both alike.
MEASURE = textwrap.dedent("""
    import json, subprocess, sys, time

    rounds, apps, rootfs = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
    pod_units = ["pod@bench.service"] + [f"podapp@bench:{a}.service" for a in apps]
    floor_props = ["-p", f"RootDirectory={rootfs}", "-p", "MountAPIVFS=yes",
                   "-p", "NetworkNamespacePath=/run/floor/net",
                   "-p", "IPCNamespacePath=/run/floor/ipc", "-p", "Type=exec"]

    def run(*argv):
        subprocess.run(argv, check=True)

    def timed(start):
        begin = time.perf_counter()
        start()
        return (time.perf_counter() - begin) * 1000

    def start_floor():
        children = [subprocess.Popen(["systemd-run", "--quiet", f"--unit=floor-{a}",
                                      *floor_props, "/bin/sleep", "infinity"]) for a in apps]
        if any(child.wait() for child in children):
            sys.exit("systemd-run failed")

    def monotonic(unit, prop):
        out = subprocess.run(["systemctl", "show", "--value", "-p", prop, unit],
                             check=True, capture_output=True, text=True).stdout
        return int(out) / 1000

    def stop_service():
        # Cold: the org.podmgr1 service is not running, so D-Bus activation starts it.
        run("systemctl", "stop", "podmgr1.service")

    results = {"pod": [], "cold": [], "floor": [], "prepare": [], "apps": []}
    for _ in range(rounds):
        stop_service()
        results["cold"].append(timed(lambda: run("systemctl", "start", *pod_units)))
        run("systemctl", "stop", "pod@bench.service")
        results["pod"].append(timed(lambda: run("systemctl", "start", *pod_units)))
        # Where the time went, from systemd's own timestamps of the units.
        prepared = monotonic(pod_units[0], "ActiveEnterTimestampMonotonic")
        results["prepare"].append(
            prepared - monotonic(pod_units[0], "InactiveExitTimestampMonotonic"))
        results["apps"].append(max(monotonic(u, "ActiveEnterTimestampMonotonic")
                                   for u in pod_units[1:]) - prepared)
        run("systemctl", "stop", "pod@bench.service")
        results["floor"].append(timed(start_floor))
        run("systemctl", "stop", *[f"floor-{a}.service" for a in apps])
    print(json.dumps(results))
""")

PODMAN = textwrap.dedent("""
    import json, subprocess, sys, time
    rounds, rootfs = int(sys.argv[1]), sys.argv[2]
    def run(*argv):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    # podman's overlay storage cannot live on the bed's overlay root.
    run("mkdir", "-p", "/var/lib/containers")
    run("mount", "-t", "tmpfs", "tmpfs", "/var/lib/containers")
    # No infra container: its pause image would need a registry, and the pod's apps
    # are what is compared.
    run("podman", "pod", "create", "--name", "bench", "--infra=false")
    for name in ("a", "b"):
        run("podman", "create", "--pod", "bench", "--name", name, "--rootfs", rootfs,
            "/bin/sleep", "infinity")
    times = []
    for _ in range(rounds):
        begin = time.perf_counter()
        run("podman", "pod", "start", "bench")
        times.append((time.perf_counter() - begin) * 1000)
        run("podman", "pod", "stop", "-t", "0", "bench")
    print(json.dumps(times))
""")


def manifest(apps: tuple[str, ...]) -> str:
    return "".join(
        f'[app.{app}]\nrootfs = "{ROOTFS}"\nexec = ["/bin/sleep", "infinity"]\n\n' for app in apps
    )


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
            "mkdir -p /run/floor && touch /run/floor/net /run/floor/ipc && "
            "unshare --net=/run/floor/net --ipc=/run/floor/ipc true",
        )
        # One untimed round each, so first-use costs (page cache, pyc) are not counted.
        bed.run("/usr/bin/python3", "-c", MEASURE, "1", ",".join(APPS), ROOTFS)
        times = json.loads(
            bed.run("/usr/bin/python3", "-c", MEASURE, str(rounds), ",".join(APPS), ROOTFS).stdout
        )
        pod, floor = statistics.median(times["pod"]), statistics.median(times["floor"])
        cold = statistics.median(times["cold"])
        print(f"pod start, {len(APPS)} apps, until all active   median {pod:7.1f} ms")
        print(f"floor: {len(APPS)} transient units (systemd-run)   median {floor:7.1f} ms")
        print(f"pod / floor                               {pod / floor:7.2f}x  (target <= 2x)")
        print(f"pod start, org.podmgr1 not running        median {cold:7.1f} ms")
        print(
            f"  of the pod start: prepare (pod@.service) median "
            f"{statistics.median(times['prepare']):5.1f} ms, then apps active after "
            f"{statistics.median(times['apps']):5.1f} ms"
        )

        if bed.run("sh", "-c", "command -v podman", check=False).returncode == 0:
            podman = statistics.median(
                json.loads(bed.run("/usr/bin/python3", "-c", PODMAN, str(rounds), ROOTFS).stdout)
            )
            print(
                f"podman pod start, 2 containers          median {podman:7.1f} ms "
                f"({podman / floor:.1f}x the floor)"
            )
            print(
                f"cold pod start / podman                   {cold / podman:7.2f}x  (target <= 0.5x)"
            )
        else:
            print("podman: not installed, so not measured (apt-get install podman)")

    return 0


if __name__ == "__main__":
    sys.exit(main())
