# SPDX-License-Identifier: LGPL-2.1-or-later
"""Image manifests, indexes and configs: OCI image spec v1 and Docker v2 schema 2.

Parsed strictly into frozen dataclasses at the edge; nothing past this module sees raw
JSON.  Spec: https://github.com/opencontainers/image-spec (manifest.md, image-index.md,
config.md, descriptor.md); Docker's are the same shapes under other media types.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from typing import Any

from podmgr.errors import PodmgrError
from podmgr.image.digest import Digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)

# Layer media types -> compression ("" for none).
LAYERS = {
    "application/vnd.oci.image.layer.v1.tar": "",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "",
}

# Manifests, indexes and configs are small; anything bigger is not one.
MAX_METADATA = 4 << 20


class BadImage(PodmgrError):
    code = "BadImage"


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageIndex:
    media_type: str
    manifests: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config podmgr uses."""

    platform: Platform
    diff_ids: tuple[Digest, ...]
    user: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    working_dir: str


def host_platform() -> Platform:
    machine = platform.machine()
    arch = {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "arm",
        "i686": "386",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(machine, machine)
    return Platform("linux", arch)


def _json(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_METADATA:
        raise BadImage(f"{what}: larger than {MAX_METADATA} bytes, which no {what} is")
    try:
        value = json.loads(data)
    except ValueError as error:
        raise BadImage(f"{what}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise BadImage(f"{what}: not a JSON object")
    return value


def _get(obj: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadImage(f"{what}: {key} is missing or not a {kind.__name__}")
    return value


def _descriptor(obj: object, what: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise BadImage(f"{what}: a descriptor is not a JSON object")
    digest_text = _get(obj, "digest", str, what)
    try:
        digest = Digest(digest_text)
    except PodmgrError:
        raise BadImage(f"{what}: {digest_text!r} is not a supported digest") from None
    size = _get(obj, "size", int, what)
    if size < 0:
        raise BadImage(f"{what}: negative size")
    plat = obj.get("platform")
    parsed_platform = None
    if isinstance(plat, dict):
        parsed_platform = Platform(
            str(plat.get("os", "")), str(plat.get("architecture", "")), str(plat.get("variant", ""))
        )
    annotations = obj.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise BadImage(f"{what}: annotations are not a JSON object")
    return Descriptor(
        _get(obj, "mediaType", str, what),
        digest,
        size,
        parsed_platform,
        tuple(sorted((str(k), str(v)) for k, v in annotations.items())),
    )


def media_type_of(data: bytes, hint: str = "") -> str:
    """The media type of a manifest or index: its mediaType field, else the transport's."""
    obj = _json(data, "manifest")
    if obj.get("schemaVersion") == 1 or hint in DOCKER_SCHEMA1:
        raise BadImage(
            "manifest: Docker schema 1 is not supported (push the image again with "
            "a current tool, e.g. skopeo copy --format v2s2)"
        )
    kind = obj.get("mediaType") or hint
    if not kind:
        kind = OCI_INDEX if "manifests" in obj else OCI_MANIFEST
    if kind not in MANIFESTS + INDEXES:
        raise BadImage(f"manifest: media type {kind!r} is not an image manifest or index")
    return str(kind)


def parse_manifest(data: bytes, hint: str = "") -> ImageManifest:
    kind = media_type_of(data, hint)
    if kind in INDEXES:
        raise BadImage("manifest: expected an image manifest, got an index")
    obj = _json(data, "manifest")
    layers = _get(obj, "layers", list, "manifest")
    parsed = ImageManifest(
        kind,
        _descriptor(obj.get("config"), "manifest config"),
        tuple(_descriptor(layer, "manifest layer") for layer in layers),
    )
    if parsed.config.media_type not in (OCI_CONFIG, DOCKER_CONFIG):
        raise BadImage(
            f"manifest: config media type {parsed.config.media_type!r} is not an "
            "image config (is this an artifact, not an image?)"
        )
    for layer in parsed.layers:
        if layer.media_type not in LAYERS:
            raise BadImage(
                f"manifest: layer {layer.digest} has media type "
                f"{layer.media_type!r}, which podmgr does not unpack"
            )
    return parsed


def parse_index(data: bytes, hint: str = "") -> ImageIndex:
    kind = media_type_of(data, hint)
    obj = _json(data, "index")
    entries = _get(obj, "manifests", list, "index")
    return ImageIndex(kind, tuple(_descriptor(entry, "index entry") for entry in entries))


def choose(index: ImageIndex, want: Platform | None = None) -> Descriptor:
    """The index entry for ``want`` (default: this host), as a container engine picks it."""
    want = want or host_platform()
    candidates = [d for d in index.manifests if d.media_type in MANIFESTS]
    for entry in candidates:
        if entry.platform and (entry.platform.os, entry.platform.architecture) == (
            want.os,
            want.architecture,
        ):
            return entry
    if len(candidates) == 1 and candidates[0].platform is None:
        return candidates[0]  # an OCI layout's index of one image, without platforms
    have = ", ".join(str(d.platform) for d in candidates if d.platform) or "none"
    raise BadImage(f"index: no image for {want} (it has: {have})")


def parse_config(data: bytes) -> ImageConfig:
    """The parts of an image config podmgr uses, each of the type the spec gives it; what
    they say is checked where it is used (rootfs.image_defaults())."""
    try:
        obj = _json(data, "image config")
    except RecursionError:  # json recurses into nested arrays and objects
        raise BadImage("image config: nested too deeply to be an image config") from None
    rootfs = obj.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise BadImage('image config: rootfs.type is not "layers"')
    try:
        diff_ids = tuple(Digest(d) for d in _get(rootfs, "diff_ids", list, "image config"))
    except (PodmgrError, TypeError):
        raise BadImage("image config: rootfs.diff_ids holds something not a digest") from None
    run = obj.get("config") or {}
    if not isinstance(run, dict):
        raise BadImage("image config: config is not a JSON object")

    def strings(key: str) -> tuple[str, ...]:
        value = run.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadImage(f"image config: config.{key} is not a list of strings")
        return tuple(value)

    def string(key: str) -> str:
        value = run.get(key) or ""
        if not isinstance(value, str):
            raise BadImage(f"image config: config.{key} is not a string")
        return value

    return ImageConfig(
        Platform(
            str(obj.get("os", "")), str(obj.get("architecture", "")), str(obj.get("variant", ""))
        ),
        diff_ids,
        string("User"),
        strings("Entrypoint"),
        strings("Cmd"),
        strings("Env"),
        string("WorkingDir"),
    )
