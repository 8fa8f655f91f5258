#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Many pods at once: N pods of 3 apps started together, as boot starts them.

Runs in one throwaway systemd (tests/bed.py) and prints medians and ratios against
baselines measured in the same run, for N = 1, 10, 50 and 100, on the default bridge
network and with network.mode = "private":

- start: one transaction that wants N pods and all their apps and is ordered after
  them (a target, as multi-user.target at boot), until every app is active; the
  org.podmgr1 service not running, as at boot (D-Bus activation starts it for the first
  pod); where the time went, from systemd's timestamps of the units;
- the floor: N x 3 units with the same RootDirectory= (the rootfs the apps' overlays
  lie on), each pod's three in network and IPC namespaces of their own, started in one
  transaction the same way (runtime units in /run/systemd/system: transient units
  cannot share a transaction, and N x 3 systemd-run processes would slow the floor,
  not podmgr);
- podman: `podman pod start` of N pods of 2 containers each, N of them at once;
- stop: `systemctl stop` of the N pods (their apps stop with them, then release runs),
  against the floor's units and `podman pod stop -t 0` of the N pods, N at once;
- `podmgr list` and ListPods (busctl) with N pods running;
- memory: the RSS of the org.podmgr1 service while N pods run; at its peak during the
  start, also with the busctl processes that wait for PreparePod (pod@.service's
  ExecStart, one per pod being prepared: they count as podmgr's, as they run only to ask
  podmgr), as RSS and as PSS; against the conmon processes podman leaves (one per
  container) while its N pods run.

The per-pod marginal cost is the slope between two N: (T(N2) - T(N1)) / (N2 - N1).

Usage: bench/scale.py [ROUNDS [N,N,N...]]   (as root; `make bench` installs podman
first.  ROUNDS, 3 unless given, applies to N <= 10; larger N get two fewer.  At least
three sizes, the default 1,10,50,100.)
"""

from __future__ import annotations

import itertools
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
APPS = ("a", "b", "c")
SIZES = (1, 10, 50, 100)  # the targets are for the largest
MODES = {"bridged": "bridge", "private": "private"}

# Runs inside the bed: the units of the floor and the targets that start N of anything
# in one transaction.
SETUP = textwrap.dedent("""
    import os, subprocess, sys
    from pathlib import Path

    sizes = [int(n) for n in sys.argv[1].split(",")]
    apps, rootfs = sys.argv[2].split(","), sys.argv[3]
    units = Path("/run/systemd/system")
    units.mkdir(parents=True, exist_ok=True)
    most = max(sizes)
    # On a busy machine a hundred pods' apps can take longer than the default 90 s to be
    # set up: a timeout would fail the run, not measure it.  Pods and floor alike.
    TIMEOUT = "TimeoutStartSec=10min\\n"
    (units / "podapp@.service.d").mkdir(exist_ok=True)
    (units / "podapp@.service.d" / "bench-timeout.conf").write_text(f"[Service]\\n{TIMEOUT}")
    for pod in range(1, most + 1):
        pins = Path(f"/run/floor/{pod}")
        pins.mkdir(parents=True, exist_ok=True)
        (pins / "net").touch()
        (pins / "ipc").touch()
        subprocess.run(["unshare", f"--net={pins}/net", f"--ipc={pins}/ipc", "true"], check=True)
        for app in apps:
            (units / f"floor-{pod}-{app}.service").write_text(
                f"[Service]\\nType=exec\\nExecStart=/bin/sleep infinity\\n{TIMEOUT}"
                f"RootDirectory={rootfs}\\nMountAPIVFS=yes\\n"
                f"NetworkNamespacePath={pins}/net\\nIPCNamespacePath={pins}/ipc\\n")

    def target(name, wanted):
        listed = " ".join(wanted)
        (units / f"{name}.target").write_text(f"[Unit]\\nWants={listed}\\nAfter={listed}\\n")

    for n in sizes:
        target(f"floor-{n}", [f"floor-{p}-{a}.service" for p in range(1, n + 1) for a in apps])
        for kind in ("bridged", "private"):
            target(f"{kind}-{n}", [u for p in range(1, n + 1)
                                   for u in [f"pod@{kind}{p}.service"]
                                   + [f"podapp@{kind}{p}:{a}.service" for a in apps]])
    subprocess.run(["systemctl", "daemon-reload"], check=True)
