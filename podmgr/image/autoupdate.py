# SPDX-License-Identifier: LGPL-2.1-or-later
"""Auto-update: what to check, what the registry has, and what a run did.

An app with ``auto_update = "registry"`` runs an image by tag; podmgr auto-update asks
the tag's registry for the manifest digest it now names (for this host's platform, as a
pull picks it) and, when that differs from the stored image's, pulls it through the one
verified pull (pull.fetch: signatures before any layer is unpacked).  The org.podmgr1
service does the rest (bus/autoupdate.py): it restarts each running pod whose images
changed once, waits for it to come up, and restores the previous images of a pod that
does not.  This module holds the parts that touch neither systemd nor D-Bus.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from podmgr.config import Config
from podmgr.image import pull
from podmgr.image.digest import Digest
from podmgr.image.sources import open_source


class Result(enum.StrEnum):
    """What a run did for one app (the last field of AutoUpdate's reply)."""

    UNCHANGED = "unchanged"  # the registry names the image the app runs
    AVAILABLE = "available"  # a dry run: the registry names another image
    UPDATED = "updated"  # pulled, and the pod restarted on it and came up
    PENDING = "pending"  # pulled; the pod is not running, so it starts on it next time
    ROLLED_BACK = "rolled-back"  # pulled, the pod did not come up: the old image is back
    FAILED = "failed"  # nothing changed (the registry or the pull failed)


@dataclass(frozen=True)
class Target:
    """One app to keep up to date: its pod, its name and its image (a tag)."""

    pod: str
    app: str
    image: str


@dataclass(frozen=True)
class Outcome:
    target: Target
    old: str  # the manifest digest the app's image had before the run ("" if none)
    new: str  # the registry's ("" when it could not be asked)
    result: Result
    reason: str = ""  # why, for rolled-back and failed

    def row(self) -> list[str]:
        """As AutoUpdate replies: pod, app, image, old digest, new digest, result."""
        result = f"{self.result}: {self.reason}" if self.reason else str(self.result)
        return [self.target.pod, self.target.app, self.target.image, self.old, self.new, result]

    def failed(self) -> bool:
        return self.result in (Result.ROLLED_BACK, Result.FAILED)


def by_pod(targets: Iterable[Target]) -> dict[str, list[Target]]:
    """Targets grouped by pod, in order: each pod is restarted once for all of them."""
    grouped: dict[str, list[Target]] = {}
    for target in targets:
        grouped.setdefault(target.pod, []).append(target)
    return grouped


def registry_digest(image: str, config: Config) -> Digest:
    """The digest of the manifest the registry's tag ``image`` names for this host: what
    a pull of it would store.  Reads the manifest only (a dry run pulls nothing)."""
    source = open_source(f"docker://{image}", config)
    try:
        manifest, _kind, _top = pull.resolve_manifest(source)
    finally:
        source.close()
    return Digest.of(manifest)
