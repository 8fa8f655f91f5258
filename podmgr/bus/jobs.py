# SPDX-License-Identifier: LGPL-2.1-or-later
"""Jobs on pods: start, stop and restart through systemd, and why one did not succeed.

A pod's state is its units' state in systemd.  The org.podmgr1 service runs jobs through
here.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

from podmgr import names, paths, process
from podmgr.bus.systemd import MANAGER, MANAGER_PATH, SERVICE, UNIT, Systemd, UnitState
from podmgr.errors import NoSuchPod, SystemdError
from podmgr.manifest import lookup


def _last_words(props: dict[str, object]) -> str:
    """Why the unit's latest run failed, as its processes logged it: prepare's error if
    it failed (busctl, which asks the service to prepare, reports it as "Call failed:
    ..."), else the run's last line.  Blocking: called in a thread."""
    invocation = props.get("InvocationID")
    if not isinstance(invocation, bytes) or not invocation:
        return ""
    # journald reads the run's output asynchronously: on a loaded machine the failed job
    # can end before prepare's error is stored, so ask again for up to a second.
    for _ in range(20):
        try:
            lines = process.run(
                [
                    "journalctl",
                    "--no-pager",
                    "--output=cat",
                    "--lines=50",
                    f"_SYSTEMD_INVOCATION_ID={invocation.hex()}",
                ]
            ).splitlines()
        except (OSError, subprocess.CalledProcessError):
            return ""
        if failed := [line for line in lines if line.startswith("Call failed: ")]:
            return f": {failed[-1].removeprefix('Call failed: ')}"
        time.sleep(0.05)
    return f": {lines[-1]}" if lines else ""


# systemd's active states of a unit that has, or may soon have, processes.
_RUNNING = ("active", "activating", "deactivating", "reloading", "refreshing")


async def stop_apps(systemd: Systemd, name: str) -> None:
    """Stop every app unit of pod ``name`` that runs, whatever the manifest now says.

    An app stops with its pod because it is BindsTo= the pod; but that dependency lives in
    the app's unit file, and an app removed from the manifest loses its file at the next
    daemon-reload while systemd keeps the running unit loaded ("not-found"), bound to
    nothing.  The only record of which apps a pod runs that a reload cannot rewrite is
    systemd's own list of loaded units, so releasing (and preparing) a pod stops those of
    its units that still run before anything is unmounted under them.  An app is never
    ordered against the pod's stop job once it has lost its unit file, so these stop jobs
    cannot wait for the job that runs this.
    """
    running = [
        unit
        for unit, state in (await systemd.list_units([names.app_unit(name, "*")])).items()
        if state.active_state in _RUNNING
    ]
    if not running:
        return
    await systemd.subscribe()
    jobs = [
        str(job)
        for unit in running
        for [job] in [
            await systemd.call(MANAGER_PATH, MANAGER, "StopUnit", "ss", [unit, "replace"])
        ]
    ]
    await systemd.wait_for_jobs(jobs)


async def run_job(systemd: Systemd, verb: str, name: str) -> list[str]:
    """Start, stop or restart pod ``name`` and wait for its apps' jobs too.

    Returns a line for each app that did not reach its goal, saying why; raises
    SystemdError, saying why, when the pod's own job fails.
    """
    path = lookup.find_pod(name)
    method = {"start": "StartUnit", "stop": "StopUnit", "restart": "RestartUnit"}[verb]
    unit = names.pod_unit(name)
    if verb != "stop" and await systemd.unit_property(unit, UNIT, "SourcePath") != str(path):
        from podmgr.generator import generator  # noqa: PLC0415 -- only on this rare path

        generator.outputs_for(path)  # an invalid manifest has no units: say what is wrong
        raise NoSuchPod(f"systemd has not read {path} yet (run systemctl daemon-reload)")
    await systemd.subscribe()
    began = time.monotonic_ns() // 1000  # systemd's timestamps: CLOCK_MONOTONIC in µs
    job_result = await systemd.run_job(method, unit)
    if job_result != "done":
        raise SystemdError(await _pod_failed(systemd, name, verb, job_result, began))
    if verb == "stop":
        await stop_apps(systemd, name)  # a stopped pod's release may not have run
    # The apps' jobs came in the same transaction; wait for those still queued.
    app_units = await systemd.list_units([names.app_unit(name, "*")])
    pending = [job for app in app_units if (job := await systemd.pending_job(app))]
    await systemd.wait_for_jobs(pending)
    # A stopped app may be failed: it has no processes either way.
    goal = ("inactive", "failed") if verb == "stop" else ("active",)
    after = await systemd.list_units([names.app_unit(name, "*")])
    return [
        await _app_failed(systemd, name, state, verb, began)
        for _, state in sorted(after.items())
        if state.active_state not in goal and state.load_state == "loaded"
    ]


async def _hit_start_limit(systemd: Systemd, unit: str, result: object, began: int) -> bool:
    """Whether systemd refused to start ``unit`` for its start limit (StartLimitBurst=).

    Result= says "start-limit-hit" only when the run before succeeded: systemd keeps the
    first failure's result (a service that failed with exit-code until it hit the limit
    still says exit-code).  A start job that fails without the unit ever leaving its
    inactive state since ``began`` was refused before anything ran; for a loaded service
    whose assertions hold, the start limit is the only such refusal (unit_start() in
    systemd's src/core/unit.c; a failed condition is no failure)."""
    if result == "start-limit-hit":
        return True
    props = await systemd.unit_properties(unit)
    return (
        props.get("ActiveState") == "failed"
        and props.get("LoadState") == "loaded"
        and props.get("AssertResult") is not False
        and int(props.get("InactiveExitTimestampMonotonic", 0)) < began
    )


def _start_limit_hit(unit: str, what: str) -> str:
    return (
        f"{what} hit systemd's start limit (restarted too often); run systemctl "
        f"reset-failed {unit}, then start again"
    )


async def _pod_failed(systemd: Systemd, name: str, verb: str, job_result: str, began: int) -> str:
    """Why the pod's job ended with ``job_result``, as `systemctl status` would say it:
    the unit's Result= (exit-code, timeout, start-limit-hit, resources ...)."""
    unit = names.pod_unit(name)
    result = (await systemd.unit_properties(unit, SERVICE)).get("Result")
    if (
        verb != "stop"
        and job_result == "failed"
        and await _hit_start_limit(systemd, unit, result, began)
    ):
        return _start_limit_hit(unit, f"pod {name}")
    # Result= is the latest run's: a job canceled or failed for a dependency ran nothing.
    with_result = (
        f" with result '{result}'"
        if job_result in ("failed", "timeout")
        and isinstance(result, str)
        and result not in ("success", job_result)
        else ""
    )
    # journalctl blocks: in a thread, so the service's other calls go on meanwhile.
    why = await asyncio.to_thread(_last_words, await systemd.unit_properties(unit))
    return (
        f"{unit}: {verb} {job_result}{with_result}{why} (see podmgr status {name} and "
        f"journalctl -u {unit})"
    )


def _prepared_without(name: str, unit: str) -> bool:
    """Whether pod ``name`` runs as prepared for a manifest that lacked the app of
    ``unit``: an app added since has no root file system until the pod restarts."""
    try:
        plan = paths.PodRuntime(name).read_plan()
    except (OSError, ValueError):
        return False
    return unit not in {names.app_unit(name, app["name"]) for app in plan["apps"]}


async def _app_failed(systemd: Systemd, name: str, state: UnitState, verb: str, began: int) -> str:
    """Why an app did not reach its goal, in one line."""
    if verb == "start" and _prepared_without(name, state.name):
        return (
            f"{state.name} did not start: it was added to the manifest after pod {name} "
            f"started (restart the pod: podmgr restart {name})"
        )
    result = (await systemd.unit_properties(state.name, SERVICE)).get("Result")
    if verb != "stop" and await _hit_start_limit(systemd, state.name, result, began):
        return _start_limit_hit(state.name, state.name)
    why = (
        f"it failed with result '{result}'"
        if isinstance(result, str) and result != "success"
        else f"it is {state.state}"
    )
    return f"{state.name} did not {verb}: {why} (see journalctl -u {state.name})"
