#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`make bench`: run every benchmark and write their tables to bench/RESULTS.md.

Each benchmark runs as its own process (as it would by hand) with PODMGR_BENCH_RESULTS
set, so it leaves its rows there (bench/report.py).  RESULTS.md gets one table per
benchmark, the machine it ran on and the date; figures from another machine or another
day are not comparable, only the ratios within one run are.

Usage: bench/run.py [BENCH...]   (as root; default: all of BENCHES, in order)
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from report import RESULTS_ENV, Row, load  # bench/ is this script's own directory

BENCH = Path(__file__).resolve().parent
# In the order RESULTS.md shows them: the issue each answers comes first.
BENCHES = (
    "scale",
    "start",
    "generator",
    "pull",
    "images",
    "dbus",
    "network",
    "socket_activation",
)


def version(*argv: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return "not installed"
    return out.splitlines()[0].strip() if out else "unknown"


def machine() -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    memory = next(
        int(line.split()[1]) // 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    release = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores; memory {memory} MiB",
        f"- {release.get('PRETTY_NAME', 'unknown').strip(chr(34))}, Linux {platform.release()}",
        f"- {version('systemctl', '--version')}; Python {platform.python_version()}",
        f"- {version('podman', '--version')}; {version('skopeo', '--version')}",
    ]


def table(title: str, rows: list[Row]) -> list[str]:
    lines = [f"## {title}", "", "| measure | figure | target | |", "|---|---:|---:|---|"]
    for row in rows:
        verdict = {None: "", True: "met", False: "**not met**"}[row.met]
        what = f"{row.what} ({row.note})" if row.note else row.what
        lines.append(
            f"| {what} | {row.quantity(f'{row.value:.2f}')} | {row.target()} | {verdict} |"
        )
    return [*lines, ""]


def main() -> int:
    chosen = sys.argv[1:] or list(BENCHES)
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        sys.exit(f"bench/run.py: no benchmark {', '.join(unknown)} (known: {' '.join(BENCHES)})")
    started = datetime.datetime.now(datetime.UTC)
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="podmgr-bench-results-") as results:
        for name in chosen:
            print(f"== bench/{name}.py", flush=True)
            env = {**os.environ, RESULTS_ENV: results}
            if subprocess.run(
                [sys.executable, BENCH / f"{name}.py"], check=False, env=env
            ).returncode:
                failed.append(name)
        lines = [
            "# Benchmark results",
            "",
            f"Written by `make bench` (bench/run.py) on {started:%Y-%m-%d %H:%M} UTC. Every ratio",
            "divides two figures measured in the same run; figures move by about 20% between",
            "runs on a shared machine, ratios much less.",
            "",
            *machine(),
            "",
        ]
        for name in chosen:
            path = Path(results, f"{name}.json")
            if path.exists():
                title, rows = load(path)
                lines += table(title, rows)
            else:
                lines += [f"## bench/{name}.py", "", "Failed: no results (see its output).", ""]
    (BENCH / "RESULTS.md").write_text("\n".join(lines))
    print(f"wrote {BENCH / 'RESULTS.md'}")
    if failed:
        print(f"bench/run.py: failed: {' '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
