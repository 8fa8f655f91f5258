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
from typing import TYPE_CHECKING

from podmgr import paths
from podmgr.errors import ManifestError, Problem
from podmgr.generator import resolve, rootfs, units
from podmgr.manifest import model
from podmgr.manifest.lookup import find_manifests

if TYPE_CHECKING:  # resolve opens the store only for apps that run from an image
    from podmgr.image.store import Store

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
    return units.render(pod, resolve.resolve(pod, store), output_dir)


def write(outputs: Iterable[units.Output], directory: Path, made: set[str] | None = None) -> None:
    """Write ``outputs`` under ``directory``; ``made`` holds the directories known to exist,
    so that a run over many pods makes each target's .wants/ once."""
    # Plain os calls: this runs for every file of every pod at each daemon-reload.
    made = set() if made is None else made
    for output in outputs:
        target = os.path.join(directory, output.path)
        parent = os.path.dirname(target)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        if isinstance(output, units.Symlink):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            os.symlink(output.target, target)
            continue
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            data = output.text.encode()
            while data:  # a regular file takes it whole; a short write still loses nothing
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)


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
    made: set[str] = set()
    with rootfs.reading_once():
        for path in find_manifests(dirs).values():
            skipped += _generate_one(path, output_dir, made, log)
    return skipped


def _generate_one(path: Path, output_dir: Path, made: set[str], log: Path) -> int:
    """Write the units of one manifest; 1 if it was skipped, else 0."""
    try:
        write(outputs_for(path, str(output_dir)), output_dir, made)
    except ManifestError as error:
        log_problems(error, log)
        return 1
    except Exception as error:  # one pod's bug must not cost the others their units
        log_problems(ManifestError(str(path), [Problem("", f"internal error: {error!r}")]), log)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (1, 3):
        print("usage: podmgr-generator NORMAL_DIR [EARLY_DIR LATE_DIR]", file=sys.stderr)
        return 2
    os.umask(0o022)
    generate(Path(args[0]))
    return 0
