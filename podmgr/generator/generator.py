# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr-generator: manifests in, units out (systemd.generator(7)).

It runs at early boot and on every daemon-reload, so it is offline and careful: no
D-Bus, no network, no image store.  A bad manifest is logged to the kernel log as
``podmgr-generator: FILE: KEY: why`` and skipped; the other pods are still generated and
the generator exits 0, because a failing generator would hold up boot for everyone.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from podmgr import paths
from podmgr.errors import ManifestError, Problem
from podmgr.generator import resolve, units
from podmgr.image.store import Store
from podmgr.manifest import model
from podmgr.manifest.lookup import find_manifests

KMSG = Path("/dev/kmsg")
# syslog priority "err" (3), as the kernel log's "<N>" prefix expects.
KMSG_PRIORITY = "<3>"


def outputs_for(
    path: Path, output_dir: str = "/run/systemd/generator", store: Store | None = None
) -> list[units.Output]:
    """Load, check and render one manifest; raise ManifestError listing every problem."""
    return outputs_of(model.load(path), output_dir, store)


def outputs_of(
    pod: model.Manifest, output_dir: str = "/run/systemd/generator", store: Store | None = None
) -> list[units.Output]:
    """Render a loaded manifest: its apps' sources are resolved, which may fail too."""
    return units.render(pod, resolve.resolve(pod, store or Store()), output_dir)


def write(outputs: Iterable[units.Output], directory: Path) -> None:
    # Plain os calls: this runs for every file of every pod at each daemon-reload.
    for output in outputs:
        target = os.path.join(directory, output.path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if isinstance(output, units.Symlink):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            os.symlink(output.target, target)
            continue
        with open(target, "wb") as file:  # binary: a text wrapper per file costs more
            file.write(output.text.encode())


def log_problems(error: ManifestError, log: Path = KMSG) -> None:
    lines = [
        f"{KMSG_PRIORITY}podmgr-generator: {error.file}: {problem}"
        for problem in error.problems or [Problem("", "invalid")]
    ]
    try:
        # One write() per record: that is how /dev/kmsg takes messages.  Append: this runs
        # once per bad manifest, and a log that is a regular file must keep every pod's lines.
        with log.open("a") as kmsg:
            for line in lines:
                kmsg.write(line + "\n")
                kmsg.flush()
    except OSError:
        for line in lines:
            print(line.removeprefix(KMSG_PRIORITY), file=sys.stderr)


def generate(output_dir: Path, dirs: Sequence[Path] = paths.MANIFEST_DIRS, log: Path = KMSG) -> int:
    """Write units for every valid manifest; return how many pods were skipped."""
    skipped = 0
    for path in find_manifests(dirs).values():
        try:
            write(outputs_for(path, str(output_dir)), output_dir)
        except ManifestError as error:
            log_problems(error, log)
            skipped += 1
        except Exception as error:  # one pod's bug must not cost the others their units
            log_problems(ManifestError(str(path), [Problem("", f"internal error: {error!r}")]), log)
            skipped += 1
    return skipped


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (1, 3):
        print("usage: podmgr-generator NORMAL_DIR [EARLY_DIR LATE_DIR]", file=sys.stderr)
        return 2
    os.umask(0o022)
    generate(Path(args[0]))
    return 0
