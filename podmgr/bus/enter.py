# SPDX-License-Identifier: LGPL-2.1-or-later
"""EnterApp: a command inside a running app, with no more privilege than the app.

The command runs as a transient service unit (StartTransientUnit, as ``systemd-run``
does) in the pod's slice, so the pod's limits count it.  Its execution properties are
copied from the app's unit as systemd has it loaded now (its generated unit plus any
drop-in an administrator added), not from the manifest: the root directory (the app's
live overlay), the pod's network and IPC namespaces, the mounts, user and group, the
capability bounding set, NoNewPrivileges=, the system call filter, the environment and
the app's own resource limits.  COPIED lists them; tests/test_enter.py fails when the
generator sets a key that is not there.

The caller's file descriptors become the unit's standard input, output and error
(StandardInputFileDescriptor= ...); systemd makes a terminal among them the process's
controlling terminal, so ^C reaches it.  The unit is referenced by this service's bus
connection (AddRef=) so that it stays loaded, with its exit status, until it is read;
then it is unreferenced and, with CollectMode=inactive-or-failed, unloaded.  If the
caller leaves the bus before the command ends, the unit is stopped.

rkt's enter ran the command with every capability, no seccomp filter and in no cgroup
(CVE-2019-10144, -10145, -10147); here it is what systemd runs the app with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from podmgr import names
from podmgr.bus.dbuslib import Message, MessageType, Variant
from podmgr.bus.systemd import MANAGER, MANAGER_PATH, PROPERTIES, SERVICE, SYSTEMD, UNIT, Systemd
from podmgr.errors import NoSuchApp, NotRunning, SystemdError

log = logging.getLogger(__name__)

DEFAULT_COMMAND = ("/bin/sh",)

# org.freedesktop.systemd1.Service properties copied from the app's loaded unit, with
# their D-Bus signature; each is also a transient property StartTransientUnit takes.
COPIED: dict[str, str] = {
    # Root file system, namespaces, mounts.
    "RootDirectory": "s",
    "MountAPIVFS": "b",
    "NetworkNamespacePath": "s",
    "IPCNamespacePath": "s",
    "BindPaths": "a(ssbt)",
    "BindReadOnlyPaths": "a(ssbt)",
    "TemporaryFileSystem": "a(ss)",
    "ReadOnlyPaths": "as",
    "ReadWritePaths": "as",
    "InaccessiblePaths": "as",
    # Isolators.
    "PrivateDevices": "b",
    "PrivateUsers": "b",
    "ProtectKernelTunables": "b",
    "ProtectKernelModules": "b",
    "ProtectKernelLogs": "b",
    "ProtectControlGroups": "b",
    "ProtectClock": "b",
    "ProtectHostname": "b",
    "ProtectSystem": "s",
    "ProtectHome": "s",
    "CapabilityBoundingSet": "t",
    "AmbientCapabilities": "t",
    "NoNewPrivileges": "b",
    "LockPersonality": "b",
    "RestrictRealtime": "b",
    "RestrictSUIDSGID": "b",
    "MemoryDenyWriteExecute": "b",
    "SystemCallFilter": "(bas)",
    "SystemCallArchitectures": "as",
    # Credentials and environment.
    "User": "s",
    "Group": "s",
    "SupplementaryGroups": "as",
    "WorkingDirectory": "s",
    "Environment": "as",
    "EnvironmentFiles": "a(sb)",
    # The app's own limits: the entered command gets at most as much as the app, and the
    # pod's slice counts both.
    "MemoryMax": "t",
    "MemoryHigh": "t",
    "TasksMax": "t",
    "CPUWeight": "t",
    "CPUQuotaPerSecUSec": "t",
    "IOWeight": "t",
}

# Where a unit file's key and its D-Bus property have different names.
PROPERTY_OF_KEY = {"EnvironmentFile": "EnvironmentFiles", "CPUQuota": "CPUQuotaPerSecUSec"}

# Values systemd reports for "not set", which its transient setters do not all take back.
_UNSET = 2**64 - 1
_UNSET_WHEN = {"CPUWeight", "IOWeight", "MemoryHigh", "MemoryMax", "CPUQuotaPerSecUSec"}

# ExecMainCode: how the main process ended (waitid(2)'s si_code).
CLD_EXITED = 1


def exit_status(code: int, status: int) -> int:
    """The exit status a shell reports for a process that ended so: its own, or 128 plus
    the signal that killed it."""
    return status if code == CLD_EXITED else 128 + status


def transient_properties(
    service: Mapping[str, Any],
    pod: str,
    app: str,
    command: Sequence[str],
    term: str,
) -> list[tuple[str, Variant]]:
    """The properties of the transient unit that runs ``command`` in ``app``:
    ``service`` holds the app unit's Service properties as systemd gave them; the
    standard streams are the message's file descriptors 0, 1 and 2."""
    properties = [
        ("Description", Variant("s", f"podmgr enter {pod} --app {app}")),
        ("Slice", Variant("s", names.pod_slice(pod))),
        ("Type", Variant("s", "exec")),
        ("CollectMode", Variant("s", "inactive-or-failed")),
        ("AddRef", Variant("b", True)),
        # Stopped (the caller left): a shell is told as when its terminal hangs up.
        ("SendSIGHUP", Variant("b", True)),
        # The words as given: systemd would replace $NAME in them otherwise.
        ("ExecStartEx", Variant("a(sasas)", [[command[0], list(command), ["no-env-expand"]]])),
        ("StandardInputFileDescriptor", Variant("h", 0)),
        ("StandardOutputFileDescriptor", Variant("h", 1)),
        ("StandardErrorFileDescriptor", Variant("h", 2)),
    ]
    for name, signature in COPIED.items():
        if name not in service:
            raise SystemdError(f"systemd does not report {name} of {names.app_unit(pod, app)}")
        value = service[name]
        if name in _UNSET_WHEN and value == _UNSET:
            continue
        if name == "Environment" and term:
            value = [*value, f"TERM={term}"]
        properties.append((name, Variant(signature, value)))
    return properties