""")

# Runs inside the bed: rounds of each size, pods and floor alternated so that drift hits
# both alike.  Prints {"KIND-N": {"start": [ms], "stop": [ms], ...}}.
MEASURE = textwrap.dedent("""
    import json, os, subprocess, sys, threading, time

    sizes, rounds, apps = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3].split(",")
    BUS = ["org.podmgr1", "/org/podmgr1", "org.podmgr1.Manager"]

    def run(*argv, out=False):
        done = subprocess.run(argv, check=True, capture_output=out, text=True)
        return done.stdout

    def timed(*argv):
        begin = time.perf_counter()
        run(*argv, out=True)
        return (time.perf_counter() - begin) * 1000

    def rss(pid, file="status", key="VmRSS:"):  # kB; 0 for a process that is gone
        try:
            with open(f"/proc/{pid}/{file}") as status:
                return next(int(l.split()[1]) for l in status if l.startswith(key))
        except (OSError, StopIteration):
            return 0

    def pss(pid):  # shared pages count once in a sum of these, not once per process
        return rss(pid, "smaps_rollup", "Pss:")

    def waiting_busctl():  # pod@.service's ExecStart, waiting for PreparePod
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    argv = cmdline.read().split(b"\\0")
            except OSError:
                continue
            if argv[0].endswith(b"busctl") and b"PreparePod" in argv:
                found.append(pid)
        return found

    # The service's processes, from its cgroup (name=systemd on a hybrid host).
    PROCS = next(p for p in ("/sys/fs/cgroup/systemd/system.slice/podmgr1.service/cgroup.procs",
                             "/sys/fs/cgroup/system.slice/podmgr1.service/cgroup.procs")
                 if os.path.isdir(p.rsplit("/", 2)[0]))

    def service_rss(size=rss):
        try:
            with open(PROCS) as procs:
                return sum(size(pid) for pid in procs.read().split())
        except OSError:  # not running
            return 0

    class Peak(threading.Thread):
        # The largest RSS seen of the service, and of it with the waiting busctls (RSS
        # and PSS).
        def __init__(self):
            super().__init__(daemon=True)
            self.done, self.service, self.total, self.pss = threading.Event(), 0, 0, 0
            self.last = 0  # the service's last RSS seen: it exits when idle for 30 s
        def run(self):
            while not self.done.wait(0.1):
                own = service_rss()
                waiting = waiting_busctl()
                self.last = own or self.last
                self.service = max(self.service, own)
                self.total = max(self.total, own + sum(rss(p) for p in waiting))
                self.pss = max(self.pss, service_rss(pss) + sum(pss(p) for p in waiting))

    def timestamps(units, prop):
        out = run("systemctl", "show", "--value", "-p", prop, *units, out=True)
        return [int(line) / 1000 for line in out.split()]

    def check_active(units):
        states = subprocess.run(["systemctl", "is-active", *units], capture_output=True,
                                text=True).stdout.split()
        if states != ["active"] * len(units):
            failed = [u for u, state in zip(units, states) if state != "active"]
            subprocess.run(["systemctl", "status", "--no-pager", "-n", "5", *failed[:3]])
            sys.exit(f"not active: {' '.join(failed)}")

    results = {}
    for n in sizes:
        for _ in range(rounds[str(n)]):
            for kind in ("bridged", "private", "floor"):
                # Each round starts the same units again, faster than their start limit
                # allows (5 starts in 10 s): the limit would fail them.
                run("systemctl", "reset-failed")
                row = results.setdefault(f"{kind}-{n}", {})
                if kind == "floor":
                    units = [f"floor-{p}-{a}.service" for p in range(1, n + 1) for a in apps]
                    stopped = units
                else:
                    units = [f"podapp@{kind}{p}:{a}.service" for p in range(1, n + 1)
                             for a in apps]
                    stopped = [f"pod@{kind}{p}.service" for p in range(1, n + 1)]
                    # As at boot: D-Bus activation starts the service for the first pod.
                    run("systemctl", "stop", "podmgr1.service")
                    peak = Peak()
                    peak.start()
                started = timed("systemctl", "start", f"{kind}-{n}.target")
                row.setdefault("start", []).append(started)
                check_active(units)
                with open("/proc/self/mountinfo") as mountinfo:  # systemd's mount namespace
                    row.setdefault("mounts", []).append(len(mountinfo.readlines()))
                if kind != "floor":
                    peak.done.set()
                    peak.join()
                    row.setdefault("peak_service", []).append(peak.service)
                    row.setdefault("peak_total", []).append(peak.total)
                    row.setdefault("peak_pss", []).append(peak.pss)
                    row.setdefault("service", []).append(peak.last)
                    # Where the time went, from systemd's own timestamps of the units.
                    begun = min(timestamps(stopped, "InactiveExitTimestampMonotonic"))
                    row.setdefault("prepared", []).append(
                        max(timestamps(stopped, "ActiveEnterTimestampMonotonic")) - begun)
                    row.setdefault("active", []).append(
                        max(timestamps(units, "ActiveEnterTimestampMonotonic")) - begun)
                    row.setdefault("list", []).append(timed("podmgr", "list"))
                    row.setdefault("listpods", []).append(timed("busctl", "call", *BUS, "ListPods"))
                row.setdefault("stop", []).append(
                    timed("systemctl", "stop", f"{kind}-{n}.target", *stopped))
                if kind != "floor" and subprocess.run(
                        ["systemctl", "is-active", "--quiet", *stopped]).returncode == 0:
                    sys.exit("a pod is still active after its stop")
    print(json.dumps(results))
