# SPDX-License-Identifier: LGPL-2.1-or-later
"""Building test images: layers as tar archives, OCI layouts and archives, in Python.

Tests use these to make images with exactly the entries they need (hostile ones
included) and convert them with skopeo to the other formats.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

# An entry: a TarInfo and, for a regular file, its content.
Entry = tuple[tarfile.TarInfo, bytes]


def file(name: str, content: bytes = b"", mode: int = 0o644, uid: int = 0) -> Entry:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.mtime = len(content), mode, uid, 1_700_000_000
    return info, content


def directory(name: str, mode: int = 0o755) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 1_700_000_000
    return info, b""


def symlink(name: str, target: str) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 1_700_000_000
    return info, b""


def hardlink(name: str, target: str) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info, b""


def device(name: str, major: int = 1, minor: int = 3) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, major, minor
    return info, b""


def tar(entries: Iterable[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in entries:
            archive.addfile(info, io.BytesIO(content) if info.isfile() else None)
    return buffer.getvalue()


def tree(root: Path) -> list[Entry]:
    """Entries for every file under ``root``, as tar -C root . would store them."""
    found: list[Entry] = []
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(root.rglob("*")):
            info = archive.gettarinfo(str(path), str(path.relative_to(root)))
            found.append((info, path.read_bytes() if info.isfile() else b""))
    return found


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


COMPRESSIONS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "": ("application/vnd.oci.image.layer.v1.tar", lambda data: data),
    "gzip": (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        lambda data: gzip.compress(data, mtime=0),
    ),
    "zstd": (
        "application/vnd.oci.image.layer.v1.tar+zstd",
        lambda data: zstandard.ZstdCompressor().compress(data),
    ),
}


@dataclass
class Image:
    layers: list[bytes]  # uncompressed tars, bottom-most first
    compression: str = "gzip"
    config: dict[str, object] = field(default_factory=dict)
    architecture: str = "amd64"

    def blobs(self) -> tuple[dict[str, bytes], bytes]:
        """All blobs by digest, and the manifest."""
        media_type, compress = COMPRESSIONS[self.compression]
        blobs: dict[str, bytes] = {}
        layer_descriptors = []
        for layer in self.layers:
            data = compress(layer)
            blobs[sha256(data)] = data
            layer_descriptors.append(
                {"mediaType": media_type, "digest": sha256(data), "size": len(data)}
            )
        config = json.dumps(
            {
                "architecture": self.architecture,
                "os": "linux",
                "config": self.config,
                "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in self.layers]},
            }
        ).encode()
        blobs[sha256(config)] = config
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha256(config),
                    "size": len(config),
                },
                "layers": layer_descriptors,
            }
        ).encode()
        return blobs, manifest


def write_layout(path: Path, images: dict[str, Image]) -> dict[str, str]:
    """An OCI layout holding each image under its tag; returns tag -> manifest digest."""
    (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entries, digests = [], {}
    for tag, image in images.items():
        blobs, manifest = image.blobs()
        blobs[sha256(manifest)] = manifest
        for digest, data in blobs.items():
            (path / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        digests[tag] = sha256(manifest)
        entries.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha256(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        )
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    return digests


def write_archive(path: Path, layout: Path) -> None:
    """An oci-archive: the layout as a tar."""
    with tarfile.open(path, "w") as archive:
        for item in sorted(layout.rglob("*")):
            archive.add(item, str(item.relative_to(layout)), recursive=False)


def write_multi_platform(path: Path, tag: str, images: dict[str, Image]) -> str:
    """An OCI layout whose ``tag`` is an image index of ``images`` by architecture (what
    a registry serves as a manifest list); returns the index's digest."""
    write_layout(path, {f"{tag}-{arch}": image for arch, image in images.items()})
    entries = json.loads((path / "index.json").read_text())["manifests"]
    for entry, arch in zip(entries, images, strict=True):
        entry["platform"] = {"os": "linux", "architecture": arch}
        del entry["annotations"]
    nested = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }
    ).encode()
    (path / "blobs" / "sha256" / sha256(nested).split(":")[1]).write_bytes(nested)
    (path / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "digest": sha256(nested),
                        "size": len(nested),
                        "annotations": {"org.opencontainers.image.ref.name": tag},
                    }
                ],
            }
        )
    )
    return sha256(nested)


def merge_docker_archives(path: Path, archives: list[Path]) -> None:
    """One archive holding the images of several `docker save` archives, as `docker save
    A B` and `podman save -m A B` write them: their files, and one manifest.json listing
    each image in order."""
    entries: list[object] = []
    seen: set[str] = set()
    with tarfile.open(path, "w") as merged:
        for archive in archives:
            with tarfile.open(archive) as source:
                for member in source.getmembers():
                    if member.name == "manifest.json":
                        stream = source.extractfile(member)
                        assert stream is not None
                        entries.extend(json.load(stream))
                    elif member.name not in seen and member.name != "repositories":
                        seen.add(member.name)
                        merged.addfile(
                            member, source.extractfile(member) if member.isfile() else None
                        )
        data = json.dumps(entries).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        merged.addfile(info, io.BytesIO(data))
