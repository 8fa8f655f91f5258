# SPDX-License-Identifier: LGPL-2.1-or-later
"""The leak check every test runs under (conftest.py's no_leaks), run on tests that
leak on purpose, in a pytest of their own: each kind of leak fails its test with a
message naming it; what a module-scoped fixture starts, and what a test waits for, does
not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

LEAKY = """
import asyncio, subprocess, threading, time

import pytest


def test_thread():
    threading.Thread(target=time.sleep, args=(4,), name="sleeper", daemon=True).start()


def test_child():
    subprocess.Popen(["sleep", "4"])


def test_zombie():
    global zombie  # kept, so that nobody waits for it
    zombie = subprocess.Popen(["true"])


def test_task():
    async def main():
        asyncio.get_running_loop().create_task(asyncio.sleep(4), name="forgotten")
    asyncio.run(main())


def test_clean():
    thread = threading.Thread(target=time.sleep, args=(0.1,))
    thread.start()
    thread.join()
    subprocess.run(["true"], check=True)

    async def main():
        task = asyncio.get_running_loop().create_task(asyncio.sleep(0.01))
        await task
    asyncio.run(main())


@pytest.fixture(scope="module")
def daemon():
    process = subprocess.Popen(["sleep", "30"])
    yield process
    process.terminate()
    process.wait()


def test_first_with_daemon(daemon):
    assert daemon.poll() is None


def test_second_with_daemon(daemon):
    assert daemon.poll() is None
"""


def test_each_kind_of_leak_fails_its_test_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rA",
            "-p",
            "no:cacheprovider",
            "-p",
            "conftest",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_leaky.py"),
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,  # it fails
        env={**os.environ, "PYTHONPATH": str(TESTS), "COLUMNS": "1000"},
    )  # whole lines
    lines = result.stdout.splitlines()
    outcome = {
        line.split()[1].split("::")[1]: line
        for line in lines
        if line.startswith(("PASSED ", "ERROR "))
    }
    for clean in ("test_clean", "test_first_with_daemon", "test_second_with_daemon"):
        assert outcome[clean].startswith("PASSED"), result.stdout
    expected = {
        "test_thread": "the test leaked thread 'sleeper' (Thread, target <built-in function "
        "sleep>)",
        "test_child": "the test leaked child process pid ",
        "test_zombie": "a zombie: nobody waited for it",
        "test_task": "the test leaked asyncio task left pending: <Task pending "
        "name='forgotten' coro=<sleep()",
    }
    for test, message in expected.items():
        assert outcome[test].startswith(f"ERROR test_leaky.py::{test} - Failed:"), result.stdout
        assert message in outcome[test], outcome[test]
    assert "(sleep 4)" in outcome["test_child"]
