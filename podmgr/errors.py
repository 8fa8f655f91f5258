# SPDX-License-Identifier: LGPL-2.1-or-later
"""Typed errors with stable problem codes.

Library code raises these; the CLI prints ``str(error)`` as one line, and the D-Bus
service maps ``code`` to ``org.podmgr1.Error.<code>``.  The message names the object
(file, key, pod, unit) and says how to fix it.
"""

from __future__ import annotations

# Every code an error carries, and what it means: org.podmgr1(5) lists them from here
# (cli/docs.py), and a class whose code is not here fails as it is defined.
CODES = {
    "NoSuchPod": "no pod of that name has a manifest",
    "ManifestInvalid": "a manifest that cannot be used; the message names every problem",
    "NoSuchApp": "the pod's manifest has no app of that name",
    "NotRunning": "the app is not running (start its pod first)",
    "Exists": "the name is taken",
    "ManifestChanged": "the manifest file is not the one the caller read (it changed on disk "
    "since): read it again",
    "JobFailed": "a systemd job or call failed",
    "PrepareFailed": "setting up or releasing a pod's rootfs, volumes or namespaces failed",
    "NoSuchImage": "no image of that name is stored",
    "SignatureRejected": "no signature the trust store accepts for the image's name, or gpg "
    "could not check one",
    "DigestMismatch": "a manifest, config or layer is not what its digest says",
    "UnsafeLayer": "a layer entry that would reach outside the layer",
    "BadLayer": "a layer podmgr cannot unpack: malformed, or beyond a limit of podmgr.toml(5)",
    "StoreFailed": "the store's file system refused to hold something (full, read-only, overlayfs)",
    "SandboxFailed": "the confined process could not be set up, or died without saying why",
    "BadImage": "an image manifest, index or config that is malformed or too big",
    "BadReference": "an image reference that does not parse",
    "SourceError": "the image source cannot be opened or read",
    "TrustError": "a trusted key that cannot be added, found or removed",
    "AccessDenied": "polkit did not authorize the caller (or could not be asked)",
    "InvalidName": "an argument that does not match its grammar or is over its size limit; "
    "each method says what its arguments are",
    "Busy": "too much work queued: try again",
    "Failed": "anything else",
}


class PodmgrError(Exception):
    """Base class.  ``code`` is stable (one of CODES); the message is for people."""

    code = "Failed"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.code not in CODES:
            raise TypeError(
                f"{cls.__qualname__}: error code {cls.code!r} is not in "
                "podmgr.errors.CODES (add it there, with what it means)"
            )


class NoSuchPod(PodmgrError):
    code = "NoSuchPod"


class NoSuchApp(PodmgrError):
    code = "NoSuchApp"


class NotRunning(PodmgrError):
    code = "NotRunning"


class Exists(PodmgrError):
    """The name is taken."""

    code = "Exists"


class ManifestChanged(PodmgrError):
    """The manifest file changed since the caller read it: nothing was written."""

    code = "ManifestChanged"


class SystemdError(PodmgrError):
    """A systemd job or call failed."""

    code = "JobFailed"


class PrepareError(PodmgrError):
    """Setting up or releasing a pod's rootfs, volumes or namespaces failed."""

    code = "PrepareFailed"


class Problem:
    """One thing wrong with a manifest: where (a key path or "line L, column C") and why.

    A plain class, not a dataclass: prepare imports this module on every pod start, and
    importing dataclasses costs more than the rest of prepare's imports."""

    __slots__ = ("message", "where")

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def __repr__(self) -> str:
        return f"Problem({self.where!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Problem) and (self.where, self.message) == (
            other.where,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.where, self.message))


class ManifestError(PodmgrError):
    """A manifest that cannot be used.  Carries every problem found, not just the first."""

    code = "ManifestInvalid"

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        super().__init__("\n".join(f"{file}: {p}" for p in problems))


class InvalidName(PodmgrError):
    """A name (pod, app, network, image, key fingerprint) that does not match its grammar,
    or an argument over its documented size limit."""

    code = "InvalidName"


class AccessDenied(PodmgrError):
    """polkit said no (or could not be asked)."""

    code = "AccessDenied"


class Busy(PodmgrError):
    """The service's work queue is full: try again."""

    code = "Busy"
