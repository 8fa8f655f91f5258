# SPDX-License-Identifier: LGPL-2.1-or-later
"""The prepare plan: what prepare does for one pod, decided by the generator.

The generator writes it as JSON beside the pod's drop-in and names it in the drop-in
(Environment=PODMGR_PLAN=), so prepare sets up exactly what the units were generated
for — the manifest as systemd last read it — and starts without parsing TOML or
importing the manifest machinery (that import alone would double a pod's start time).
"""

from __future__ import annotations

import json
from typing import NotRequired, TypedDict

from podmgr import names, paths
from podmgr.generator.resolve import ResolvedApp
from podmgr.manifest.model import Manifest
from podmgr.manifest.schema import Isolation, Ready, VolumeType

FILE = "podmgr-plan.json"  # in the pod unit's drop-in directory

# Mount points systemd needs in an app's root for MountAPIVFS=, PrivateDevices= and the
# read-only tmpfs dirs; made before a read-only rootfs becomes read-only.
API_DIRS = ("proc", "sys", "dev", "tmp", "var/tmp", "run")


class VolumePlan(TypedDict):
    name: str
    type: str  # schema.VolumeType
    source: str | None  # type "host"
    mode: int
    uid: int
    gid: int
    size: int | None  # type "tmpfs"


class AppPlan(TypedDict):
    name: str
    lowerdirs: list[str]  # the overlay's lower layers, top-most first
    image: str | None  # with its manifest digest: prepare checks it is still stored
    image_digest: str | None
    read_only: bool
    environment_files: list[str]  # host paths, copied for EnvironmentFile= (prepare.py)
    mount_dirs: list[str]  # relative to the app's root
    mount_files: list[str]


class NetworkPlan(TypedDict):
    mode: str  # schema.NetworkMode
    networks: list[str]  # the networks a bridged pod joins, the default route's first
    ports: list[str]  # values.Port as written: [HOST_IP:]HOST_PORT:POD_PORT/PROTOCOL
    dns: list[str]
    dns_search: list[str]
    hosts: dict[str, str]


class Plan(TypedDict):
    pod: str
    # schema.Isolation; absent for "container" (and in plans of older generators)
    isolation: NotRequired[str]
    hostname: str
    network: NetworkPlan
    volumes: list[VolumePlan]
    apps: list[AppPlan]
    uids: list[int]  # made known to the host if it does not know them (userdb.py)
    gids: list[int]


def build(manifest: Manifest, apps: dict[str, ResolvedApp]) -> Plan:
    volumes: list[VolumePlan] = [
        {
            "name": v.name,
            "type": v.type.value,
            "source": v.source,
            "mode": 0o755 if v.mode is None else v.mode,
            "uid": v.uid or 0,
            "gid": v.gid or 0,
            "size": v.size if v.type is VolumeType.TMPFS else None,
        }
        for v in manifest.volumes.values()
    ]
    app_plans: list[AppPlan] = []
    network = manifest.network
    for app in manifest.apps.values():
        resolved = apps[app.name]
        files = [f"etc/{name}" for name in paths.POD_ETC_FILES]
        if app.ready is Ready.NOTIFY:
            files.append("run/systemd/notify")
        app_plans.append(
            {
                "name": app.name,
                "lowerdirs": list(resolved.lowerdirs),
                "image": resolved.image,
                "image_digest": resolved.image_digest,
                "read_only": app.read_only,
                "environment_files": list(app.environment_files),
                "mount_dirs": [*API_DIRS, *(m.path.lstrip("/") for m in app.mounts)],
                "mount_files": files,
            }
        )
    plan: Plan = {
        "pod": manifest.name,
        "hostname": manifest.hostname,
        "network": {
            "mode": network.kind.value,
            "networks": list(network.joined),
            "ports": [str(port) for port in network.ports],
            "dns": list(network.dns),
            "dns_search": list(network.dns_search),
            "hosts": dict(network.hosts),
        },
        "volumes": volumes,
        "apps": app_plans,
        "uids": sorted({a.creds.uid for a in apps.values()}),
        "gids": sorted({a.creds.gid for a in apps.values()}),
    }
    if manifest.pod.isolation is not Isolation.CONTAINER:
        plan["isolation"] = manifest.pod.isolation.value
    return plan


def render(plan: Plan) -> str:
    # One line: indent= would switch json to its pure-Python encoder, and the generator
    # renders a plan per pod at every daemon-reload.
    return json.dumps(plan) + "\n"


def path_in(output_dir: str, pod: str) -> str:
    return f"{output_dir}/{names.pod_unit(pod)}.d/{FILE}"
