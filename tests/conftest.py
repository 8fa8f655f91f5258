# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures for integration tests: throwaway systemd beds (bed.py).

Integration tests need root and a systemd to boot.  Elsewhere they are skipped with the
reason — except in CI (CI=true), where a missing prerequisite fails them: CI must run them.

tests/ has no __init__.py, so pytest puts this directory on sys.path before importing
this file (setup.cfg's pythonpath says so too): test modules import ``from bed import Bed``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

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
