# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pods and systemd: which pods exist, and jobs on them.

A pod exists when it has a manifest in one of the manifest directories; its state is its
units' state in systemd.  The org.podmgr1 service runs jobs through here.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from podmgr import lookup, names, paths, process
from podmgr.errors import NoSuchPod, SystemdError
from podmgr.systemd import Systemd


def find(name: str) -> Path:
    """The manifest of pod ``name``, or NoSuchPod."""
    if not names.is_valid_name(name):
        raise NoSuchPod(f"{name!r} is not a valid pod name ({names.NAME_HINT})")
    if path := lookup.find_manifests().get(name):
        return path
    dirs = ", ".join(str(d) for d in paths.MANIFEST_DIRS)
    raise NoSuchPod(f"no pod {name!r}: there is no {name}.toml in {dirs} "
                    "(create one; see podmgr.toml(5))")


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
    # busctl, which asks the service to prepare, reports failures as "Call failed: ...".
    return f": {lines[-1].removeprefix('Call failed: ')}" if lines else ""


async def run_job(systemd: Systemd, verb: str, name: str) -> list[str]:
    """Start, stop or restart pod ``name`` and wait for its apps' jobs too.

    Returns the apps that did not reach their goal; raises SystemdError when the pod's own
    job fails.
    """
    path = find(name)
    method = {"start": "StartUnit", "stop": "StopUnit", "restart": "RestartUnit"}[verb]
    unit = names.pod_unit(name)
    if verb != "stop" and (await systemd.unit_properties(unit))["SourcePath"] != str(path):
        from podmgr import generator  # noqa: PLC0415 -- only on this rare path

        generator.outputs_for(path)  # an invalid manifest has no units: say what is wrong
        raise NoSuchPod(f"systemd has not read {path} yet (run systemctl daemon-reload)")
    await systemd.subscribe()
    result = await systemd.run_job(method, unit)
    if result != "done":
        # journalctl blocks: in a thread, so the service's other calls go on meanwhile.
        why = await asyncio.to_thread(_last_words, await systemd.unit_properties(unit))
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
