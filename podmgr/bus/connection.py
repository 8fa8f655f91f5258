# SPDX-License-Identifier: LGPL-2.1-or-later
"""A system bus connection that holds up under load.

Debian 12's dbus-next (0.2.3) has two limits a busy service meets: its writer treats a
full socket buffer (EAGAIN) as a broken connection and drops it, and nothing stops a
connection from having more calls pending than dbus-daemon allows (the system bus
refuses the 128th or so: "maximum number of pending replies").  Bus fixes the first by
waiting for the socket to drain, and the second by letting at most MAX_PENDING calls
wait for replies at once.
"""

from __future__ import annotations

import asyncio

from dbus_next.aio.message_bus import MessageBus, _MessageWriter
from dbus_next.constants import BusType
from dbus_next.message import Message

MAX_PENDING = 64


class _Writer(_MessageWriter):
    def __init__(self, bus: MessageBus) -> None:
        super().__init__(bus)  # type: ignore[no-untyped-call]

    def write_callback(self) -> None:
        while True:
            if self.buf is None:
                if self.messages.qsize() == 0:
                    self.loop.remove_writer(self.fd)
                    return
                buf, _unix_fds, self.fut = self.messages.get_nowait()
                self.buf, self.offset = memoryview(buf), 0
            try:
                self.offset += self.sock.send(self.buf[self.offset :])
            except BlockingIOError:
                return  # full: the loop calls again once the socket is writable
            except OSError as error:
                if self.fut is not None and not self.fut.done():
                    self.fut.set_exception(error)
                self.bus._finalize(error)
                return
            if self.offset < len(self.buf):
                return
            self.buf = None
            if self.fut is not None and not self.fut.done():
                self.fut.set_result(None)


class Bus(MessageBus):
    """The system bus, ``await Bus().connect()``; or the bus at ``address`` (tests run the
    service and its clients on a private dbus-daemon)."""

    def __init__(self, address: str | None = None) -> None:
        super().__init__(bus_address=address, bus_type=BusType.SYSTEM)  # type: ignore[arg-type]
        self._writer = _Writer(self)
        self._slots = asyncio.Semaphore(MAX_PENDING)

    async def call(self, msg: Message) -> Message | None:
        async with self._slots:
            reply: Message | None = await super().call(msg)
            return reply
