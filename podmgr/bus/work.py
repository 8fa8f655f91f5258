# SPDX-License-Identifier: LGPL-2.1-or-later
"""Blocking work off the event loop, in a bounded queue.

Parsing a manifest, resolving its images, running gpg or journalctl, collecting garbage:
each would stop every other caller's call while it runs if it ran on the loop.  They run
here, in a few threads; at most QUEUE calls wait or run at once, and one more is refused
at once with org.podmgr1.Error.Busy, so a flood of big requests costs a bounded amount of
memory and never delays the loop itself (ListPods and GetPod do not queue here).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from podmgr.errors import Busy

T = TypeVar("T")

THREADS = 2
QUEUE = 16  # running and waiting together


class Work:
    def __init__(self, threads: int = THREADS, queue: int = QUEUE) -> None:
        self.queue = queue
        self.pending = 0
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="podmgr1-work")

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in a worker thread; Busy when the queue is full."""
        if self.pending >= self.queue:
            raise Busy(f"the service has {self.pending} requests at work already (try again "
                       "in a moment)")
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, lambda: function(*args))
        finally:
            self.pending -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
