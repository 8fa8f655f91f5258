# SPDX-License-Identifier: LGPL-2.1-or-later
"""An app's health: its state files, counting failed checks, and acting on them.

The units are generator/health.py's.  Each app with a health check has, beside its root
file system under /run/podmgr/pods/POD/apps/APP/ (paths.PodRuntime):

    health-passed    touched by every passing check since the app's start
    health-failures  the failed checks counted since the last pass (JSON, written
                     atomically): how many, the check's InvocationID that was counted
                     last, and whether that made the app unhealthy

The app's unit removes both when it starts; a passing check removes health-failures and
touches health-passed.  So the app is "unhealthy" when health-failures says so,
"healthy" when health-passed exists, and "starting" before its first pass.  systemd
keeps each check's result but not how many failed in a row, hence the counter.

Semantics are Docker's and podman's: a failure in the first start_period of the app's
start does not count, unless a check has passed since; after retries failures in a row
the app is unhealthy, and on_failure says what happens to it.

``podmgr-pod health-failed POD APP ...`` runs after a failed check (the check's
OnFailure=): it counts the failure, and restarts or stops the app once it is unhealthy.
``podmgr-pod health-wait POD APP ...`` (podhealth-ready@POD:APP.service) runs, for an
app with ready = "healthy", the check until it passes, then sends READY=1 as the app's
main process; or, once the app turns unhealthy, ends the app's start.  So systemd
considers the app started only after its first pass.  Counting the same check
twice (the waiter and OnFailure= both see it) is harmless: a failure is counted by its
check's InvocationID, once, under a lock.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from podmgr import locks, names, paths, process
from podmgr.errors import PodmgrError
from podmgr.manifest.healthkeys import OnFailure

if TYPE_CHECKING:
    import argparse


class Status(enum.StrEnum):
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


# Worst first: a pod is as healthy as its least healthy app.
ORDER = (Status.UNHEALTHY, Status.STARTING, Status.HEALTHY)


def worst(statuses: Sequence[str]) -> str:
    """The pod's health from its apps': "" when none of them has one."""
    return next((s.value for s in ORDER if s.value in statuses), "")


@dataclass(frozen=True)
class Failures:
    count: int
    check: str  # InvocationID of the check counted last
    unhealthy: bool

    @classmethod
    def read(cls, path: Path) -> Failures:
        """The counted failures; none when the file is missing or unreadable (it is
        written by this module only, atomically, but a reader must never fail)."""
        try:
            data = json.loads(path.read_text())
            failures = cls(int(data["failures"]), str(data["check"]), bool(data["unhealthy"]))
        except (OSError, ValueError, TypeError, KeyError):
            return cls(0, "", False)
        return failures

    def write(self, path: Path) -> None:
        temporary = path.with_name(path.name + ".new")
        data = {"failures": self.count, "check": self.check, "unhealthy": self.unhealthy}
        with temporary.open("w") as file:
            json.dump(data, file)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)


def status(runtime: paths.PodRuntime, app: str) -> Status:
    """The app's health as its state files say (see above)."""
    if Failures.read(runtime.health_failures(app)).unhealthy:
        return Status.UNHEALTHY
    if runtime.health_passed(app).exists():
        return Status.HEALTHY
    return Status.STARTING


@dataclass(frozen=True)
class Settings:
    pod: str
    app: str
    interval: int  # microseconds
    retries: int
    start_period: int
    on_failure: OnFailure


