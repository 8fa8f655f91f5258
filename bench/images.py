#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Unpacking layers against tar, in the same run.

- a >= 200 MB image of four uncompressed layers, unpacked by podmgr as imports do
  (fd-relative, checking the diff_id, in a confined process per layer) against `tar -x`
  of the same layers (target: at most 2x);
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
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from podmgr.image import layerstream, oci, unpack  # after the path above

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


def podmgr_unpack(layers: list[Path], suffix: str, work: Path) -> None:
    for number, layer in enumerate(layers):
        target = work / f"podmgr{number}"
        target.mkdir()
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with layer.open("rb") as stream:
                layerstream.unpack_blob_confined(
                    stream, MEDIA[suffix], fd, unpack.Limits(), layer.name, layer.stat().st_size
                )
        finally:
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
        print(
            f"image: 4 layers, {size / 1e6:.0f} MB uncompressed, "
            f"{sum(p.stat().st_size for p in layers['gz']) / 1e6:.0f} MB gzip, "
            f"{sum(p.stat().st_size for p in layers['zst']) / 1e6:.0f} MB zstd"
        )
        for suffix, label, target in (
            ("", "uncompressed", 2.0),
            ("gz", "gzip", 1.1),
            ("zst", "zstd", 1.1),
        ):
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(rounds):
                for measure, times in ((podmgr_unpack, ours), (tar_unpack, theirs)):
                    times.append(run_once(measure, layers[suffix], suffix, root))
            podmgr, tar = statistics.median(ours), statistics.median(theirs)
            print(
                f"{label:<13} podmgr {podmgr:6.2f} s   tar {tar:6.2f} s   "
                f"ratio {podmgr / tar:4.2f}x  (target <= {target}x)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
