# SPDX-License-Identifier: LGPL-2.1-or-later
"""Work in a thread of its own, for what enters or creates a namespace.

Network and IPC namespaces belong to a thread, not to the process (setns(2), unshare(2)):
code that changes them runs in a fresh thread that ends with it, so no other code ever
runs in a namespace it did not choose, and the process never has to fork for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_own_thread(work: Callable[[], T], name: str) -> T:
    """``work()`` in a new thread named ``name``, waited for: what it returns, or what it
    raised, raised here."""
    returned: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            returned.append(work())
        except BaseException as error:  # handed to the caller's thread
            failed.append(error)

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return returned[0]
