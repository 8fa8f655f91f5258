# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures for integration tests: throwaway systemd beds (bed.py).

Integration tests need root and a systemd to boot.  Elsewhere they are skipped with the
reason — except in CI (CI=true), where a missing prerequisite fails them: CI must run them.

tests/ has no __init__.py, so pytest puts this directory on sys.path before importing
this file (setup.cfg's pythonpath says so too): test modules import ``from bed import Bed``.
"""

from __future__ import annotations

import asyncio
import asyncio.runners
import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bed import SYSTEMD, Bed, sweep_stale_beds
from hypothesis import settings

# Property and fuzz tests: random examples on a developer's machine, where a new failure
# is a find; the same examples on every CI run, so that main stays green or red by
# what was committed, not by chance.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

CHECKOUT = Path(__file__).resolve().parent.parent
LEAK_GRACE = 2.0  # seconds a thread or child may take to end after its test


def _children() -> set[int]:
    """The pids of this process's children (of every thread), zombies included."""
    pids: set[int] = set()
    for children in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # thread ended
            pids.update(int(pid) for pid in children.read_text().split())
    return pids


def _describe(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return f"pid {pid}"
    zombie = ", a zombie: nobody waited for it" if state == "Z" else ""
    return f"pid {pid} ({cmdline.decode(errors='replace') or '?'}{zombie})"


@pytest.fixture(autouse=True)
def no_leaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a test that leaves threads, child processes or asyncio tasks behind.

    What a module- or session-scoped fixture (a bed, shared by a module's tests) starts
    is not the test's: pytest sets up wider-scoped fixtures before this function-scoped
    one and tears them down after it, so their threads and processes are in the "before"
    snapshot and still there after; a function-scoped fixture's are set up after this one
    and gone before it looks.  Tasks are those still pending when a test's asyncio.run()
    returns (asyncio.run cancels them, which would hide the leak)."""
    threads = set(threading.enumerate())
    children = _children()
    tasks: list[str] = []
    cancel_all = asyncio.runners._cancel_all_tasks  # type: ignore[attr-defined]

    def cancel_pending(loop: asyncio.AbstractEventLoop) -> Any:
        tasks.extend(repr(task) for task in asyncio.all_tasks(loop) if not task.done())
        return cancel_all(loop)

    monkeypatch.setattr(asyncio.runners, "_cancel_all_tasks", cancel_pending)
    yield
    deadline = time.monotonic() + LEAK_GRACE
    while True:
        new_threads = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
        new_children = sorted(_children() - children)
        if not (new_threads or new_children) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    leaks = [
        f"thread {t.name!r} ({t.__class__.__name__}, target {getattr(t, '_target', None)!r})"
        for t in new_threads
    ]
    leaks += [f"child process {_describe(pid)}" for pid in new_children]
    leaks += [f"asyncio task left pending: {task}" for task in tasks]
    if leaks:
        pytest.fail("the test leaked " + "; ".join(leaks), pytrace=False)


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "integration tests boot a systemd and need root"
    if not Path(SYSTEMD).exists():
        return f"integration tests need systemd ({SYSTEMD} is missing)"
    for tool in ("unshare", "nsenter", "setpriv"):
        if not shutil.which(tool):
            return f"integration tests need {tool} (util-linux)"
    return None


@pytest.fixture(scope="session")
def beds_allowed() -> None:
    """Skip (fail in CI) without the prerequisites; before the first bed, sweep away
    what a crashed run left."""
    if reason := _missing_prerequisite():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run integration tests")
        pytest.skip(reason)
    sweep_stale_beds()


@pytest.fixture(scope="module")
def bed(beds_allowed: None, request: pytest.FixtureRequest) -> Iterator[Bed]:
    """A bed with podmgr installed, shared by the tests of one module."""
    with Bed(request.module.__name__.rsplit(".", 1)[-1], CHECKOUT) as booted:
        booted.install_project()
        yield booted


@pytest.fixture
def fresh_bed(beds_allowed: None) -> Iterator[Bed]:
    """A bed of its own, booted but without podmgr."""
    with Bed("fresh", CHECKOUT) as booted:
        yield booted


@pytest.fixture
def layer_dir(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """An empty layer directory inside a sandbox whose other contents must not change."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim").write_text("untouched")
    layer = tmp_path / "sandbox" / "layer"
    layer.mkdir(parents=True)
    fd = os.open(layer, os.O_RDONLY | os.O_DIRECTORY)
    yield layer, fd
    os.close(fd)
    assert (tmp_path / "outside" / "victim").read_text() == "untouched"
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["victim"]
    assert sorted(p.name for p in (tmp_path / "sandbox").iterdir()) == ["layer"]
