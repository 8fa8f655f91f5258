# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checks shared by the bed tests of host paths taken literally (test_volumes.py,
test_host_paths.py)."""

from __future__ import annotations

from bed import Bed


def assert_start_refused(bed: Bed, pod: str, message: str, warning: str) -> None:
    """Pod ``pod`` has a host path with a symbolic link in it: validate warns of
    ``warning``, and the start fails with ``message`` in one line, in podmgr's words and in
    systemctl status, leaving nothing running or prepared."""
    validated = bed.run("podmgr", "validate", f"/etc/podmgr/pods/{pod}.toml")
    assert f"warning: {warning} is a symbolic link" in validated.stderr
    failed = bed.run("podmgr", "start", pod, check=False)
    assert failed.returncode == 1
    assert message in failed.stderr, failed.stderr
    assert failed.stderr.count("\n") == 1
    status = bed.run(
        "systemctl", "status", "--no-pager", "--lines=5", f"pod@{pod}.service", check=False
    ).stdout
    assert message in status
    assert (
        bed.run(
            "systemctl", "show", "--value", "-p", "ActiveState", f"podapp@{pod}:main.service"
        ).stdout.strip()
        != "active"
    )
    assert bed.run("test", "-e", f"/run/podmgr/pods/{pod}", check=False).returncode == 1
    bed.run("systemctl", "reset-failed", f"pod@{pod}.service")
