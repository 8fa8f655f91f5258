#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pulling from a local registry against podman and against a floor, in the same run.

In a throwaway systemd (tests/bed.py), a real registry on 127.0.0.1 (HTTPS with a test
CA, basic auth; tests/registries.sh) serves a >= 200 MB image of four gzip layers made
as bench/images.py makes them.  Each round times, in turns:

- `podmgr image pull`: verify, fetch, check digests, decompress and unpack into the
  store, each layer unpacked in a confined process while the next ones are fetched;
- `podman pull` of the same image (the same work: fetch, check, decompress, store),
  into storage on a tmpfs as podmgr's store is in the bed (target: podmgr at most 0.8x);
- the floor: `skopeo copy docker://... oci:DIR` (fetch and check digests), then
  `tar -xzf` of its layers one after another (target: podmgr at most 1.2x).

podman and skopeo trust the registry's CA through --cert-dir and log in with --creds,
with TLS verification on, as podmgr does with the system's store and auth.json.

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

sys.path.insert(0, str(CHECKOUT / "bench"))
from report import Report  # noqa: E402 -- bench/, this script's own directory

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


# The floor: the blobs copied as they are, then their layers unpacked by tar.
# The floor: the blobs copied as they are, then their layers unpacked by tar.
FLOOR = """set -e
certs=$1 name=$2
shift 2
skopeo copy --quiet --src-cert-dir "$certs" --src-creds shop:secret "docker://$name" oci:/tmp/copy:1
for blob in "$@"; do
    mkdir -p "/tmp/unpacked/$blob"
    tar -xzf "/tmp/copy/blobs/sha256/$blob" -C "/tmp/unpacked/$blob"
done
"""


def layer_blobs(layout: Path) -> list[str]:
    """The hex digests of the image's layers, bottom-most first."""
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    return [layer["digest"].split(":")[1] for layer in manifest["layers"]]


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory(prefix="podmgr-bench-", dir="/var/tmp") as temp:
        layout = Path(temp) / "layout"
        ib.write_layout(layout, {"1": ib.Image(layers(), "gzip")})
        size = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
        blobs = layer_blobs(layout)
        with Bed("pull", CHECKOUT) as bed:
            bed.install_project()
            bed.run(f"{CHECKOUT}/tests/registries.sh", "/tmp/registries", timeout=120)
            certs = "/tmp/registries/certs"
            bed.run("sh", "-c", f"mkdir -p {certs} && cp /tmp/registries/ca.crt {certs}/")
            bed.run(
                "skopeo",
                "copy",
                "--quiet",
                "--dest-cert-dir",
                certs,
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
            # podman's storage on a tmpfs, as the bed has podmgr's store: overlayfs
            # cannot be the upper of the bed's root overlay.
            bed.run("mount", "-t", "tmpfs", "containers", "/var/lib/containers")
            times: dict[str, list[float]] = {"podmgr": [], "podman": [], "floor": []}
            for _ in range(rounds):
                times["podmgr"].append(timed(bed, "podmgr", "image", "pull", NAME))
                bed.run("podmgr", "image", "rm", NAME)
                bed.run("podmgr", "gc", "--grace", "0")
                times["podman"].append(
                    timed(
                        bed,
                        "podman",
                        "pull",
                        "--quiet",
                        "--tls-verify=true",
                        "--cert-dir",
                        certs,
                        "--creds",
                        "shop:secret",
                        NAME,
                    )
                )
                bed.run("podman", "rmi", "--force", NAME)
                times["floor"].append(timed(bed, "sh", "-c", FLOOR, "floor", certs, NAME, *blobs))
                bed.run("rm", "-rf", "/tmp/copy", "/tmp/unpacked")
            podmgr, podman, floor = (statistics.median(times[k]) for k in times)
            title = f"Pulling 4 gzip layers ({size / 1e6:.0f} MB) from a local registry"
            with Report("pull", f"{title}, median of {rounds}") as report:
                report.figure("podmgr image pull", podmgr, "s")
                report.figure("podman pull", podman, "s")
                report.figure("floor: skopeo copy to oci:, then tar -xzf each layer", floor, "s")
                report.ratio("podmgr / podman pull", podmgr / podman, at_most=0.8)
                report.ratio("podmgr / floor", podmgr / floor, at_most=1.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