""")

# Runs inside the bed: N podman pods of 2 containers, each pod started and stopped by a
# podman process of its own, N at once.
PODMAN = textwrap.dedent("""
    import json, os, subprocess, sys, time

    sizes, rounds, rootfs = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    most = max(sizes)

    def run(*argv):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    def at_once(argvs):
        begin = time.perf_counter()
        children = [subprocess.Popen(a, stdout=subprocess.DEVNULL) for a in argvs]
        if any(child.wait() for child in children):
            sys.exit(f"{argvs[0][:3]} failed")
        return (time.perf_counter() - begin) * 1000

    def conmon_rss():
        total = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/comm") as comm:
                    if comm.read().strip() != "conmon":
                        continue
                with open(f"/proc/{pid}/status") as status:
                    total += next(int(l.split()[1]) for l in status if l.startswith("VmRSS:"))
            except (OSError, StopIteration):
                pass
        return total

    # podman's overlay storage cannot live on the bed's overlay root.
    run("mkdir", "-p", "/var/lib/containers")
    run("mount", "-t", "tmpfs", "tmpfs", "/var/lib/containers")
    # No infra container: its pause image would need a registry.  Made a few at once.
    at_once([["podman", "pod", "create", "--name", f"pm{p}", "--infra=false"]
             for p in range(1, most + 1)])
    for first in range(1, most + 1, 10):
        at_once([["podman", "create", "--pod", f"pm{p}", "--name", f"pm{p}-{c}",
                  "--rootfs", rootfs, "/bin/sleep", "infinity"]
                 for p in range(first, min(first + 10, most + 1)) for c in ("a", "b")])
    results = {}
    for n in sizes:
        row = results.setdefault(f"podman-{n}", {"start": [], "stop": [], "conmon": []})
        pods = [f"pm{p}" for p in range(1, n + 1)]
        for _ in range(rounds[str(n)]):
            row["start"].append(at_once([["podman", "pod", "start", p] for p in pods]))
            row["conmon"].append(conmon_rss())
            row["stop"].append(at_once([["podman", "pod", "stop", "-t", "0", p] for p in pods]))
    print(json.dumps(results))
""")


def manifest(mode: str) -> str:
    return f'[network]\nmode = "{mode}"\n\n' + "".join(
        f'[app.{app}]\nrootfs = "{ROOTFS}"\nexec = ["/bin/sleep", "infinity"]\n\n' for app in APPS
    )


def slopes(r: Report, what: str, totals: dict[int, float], target: float | None) -> None:
    """The per-pod marginal cost between consecutive sizes, and how the last one
    compares with the one before (flat: no step that grows with N)."""
    sizes = sorted(totals)
    steps = list(itertools.pairwise(sizes))
    cost = {
        (low, high): r.figure(
            f"{what}: per-pod cost, N {low} -> {high}",
            (totals[high] - totals[low]) / (high - low),
            "ms",
        )
        for low, high in steps
    }
    (low, middle), (_, high) = steps[-2], steps[-1]
    before, last = cost[low, middle], cost[middle, high]
    r.ratio(
        f"{what}: per-pod cost, N {middle} -> {high} / N {low} -> {middle}",
        last / before if before > 0 else float("inf"),
        at_most=target,
    )


def measure(bed: Bed, sizes: tuple[int, ...], rounds: int) -> dict[str, dict[str, list[float]]]:
    """Every figure of every round, by KIND-N; podman's only when it is installed."""
    per_size = json.dumps({str(n): rounds if n <= 10 else max(1, rounds - 2) for n in sizes})
    for kind, mode in MODES.items():
        bed.run(
            "sh",
            "-c",
            'mkdir -p /etc/podmgr/pods && for n in $(seq "$1"); do '
            'printf %s "$2" > "/etc/podmgr/pods/$0$n.toml"; done',
            kind,
            str(sizes[-1]),
            manifest(mode),
        )
    apps = ",".join(APPS)
    bed.run("/usr/bin/python3", "-c", SETUP, ",".join(map(str, sizes)), apps, ROOTFS)
    # One untimed round of the smallest size, so that first-use costs (page cache, pyc,
    # the bridge) are not counted.
    first = json.dumps(sizes[:1])
    bed.run("/usr/bin/python3", "-c", MEASURE, first, json.dumps({str(sizes[0]): 1}), apps)
    results: dict[str, dict[str, list[float]]] = json.loads(
        bed.run(
            "/usr/bin/python3", "-c", MEASURE, json.dumps(sizes), per_size, apps, timeout=1800
        ).stdout
    )
    if bed.run("sh", "-c", "command -v podman", check=False).returncode:
        print("podman: not installed, so not measured (apt-get install podman)")
        return results
    podman: dict[str, dict[str, list[float]]] = json.loads(
        bed.run(
            "/usr/bin/python3", "-c", PODMAN, json.dumps(sizes), per_size, ROOTFS, timeout=1800
        ).stdout
    )
    return results | podman


