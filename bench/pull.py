#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pulling from a local registry against skopeo, in the same run.

In a throwaway systemd (tests/bed.py), a real registry on 127.0.0.1 (HTTPS, basic auth;
tests/registries.sh) serves a >= 200 MB image of four gzip layers made as bench/images.py
makes them.  Each round times `podmgr image pull` (verify, fetch, check digests, unpack
into the store) and `skopeo copy docker://... oci:DIR` (fetch and check digests, no
unpacking), in turns.  Target: podmgr at most 1.2x skopeo.

Usage: bench/pull.py [ROUNDS]   (as root)
"""

from __future__ import annotations

import base64
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(CHECKOUT / "tests"))

import imagebuild as ib  # noqa: E402 -- found through the path set above
from bed import Bed  # noqa: E402

NAME = "127.0.0.1:5000/bench/big:1"


def layers() -> list[bytes]:
    spec = importlib.util.spec_from_file_location("bench_images", CHECKOUT / "bench/images.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [module.make_layer(seed) for seed in range(4)]


def timed(bed: Bed, *argv: str) -> float:
    start = time.perf_counter()
    bed.run(*argv, timeout=600)
    return time.perf_counter() - start


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory(prefix="podmgr-bench-", dir="/var/tmp") as temp:
        layout = Path(temp) / "layout"
        ib.write_layout(layout, {"1": ib.Image(layers(), "gzip")})
        with Bed("pull", CHECKOUT) as bed:
            bed.install_project()
            bed.run(f"{CHECKOUT}/tests/registries.sh", "/tmp/registries", timeout=120)
            bed.run(
                "skopeo",
                "copy",
                "--quiet",
                "--dest-creds",
                "shop:secret",
                f"oci:{layout}:1",
                f"docker://{NAME}",
                timeout=600,
            )
            token = base64.b64encode(b"shop:secret").decode()
            bed.run(
                "sh",
                "-c",
                "cat > /etc/podmgr/auth.json && chmod 600 /etc/podmgr/auth.json",
                input=json.dumps({"auths": {"127.0.0.1:5000": {"auth": token}}}),
            )
            bed.run(
                "sh",
                "-c",
                "cat > /etc/podmgr/podmgr.toml",
                input='[images]\ninsecure = ["127.0.0.1:5000/bench"]\n',
            )
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(rounds):
                ours.append(timed(bed, "podmgr", "image", "pull", NAME))
                bed.run("podmgr", "image", "rm", NAME)
                bed.run("podmgr", "gc", "--grace", "0")
                theirs.append(
                    timed(
                        bed,
                        "skopeo",
                        "copy",
                        "--quiet",
                        "--src-creds",
                        "shop:secret",
                        f"docker://{NAME}",
                        "oci:/tmp/copy:1",
                    )
                )
                bed.run("rm", "-rf", "/tmp/copy")
            podmgr, skopeo = statistics.median(ours), statistics.median(theirs)
            size = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
            print(f"pull of 4 gzip layers ({size / 1e6:.0f} MB)")
            print(f"podmgr image pull   median {podmgr:6.2f} s  (verifies, unpacks into the store)")
            print(f"skopeo copy oci:    median {skopeo:6.2f} s  (stores the blobs as they are)")
            print(f"podmgr / skopeo     {podmgr / skopeo:6.2f}x  (target <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
