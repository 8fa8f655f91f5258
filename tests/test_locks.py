# SPDX-License-Identifier: LGPL-2.1-or-later
"""The one file-lock helper the store, the leases, the networks and the user records use."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import pytest

from podmgr import locks


def _try(path: Path, kind: int) -> bool:
    """Whether another open file description gets the lock ``kind`` now."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_exclusive_excludes_everyone_until_the_block_ends(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    with locks.flocked(lock):
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        assert not _try(lock, fcntl.LOCK_SH)
        assert not _try(lock, fcntl.LOCK_EX)
    assert _try(lock, fcntl.LOCK_EX)


def test_shared_admits_shared_holders_only(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    with locks.flocked(lock, exclusive=False):
        assert _try(lock, fcntl.LOCK_SH)
        assert not _try(lock, fcntl.LOCK_EX)


def test_an_exception_releases_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    with pytest.raises(RuntimeError), locks.flocked(lock):
        raise RuntimeError("the block failed")
    assert _try(lock, fcntl.LOCK_EX)
