#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Unpacking an image's layers against tar, in the same run.

- a >= 200 MB image of four uncompressed layers, unpacked whole by podmgr as pulls and
  imports do (fd-relative, no-follow, checking each diff_id, each layer in a confined
  process of its own, side by side on the machine's cores: layerpool.py) against
  `tar -x` of the same layers one after another (target: at most 1.0x);
- the same layers gzip- and zstd-compressed, against `tar -xzf` and `tar --zstd -xf`
  (target: at most 1.1x).

Layers are made from a seeded generator (text and binary files of mixed sizes), so
runs are comparable; each round unpacks into fresh directories, in turns with tar.

Usage: bench/images.py [ROUNDS]   (as root: unpacking sets owners)
"""

from __future__ import annotations

import gzip
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import BinaryIO

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from podmgr.image import layerpool, oci, unpack  # after the path above
from podmgr.image.digest import Digest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import Report  # bench/, this script's own directory

LAYER_BYTES = 56 << 20  # four of them: 224 MB
MEDIA = {
    "": "application/vnd.oci.image.layer.v1.tar",
    "gz": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zst": "application/vnd.oci.image.layer.v1.tar+zstd",
}
TAR_FLAGS = {"": [], "gz": ["-z"], "zst": ["--zstd"]}


def make_layer(seed: int) -> bytes:
    """About LAYER_BYTES of files: many small text-like ones, some large binary-like ones."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not secrets
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(3000)]
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        index = 0
        while total < LAYER_BYTES:
            directory = f"usr/lib/pkg{index // 50}"
            if index % 50 == 0:
                info = tarfile.TarInfo(directory)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            if index % 40 == 39:  # a large binary-like file: random runs between zeros
                data = b"".join(
                    rng.randbytes(rng.randint(64, 4096)) + bytes(rng.randint(64, 8192))
                    for _ in range(rng.randint(300, 900))
                )
            else:  # a small, text-like file
                data = " ".join(rng.choices(words, k=rng.randint(100, 3000))).encode()
            info = tarfile.TarInfo(f"{directory}/file{index}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
            total += len(data)
            index += 1
    return buffer.getvalue()


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def opener(path: Path) -> Callable[[], BinaryIO]:
    return lambda: path.open("rb")


def podmgr_unpack(diff_ids: list[Digest], layers: list[Path], suffix: str, work: Path) -> None:
    fds = []
    try:
        with layerpool.pool(unpack.Limits()) as pool:
            for number, (layer, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
                target = work / f"podmgr{number}"
                target.mkdir()
                fds.append(os.open(target, os.O_RDONLY | os.O_DIRECTORY))
                pool.submit(
                    layerpool.Job(
                        opener(layer),
                        MEDIA[suffix],
                        diff_id,
                        fds[-1],
                        layer.name,
                        layer.stat().st_size,
                    )
                )
            pool.wait()
    finally:
        for fd in fds:
            os.close(fd)


def tar_unpack(layers: list[Path], suffix: str, work: Path) -> None:
    for number, layer in enumerate(layers):
        target = work / f"tar{number}"
        target.mkdir()
        subprocess.run(
            ["tar", "-x", *TAR_FLAGS[suffix], "-f", str(layer), "-C", str(target)], check=True
        )


def run_once(
    measure: Callable[[list[Path], str, Path], None], layers: list[Path], suffix: str, root: Path
) -> float:
    """Time one unpack of ``layers`` into a fresh directory, from clean page cache state."""
    work = Path(tempfile.mkdtemp(dir=root))
    os.sync()
    seconds = timed(lambda: measure(layers, suffix, work))
    shutil.rmtree(work)
    os.sync()  # the next run starts without this one's dirty pages
    return seconds


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    assert set(MEDIA.values()) <= set(oci.LAYERS)
    with tempfile.TemporaryDirectory(prefix="podmgr-bench-", dir="/var/tmp") as temp:
        root = Path(temp)
        raw = [make_layer(seed) for seed in range(4)]
        layers: dict[str, list[Path]] = {suffix: [] for suffix in MEDIA}
        for number, data in enumerate(raw):
            for suffix, compress in (
                ("", lambda d: d),
                ("gz", lambda d: gzip.compress(d, 6)),
                ("zst", zstandard.ZstdCompressor(level=3).compress),
            ):
                path = root / f"layer{number}.tar{'.' + suffix if suffix else ''}"
                path.write_bytes(compress(data))
                layers[suffix].append(path)
        size = sum(len(d) for d in raw)
        diff_ids = [Digest.of(data) for data in raw]
        title = (
            f"Unpacking an image of 4 layers, {size / 1e6:.0f} MB uncompressed "
            f"({sum(p.stat().st_size for p in layers['gz']) / 1e6:.0f} MB gzip, "
            f"{sum(p.stat().st_size for p in layers['zst']) / 1e6:.0f} MB zstd), "
            f"median of {rounds}"
        )
        with Report("images", title) as report:
            for suffix, label, target, tar in (
                ("", "uncompressed", 1.0, "tar -x"),
                ("gz", "gzip", 1.1, "tar -xzf"),
                ("zst", "zstd", 1.1, "tar --zstd -xf"),
            ):
                ours: list[float] = []
                theirs: list[float] = []
                for _ in range(rounds):
                    for measure, times in (
                        (partial(podmgr_unpack, diff_ids), ours),
                        (tar_unpack, theirs),
                    ):
                        times.append(run_once(measure, layers[suffix], suffix, root))
                podmgr, baseline = statistics.median(ours), statistics.median(theirs)
                report.figure(f"{label}: podmgr, layers side by side", podmgr, "s")
                report.figure(f"{label}: {tar}, one layer after another", baseline, "s")
                report.ratio(f"{label}: podmgr / {tar}", podmgr / baseline, at_most=target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