def report(r: Report, results: dict[str, dict[str, list[float]]], sizes: tuple[int, ...]) -> None:
    most = sizes[-1]
    kinds = [k for k in ("floor", *MODES, "podman") if f"{k}-{most}" in results]

    def median(kind: str, n: int, what: str) -> float:
        return statistics.median(results[f"{kind}-{n}"][what])

    for kind in kinds:
        for n in sizes:
            r.figure(f"{kind}: start of {n} pods", median(kind, n, "start"), "ms")
    for kind in MODES:
        pods = median(kind, most, "start")
        r.ratio(f"{kind}: start of {most} pods / floor", pods / median("floor", most, "start"), 1.5)
        if "podman" in kinds:
            r.ratio(
                f"{kind}: start of {most} pods / podman",
                pods / median("podman", most, "start"),
                0.3,
            )
        slopes(r, f"{kind} start", {n: median(kind, n, "start") for n in sizes}, 1.3)
        for n in (sizes[0], most):
            r.figure(
                f"{kind}: of the start of {n}, every pod prepared after",
                median(kind, n, "prepared"),
                "ms",
                note="systemd's timestamps, from the first pod's start",
            )
            r.figure(
                f"{kind}: of the start of {n}, every app active after",
                median(kind, n, "active"),
                "ms",
            )
    for kind in ("floor", *MODES):
        r.figure(
            f"{kind}: the host's mount table, {most} pods running",
            median(kind, most, "mounts"),
            "mounts",
            note="systemd goes through them as it sets up each app's namespace",
        )
    for kind in kinds:
        for n in (sizes[0], most):
            r.figure(f"{kind}: stop of {n} pods", median(kind, n, "stop"), "ms")
    for kind in MODES:
        floor = median("floor", most, "stop")
        r.ratio(f"{kind}: stop of {most} pods / floor", median(kind, most, "stop") / floor)
        slopes(r, f"{kind} stop", {n: median(kind, n, "stop") for n in sizes}, None)
    for n in (sizes[0], most):
        r.figure(f"podmgr list, {n} bridged pods running", median("bridged", n, "list"), "ms")
        listed = median("bridged", n, "listpods")
        r.figure(f"ListPods (busctl), {n} bridged pods running", listed, "ms")
    for kind in MODES:
        r.figure(
            f"{kind}: org.podmgr1 RSS, {most} pods running",
            median(kind, most, "service") / 1024,
            "MiB",
            at_most=40,
            note="as last seen during the start: it exits after 30 s idle",
        )
        r.figure(
            f"{kind}: org.podmgr1 RSS, peak during the start of {most}",
            median(kind, most, "peak_service") / 1024,
            "MiB",
        )
        # They are podmgr's: they run only because pod@.service asks podmgr through them.
        r.figure(
            f"{kind}: the same with the busctls waiting for PreparePod",
            median(kind, most, "peak_total") / 1024,
            "MiB",
            note="pod@.service's ExecStart, one per pod until it is prepared",
        )
        r.figure(
            f"{kind}: the same as PSS",
            median(kind, most, "peak_pss") / 1024,
            "MiB",
            note="the busctls share most of their pages, which their RSS counts each time",
        )
    if "podman" in kinds:
        conmon = median("podman", most, "conmon")
        r.figure(f"podman: conmon RSS, {most} pods of 2 containers running", conmon / 1024, "MiB")
        r.ratio(
            f"org.podmgr1 RSS / podman's conmons, {most} bridged pods",
            median("bridged", most, "service") / conmon,
        )


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    sizes = tuple(sorted(int(n) for n in sys.argv[2].split(","))) if len(sys.argv) > 2 else SIZES
    if len(sizes) < 3:
        sys.exit("bench/scale.py: give at least three sizes (slopes compare two steps)")
    with Bed("bench-scale", CHECKOUT) as bed, Report("scale", "Many pods at once") as r:
        bed.install_project()
        bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
        report(r, measure(bed, sizes, rounds), sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
