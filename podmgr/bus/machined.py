# SPDX-License-Identifier: LGPL-2.1-or-later
"""Running pods registered with systemd-machined, so that machinectl and ps know them.

machined (org.freedesktop.machine1, org.freedesktop.machine1(5)) keeps a machine's unit,
not its processes: RegisterMachine takes the unit from the leader's cgroup, ``ps -o
machine`` maps a process to a machine through the unit it runs in, TerminateMachine stops
that unit, and machined drops the machine once that unit is inactive.  A pod has no
process of its own (pod@POD.service is a oneshot that only prepares and releases), so:

* The leader is the main process of an active app of the pod, the first in manifest order
  when the pod is registered; the machine's unit is that app's unit
  (podapp@POD:APP.service), its root directory that app's root file system, its
  interfaces the host's ends of the pod's veths (none for a pod on the host's network or a
  private one).  ``ps`` names that app's processes; the other apps' units are not the
  machine's.
* machined never learns that a leader died while its unit stays (Restart=, between two
  runs), and a dead leader's PID may soon be a stranger's, whom ``machinectl`` would then
  act on.  So each registration has a unit of its own, podmachine@POD:APP.service: a
  transient oneshot without a process, started when the pod is registered, that stops
  when the leader's unit stops, dies or restarts (StopPropagatedFrom=, PartOf=) and,
  ordered after it (After=), stops first: its ExecStop= calls ReleaseMachine while the
  leader's unit is still stopping.  The service then unregisters the pod and registers it
  again with another active app, or with the same app once it runs again.  Nothing of
  podmgr runs in between: the service may have exited or been killed meanwhile.
* ``machinectl terminate POD`` stops the leader's unit, and only that.  machined marks
  the machine "closing" before it returns to its event loop, and the leader's unit stops
  only after the registration's ExecStop= is done: so when ReleaseMachine finds the
  machine closing while the leader's unit is still active, machinectl asked for it
  (machined marks a machine closing by itself only once its unit is inactive), and the
  service stops pod@POD.service, and with it every app; release runs as at any stop.
  Stopping or restarting an app with systemctl stays what it was (the app alone stops,
  and the pod is registered again with another app).
* Release unregisters the pod (ReleasePod); machined drops it by itself once the leader's
  unit is inactive, should the service be gone.

Only machines this service registered are ever unregistered or acted on: their Service is
"podmgr" and their unit an app unit of the pod.  A name machined refuses (a pod name with
'_', names.is_valid_machine_name) or one a machine of someone else holds (a container of
systemd-nspawn of the same name) is not registered; the journal says so once.  Without
machined (systemd-container not installed) nothing is registered, and nothing fails.

A pod whose apps share the host's namespaces (the host's network here; an isolation
level without namespaces of its own likewise) is registered all the same, with its
leader's root directory and no interface: machinectl then shows the host's addresses,
as the leader has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from podmgr import names, paths
from podmgr.bus import api
from podmgr.bus.dbuslib import Message, MessageBus, MessageType, Variant
from podmgr.bus.systemd import MANAGER as SYSTEMD_MANAGER
from podmgr.bus.systemd import MANAGER_PATH as SYSTEMD_PATH
from podmgr.bus.systemd import PROPERTIES, SERVICE, Systemd
from podmgr.errors import SystemdError
from podmgr.network import links

log = logging.getLogger(__name__)

MACHINED = "org.freedesktop.machine1"
MANAGER_PATH = "/org/freedesktop/machine1"
MANAGER = "org.freedesktop.machine1.Manager"
MACHINE = "org.freedesktop.machine1.Machine"
# What machinectl list shows in its SERVICE column; also how a machine of ours is known.
SERVICE_NAME = "podmgr"

NO_SUCH_MACHINE = "org.freedesktop.machine1.NoSuchMachine"
# machined not installed, or its activation failed: no registration, and no error.
ABSENT = (
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.Spawn.ChildExited",
    "org.freedesktop.DBus.Error.Spawn.Failed",
    "org.freedesktop.systemd1.NoSuchUnit",
)


class MachinedError(SystemdError):
    """A call to machined failed; ``name`` is its D-Bus error name."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"systemd-machined: {text or name}")
        self.name = name


