# SPDX-License-Identifier: LGPL-2.1-or-later
"""Blocking work off the event loop, in bounded queues.

Parsing a manifest, resolving its images, running gpg or journalctl, collecting garbage,
removing a released pod's files: each would stop every other caller's call while it ran
if it ran on the loop.  They run here, in a few threads.  At most QUEUE calls wait or run
at once, and one more is refused at once with org.podmgr1.Error.Busy, so a flood of big
requests costs a bounded amount of memory and never delays the loop itself (ListPods and
GetPod do not queue here).

There are two such queues: one for the methods anyone may call, one for those polkit
allowed.  So a local user who floods ValidateManifest fills only the first, and a
ReleasePod that pod@.service sends, or an administrator's CreatePod, is never refused
for it.  The dispatcher says which queue a call's work goes to (PRIVILEGED).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Callable
from typing import TypeVar

from podmgr.errors import Busy

T = TypeVar("T")

THREADS = 2
QUEUE = 16  # running and waiting together, per queue

# Set by the dispatcher for each call: whether polkit authorized it (its method has an
# action).  Work outside a call (none today) counts as privileged.
PRIVILEGED: contextvars.ContextVar[bool] = contextvars.ContextVar("privileged", default=True)


class _Queue:
    def __init__(self, threads: int, limit: int, name: str) -> None:
        self.limit = limit
        self.pending = 0
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=f"podmgr1-{name}"
        )


class Work:
    def __init__(self, threads: int = THREADS, queue: int = QUEUE) -> None:
        self._queues = {
            True: _Queue(threads, queue, "work"),
            False: _Queue(threads, queue, "reads"),
        }

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in a worker thread; Busy when the call's queue is full."""
        queue = self._queues[PRIVILEGED.get()]
        if queue.pending >= queue.limit:
            raise Busy(
                f"the service has {queue.pending} requests at work already (try again in a moment)"
            )
        queue.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                queue.executor, lambda: function(*args)
            )
        finally:
            queue.pending -= 1

    def shutdown(self) -> None:
        for queue in self._queues.values():
            queue.executor.shutdown(wait=True, cancel_futures=True)
