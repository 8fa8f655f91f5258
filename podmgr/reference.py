# SPDX-License-Identifier: LGPL-2.1-or-later
"""Image references as Docker and containers/image write them.

``registry.example.org/shop/api:1.4``, ``busybox`` (= docker.io/library/busybox:latest)
and ``...@sha256:<hex>``.  podmgr stores and compares references in their normalized
form, so "busybox" and "docker.io/library/busybox:latest" name the same image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from podmgr.digest import Digest
from podmgr.errors import PodmgrError

DEFAULT_REGISTRY = "docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9-]+)(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?"
                     r"|\[[0-9a-fA-F:]+\](?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


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

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse(text: str) -> Reference:
    """Parse and normalize; a reference with neither tag nor digest gets ":latest"."""
    hint = ' (write it as registry.example.org/repo:tag or repo@sha256:...)'
    rest, _, digest_text = text.partition("@")
    digest = None
    if digest_text:
        try:
            digest = Digest(digest_text)
        except PodmgrError:
            raise BadReference(f"{text!r}: {digest_text!r} is not a digest{hint}") from None
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise BadReference(f"{text!r}: {tag!r} is not a valid tag{hint}")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost" or
                      first.startswith("[")):
        registry, path = first, remainder
        if not _DOMAIN.fullmatch(registry):
            raise BadReference(f"{text!r}: {registry!r} is not a registry host{hint}")
    else:
        registry, path = DEFAULT_REGISTRY, rest
        if "/" not in path:
            path = f"library/{path}"
    if not _PATH.fullmatch(path):
        raise BadReference(f"{text!r}: {path!r} is not a repository name (use lower-case "
                           f"letters, digits and separators){hint}")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, path, tag, digest)


def matches_prefix(name: str, prefix: str) -> bool:
    """Whether image name ``name`` (registry/repository) lies under ``prefix``, by whole
    path components, as trust and policy prefixes are matched."""
    prefix = prefix.rstrip("/")
    return name == prefix or name.startswith(prefix + "/")
