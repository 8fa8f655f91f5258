# SPDX-License-Identifier: LGPL-2.1-or-later
"""A system bus connection that holds up under load.

The writers of both D-Bus libraries (dbuslib.py) fall short of what a busy service
needs: dbus-next 0.2.3's and dbus-fast 1.84's treat a full socket buffer (EAGAIN) as a
broken connection and drop it, and dbus-fast 1.84's sends queued messages last first
(dbus-fast fixed that in August 2023, after Debian 12 froze).  Nothing in either stops
a connection from having more calls pending than dbus-daemon allows (the system bus
refuses the 128th or so: "maximum number of pending replies").  Bus writes with a
writer of its own, which keeps messages in order and waits for the socket to drain,
and lets at most MAX_PENDING calls wait for replies at once.
It negotiates passing file descriptors (D-Bus type ``h``): a message's ``unix_fds`` go
with its first bytes as SCM_RIGHTS, duplicated when the message is queued, so that the
sender may close its own as soon as send() returns.
"""

from __future__ import annotations

import array
import asyncio
import os
import socket
from collections import deque

from podmgr.bus.dbuslib import BusType, Message, MessageBus

MAX_PENDING = 64


class _Writer:
    """Sends messages first in, first out; a full socket waits until it is writable.

    Both libraries call schedule_write(message, future) to send and schedule_write() once
    the connection has its name; nothing else of their writer is used."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        sock, fd = bus._sock, bus._fd
        # Both libraries open the socket in MessageBus.__init__, before this runs.
        assert sock is not None
        assert fd is not None
        self.sock = sock
        self.loop: asyncio.AbstractEventLoop = bus._loop
        self.fd: int = fd
        self.queue: deque[tuple[memoryview, list[int], asyncio.Future[None] | None]] = deque()
        self.buf: memoryview | None = None
        self.fds: list[int] = []  # to go with the first bytes of buf, then closed
        self.fut: asyncio.Future[None] | None = None

    def schedule_write(
        self, msg: Message | None = None, future: asyncio.Future[None] | None = None
    ) -> None:
        if msg is not None:
            negotiated = bool(self.bus._negotiate_unix_fd)
            data = msg._marshall(negotiated)  # type: ignore[no-untyped-call, unused-ignore]
            fds = [os.dup(fd) for fd in msg.unix_fds or ()] if negotiated else []
            self.queue.append((memoryview(data), fds, future))
        if self.bus.unique_name:  # before Hello's reply, nothing but Hello may go out
            self.loop.add_writer(self.fd, self.write_callback)

    def write_callback(self) -> None:
        while True:
            if self.buf is None:
                if not self.queue:
                    self.loop.remove_writer(self.fd)
                    return
                self.buf, self.fds, self.fut = self.queue.popleft()
            try:
                if self.fds:
                    rights = array.array("i", self.fds)
                    sent = self.sock.sendmsg(
                        [self.buf], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)]
                    )
                    self._close_fds()
                else:
                    sent = self.sock.send(self.buf)
            except BlockingIOError:
                return  # full: the loop calls again once the socket is writable
            except OSError as error:
                self._close_fds()
                if self.fut is not None and not self.fut.done():
                    self.fut.set_exception(error)
                self.bus._finalize(error)  # type: ignore[no-untyped-call, unused-ignore]
                return
            if sent < len(self.buf):
                self.buf = self.buf[sent:]
                return
            self.buf = None
            if self.fut is not None and not self.fut.done():
                self.fut.set_result(None)

    def _close_fds(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


class Bus(MessageBus):
    """The system bus, ``await Bus().connect()``; or the bus at ``address`` (tests run the
    service and its clients on a private dbus-daemon)."""

    def __init__(self, address: str | None = None) -> None:
        super().__init__(bus_address=address, bus_type=BusType.SYSTEM, negotiate_unix_fd=True)  # type: ignore[arg-type, unused-ignore]
        self._writer = _Writer(self)  # type: ignore[assignment]  # the two methods used
        self._slots = asyncio.Semaphore(MAX_PENDING)

    async def call(self, msg: Message) -> Message | None:
        async with self._slots:
            reply: Message | None = await super().call(msg)
            return reply