@dataclass(frozen=True)
class Machine:
    name: str
    path: str
    unit: str
    leader: int
    state: str  # opening, running, closing
    service: str

    @property
    def app(self) -> str:
        """The app whose unit the machine's unit is (belongs_to says whether it is one)."""
        return self.unit.removeprefix(f"podapp@{self.name}:").removesuffix(".service")

    def belongs_to(self, pod: str) -> bool:
        """Registered by podmgr for ``pod``: its unit is one of the pod's app units."""
        return (
            self.name == pod
            and self.service == SERVICE_NAME
            and self.unit == names.app_unit(pod, self.app)
        )


class Machines:
    def __init__(self, bus: MessageBus, systemd: Systemd) -> None:
        self.bus = bus
        self.systemd = systemd
        # Pods this service registered, until their leader stops: each app that becomes
        # active asks for its pod again, and need not ask machined then.
        self.registered: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._warned: set[str] = set()  # pods whose refusal the journal has, once each
        # machined could not be reached (not installed): not asked again by this service.
        self._absent = False

    async def _call(
        self,
        member: str,
        signature: str = "",
        body: Iterable[Any] = (),
        path: str = MANAGER_PATH,
        interface: str = MANAGER,
        destination: str = MACHINED,
    ) -> list[Any]:
        reply = await self.bus.call(
            Message(
                destination=destination,
                path=path,
                interface=interface,
                member=member,
                signature=signature,
                body=list(body),
            )
        )
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            text = str(reply.body[0]) if reply.body else ""
            raise MachinedError(str(reply.error_name or ""), text)
        return list(reply.body)

    async def _running(self) -> bool:
        """Whether machined runs.  It exits only while it has no machine, so when it
        does not run there is none to look at, and asking would start it for nothing."""
        [has] = await self._call(
            "NameHasOwner",
            "s",
            [MACHINED],
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            destination="org.freedesktop.DBus",
        )
        return bool(has)

    async def machine(self, name: str) -> Machine | None:
        """The machine called ``name``, whoever registered it; None if there is none."""
        try:
            [path] = await self._call("GetMachine", "s", [name])
            [props] = await self._call("GetAll", "s", [MACHINE], path=path, interface=PROPERTIES)
        except MachinedError as error:
            if error.name in (NO_SUCH_MACHINE, "org.freedesktop.DBus.Error.UnknownObject"):
                return None
            raise
        value = {key: variant.value for key, variant in props.items()}
        return Machine(name, path, value["Unit"], value["Leader"], value["State"], value["Service"])

    def _lock(self, pod: str) -> asyncio.Lock:
        return self._locks.setdefault(pod, asyncio.Lock())

    def _warn_once(self, pod: str, why: str) -> None:
        if pod not in self._warned:
            self._warned.add(pod)
            log.warning("pod %s: not registered with systemd-machined: %s", pod, why)

    async def _main_pid(self, unit: str) -> int:
        return int(await self.systemd.unit_property(unit, SERVICE, "MainPID"))

    async def _states(self, units: list[str]) -> dict[str, str]:
        states = await self.systemd.list_units(units)
        return {unit: state.active_state for unit, state in states.items()}

    async def register(self, pod: str) -> None:
        """Register ``pod`` if it runs and is not registered."""
        if not names.is_valid_machine_name(pod):
            self._warn_once(
                pod,
                f"machined takes only host names as machine names, and {names.shown(pod)} "
                "is not one (use letters, digits, '-' and '.' in the pod's name)",
            )
            return
        async with self._lock(pod):
            if pod in self.registered or self._absent:
                return
            try:
                await self._register(pod)
            except MachinedError as error:
                if error.name in ABSENT:
                    self._absent = True
                    log.info("systemd-machined is not there, pods are not registered: %s", error)
                else:
                    self._warn_once(pod, str(error))
            except SystemdError as error:
                self._warn_once(pod, str(error))

    async def _register(self, pod: str) -> None:
        states = await self._states([names.pod_unit(pod), names.app_unit(pod, "*")])
        if states.get(names.pod_unit(pod)) != "active":
            return
        if await self.systemd.pending_job(names.pod_unit(pod)):
            return  # stopping (or restarting): registered again once it runs
        try:
            plan = paths.PodRuntime(pod).read_plan()
        except (OSError, ValueError):
            return  # not prepared: nothing runs
        existing = await self.machine(pod)
        if existing is not None and await self._keep(pod, existing):
            return
        for app in plan["apps"]:
            unit = names.app_unit(pod, app["name"])
            if states.get(unit) != "active" or await self.systemd.pending_job(unit):
                continue  # not running, or (still active) about to stop or restart
            if leader := await self._main_pid(unit):
                await self._register_leader(pod, app["name"], leader, plan)
                return

    async def _keep(self, pod: str, existing: Machine) -> bool:
        """Whether the machine named as the pod stays as it is; if not, it is ours and
        was unregistered."""
        if not existing.belongs_to(pod):
            self._warn_once(
                pod,
                f"a machine of that name is registered already (unit {existing.unit}, "
                f"service {existing.service or '-'})",
            )
            return True
        if existing.state == "closing":
            return True  # machinectl terminates it, or machined drops it
        if await self._current(existing):
            self.registered.add(pod)
            return True
        await self._unregister(existing)
        return False

    async def _current(self, machine: Machine) -> bool:
        """Whether a machine of ours still has its unit's main process as leader, and its
        registration unit is there to tell when that changes."""
        registration = names.machine_unit(machine.name, machine.app)
        states = await self._states([machine.unit, registration])
        return (
            states.get(machine.unit) == "active"
            and states.get(registration) == "active"
            and await self._main_pid(machine.unit) == machine.leader
        )

    async def _register_leader(self, pod: str, app: str, leader: int, plan: Any) -> None:
        interfaces = []
        if plan["network"]["mode"] == "bridge":
            for network in plan["network"]["networks"]:
                # Gone already, the pod is on its way out: registered without it.
                with contextlib.suppress(OSError):
                    interfaces.append(socket.if_nametoindex(links.veth_name(pod, network)))
        root = str(paths.PodRuntime(pod).rootfs(app))
        [path] = await self._call(
            "RegisterMachineWithNetwork",
            "sayssusai",
            [pod, b"", SERVICE_NAME, "container", leader, root, interfaces],
        )
        try:
            await self._start_registration_unit(pod, app)
        except SystemdError:
            await self._call("UnregisterMachine", "s", [pod])
            raise
        # The leader may have gone before its registration unit was there to see it (and
        # its PID be another process's already, in another unit).
        machine = await self.machine(pod)
        if machine is None or machine.path != path or machine.leader != leader:
            return  # not the one registered here any more
        if machine.unit != names.app_unit(pod, app) or not await self._current(machine):
            await self._unregister(machine)
            return
        self.registered.add(pod)
        log.info(
            "pod %s: registered with systemd-machined: leader %d of %s, root %s",
            pod,
            leader,
            names.app_unit(pod, app),
            root,
        )

    async def _start_registration_unit(self, pod: str, app: str) -> None:
        """podmachine@POD:APP.service (see above); one still active from a registration
        before is taken as it is."""
        unit = names.machine_unit(pod, app)
        leader = names.app_unit(pod, app)
        release = [
            "/usr/bin/busctl",
            "call",
            "--quiet",
            "--timeout=30s",
            api.BUS_NAME,
            api.MANAGER_PATH,
            api.MANAGER.name,
            "ReleaseMachine",
            "ss",
            pod,
            app,
        ]
        properties = [
            ["Description", Variant("s", f"Registration of pod {pod} with systemd-machined")],
            ["Type", Variant("s", "oneshot")],
            ["RemainAfterExit", Variant("b", True)],
            # The leader stops whatever the answer (True: failure ignored, as "-" does).
            ["ExecStop", Variant("a(sasb)", [[release[0], release, True]])],
            ["StopPropagatedFrom", Variant("as", [leader])],
            ["PartOf", Variant("as", [leader])],
            ["After", Variant("as", [leader])],
            ["Slice", Variant("s", names.pod_slice(pod))],
            ["CollectMode", Variant("s", "inactive-or-failed")],
        ]
        try:
            await self.systemd.call(
                SYSTEMD_PATH,
                SYSTEMD_MANAGER,
                "StartTransientUnit",
                "ssa(sv)a(sa(sv))",
                [unit, "fail", properties, []],
            )
        except SystemdError as error:
            if (await self._states([unit])).get(unit) != "active":
                raise SystemdError(f"cannot start {unit}: {error}") from None

    async def _unregister(self, machine: Machine) -> None:
        self.registered.discard(machine.name)
        try:
            await self._call("UnregisterMachine", "s", [machine.name])
        except MachinedError as error:
            if error.name != NO_SUCH_MACHINE:  # machined dropped it itself meanwhile
                raise

    async def release(self, pod: str, app: str) -> None:
        """App ``app`` of ``pod`` stops or restarts (ReleaseMachine, from its registration
        unit): stop the pod if machinectl is terminating it, else unregister it and
        register it again with another active app."""
        try:
            async with self._lock(pod):
                machine = await self.machine(pod) if await self._running() else None
                if machine is not None and machine.belongs_to(pod):
                    if machine.app != app:
                        return  # a registration of before: another app leads it now
                    # machined also marks a machine closing when it drops it, once its
                    # unit is inactive; a terminate's stop waits for this call instead.
                    leader = (await self._states([machine.unit])).get(machine.unit)
                    if machine.state == "closing" and leader == "active":
                        log.info("pod %s: terminated through systemd-machined: stopping it", pod)
                        # Not waited for: the pod's stop waits for the leader's, which
                        # waits for this call.
                        await self.systemd.call(
                            SYSTEMD_PATH,
                            SYSTEMD_MANAGER,
                            "StopUnit",
                            "ss",
                            [names.pod_unit(pod), "replace"],
                        )
                        return
                    await self._unregister(machine)
                self.registered.discard(pod)
        except SystemdError as error:  # machined's, or systemd's
            log.warning("pod %s: %s", pod, error)
            return
        await self.register(pod)

    async def unregister(self, pod: str) -> None:
        """Unregister ``pod`` (it is released), if this service registered it."""
        self.registered.discard(pod)
        try:
            if not names.is_valid_machine_name(pod) or not await self._running():
                return
            async with self._lock(pod):
                machine = await self.machine(pod)
                if machine is not None and machine.belongs_to(pod):
                    await self._unregister(machine)
        except MachinedError as error:  # release goes on: it must not fail for this
            log.warning("pod %s: %s", pod, error)

    async def start(self, active_pods: Iterable[str]) -> None:
        """At the service's start: unregister machines of ours whose leader changed while
        no service ran, and register each active pod that is not registered."""
        pods = set(active_pods)
        try:
            if await self._running():
                [listed] = await self._call("ListMachines")
                pods |= {name for name, _class, service, _path in listed if service == SERVICE_NAME}
        except MachinedError as error:
            log.warning("cannot list the machines of systemd-machined: %s", error)
        for pod in sorted(pods):
            if names.is_valid_pod_name(pod):
                await self.register(pod)
