# SPDX-License-Identifier: LGPL-2.1-or-later
"""The keys of [app.NAME.health]: health checks, with the keys and defaults of podman's
and Docker's HEALTHCHECK (generator/health.py).  Part of the key table in ``schema.py``."""

from __future__ import annotations

import enum

from podmgr import names
from podmgr.quantities import Duration
from podmgr.tables import Key, Section
from podmgr.values import BadValue, Choice, Executable, Integer, ListOf, String, ValueType


class OnFailure(enum.StrEnum):
    """What an app that turned unhealthy gets (podman's --health-on-failure)."""

    NONE = "none"
    RESTART = "restart"
    STOP = "stop"


class AtLeast(Duration):
    """A duration of at least ``least`` microseconds."""

    def __init__(self, least: int, why: str) -> None:
        self.least = least
        self.why = why

    def parse(self, raw: object) -> int:
        value = super().parse(raw)
        if value < self.least:
            shown = names.shown(raw) if isinstance(raw, str) else str(raw)
            raise BadValue(f"{shown} is too short: {self.why}")
        return value


class Command(ValueType[tuple[str, ...]]):
    """A command line: a program (an absolute path, as exec[0] of an app) and arguments."""

    doc = "array of strings"
    words = ListOf(String(), unique=False)

    def parse(self, raw: object) -> tuple[str, ...]:
        argv = self.words.parse(raw)
        if not argv:
            raise BadValue('is empty (add the command, e.g. ["/bin/true"])')
        try:
            Executable().parse(argv[0])
        except BadValue as error:
            raise BadValue(str(error), "[0]") from None
        return argv


HEALTH = Section(
    "health",
    "health",
    "A health check: a command run in the app's confinement (its root, namespaces, user, "
    "capabilities, system call filter and slice), as a unit of its own on a timer. "
    "It passes when it exits with 0 within timeout. After retries failures in a row the app "
    "is unhealthy; a pass makes it healthy again.",
    (
        Key(
            "exec",
            Command(),
            "The check's command line; the first element is an absolute path inside the app.",
            required=True,
            example='["/bin/wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]',
        ),
        Key(
            "interval",
            AtLeast(10**6, "checks come at most once a second (use 1s or more)"),
            "Time from the app's start to the first check, and from the end of one check to "
            "the next (OnActiveSec=, OnUnitInactiveSec=).",
            default="30s",
        ),
        Key(
            "timeout",
            AtLeast(1000, "a check needs at least 1ms (use 1s or more)"),
            "A check that runs longer has failed (TimeoutStartSec=).",
            default="30s",
        ),
        Key(
            "retries",
            Integer(1, 1000, "count"),
            "Failures in a row that make the app unhealthy.",
            default=3,
        ),
        Key(
            "start_period",
            Duration(),
            "Time from the app's start during which failures do not count (until a check "
            "passes), for an app that takes long to start.",
            default="0s",
        ),
        Key(
            "on_failure",
            Choice(OnFailure),
            'What happens to an app that turns unhealthy: "restart" restarts its unit, "stop" '
            'stops it, "none" only reports it.',
            default="none",
        ),
    ),
    optional=True,
)
