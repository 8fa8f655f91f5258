# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures for integration tests: throwaway systemd beds (bed.py).

Integration tests need root.  Elsewhere they are skipped with the reason — except in CI
(CI=true), where a missing prerequisite fails them: CI must run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from bed import SYSTEMD, Bed, sweep_stale_beds

CHECKOUT = Path(__file__).resolve().parent.parent


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "integration tests boot a systemd and need root"
    if not Path(SYSTEMD).exists():
        return f"integration tests need systemd ({SYSTEMD} is missing)"
    return None


@pytest.fixture(scope="session")
def beds_allowed() -> None:
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
    """A bed of its own, without podmgr."""
    with Bed("fresh", CHECKOUT) as booted:
        yield booted
