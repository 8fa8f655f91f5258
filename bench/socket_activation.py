#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""First-connection latency of a socket-activated pod, against a running one.

Runs in a throwaway systemd (tests/bed.py) and prints medians and ratios against
baselines measured in the same run, all from connect() to the whole reply:

- running: a connection to the pod's app while the pod runs (the baseline);
- cold pod: the pod stopped, its socket listening (activate = true), so the connection
  starts the app, which prepares the pod first; the org.podmgr1 service running;
- cold pod, cold service: the same with the org.podmgr1 service not running, so D-Bus
  activation starts it before it prepares the pod;
- floor: the same server as a bare socket-activated service with the same
  RootDirectory=, started by its first connection, so that the pod's own share of the
  cold start shows.

The app is tests/listen-serve.c, which serves only on the fds systemd passes it.

Usage: bench/socket_activation.py [ROUNDS]   (as root)
"""

from __future__ import annotations

import json
import statistics
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bed import Bed  # found through the path set above
from report import Report  # bench/, this script's own directory

CHECKOUT = Path(__file__).resolve().parent.parent
ROOTFS = "/var/lib/machines/podmgr-busybox"
POD_PORT, FLOOR_PORT = 8081, 8082

MANIFEST = f"""
[app.web]
rootfs = "{ROOTFS}"
exec = ["/bin/listen-serve", "bench"]

[[app.web.socket]]
listen = "127.0.0.1:{POD_PORT}"
activate = true
"""

FLOOR_SOCKET = f"[Socket]\nListenStream=127.0.0.1:{FLOOR_PORT}\n"
FLOOR_SERVICE = f"""[Service]
ExecStart=/bin/listen-serve floor
RootDirectory={ROOTFS}
MountAPIVFS=yes
"""

# Runs inside the bed: alternates the kinds of rounds so that drift hits each alike.
MEASURE = textwrap.dedent("""
    import json, socket, subprocess, sys, time

    rounds, pod_port, floor_port = (int(arg) for arg in sys.argv[1:4])

    def run(*argv):
        subprocess.run(argv, check=True)

    def served(port):
        begin = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
            reply = b""
            while chunk := conn.recv(4096):
                reply += chunk
        elapsed = (time.perf_counter() - begin) * 1000
        if not reply:
            sys.exit(f"no reply on port {port}")
        return elapsed

    results = {"running": [], "cold": [], "coldest": [], "floor": []}
    for _ in range(rounds):
        # Each round starts each unit again, faster than its start limit allows
        # (5 starts in 10 s): the limit would fail the socket (service-start-limit-hit).
        run("systemctl", "reset-failed")
        run("systemctl", "stop", "pod@bench.service")
        results["cold"].append(served(pod_port))
        results["running"].append(served(pod_port))
        # One after the other: the pod's release activates the service.
        run("systemctl", "stop", "pod@bench.service")
        run("systemctl", "stop", "podmgr1.service")
        results["coldest"].append(served(pod_port))
        run("systemctl", "stop", "floor.service")
        results["floor"].append(served(floor_port))
    print(json.dumps(results))
""")


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with Bed("bench-socket", CHECKOUT) as bed:
        bed.install_project()
        bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
        bed.run(
            "gcc",
            "-static",
            "-O2",
            "-o",
            f"{ROOTFS}/bin/listen-serve",
            f"{CHECKOUT}/tests/listen-serve.c",
        )
        for path, text in (
            ("/etc/podmgr/pods/bench.toml", MANIFEST),
            ("/etc/systemd/system/floor.socket", FLOOR_SOCKET),
            ("/etc/systemd/system/floor.service", FLOOR_SERVICE),
        ):
            bed.run("sh", "-c", f"mkdir -p $(dirname {path}) && cat > {path}", input=text)
        bed.run("systemctl", "daemon-reload")
        # As at boot: sockets.target starts the pod's socket (daemon-reload does not).
        bed.run("systemctl", "start", "sockets.target", "floor.socket")
        # One untimed round, so first-use costs (page cache, pyc) are not counted.
        args = [str(POD_PORT), str(FLOOR_PORT)]
        bed.run("/usr/bin/python3", "-c", MEASURE, "1", *args)
        times = json.loads(bed.run("/usr/bin/python3", "-c", MEASURE, str(rounds), *args).stdout)
        median = {kind: statistics.median(values) for kind, values in times.items()}
        running, floor = median["running"], median["floor"]
        with Report("socket_activation", "First connection to a socket-activated pod") as report:
            report.figure("first connection, pod running (median)", running, "ms")
            report.figure("first connection, cold pod (median)", median["cold"], "ms")
            report.figure(
                "first connection, cold pod, org.podmgr1 not running", median["coldest"], "ms"
            )
            report.figure("floor: bare socket-activated service (median)", floor, "ms")
            report.ratio("cold pod / floor", median["cold"] / floor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
