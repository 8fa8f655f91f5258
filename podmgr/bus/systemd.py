# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small client of systemd's manager on the system bus (org.freedesktop.systemd1).

Plain messages rather than proxy objects: a proxy introspects first, which costs a round
trip per object.  The API used is systemd's documented one, org.freedesktop.systemd1(5).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from podmgr.bus.connection import Bus
from podmgr.bus.dbuslib import Message, MessageBus, MessageType
from podmgr.errors import SystemdError

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
SERVICE = "org.freedesktop.systemd1.Service"
PROPERTIES = "org.freedesktop.DBus.Properties"


def unit_path(unit: str) -> str:
    """systemd's object path of ``unit`` (sd_bus_path_encode): every byte but a letter,
    or a digit after the first, becomes _XX."""
    encoded = unit.encode()
    label = "".join(
        chr(byte)
        if (one := encoded[at : at + 1]).isalpha() or (at and one.isdigit())
        else f"_{byte:02x}"
        for at, byte in enumerate(encoded)
    )
    return f"{MANAGER_PATH}/unit/{label or '_'}"


@dataclass(frozen=True)
class UnitState:
    name: str
    load_state: str  # loaded, not-found, masked ...
    active_state: str  # active, inactive, failed, activating, deactivating ...
    sub_state: str  # running, exited, dead ...

    @property
    def state(self) -> str:
        return f"{self.active_state} ({self.sub_state})"


@dataclass(frozen=True)
class JobResult:
    unit: str
    result: str  # done, canceled, timeout, failed, dependency, skipped


# The last JobRemoved results, for callers that ask after the signal came.
_KEEP_REMOVED = 4096


class Systemd:
    """systemd's manager over a system bus connection: its own (``async with Systemd()``)
    or one shared with a service (``Systemd(bus)``)."""

    def __init__(self, bus: MessageBus | None = None) -> None:
        self.bus = bus
        self._own_bus = bus is None
        self._removed: dict[str, JobResult] = {}
        self._waiters: dict[str, asyncio.Future[JobResult]] = {}
        self._subscribed = False

    async def __aenter__(self) -> Systemd:
        if self._own_bus:
            try:
                self.bus = await Bus().connect()
            except (OSError, ValueError) as error:
                raise SystemdError(
                    f"cannot reach systemd on the system bus: {error} "
                    "(is systemd running as PID 1?)"
                ) from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.bus and self._own_bus:
            self.bus.disconnect()  # type: ignore[no-untyped-call, unused-ignore]

    async def call(
        self,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: Iterable[Any] = (),
        destination: str = SYSTEMD,
        unix_fds: list[int] | None = None,
    ) -> list[Any]:
        """``unix_fds``: the file descriptors the ``h`` values of ``body`` index."""
        assert self.bus, "use Systemd as an async context manager"
        reply = await self.bus.call(
            Message(
                destination=destination,
                path=path,
                interface=interface,
                member=member,
                signature=signature,
                body=list(body),
                unix_fds=unix_fds or [],
            )
        )
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            detail = reply.body[0] if reply.body else reply.error_name
            raise SystemdError(f"{member}: {detail}")
        return list(reply.body)

    async def list_units(self, patterns: list[str]) -> dict[str, UnitState]:
        """Units systemd has loaded whose names match ``patterns`` (fnmatch, as systemctl)."""
        [units] = await self.call(
            MANAGER_PATH, MANAGER, "ListUnitsByPatterns", "asas", [[], patterns]
        )
        return {u[0]: UnitState(u[0], u[2], u[3], u[4]) for u in units}

    async def unit_properties(self, unit: str, interface: str = UNIT) -> dict[str, Any]:
        """All properties of ``unit`` on ``interface``, loading the unit if needed."""
        [path] = await self.call(MANAGER_PATH, MANAGER, "LoadUnit", "s", [unit])
        [props] = await self.call(path, PROPERTIES, "GetAll", "s", [interface])
        return {name: variant.value for name, variant in props.items()}

    async def unit_property(self, unit: str, interface: str, name: str) -> Any:
        """One property of ``unit``: one round trip, where unit_properties takes two and
        a reply of some two hundred properties to decode (systemd loads the unit when
        its object is asked for)."""
        [variant] = await self.call(unit_path(unit), PROPERTIES, "Get", "ss", [interface, name])
        return variant.value

    async def run_job(self, method: str, unit: str) -> str:
        """StartUnit/StopUnit/RestartUnit ``unit`` and wait until the job is done;
        returns the job's result ("done" on success)."""
        await self.subscribe()
        [job] = await self.call(MANAGER_PATH, MANAGER, method, "ss", [unit, "replace"])
        return (await self.wait_for_jobs([job]))[job].result

    async def wait_for_jobs(self, jobs: list[str]) -> dict[str, JobResult]:
        """Wait until every job in ``jobs`` (object paths) is removed.

        Call subscribe() before queueing them, or their JobRemoved may be missed."""
        results = {}
        for job in jobs:
            # Kept, not taken: two callers may wait for one job (systemd merges jobs).
            if job in self._removed:
                results[job] = self._removed[job]
            else:
                future = self._waiters.setdefault(job, asyncio.get_running_loop().create_future())
                results[job] = await future
        return results

    async def pending_job(self, unit: str) -> str | None:
        """The object path of the job queued for ``unit``, if any."""
        job_id, path = await self.unit_property(unit, UNIT, "Job")
        return str(path) if job_id else None

    async def subscribe(self) -> None:
        """Ask for JobRemoved signals before any job starts, so none is missed."""
        assert self.bus
        if self._subscribed:
            return
        self._subscribed = True
        self.bus.add_message_handler(self._on_message)
        rule = f"type='signal',sender='{SYSTEMD}',interface='{MANAGER}',member='JobRemoved'"
        # Both at once: the bus handles them in the order sent, and nothing relies on
        # either before both are answered.
        await asyncio.gather(self.add_match(rule), self.call(MANAGER_PATH, MANAGER, "Subscribe"))

    async def add_match(self, rule: str) -> None:
        """Ask the bus for the signals that match ``rule`` (D-Bus match rules)."""
        await self.call(
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            "s",
            [rule],
            destination="org.freedesktop.DBus",
        )

    def _on_message(self, message: Message) -> bool:
        if (
            message.message_type is MessageType.SIGNAL
            and message.member == "JobRemoved"
            and message.interface == MANAGER
        ):
            _job_id, path, unit, result = message.body
            if (waiter := self._waiters.pop(path, None)) is not None:
                waiter.set_result(JobResult(unit, result))
            self._removed[path] = JobResult(unit, result)
            while len(self._removed) > _KEEP_REMOVED:
                del self._removed[next(iter(self._removed))]
        return False
