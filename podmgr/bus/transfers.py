# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pulls and imports in progress, as org.podmgr1.Transfer objects (as import1 has them).

The work runs in a thread (pull.fetch blocks on the network and the disk); progress
comes back to the event loop, which sets the Progress property and emits
PropertiesChanged at most ten times a second.  Cancel makes the next progress report
raise, which unwinds the fetch: nothing half-done is kept.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from podmgr.bus import api
from podmgr.bus.binding import implements
from podmgr.bus.dispatch import Call, Dispatcher
from podmgr.errors import PodmgrError

log = logging.getLogger(__name__)


class Canceled(Exception):
    """Raised in the fetching thread when the transfer was canceled."""


class Transfer:
    def __init__(self, number: int, source: str, name: str, transfers: Transfers) -> None:
        self.number = number
        self.source_ref = source
        self.name = name
        self.transfers = transfers
        self.done = 0.0
        self.canceled = threading.Event()
        self._last_report = 0.0

    @implements(api.TRANSFER, "Id")
    def id(self) -> int:
        return self.number

    @implements(api.TRANSFER, "Source")
    def source(self) -> str:
        return self.source_ref

    @implements(api.TRANSFER, "Progress")
    def progress(self) -> float:
        return self.done

    def authorization_details(self) -> dict[str, str]:
        """polkit details besides the verb (the dispatcher asks before Cancel runs)."""
        return {"image": self.source_ref}

    @implements(api.TRANSFER, "Cancel")
    async def cancel(self, call: Call) -> None:
        self.canceled.set()

    def report(self, loop: asyncio.AbstractEventLoop, done: int, total: int) -> None:
        """Called in the fetching thread."""
        if self.canceled.is_set():
            raise Canceled
        self.done = done / total if total else 1.0
        now = loop.time()
        if now - self._last_report > 0.1 or done >= total:
            self._last_report = now
            loop.call_soon_threadsafe(
                self.transfers.dispatcher.properties_changed,
                api.transfer_path(self.number),
                api.TRANSFER,
                ["Progress"],
            )


class Transfers:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.active: dict[int, Transfer] = {}
        self.counter = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, source: str, name: str) -> tuple[int, str]:
        self.counter += 1
        transfer = Transfer(self.counter, source, name, self)
        path = api.transfer_path(transfer.number)
        self.active[transfer.number] = transfer
        self.dispatcher.export(path, api.TRANSFER, transfer)
        self.dispatcher.emit(api.MANAGER_PATH, api.MANAGER, "TransferNew", transfer.number, path)
        task = asyncio.get_running_loop().create_task(self._run(transfer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return transfer.number, path

    async def _run(self, transfer: Transfer) -> None:
        # The service starts without these: most starts never pull.
        from podmgr import config  # noqa: PLC0415
        from podmgr.image import pull  # noqa: PLC0415
        from podmgr.image.store import Store  # noqa: PLC0415
        from podmgr.image.trust import TrustStore  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        path = api.transfer_path(transfer.number)
        try:
            record = await asyncio.to_thread(
                pull.fetch,
                transfer.source_ref,
                transfer.name or None,
                Store(),
                config.load(),
                TrustStore(),
                lambda done, total: transfer.report(loop, done, total),
            )
            signer = (
                f"signed by {', '.join(record.signed_by)}"
                if record.signed_by
                else "INSECURE: stored without a trusted signature, as podmgr.toml allows"
            )
            self.dispatcher.emit(
                path, api.TRANSFER, "Log", f"{record.name}: stored {record.manifest}, {signer}"
            )
            result = "done"
        except Canceled:
            result = "canceled"
        except PodmgrError as error:
            result = f"failed: {error}"
        except Exception as error:  # every failure ends the transfer with its reason
            log.exception("transfer %s", transfer.source_ref)
            why = (
                error.strerror
                if isinstance(error, OSError) and error.strerror
                else f"{type(error).__name__} in the service"
            )
            result = f"failed: {why} (journalctl -u podmgr1 says more)"
        self.dispatcher.emit(path, api.TRANSFER, "Log", result)
        del self.active[transfer.number]
        self.dispatcher.unexport(path)
        self.dispatcher.emit(
            api.MANAGER_PATH, api.MANAGER, "TransferRemoved", transfer.number, path, result
        )
