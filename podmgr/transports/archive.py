# SPDX-License-Identifier: LGPL-2.1-or-later
"""docker-archive:FILE, what `docker save` writes.

Docker >= 25 writes an OCI image layout with a manifest.json beside it: that is read as
oci-archive.  Older archives have only manifest.json ({"Config", "RepoTags", "Layers"})
and uncompressed layer tars; for those a Docker v2 schema 2 manifest is made from it,
with each layer's digest computed from the archive, as skopeo does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, BinaryIO

from podmgr import oci
from podmgr.digest import Digest
from podmgr.oci import Descriptor
from podmgr.transports.base import ImageSource, SourceContext, SourceError
from podmgr.transports.files import TarFiles, read
from podmgr.transports.layout import LayoutArchiveSource, archive_signature

_MAGIC = {b"\x1f\x8b": "application/vnd.docker.image.rootfs.diff.tar.gzip",
          b"\x28\xb5\x2f\xfd": "application/vnd.oci.image.layer.v1.tar+zstd"}


class DockerArchiveSource:
    def __init__(self, path: Path, files: TarFiles, entry: dict[str, Any]) -> None:
        self.path = path
        self.files = files
        self.entry = entry
        self.by_digest: dict[Digest, str] = {}
        self._manifest = self._make_manifest()

    def _describe_file(self, name: str, media_type: str | None = None) -> Descriptor:
        hasher = hashlib.sha256()
        size = 0
        with self.files.open(name) as stream:
            head = stream.read(4)
            hasher.update(head)
            size += len(head)
            while chunk := stream.read(1 << 20):
                hasher.update(chunk)
                size += len(chunk)
        if media_type is None:
            media_type = next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)),
                              "application/vnd.docker.image.rootfs.diff.tar")
        digest = Digest(f"sha256:{hasher.hexdigest()}")
        self.by_digest[digest] = name
        return Descriptor(media_type, digest, size)

    def _make_manifest(self) -> bytes:
        config = self._describe_file(str(self.entry["Config"]), oci.DOCKER_CONFIG)
        layers = [self._describe_file(str(name)) for name in self.entry["Layers"]]

        def descriptor(d: Descriptor) -> dict[str, Any]:
            return {"mediaType": d.media_type, "size": d.size, "digest": d.digest}

        return json.dumps({"schemaVersion": 2, "mediaType": oci.DOCKER_MANIFEST,
                           "config": descriptor(config),
                           "layers": [descriptor(layer) for layer in layers]}).encode()

    rereadable = True  # local files: read once to verify, again to unpack

    def describe(self) -> str:
        return f"docker-archive:{self.path}"

    def manifest(self, digest: Digest | None = None) -> tuple[bytes, str]:
        return self._manifest, oci.DOCKER_MANIFEST

    def blob(self, descriptor: Descriptor) -> BinaryIO:
        name = self.by_digest.get(descriptor.digest)
        if name is None:
            raise SourceError(f"{self.describe()}: has no blob {descriptor.digest}")
        return self.files.open(name)

    def signatures(self, manifest_digest: Digest) -> list[bytes]:
        return []

    def detached_signature(self) -> tuple[str, bytes] | None:
        return archive_signature(self.path)

    def default_name(self) -> str | None:
        tags = self.entry.get("RepoTags") or []
        return str(tags[0]) if tags else None

    def close(self) -> None:
        self.files.close()


def open_docker_archive(spec: str, context: SourceContext) -> ImageSource:
    path = Path(spec)
    files = TarFiles(path)
    if files.exists("oci-layout") and files.exists("index.json"):
        files.close()
        return _DockerLayoutSource(path, f"docker-archive:{spec}", None)
    try:
        entries = json.loads(read(files, "manifest.json"))
    except (SourceError, ValueError) as error:
        files.close()
        raise SourceError(f"docker-archive:{spec}: no valid manifest.json ({error}; is it "
                          "from docker save?)") from None
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict) \
            or not isinstance(entries[0].get("Layers"), list) or "Config" not in entries[0]:
        files.close()
        raise SourceError(f"docker-archive:{spec}: manifest.json must describe exactly one "
                          "image (save one image per archive)")
    return DockerArchiveSource(path, files, entries[0])


class _DockerLayoutSource(LayoutArchiveSource):
    def describe(self) -> str:
        return f"docker-archive:{self.path}"
