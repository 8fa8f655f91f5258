# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr/threads.py: work in a thread of its own, its result or its error handed back."""

from __future__ import annotations

import threading

import pytest

from podmgr.threads import in_own_thread


def test_the_work_runs_in_a_new_thread_and_its_result_comes_back() -> None:
    caller = threading.get_ident()
    assert in_own_thread(lambda: threading.get_ident() != caller, "probe") is True


def test_the_work_is_done_when_it_returns() -> None:
    seen: list[str] = []
    in_own_thread(lambda: seen.append(threading.current_thread().name), "named")
    assert seen == ["named"]


def test_what_the_work_raises_is_raised_in_the_caller() -> None:
    def fail() -> None:
        raise FileNotFoundError(2, "no such pin")

    with pytest.raises(FileNotFoundError, match="no such pin"):
        in_own_thread(fail, "failing")
