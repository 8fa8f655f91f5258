#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The generator as systemd runs it at boot, over 10 and over 1000 manifests.

In a throwaway systemd (tests/bed.py), the installed
/usr/lib/systemd/system-generators/podmgr-generator writes into fresh output directories,
timed from its exec to its exit, Python's own start included.  Half of the manifests are
examples/demo.toml (2 apps), half examples/shop.toml (3 apps).  In alternating rounds,
beside it:

- /bin/true: the floor of any process;
- /usr/bin/python3 -c pass: the floor of any Python program;
- parsing the same files with tomllib in one /usr/bin/python3: the work the generator
  cannot avoid.

Targets: at most 60 ms wall for 10 manifests, at most 500 ms for 1000.  A run whose
units are not all there fails the benchmark.

Usage: bench/generator.py [ROUNDS]   (as root)
"""

from __future__ import annotations

import json
import statistics
import sys
import textwrap
import tomllib
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(CHECKOUT / "tests"))

from bed import Bed  # noqa: E402 -- found through the path set above
from report import Report  # noqa: E402 -- bench/ is this script's own directory

ROOTFS = "/var/lib/machines/podmgr-busybox"  # what the examples run from
EXAMPLES = {
    "demo": CHECKOUT / "examples" / "demo.toml",
    "shop": CHECKOUT / "examples" / "shop.toml",
}
PODS = "/run/podmgr/pods"

# Runs inside the bed, so neither nsenter nor the bed's entry is in any figure.
MEASURE = textwrap.dedent("""
    import json, os, pathlib, shutil, subprocess, sys, time

    count, rounds = int(sys.argv[1]), int(sys.argv[2])
    examples = json.loads(sys.argv[3])
    pods = pathlib.Path(sys.argv[4])
    shutil.rmtree(pods, ignore_errors=True)
    pods.mkdir(parents=True)
    apps = 0
    for index in range(count):
        kind = sorted(examples)[index % len(examples)]
        (pods / f"{kind}{index:04}.toml").write_text(examples[kind]["text"])
        apps += examples[kind]["apps"]
    generator = "/usr/lib/systemd/system-generators/podmgr-generator"
    parse = ("import os, sys, tomllib\\n"
             "for name in sorted(os.listdir(sys.argv[1])):\\n"
             "    with open(os.path.join(sys.argv[1], name), 'rb') as file:\\n"
             "        tomllib.load(file)\\n")

    def timed(argv):
        begin = time.perf_counter()
        subprocess.run(argv, check=True)
        return (time.perf_counter() - begin) * 1000

    def generate(round):
        out = pathlib.Path(f"/tmp/generator-bench/{round}")
        dirs = [str(out / kind) for kind in ("normal", "early", "late")]
        for directory in dirs:
            os.makedirs(directory)
        took = timed([generator, *dirs])
        written = os.listdir(dirs[0])
        units = sum(name.startswith("podapp@") for name in written)
        if units != apps:
            sys.exit(f"the generator wrote {units} app units of {apps} ({count} manifests)")
        shutil.rmtree(out)
        return took

    generate("warm")  # untimed: the page cache and the bytecode are warm at boot as well
    times = {"generator": [], "true": [], "python": [], "tomllib": []}
    for round in range(rounds):
        times["generator"].append(generate(round))
        times["true"].append(timed(["/bin/true"]))
        times["python"].append(timed(["/usr/bin/python3", "-c", "pass"]))
        times["tomllib"].append(timed(["/usr/bin/python3", "-c", parse, str(pods)]))
    print(json.dumps(times))
""")


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    examples = {
        kind: {"text": path.read_text(), "apps": len(tomllib.loads(path.read_text())["app"])}
        for kind, path in EXAMPLES.items()
    }
    with (
        Report("generator", "The generator at boot: manifests in, units out") as report,
        Bed("generator", CHECKOUT) as bed,
    ):
        bed.install_project()
        bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
        for count in (10, 1000):
            print(f"{count} manifests, {rounds} rounds ...", flush=True)
            out = bed.run(
                "/usr/bin/python3",
                "-c",
                MEASURE,
                str(count),
                str(rounds),
                json.dumps(examples),
                PODS,
                timeout=600,
            ).stdout
            times = {what: statistics.median(t) for what, t in json.loads(out).items()}
            generator = report.figure(
                f"generator, {count} manifests (Python's start included)",
                times["generator"],
                "ms",
                at_most=60 if count == 10 else 500,
            )
            report.figure("  /bin/true", times["true"], "ms", note="any process")
            report.figure("  /usr/bin/python3 -c pass", times["python"], "ms", note="any Python")
            report.figure(
                f"  tomllib over the same {count} files, one python3",
                times["tomllib"],
                "ms",
                note="the work it cannot avoid",
            )
            report.ratio(f"generator / tomllib, {count} manifests", generator / times["tomllib"])
            report.ratio(
                f"generator / python3 -c pass, {count} manifests", generator / times["python"]
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
