# SPDX-License-Identifier: LGPL-2.1-or-later
"""The CLI's side of org.podmgr1: calls by the API table, errors as PodmgrError.

Every command that changes the system goes through here, so polkit judges the CLI as it
judges busctl and the Cockpit page.  The first call starts the service if it is not
running (D-Bus activation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message

from podmgr.bus import api
from podmgr.bus.connection import Bus
from podmgr.errors import PodmgrError

PROPERTIES = "org.freedesktop.DBus.Properties"


class ServiceError(PodmgrError):
    """An error reply of org.podmgr1; ``code`` is the part after org.podmgr1.Error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Client:
    def __init__(self) -> None:
        self.bus: MessageBus | None = None

    async def __aenter__(self) -> Client:
        try:
            self.bus = await Bus().connect()
        except (OSError, ValueError) as error:
            raise PodmgrError(f"cannot reach the system bus: {error} (is dbus running?)")\
                from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.bus:
            self.bus.disconnect()  # type: ignore[no-untyped-call]

    async def _send(self, message: Message) -> list[Any]:
        assert self.bus, "use Client as an async context manager"
        reply = await self.bus.call(message)
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            text = str(reply.body[0]) if reply.body else reply.error_name or "failed"
            name = reply.error_name or ""
            if name.startswith(api.ERROR_PREFIX):
                raise ServiceError(name.removeprefix(api.ERROR_PREFIX), text)
            if name == "org.freedesktop.DBus.Error.ServiceUnknown":
                text = (f"{api.BUS_NAME} is not available: {text} (is podmgr installed? see "
                        "journalctl -u podmgr1)")
            raise ServiceError("Failed", text)
        return list(reply.body)

    async def call(self, member: str, *args: Any, path: str = api.MANAGER_PATH,
                   interface: api.Interface = api.MANAGER) -> Any:
        """Call ``member`` of ``interface`` with the signature the API table gives."""
        method = interface.method_index[member]
        body = await self._send(Message(destination=api.BUS_NAME, path=path,
                                        interface=interface.name, member=member,
                                        signature=method.in_signature, body=list(args)))
        if not method.out_args:
            return None
        return body[0] if len(method.out_args) == 1 else body

    async def properties(self, path: str, interface: api.Interface) -> dict[str, Any]:
        [values] = await self._send(Message(destination=api.BUS_NAME, path=path,
                                            interface=PROPERTIES, member="GetAll",
                                            signature="s", body=[interface.name]))
        return {name: variant.value for name, variant in values.items()}

    async def transfer(self, member: str, *args: Any,
                       progress: Callable[[float], None] | None = None,
                       log: Callable[[str], None] | None = None) -> str:
        """Start a pull or import and follow it; returns TransferRemoved's result."""
        assert self.bus
        removed: dict[int, str] = {}
        finished = asyncio.Event()
        path = ""

        def on_signal(message: Message) -> bool:
            if message.message_type is not MessageType.SIGNAL:
                return False
            if message.member == "TransferRemoved":
                removed[message.body[0]] = message.body[2]
                finished.set()
            elif message.member == "PropertiesChanged" and message.path == path and progress \
                    and "Progress" in message.body[1]:
                progress(message.body[1]["Progress"].value)
            elif message.member == "Log" and message.path == path and log:
                log(message.body[0])
            return False

        self.bus.add_message_handler(on_signal)
        for rule in (f"type='signal',sender='{api.BUS_NAME}',member='TransferRemoved'",
                     f"type='signal',sender='{api.BUS_NAME}',member='PropertiesChanged',"
                     f"path_namespace='{api.TRANSFER_PATH}'",
                     f"type='signal',sender='{api.BUS_NAME}',member='Log',"
                     f"path_namespace='{api.TRANSFER_PATH}'"):
            await self._send(Message(destination="org.freedesktop.DBus",
                                     path="/org/freedesktop/DBus",
                                     interface="org.freedesktop.DBus", member="AddMatch",
                                     signature="s", body=[rule]))
        number, path = await self.call(member, *args)
        while number not in removed:
            finished.clear()
            await finished.wait()
        if progress:
            progress(1.0)
        return removed[number]