def show(unit: str, *properties: str) -> dict[str, str]:
    """Properties of ``unit`` as systemctl show gives them."""
    out = process.run(["systemctl", "show", f"--property={','.join(properties)}", unit])
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _usec(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def count_failure(settings: Settings) -> tuple[Failures, bool]:
    """Count the check's last run if it failed, unless it was counted already, ran before
    the app's current start, or fell in its start period.  The failures, and whether
    this call counted one."""
    runtime = paths.PodRuntime(settings.pod)
    app_unit = names.app_unit(settings.pod, settings.app)
    check_unit = names.health_check_unit(settings.pod, settings.app)
    if not runtime.app_dir(settings.app).is_dir():
        return Failures(0, "", False), False  # the pod is released: nothing to count for
    with locks.flocked(runtime.app_dir(settings.app) / "health-lock"):
        path = runtime.health_failures(settings.app)
        before = Failures.read(path)
        check = show(check_unit, "ActiveState", "InvocationID", "ExecMainStartTimestampMonotonic")
        started = _usec(
            show(app_unit, "InactiveExitTimestampMonotonic").get("InactiveExitTimestampMonotonic")
        )
        ran = _usec(check.get("ExecMainStartTimestampMonotonic"))
        invocation = check.get("InvocationID", "")
        # Only a run that failed and is still the last one (a failed unit stays failed
        # until its next start): a late counter must not count a pass, or a run under way.
        if check.get("ActiveState") != "failed" or invocation == before.check or ran < started:
            return before, False
        in_start_period = (
            not runtime.health_passed(settings.app).exists()
            and ran - started < settings.start_period
        )
        count = before.count + (0 if in_start_period else 1)
        after = Failures(count, invocation, count >= settings.retries)
        after.write(path)
    return after, after.count > before.count


def failed(settings: Settings) -> int:
    """After a failed check: count it, and act on an app that is now unhealthy."""
    failures, counted = count_failure(settings)
    # Said and done once, when the app turns unhealthy: a restart or stop starts it afresh
    # (or ends its checks), and "none" need not repeat itself at every check.
    if not (counted and failures.count == settings.retries):
        return 0
    app_unit = names.app_unit(settings.pod, settings.app)
    what = (
        f"app {settings.app} of pod {settings.pod} is unhealthy: its health check failed "
        f"{failures.count} times in a row"
    )
    # A starting app with ready = "healthy" is health-wait's to fail.
    if (
        settings.on_failure is OnFailure.NONE
        or show(app_unit, "ActiveState").get("ActiveState") != "active"
    ):
        tell(app_unit, what)
        return 0
    verb, doing = (
        ("restart", "restarting")
        if settings.on_failure is OnFailure.RESTART
        else ("stop", "stopping")
    )
    tell(app_unit, f"{what}; {doing} it (on_failure = {settings.on_failure.value!r})")
    # --no-block: the app's stop also stops its check, which this unit is not.
    process.run(["systemctl", "--no-block", verb, app_unit])
    return 0


def record_pass(runtime: paths.PodRuntime, app: str) -> None:
    """What podhealth-passed does, in the same order (generator/health.py)."""
    runtime.health_failures(app).unlink(missing_ok=True)
    runtime.health_passed(app).touch()


def wait(settings: Settings) -> int:
    """Wait for the app's main process, then run the check until it passes (tell systemd
    the app is ready: 0) or the app is unhealthy (end the app's start: 1)."""
    runtime = paths.PodRuntime(settings.pod)
    app_unit = names.app_unit(settings.pod, settings.app)
    check_unit = names.health_check_unit(settings.pod, settings.app)
    # Started with the app, not after it: its start job may not have begun yet.  A stop
    # of the app stops this too (PartOf=), and TimeoutStartSec= bounds the wait.
    while True:
        state = show(app_unit, "ActiveState", "MainPID")
        main = _usec(state.get("MainPID"))
        if state.get("ActiveState") in ("active", "failed"):
            return 0 if state.get("ActiveState") == "active" else 1
        if state.get("ActiveState") == "activating" and main:
            break
        time.sleep(0.05)
    while True:
        try:
            process.run(["systemctl", "start", check_unit])
        except subprocess.CalledProcessError:
            failures, _ = count_failure(settings)
        else:
            record_pass(runtime, settings.app)
            notify(main, "READY=1\nSTATUS=healthy")
            return 0
        if failures.unhealthy:
            what = (
                f"app {settings.app} of pod {settings.pod} did not become healthy: its "
                f"health check failed {failures.count} times in a row (see journalctl "
                f"-u {check_unit})"
            )
            notify(main, f"STATUS={what}")
            tell(app_unit, what)
            # The app's start fails: a notify service that ends before READY=1 has.
            process.run(["systemctl", "kill", "--kill-who=main", app_unit])
            return 1
        time.sleep(settings.interval / 10**6)


NOTIFY_SOCKET = "/run/systemd/notify"
JOURNAL_SOCKET = "/run/systemd/journal/socket"


def notify(pid: int, message: str) -> None:
    """sd_notify(3) as process ``pid``: root may name another process in its credentials,
    and systemd takes the message as that process's (NotifyAccess=main)."""
    credentials = struct.pack("iII", pid, 0, 0)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendmsg(
            [message.encode()],
            [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, credentials)],
            0,
            NOTIFY_SOCKET,
        )


def tell(unit: str, message: str) -> None:
    """Log ``message`` about ``unit``: on stderr (this unit's journal, and podmgr logs),
    and to the journal as about the app's unit (OBJECT_SYSTEMD_UNIT=, which systemctl
    status and journalctl -u show for a sender that is root)."""
    print(message, file=sys.stderr, flush=True)
    fields = (
        f"MESSAGE={message}\nPRIORITY=4\nSYSLOG_IDENTIFIER=podmgr\nOBJECT_SYSTEMD_UNIT={unit}\n"
    )
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock,
    ):
        sock.sendto(fields.encode(), JOURNAL_SOCKET)


def _parser() -> argparse.ArgumentParser:
    import argparse  # noqa: PLC0415 -- only podmgr-pod health-* parses arguments

    parser = argparse.ArgumentParser(prog="podmgr-pod", add_help=False)
    parser.add_argument("verb", choices=("health-failed", "health-wait"))
    parser.add_argument("pod")
    parser.add_argument("app")
    parser.add_argument("--interval", type=int, required=True)
    parser.add_argument("--retries", type=int, required=True)
    parser.add_argument("--start-period", type=int, required=True)
    parser.add_argument("--on-failure", type=OnFailure, required=True)
    return parser


def main(argv: Sequence[str]) -> int:
    """``podmgr-pod health-failed|health-wait POD APP --interval=USEC --retries=N
    --start-period=USEC --on-failure=none|restart|stop``, as the generated units run it."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings(
            names.PodName(args.pod),
            names.AppName(args.app),
            args.interval,
            args.retries,
            args.start_period,
            args.on_failure,
        )
    except PodmgrError as error:
        print(f"podmgr-pod: {error}", file=sys.stderr)
        return 2
    return failed(settings) if args.verb == "health-failed" else wait(settings)
