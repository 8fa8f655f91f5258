# SPDX-License-Identifier: LGPL-2.1-or-later
"""The CLI's side of org.podmgr1: calls by the API table, errors as PodmgrError.

Every command that changes the system goes through here, so polkit judges the CLI as it
judges busctl and the Cockpit page.  The first call starts the service if it is not
running (D-Bus activation).  A client notices the service going away: a transfer it
follows ends with an error when org.podmgr1 loses its owner, and a read that the dying
service never answered is sent once more, to a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from podmgr.bus import api
from podmgr.bus.connection import Bus
from podmgr.bus.dbuslib import Message, MessageBus, MessageType
from podmgr.errors import PodmgrError


def one_line(text: str) -> str:
    return "; ".join(line for line in text.splitlines() if line.strip())


PROPERTIES = "org.freedesktop.DBus.Properties"


class ServiceError(PodmgrError):
    """An error reply of org.podmgr1; ``code`` is the part after org.podmgr1.Error."""

    def __init__(self, code: str, message: str, bus_error: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.bus_error = bus_error  # the D-Bus error name


# Errors that mean the service went away between the call and its answer.
GONE = {
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.Disconnected",
}


class Client:
    def __init__(self, address: str | None = None) -> None:
        self.address = address  # None: the system bus
        self.bus: MessageBus | None = None

    async def __aenter__(self) -> Client:
        try:
            self.bus = await Bus(self.address).connect()
        except (OSError, ValueError) as error:
            raise PodmgrError(f"cannot reach the system bus: {error} (is dbus running?)") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.bus:
            self.bus.disconnect()  # type: ignore[no-untyped-call, unused-ignore]

    async def _send(self, message: Message) -> list[Any]:
        return list((await self._reply(message)).body)

    async def _reply(self, message: Message) -> Message:
        assert self.bus, "use Client as an async context manager"
        reply = await self.bus.call(message)
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            name = str(reply.error_name or "")
            text = str(reply.body[0]) if reply.body else name or "failed"
            if name.startswith(api.ERROR_PREFIX):
                raise ServiceError(name.removeprefix(api.ERROR_PREFIX), text, name)
            if name == "org.freedesktop.DBus.Error.ServiceUnknown":
                text = (
                    f"{api.BUS_NAME} is not available: {text} (is podmgr installed? see "
                    "journalctl -u podmgr1)"
                )
            raise ServiceError("Failed", one_line(text), name)
        return reply

    async def call(
        self,
        member: str,
        *args: Any,
        path: str = api.MANAGER_PATH,
        interface: api.Interface = api.MANAGER,
        unix_fds: list[int] | None = None,
    ) -> Any:
        """Call ``member`` of ``interface`` with the signature the API table gives;
        ``unix_fds`` are the file descriptors its ``h`` arguments index."""
        method = interface.method_index[member]
        message = Message(
            destination=api.BUS_NAME,
            path=path,
            interface=interface.name,
            member=member,
            signature=method.in_signature,
            body=list(args),
            unix_fds=unix_fds or [],
        )
        body = await (self._send(message) if method.action else self._read(message))
        if not method.out_args:
            return None
        return body[0] if len(method.out_args) == 1 else body

    async def _read(self, message: Message) -> list[Any]:
        """A read (a method without a polkit action, or a property) is sent once more when
        the service went away under it: a call that reached a service just killed
        (dbus-daemon had not yet seen it go) is answered NoReply by dbus-daemon, and the
        second one activates a new service.  Calls that change something are never
        repeated: the first may have done its work."""
        try:
            return await self._send(message)
        except ServiceError as error:
            if error.bus_error not in GONE:
                raise
        return await self._send(
            Message(
                destination=message.destination,
                path=message.path,
                interface=message.interface,
                member=message.member,
                signature=message.signature,
                body=message.body,
            )
        )

    async def properties(self, path: str, interface: api.Interface) -> dict[str, Any]:
        [values] = await self._read(
            Message(
                destination=api.BUS_NAME,
                path=path,
                interface=PROPERTIES,
                member="GetAll",
                signature="s",
                body=[interface.name],
            )
        )
        return {name: variant.value for name, variant in values.items()}

    async def property(self, path: str, interface: api.Interface, name: str) -> Any:
        [value] = await self._read(
            Message(
                destination=api.BUS_NAME,
                path=path,
                interface=PROPERTIES,
                member="Get",
                signature="ss",
                body=[interface.name, name],
            )
        )
        return value.value

    async def transfer(
        self,
        member: str,
        *args: Any,
        progress: Callable[[float], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> str:
        """Start a pull or import and follow it; returns TransferRemoved's result."""
        assert self.bus
        # Signals may come before the call's reply is seen (a transfer that fails at once):
        # so everything is recorded by sender and path, and sorted out after the reply.
        removed: dict[tuple[str, int], str] = {}
        gone: set[str] = set()  # unique names that lost org.podmgr1
        early_logs: list[tuple[str, str]] = []
        finished = asyncio.Event()
        path = ""

        def on_signal(message: Message) -> bool:
            if message.message_type is not MessageType.SIGNAL:
                return False
            if message.member == "NameOwnerChanged" and message.body[0] == api.BUS_NAME:
                if message.body[1]:
                    gone.add(message.body[1])
                    finished.set()
            elif message.member == "TransferRemoved":
                removed[(str(message.sender), message.body[0])] = message.body[2]
                finished.set()
            elif (
                message.member == "PropertiesChanged"
                and path
                and message.path == path
                and progress
                and "Progress" in message.body[1]
            ):
                progress(message.body[1]["Progress"].value)
            elif message.member == "Log" and message.path:
                if not path:
                    early_logs.append((message.path, message.body[0]))
                elif message.path == path and log:
                    log(message.body[0])
            return False

        self.bus.add_message_handler(on_signal)
        # The service going away (killed, crashed) ends the transfer without
        # TransferRemoved: NameOwnerChanged says so.  Subscribed before the call, so it
        # cannot be missed between the call's reply and the wait.
        for rule in (
            f"type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',"
            f"arg0='{api.BUS_NAME}'",
            f"type='signal',sender='{api.BUS_NAME}',member='TransferRemoved'",
            f"type='signal',sender='{api.BUS_NAME}',member='PropertiesChanged',"
            f"path_namespace='{api.TRANSFER_PATH}'",
            f"type='signal',sender='{api.BUS_NAME}',member='Log',"
            f"path_namespace='{api.TRANSFER_PATH}'",
        ):
            await self._send(
                Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus",
                    member="AddMatch",
                    signature="s",
                    body=[rule],
                )
            )
        method = api.MANAGER.method_index[member]
        reply = await self._reply(
            Message(
                destination=api.BUS_NAME,
                path=api.MANAGER_PATH,
                interface=api.MANAGER.name,
                member=member,
                signature=method.in_signature,
                body=list(args),
            )
        )
        owner = str(reply.sender)  # the service's unique name: whose going away counts
        number, path = reply.body
        for early_path, line in early_logs:
            if early_path == path and log:
                log(line)
        while (owner, number) not in removed:
            if owner in gone:
                raise PodmgrError(
                    f"{api.BUS_NAME} stopped during the transfer (see journalctl "
                    "-u podmgr1); podmgr image list shows what was stored"
                )
            finished.clear()
            await finished.wait()
        if progress:
            progress(1.0)
        return removed[(owner, number)]
