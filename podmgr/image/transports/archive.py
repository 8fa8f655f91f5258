# SPDX-License-Identifier: LGPL-2.1-or-later
"""docker-archive:FILE[:REF|:@N], what `docker save` and `podman save` write.

manifest.json lists the images ({"Config", "RepoTags", "Layers"}); as containers/image
reads it, REF picks the image with that name among its RepoTags, @N the N-th entry (from
0), and without either the archive must hold one image.  A Docker v2 schema 2 manifest is
made from the entry, with each layer's digest computed from the archive, as skopeo does.
Docker >= 25 writes an OCI image layout beside manifest.json: an archive of one image
named by neither REF nor @N is read as that layout (its manifest as the registry had it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, BinaryIO

from podmgr.image import oci, reference
from podmgr.image.digest import Digest
from podmgr.image.oci import Descriptor
from podmgr.image.transports.base import (
    ImageSource,
    SourceContext,
    SourceError,
    local_path,
    split_local,
)
from podmgr.image.transports.files import TarFiles, read
from podmgr.image.transports.layout import LayoutArchiveSource, archive_signature

_MAGIC = {
    b"\x1f\x8b": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    b"\x28\xb5\x2f\xfd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


class DockerArchiveSource:
    def __init__(
        self,
        path: Path,
        files: TarFiles,
        entry: dict[str, Any],
        description: str,
        tag: str | None = None,
    ) -> None:
        self.path = path
        self.files = files
        self.entry = entry
        self.description = description
        self.tag = tag  # the RepoTags entry it was picked by
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
            media_type = next(
                (kind for magic, kind in _MAGIC.items() if head.startswith(magic)),
                "application/vnd.docker.image.rootfs.diff.tar",
            )
        digest = Digest(f"sha256:{hasher.hexdigest()}")
        self.by_digest[digest] = name
        return Descriptor(media_type, digest, size)

    def _make_manifest(self) -> bytes:
        config = self._describe_file(str(self.entry["Config"]), oci.DOCKER_CONFIG)
        layers = [self._describe_file(str(name)) for name in self.entry["Layers"]]

        def descriptor(d: Descriptor) -> dict[str, Any]:
            return {"mediaType": d.media_type, "size": d.size, "digest": d.digest}

        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": oci.DOCKER_MANIFEST,
                "config": descriptor(config),
                "layers": [descriptor(layer) for layer in layers],
            }
        ).encode()

    rereadable = True  # local files: read once to verify, again to unpack

    def describe(self) -> str:
        return self.description

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
        if self.tag is not None:
            return self.tag
        tags = self.entry.get("RepoTags") or []
        return str(tags[0]) if tags else None

    def close(self) -> None:
        self.files.close()


def _entries(files: TarFiles, description: str) -> list[dict[str, Any]]:
    try:
        entries = json.loads(read(files, "manifest.json"))
    except (SourceError, ValueError) as error:
        raise SourceError(
            f"{description}: no valid manifest.json ({error}; is it from docker save?)"
        ) from None
    if (
        not isinstance(entries, list)
        or not entries
        or not all(
            isinstance(e, dict)
            and isinstance(e.get("Layers"), list)
            and "Config" in e
            and isinstance(e.get("RepoTags") or [], list)
            for e in entries
        )
    ):
        raise SourceError(
            f"{description}: manifest.json does not list images as docker save writes them"
        )
    return entries


def _tags(entry: dict[str, Any]) -> list[str]:
    return [str(tag) for tag in entry.get("RepoTags") or []]


def _normalized(tag: str) -> str | None:
    try:
        return str(reference.parse(tag))
    except reference.BadReference:
        return None


def _pick(
    entries: list[dict[str, Any]], ref: str | None, number: int | None, description: str
) -> dict[str, Any]:
    """The entry REF or @N names, or the only one."""
    listing = "; ".join(
        f"@{n}: {', '.join(_tags(e)) or '(untagged)'}" for n, e in enumerate(entries)
    )
    if number is not None:
        if number >= len(entries):
            raise SourceError(
                f"{description}: holds {len(entries)} images, so no @{number} ({listing})"
            )
        return entries[number]
    if ref is not None:
        wanted = str(reference.parse(ref))  # :latest when REF has no tag, as skopeo has it
        found = [e for e in entries if wanted in {_normalized(t) for t in _tags(e)}]
        if not found:
            raise SourceError(f"{description}: no image is tagged {wanted} ({listing})")
        return found[0]
    if len(entries) != 1:
        raise SourceError(
            f"{description}: holds {len(entries)} images; pick one with "
            f":NAME:TAG or :@N ({listing})"
        )
    return entries[0]


def open_docker_archive(spec: str, context: SourceContext) -> ImageSource:
    path_text, selector = split_local("docker-archive", spec)
    path = Path(local_path("docker-archive", path_text))
    description = f"docker-archive:{spec}"
    ref, number = None, None
    if selector is not None and selector.startswith("@"):
        if not selector[1:].isascii() or not selector[1:].isdigit():
            raise SourceError(f"{description}: {selector!r} is not an index (write @0, @1, ...)")
        number = int(selector[1:])
    elif selector:
        try:
            ref = str(reference.parse(selector))
        except reference.BadReference as error:
            raise SourceError(f"{description}: {error}") from None
        if reference.parse(selector).digest is not None:
            raise SourceError(
                f"{description}: name the image by a tag (docker-archive has no digests)"
            )
    files = TarFiles(path)
    try:
        if (
            ref is None
            and number is None
            and files.exists("oci-layout")
            and files.exists("index.json")
            and len(_oci_index_entries(files)) == 1
        ):
            files.close()
            return _DockerLayoutSource(path, description, None)
        entry = _pick(_entries(files, description), ref, number, description)
        return DockerArchiveSource(path, files, entry, description, ref)
    except BaseException:
        files.close()
        raise


def _oci_index_entries(files: TarFiles) -> list[object]:
    try:
        index = json.loads(read(files, "index.json"))
    except (SourceError, ValueError):
        return []
    manifests = index.get("manifests") if isinstance(index, dict) else None
    return manifests if isinstance(manifests, list) else []


class _DockerLayoutSource(LayoutArchiveSource):
    pass
