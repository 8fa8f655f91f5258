#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What bridged networking costs: pod start, and connections through a published port.

Runs in a throwaway systemd (tests/bed.py) and prints medians and ratios against
baselines measured in the same run:

- pod start: `systemctl start` of a pod on the default bridge network with 2 published
  ports, against the same pod with network.mode = "private", rounds alternated, the
  org.podmgr1 service running (target: networking adds at most 100 ms, median);
- connection rate: HTTP/1.0 requests, one connection each, to the pod's httpd through
  the published port, on 127.0.0.1 and on the bridge's address, against the pod's own
  address, rounds alternated (target: at least 0.8x).

Usage: bench/network.py [ROUNDS]   (as root)
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

APP = f"""
[app.web]
rootfs = "{ROOTFS}"
exec = ["/bin/sh", "-c", "mkdir -p /www; echo hello > /www/index.html; exec httpd -f -p 80 -h /www"]
"""
PODS = {
    "bridged": '[network]\nmode = "bridge"\nports = ["8080:80/tcp", "8443:443/tcp"]\n' + APP,
    "private": '[network]\nmode = "private"\n' + APP,
    # One server per path: connections of one path leave TIME_WAIT state behind on its
    # server (httpd closes first) that would slow the next path's reuse of client ports.
    "local": '[network]\nmode = "bridge"\nports = ["8081:80/tcp"]\n' + APP,
    "gateway": '[network]\nmode = "bridge"\nports = ["8082:80/tcp"]\n' + APP,
    "direct": '[network]\nmode = "bridge"\n' + APP,
}
SERVERS = ("local", "gateway", "direct")

# Runs inside the bed.
START = textwrap.dedent("""
    import json, subprocess, sys, time
    rounds = int(sys.argv[1])
    times = {"bridged": [], "private": []}
    for _ in range(rounds):
        for pod in times:
            units = [f"pod@{pod}.service", f"podapp@{pod}:web.service"]
            begin = time.perf_counter()
            subprocess.run(["systemctl", "start", *units], check=True)
            times[pod].append((time.perf_counter() - begin) * 1000)
            subprocess.run(["systemctl", "stop", units[0]], check=True)
    print(json.dumps(times))
""")

CONNECT = textwrap.dedent("""
    import json, socket, sys, time
    rounds, seconds, targets = int(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])

    def rate(host, port):
        done, end = 0, time.perf_counter() + seconds
        begin = time.perf_counter()
        while time.perf_counter() < end:
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
                while sock.recv(4096):
                    pass
            done += 1
        return done / (time.perf_counter() - begin)

    deadline = time.monotonic() + 15
    while True:  # until httpd listens
        try:
            for host, port in targets.values():
                socket.create_connection((host, port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    rates = {name: [] for name in targets}
    for _ in range(rounds):
        for name, (host, port) in targets.items():
            rates[name].append(rate(host, port))
    print(json.dumps(rates))
""")


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with (
        Bed("bench-network", CHECKOUT) as bed,
        Report("network", "Bridged networking: pod start and published ports") as r,
    ):
        bed.install_project()
        bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
        for name, text in PODS.items():
            bed.run(
                "sh",
                "-c",
                f"mkdir -p /etc/podmgr/pods && cat > /etc/podmgr/pods/{name}.toml",
                input=text,
            )
        bed.run("systemctl", "daemon-reload")
        # One untimed round, so first-use costs (page cache, pyc, the bridge) are not counted.
        bed.run("/usr/bin/python3", "-c", START, "1")
        times = json.loads(bed.run("/usr/bin/python3", "-c", START, str(rounds)).stdout)
        bridged, private = (statistics.median(times[p]) for p in ("bridged", "private"))
        r.figure("pod start, bridge + 2 published ports (median)", bridged, "ms")
        r.figure("pod start, private network (median)", private, "ms")
        r.figure("networking adds", bridged - private, "ms", at_most=100)

        bed.run("systemctl", "start", *(f"pod@{pod}.service" for pod in SERVERS))
        address = (
            bed.run("sh", "-c", "grep -lx direct /var/lib/podmgr/networks/podmgr/*")
            .stdout.strip()
            .rsplit("/", 1)[1]
        )
        targets = {
            "localhost": ("127.0.0.1", 8081),
            "bridge": ("10.87.0.1", 8082),
            "direct": (address, 80),
        }
        bed.run("/usr/bin/python3", "-c", CONNECT, "1", "0.5", json.dumps(targets))
        rates = json.loads(
            bed.run("/usr/bin/python3", "-c", CONNECT, "5", "2", json.dumps(targets)).stdout
        )
        median = {target: statistics.median(rates[target]) for target in targets}
        for target, (host, port) in targets.items():
            r.figure(f"connections to {host}:{port} (median)", median[target], "/s")
        for target in ("localhost", "bridge"):
            # A ratio of rates: more is better, so the target is a lower bound.
            r.ratio(
                f"published port on {target} / direct",
                median[target] / median["direct"],
                at_least=0.8,
            )
        bed.run("systemctl", "stop", *(f"pod@{pod}.service" for pod in SERVERS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
