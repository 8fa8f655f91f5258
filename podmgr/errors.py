# SPDX-License-Identifier: LGPL-2.1-or-later
"""Typed errors with stable problem codes.

Library code raises these; the CLI prints ``str(error)`` as one line, and the D-Bus
service maps ``code`` to ``org.podmgr1.Error.<code>``.  The message names the object
(file, key, pod, unit) and says how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass


class PodmgrError(Exception):
    """Base class.  ``code`` is stable; the message is for people."""

    code = "Failed"


class NoSuchPod(PodmgrError):
    code = "NoSuchPod"


class SystemdError(PodmgrError):
    """A systemd job or call failed."""

    code = "JobFailed"


class PrepareError(PodmgrError):
    """Setting up or releasing a pod's rootfs, volumes or namespaces failed."""

    code = "PrepareFailed"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest: where (a key path or "line L, column C") and why."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class ManifestError(PodmgrError):
    """A manifest that cannot be used.  Carries every problem found, not just the first."""

    code = "ManifestInvalid"

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        super().__init__("\n".join(f"{file}: {p}" for p in problems))
