# SPDX-License-Identifier: LGPL-2.1-or-later
"""File locks: flock(2) on a lock file, held for a with block.

The lock belongs to the open file description, so a process that dies (kill -9
included) releases it; nothing is ever left to clean up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def flocked(path: Path, exclusive: bool = True) -> Iterator[None]:
    """Hold ``path`` (made, mode 0600, if missing) locked: exclusive, or shared with other
    shared holders."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)