async def enter(
    systemd: Systemd,
    caller: str,
    pod: str,
    app: str,
    command: Sequence[str],
    term: str,
    fds: Sequence[int],
) -> int:
    """Run ``command`` in the running ``app`` of ``pod`` with ``fds`` as its standard
    streams (closed here once systemd has them, each once: they may repeat); its exit
    status when it ends."""
    app_unit = names.app_unit(pod, app)
    try:
        state = await systemd.unit_properties(app_unit)
        if state["LoadState"] != "loaded":
            raise NoSuchApp(
                f"pod {pod} has no app {app} loaded ({app_unit} is {state['LoadState']}; "
                f"podmgr status {pod} lists its apps)"
            )
        if state["ActiveState"] != "active":
            raise NotRunning(
                f"pod {pod}: app {app} is not running ({app_unit} is "
                f"{state['ActiveState']}; start it with podmgr start {pod})"
            )
        service = await systemd.unit_properties(app_unit, SERVICE)
        unit = names.enter_unit(pod, app, secrets.token_hex(4))
        properties = transient_properties(service, pod, app, command or DEFAULT_COMMAND, term)
        await systemd.subscribe()
        [job] = await systemd.call(
            MANAGER_PATH,
            MANAGER,
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            [unit, "fail", [list(p) for p in properties], []],
            unix_fds=list(fds),
        )
    finally:
        for fd in set(fds):
            os.close(fd)  # systemd has its own now; the caller keeps its end
    [path] = await systemd.call(MANAGER_PATH, MANAGER, "GetUnit", "s", [unit])
    try:
        result = (await systemd.wait_for_jobs([job]))[job].result
        await _wait_until_done(systemd, path, caller)
        main = await systemd.call(path, PROPERTIES, "GetAll", "s", [SERVICE])
        code, status = main[0]["ExecMainCode"].value, main[0]["ExecMainStatus"].value
        if result != "done":
            raise SystemdError(
                f"pod {pod}: app {app}: {command[0] if command else DEFAULT_COMMAND[0]} did "
                f"not start (exit status {status}; is it in the app's image, and "
                "executable by the app's user?)"
            )
        return exit_status(code, status)
    finally:
        with contextlib.suppress(SystemdError):
            await systemd.call(path, UNIT, "Unref")


async def _wait_until_done(systemd: Systemd, path: str, caller: str) -> None:
    """Wait until the unit at ``path`` is inactive or failed; stop it if ``caller``
    leaves the bus first."""
    bus = systemd.bus
    assert bus is not None
    changed = asyncio.Event()
    gone = False

    def on_message(message: Message) -> bool:
        nonlocal gone
        if message.message_type is not MessageType.SIGNAL:
            return False
        if message.member == "PropertiesChanged" and message.path == path:
            changed.set()
        elif message.member == "NameOwnerChanged" and message.body[:1] == [caller]:
            gone = not message.body[2]
            changed.set()
        return False

    rules = [
        f"type='signal',sender='{SYSTEMD}',path='{path}',interface='{PROPERTIES}',"
        "member='PropertiesChanged'",
        f"type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{caller}'",
    ]
    bus.add_message_handler(on_message)
    try:
        for rule in rules:
            await _bus_daemon(systemd, "AddMatch", rule)
        # Gone before the match was in place: no signal will say so.
        gone = not (await _bus_daemon(systemd, "NameHasOwner", caller))[0]
        stopping = False
        while True:
            changed.clear()
            if gone and not stopping:
                log.info("%s left the bus: stopping %s", caller, path)
                await systemd.call(path, UNIT, "Stop", "s", ["replace"])
                stopping = True
            [state] = await systemd.call(path, PROPERTIES, "Get", "ss", [UNIT, "ActiveState"])
            if state.value in ("inactive", "failed"):
                return
            # A signal sent between the read and the wait is not lost: the event is set.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), 10)
    finally:
        bus.remove_message_handler(on_message)
        for rule in rules:
            with contextlib.suppress(SystemdError):
                await _bus_daemon(systemd, "RemoveMatch", rule)


async def _bus_daemon(systemd: Systemd, member: str, argument: str) -> list[Any]:
    return await systemd.call(
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        member,
        "s",
        [argument],
        destination="org.freedesktop.DBus",
    )
