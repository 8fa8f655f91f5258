# SPDX-License-Identifier: LGPL-2.1-or-later
"""Image references as Docker and containers/image write them.

``registry.example.org/shop/api:1.4``, ``busybox`` (= docker.io/library/busybox) and
``...@sha256:<hex>``, parsed as containers/image's ParseNormalizedNamed does
(docker/reference in containers/image): a first component with a dot or a port, or
``localhost``, is the registry, otherwise the name is on docker.io, and a single name
there is in ``library/``.  podmgr stores and compares references in this normalized form.

Two readings: ``parse_exact`` keeps a reference as written (a signature's identity: one
without a tag or digest names no image, and containers/image refuses it), ``parse`` adds
the default tag ":latest" to a bare name, as `podman pull busybox` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from podmgr.errors import PodmgrError
from podmgr.image.digest import Digest
from podmgr.names import shown

DEFAULT_REGISTRY = "docker.io"
LEGACY_REGISTRY = "index.docker.io"  # written as docker.io, as containers/image does
OFFICIAL = "library"
DEFAULT_TAG = "latest"
NAME_MAX = 255  # the longest registry/repository (NameTotalLengthMax in docker/reference)
TEXT_MAX = 1024  # no longer text is even looked at: name, tag and digest fit in far less

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"{_HOST_PART}(?:\.{_HOST_PART})*(?::[0-9]+)?")
# Go's \w is ASCII only; Python's would take any letter.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
_HINT = " (write it as registry.example.org/repo:tag or registry.example.org/repo@sha256:...)"


class BadReference(PodmgrError):
    code = "BadReference"


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None
    digest: Digest | None

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def name_only(self) -> bool:
        """Neither tag nor digest: names a repository, not an image."""
        return self.tag is None and self.digest is None

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _split_registry(text: str) -> tuple[str, str]:
    """(registry, the rest): splitDockerDomain's rule."""
    first, slash, rest = text.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        registry, rest = DEFAULT_REGISTRY, text
    else:
        registry = first
    if registry == LEGACY_REGISTRY:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in rest:
        rest = f"{OFFICIAL}/{rest}"
    return registry, rest


def parse_exact(text: str) -> Reference:
    """Parse and normalize, adding nothing: "busybox" stays without a tag."""
    if len(text) > TEXT_MAX:
        raise BadReference(
            f"{shown(text)} is longer than any image reference"
            f" (at most {NAME_MAX} for the name){_HINT}"
        )
    if not text:
        raise BadReference(f"an empty image reference{_HINT}")
    if _IDENTIFIER.fullmatch(text):
        raise BadReference(
            f"{shown(text)}: a 64-digit hex string is an image ID, not a name{_HINT}"
        )
    registry, rest = _split_registry(text)
    rest, at, digest_text = rest.partition("@")
    digest = None
    if at:
        try:
            digest = Digest(digest_text)
        except PodmgrError:
            raise BadReference(
                f"{shown(text)}: {shown(digest_text)} is not a digest{_HINT}"
            ) from None
    path, colon, tag = rest.partition(":")
    if colon and not _TAG.fullmatch(tag):
        raise BadReference(
            f"{shown(text)}: {shown(tag)} is not a valid tag (letters, digits, "
            f"_ . -; at most 128){_HINT}"
        )
    if not _DOMAIN.fullmatch(registry):
        raise BadReference(f"{shown(text)}: {shown(registry)} is not a registry host{_HINT}")
    if path.lower() != path:
        raise BadReference(f"{shown(text)}: the repository name must be lower-case{_HINT}")
    if not _PATH.fullmatch(path):
        raise BadReference(
            f"{shown(text)}: {shown(path)} is not a repository name (use lower-case "
            f"letters, digits and separators){_HINT}"
        )
    if len(registry) + 1 + len(path) > NAME_MAX:
        raise BadReference(f"{shown(text)}: the name is longer than {NAME_MAX} characters")
    return Reference(registry, path, tag if colon else None, digest)


def parse(text: str) -> Reference:
    """Parse and normalize; a reference with neither tag nor digest gets ":latest"."""
    ref = parse_exact(text)
    if ref.name_only:
        return Reference(ref.registry, ref.repository, DEFAULT_TAG, None)
    return ref


def normalize_prefix(text: str) -> str:
    """An image name prefix as the names it matches are written.

    A prefix that starts with a registry host (a dot or a port in its first component, or
    localhost) is taken as written, as containers-policy.json(5) takes its scopes: so
    docker.io/bitnami is every image under docker.io/bitnami.  One without a host is a
    short name on docker.io, read as image names are: testing/manifest is
    docker.io/testing/manifest and busybox is docker.io/library/busybox."""
    hint = (
        " (write a registry host, optionally with a repository path, like "
        "registry.example.org/shop; or use --root for every image)"
    )
    clean = text.rstrip("/")
    if not clean or len(clean) > NAME_MAX:
        raise BadReference(f"{shown(text)} is not an image name prefix{hint}")
    if "@" in clean or ":" in clean.partition("/")[2]:
        raise BadReference(
            f"{shown(text)}: a prefix names repositories, without a tag or digest{hint}"
        )
    first, _, rest = clean.partition("/")
    if "." in first or ":" in first or first == "localhost":
        registry = DEFAULT_REGISTRY if first == LEGACY_REGISTRY else first
        path = rest
    else:
        registry, path = _split_registry(clean)
    if not _DOMAIN.fullmatch(registry):
        raise BadReference(f"{shown(text)}: {shown(registry)} is not a registry host{hint}")
    if path and not _PATH.fullmatch(path):
        raise BadReference(
            f"{shown(text)} is not a repository path (lower-case letters, "
            f"digits and separators, by whole components){hint}"
        )
    return f"{registry}/{path}" if path else registry


def matches_prefix(name: str, prefix: str) -> bool:
    """Whether image name ``name`` (registry/repository) lies under ``prefix``, by whole
    path components, as trust and policy prefixes are matched.  The prefix is normalized
    first (a short one is on docker.io), so podmgr.toml's prefixes read as trust's do."""
    try:
        prefix = normalize_prefix(prefix)
    except BadReference:
        return False  # matches no name; config and trust say so where they are read
    return name == prefix or name.startswith(prefix + "/")
