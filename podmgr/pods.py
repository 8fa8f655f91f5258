# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pods as systemd sees them: which exist, their state, and jobs on them.

A pod exists when it has a manifest in one of the manifest directories; its state is its
units' state in systemd.  The CLI formats what this module returns.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from podmgr import generator, manifest, names, paths, process
from podmgr.errors import ManifestError, NoSuchPod, SystemdError
from podmgr.systemd import Systemd, UnitState


@dataclass(frozen=True)
class AppStatus:
    name: str
    unit: str
    state: str
    main_pid: int


@dataclass(frozen=True)
class PodStatus:
    name: str
    manifest: str
    unit: str
    slice: str
    state: str  # the pod unit's ActiveState, or "invalid" for a manifest that does not load
    problem: str = ""  # why the manifest is invalid, or that systemd needs a reload
    apps: list[AppStatus] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)


def find(name: str) -> Path:
    """The manifest of pod ``name``, or NoSuchPod."""
    if not names.is_valid_name(name):
        raise NoSuchPod(f"{name!r} is not a valid pod name ({names.NAME_HINT})")
    if path := generator.find_manifests().get(name):
        return path
    dirs = ", ".join(str(d) for d in paths.MANIFEST_DIRS)
    raise NoSuchPod(f"no pod {name!r}: there is no {name}.toml in {dirs} "
                    "(create one; see podmgr.toml(5))")


async def list_pods(systemd: Systemd) -> list[PodStatus]:
    loaded = await systemd.list_units(["pod@*.service"])
    result = []
    for name, path in generator.find_manifests().items():
        unit = loaded.get(names.pod_unit(name))
        state = unit.active_state if unit else "inactive"
        result.append(PodStatus(name, str(path), names.pod_unit(name), names.pod_slice(name),
                                state))
    return result


async def status(systemd: Systemd, name: str) -> PodStatus:
    path = find(name)
    unit = names.pod_unit(name)
    props = await systemd.unit_properties(unit)
    state = UnitState(unit, props["LoadState"], props["ActiveState"], props["SubState"])
    problem = ""
    if props["SourcePath"] != str(path):
        problem = f"systemd has not read {path} yet (run systemctl daemon-reload)"
    elif props["NeedDaemonReload"]:
        problem = f"{path} changed since systemd read it (run systemctl daemon-reload)"
    try:
        pod = manifest.load(path)
    except ManifestError as error:
        return PodStatus(name, str(path), unit, names.pod_slice(name), "invalid",
                         str(error).splitlines()[0])
    loaded = await systemd.list_units([names.app_unit(name, "*")])
    apps = []
    for app in pod.apps:
        app_unit = names.app_unit(name, app)
        app_state = loaded.get(app_unit)
        main_pid = 0
        if app_state and app_state.active_state != "inactive":
            service = await systemd.unit_properties(app_unit, "org.freedesktop.systemd1.Service")
            main_pid = int(service["MainPID"])
        apps.append(AppStatus(app, app_unit, app_state.state if app_state else "inactive (dead)",
                              main_pid))
    return PodStatus(name, str(path), unit, names.pod_slice(name), state.state, problem, apps,
                     pod.pod.annotations)


def _last_words(props: dict[str, object]) -> str:
    """The last line the unit's latest run logged, which is prepare's error if it failed."""
    invocation = props.get("InvocationID")
    if not isinstance(invocation, bytes) or not invocation:
        return ""
    try:
        lines = process.run(["journalctl", "--no-pager", "--output=cat", "--lines=1",
                             f"_SYSTEMD_INVOCATION_ID={invocation.hex()}"]).splitlines()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return f": {lines[-1]}" if lines else ""


async def run_job(systemd: Systemd, verb: str, name: str) -> list[str]:
    """Start, stop or restart pod ``name`` and wait for its apps' jobs too.

    Returns the apps that did not reach their goal; raises SystemdError when the pod's own
    job fails.
    """
    path = find(name)
    method = {"start": "StartUnit", "stop": "StopUnit", "restart": "RestartUnit"}[verb]
    unit = names.pod_unit(name)
    if verb != "stop" and (await systemd.unit_properties(unit))["SourcePath"] != str(path):
        generator.outputs_for(path)  # an invalid manifest has no units: say what is wrong
        raise NoSuchPod(f"systemd has not read {path} yet (run systemctl daemon-reload)")
    await systemd.subscribe()
    result = await systemd.run_job(method, unit)
    if result != "done":
        why = _last_words(await systemd.unit_properties(unit))
        raise SystemdError(f"{unit}: {verb} {result}{why} (see podmgr status {name} and "
                           f"journalctl -u {unit})")
    # The apps' jobs came in the same transaction; wait for those still queued.
    app_units = await systemd.list_units([names.app_unit(name, "*")])
    pending = [job for app in app_units if (job := await systemd.pending_job(app))]
    await systemd.wait_for_jobs(pending)
    want = "inactive" if verb == "stop" else "active"
    after = await systemd.list_units([names.app_unit(name, "*")])
    return sorted(u.name for u in after.values()
                  if u.active_state != want and u.load_state == "loaded")
