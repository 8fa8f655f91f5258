# SPDX-License-Identifier: LGPL-2.1-or-later
"""Where podmgr keeps things: the manifest directories, the runtime and state
directories, the image store and the files of a prepared pod."""

from __future__ import annotations

import functools
import json
import urllib.parse
from pathlib import Path
from typing import Any

# Manifest directories, highest priority first: a manifest in an earlier directory masks
# one of the same name in a later one, as systemd does for unit files.
MANIFEST_DIRS = (
    Path("/etc/podmgr/pods"),
    Path("/run/podmgr/pods"),
    Path("/usr/lib/podmgr/pods"),
)

RUN_DIR = Path("/run/podmgr")
STATE_DIR = Path("/var/lib/podmgr")
VOLUMES_DIR = STATE_DIR / "volumes"

# Runtime state of prepared pods: /run/podmgr/pods/POD/ beside the runtime manifests
# (/run/podmgr/pods/POD.toml), which are files and so never collide with it.
RUNTIME_PODS_DIR = RUN_DIR / "pods"

# The program pod units run for what needs no service: release, health checks' bookkeeping.
POD_HELPER = "/usr/lib/podmgr/podmgr-pod"


PLAN = "plan.json"  # under a prepared pod's runtime dir (PodRuntime.plan)

# Files of a pod, under its runtime dir, that every app sees read-only in its /etc.
POD_ETC_FILES = ("hosts", "hostname", "resolv.conf")


class PodRuntime:
    """The paths of one prepared pod under /run/podmgr/pods/POD/."""

    def __init__(self, pod: str, base: Path = RUNTIME_PODS_DIR) -> None:
        self.pod = pod
        self.dir = base / pod

    # Made when first asked for: the generator makes one of these for each pod, and asks
    # for few of them (joining a Path costs more than the rest of a unit's line).
    @functools.cached_property
    def netns(self) -> Path:
        return self.dir.joinpath("ns", "net")

    @functools.cached_property
    def ipcns(self) -> Path:
        return self.dir.joinpath("ns", "ipc")

    @functools.cached_property
    def etc(self) -> Path:
        return self.dir / "etc"

    @functools.cached_property
    def plan(self) -> Path:
        """Written by prepare: the pod is prepared while it exists."""
        return self.dir / PLAN

    def read_plan(self) -> Any:
        """The plan the pod was prepared with, as prepare wrote it (generator/plan.py's
        Plan; typed by the caller, as this module is below the generator).  Raises
        OSError when the pod is not prepared, ValueError when the file is not JSON."""
        return json.loads(self.plan.read_text())

    def app_dir(self, app: str) -> Path:
        return self.dir.joinpath("apps", app)

    def rootfs(self, app: str) -> Path:
        return self.dir.joinpath("apps", app, "rootfs")

    def health_passed(self, app: str) -> Path:
        """Touched by each passing health check since the app's start (runtime/health.py)."""
        return self.app_dir(app) / "health-passed"

    def health_failures(self, app: str) -> Path:
        """The failed checks counted since the last pass (runtime/health.py)."""
        return self.app_dir(app) / "health-failures"

    def environment_file(self, app: str, index: int) -> Path:
        """An app's environment file ``index`` (from 0) as prepare checked and copied it."""
        return self.app_dir(app) / "environment" / str(index)

    def volume(self, volume: str) -> Path:
        """A tmpfs volume, or a host volume's source as prepare checked and bound it."""
        return self.dir.joinpath("volumes", volume)


def prepared_pods(base: Path = RUNTIME_PODS_DIR) -> list[PodRuntime]:
    """The runtime of each prepared pod: each one with a plan."""
    return [PodRuntime(plan.parent.name, base) for plan in sorted(base.glob(f"*/{PLAN}"))]


def empty_volume(pod: str, volume: str, base: Path = VOLUMES_DIR) -> Path:
    return base.joinpath(pod, volume)


def image_record(name: str, store: Path = STATE_DIR) -> Path:
    """The record of image ``name`` (a normalized reference) in the store."""
    return store / "images" / (urllib.parse.quote(name, safe="") + ".json")


def blob(digest: str, store: Path = STATE_DIR) -> Path:
    algorithm, _, hex_digest = digest.partition(":")
    return store / "blobs" / algorithm / hex_digest
