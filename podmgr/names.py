# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pod and app names, and the systemd unit names derived from them.

Naming scheme (documented in podmgr.toml(5)):

    pod@POD.service          the pod: prepares before and releases after its apps
    pod-POD.slice            the pod's slice, under pod.slice; POD is escaped as
                             systemd-escape does, so pod "a-b" is pod-a\\x2db.slice
                             and never nests under pod "a"; a pod whose slice name
                             would be over 255 characters (each "-" takes four) is
                             refused
    podapp@POD:APP.service   one unit per app; ":" cannot occur in a pod or app
                             name, so the instance splits back without ambiguity
    podsocket@POD:APP:FD_NAME.socket
                             one socket unit per fd_name of an app's
                             [[app.APP.socket]] tables (by default APP); it
                             activates podapp@POD:APP.service
    podenter@POD:APP:TAG.service
                             a transient unit running a command inside an app
                             (podmgr enter); TAG is random hex, one per command
    podmachine@POD:APP.service   transient, without a process: the pod's registration
                             with systemd-machined while app APP leads it
                             (bus/machined.py)
    podhealth@POD:APP.service         an app's health check, run once
    podhealth@POD:APP.timer           runs it every interval while the app runs
    podhealth-passed@POD:APP.service  records a passed check
    podhealth-failed@POD:APP.service  counts a failed check, acts on the app after
                                      retries of them
    podhealth-reset@POD:APP.service   clears the app's health before each start
    podhealth-ready@POD:APP.service   with ready = "healthy": tells systemd the app
                                      is started at its first passing check
"""

from __future__ import annotations

import re
from typing import Self

from podmgr.errors import InvalidName

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
NAME_HINT = "use 1-63 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit"

POD_TEMPLATE = "pod@.service"
# The generator's drop-in for pod@NAME.service; named 10-... so that an administrator's
# override.conf comes later and wins.
DROP_IN = "10-podmgr.conf"
PARENT_SLICE = "pod.slice"
# The network a bridged pod joins when its manifest names none; it needs no definition.
DEFAULT_NETWORK = "podmgr"


# systemd's UNIT_NAME_MAX counts the terminating NUL.
UNIT_NAME_MAX = 255


def is_valid_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None


def is_valid_pod_name(name: str) -> bool:
    """A valid name whose units systemd can name: the slice's escaping makes each '-' four
    characters, so a long name full of them gives a slice name over UNIT_NAME_MAX."""
    return is_valid_name(name) and all(
        len(unit) <= UNIT_NAME_MAX for unit in (pod_slice(name), pod_unit(name))
    )


# systemd-machined takes a machine name only if it is a valid host name (its
# hostname_is_valid(): labels of letters, digits and '-', not beginning or ending with '-',
# joined by single dots, at most 64 characters).  A pod is registered under its own name,
# so a pod name with '_', or with a label that begins or ends with '-', is not registered.
MACHINE_NAME_PATTERN = re.compile(
    r"(?=.{1,64}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


def is_valid_machine_name(name: str) -> bool:
    """Whether systemd-machined accepts ``name`` as a machine's name."""
    return MACHINE_NAME_PATTERN.fullmatch(name) is not None


def shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for a one-line message: control characters and line separators
    escaped (repr does), an over-long text cut with its length said."""
    quoted = repr(text)
    if len(quoted) <= limit + 2:
        return quoted
    # Cut by what is shown: an escaped character takes up to ten.
    cut = text[:limit]
    while len(repr(cut)) > limit + 2:
        cut = cut[:-1]
    return f"{cut!r}... ({len(text)} characters)"


class CheckedName(str):
    """A name that matched NAME_PATTERN: constructing one is checking it, so a function
    that takes a PodName, AppName or NetworkName never sees a path like "../x"."""

    kind = "name"
    valid = staticmethod(is_valid_name)

    def __new__(cls, text: object) -> Self:
        if not isinstance(text, str):
            raise InvalidName(f"a {cls.kind} name must be a string, not {type(text).__name__}")
        # The length first: the pattern bounds it too, but the message should say so.
        if not text:
            raise InvalidName(f"the {cls.kind} name is empty ({NAME_HINT})")
        if len(text) <= 63 and is_valid_name(text) and not cls.valid(text):
            raise InvalidName(
                f"{shown(text)}: the {cls.kind}'s unit names would be longer "
                f"than systemd allows (use a shorter name, or fewer '-')"
            )
        if len(text) > 63 or not cls.valid(text):
            raise InvalidName(f"{shown(text)} is not a valid {cls.kind} name ({NAME_HINT})")
        return super().__new__(cls, text)


class PodName(CheckedName):
    kind = "pod"
    valid = staticmethod(is_valid_pod_name)


class AppName(CheckedName):
    kind = "app"


class NetworkName(CheckedName):
    kind = "network"


# What unit_name_escape() keeps as it is, for text made of nothing else.
_UNESCAPED = re.compile(r"[A-Za-z0-9:_][A-Za-z0-9:_.]*")


def unit_name_escape(text: str) -> str:
    """Escape ``text`` for use as a unit name prefix component, as ``systemd-escape`` does."""
    if _UNESCAPED.fullmatch(text):
        return text
    out = []
    for i, char in enumerate(text):
        if char == "/":
            out.append("-")
        elif (char.isascii() and (char.isalnum() or char in ":_.")) and not (
            i == 0 and char == "."
        ):
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
    return "".join(out)


def pod_unit(pod: str) -> str:
    return f"pod@{pod}.service"


def pod_slice(pod: str) -> str:
    return f"pod-{unit_name_escape(pod)}.slice"


def app_unit(pod: str, app: str) -> str:
    return f"podapp@{pod}:{app}.service"


def socket_unit(pod: str, app: str, name: str) -> str:
    return f"podsocket@{pod}:{app}:{name}.socket"


def enter_unit(pod: str, app: str, tag: str) -> str:
    return f"podenter@{pod}:{app}:{tag}.service"


def machine_unit(pod: str, app: str) -> str:
    return f"podmachine@{pod}:{app}.service"


def health_check_unit(pod: str, app: str) -> str:
    return f"podhealth@{pod}:{app}.service"


def health_timer(pod: str, app: str) -> str:
    return f"podhealth@{pod}:{app}.timer"


def health_passed_unit(pod: str, app: str) -> str:
    return f"podhealth-passed@{pod}:{app}.service"


def health_failed_unit(pod: str, app: str) -> str:
    return f"podhealth-failed@{pod}:{app}.service"


def health_reset_unit(pod: str, app: str) -> str:
    return f"podhealth-reset@{pod}:{app}.service"


def health_ready_unit(pod: str, app: str) -> str:
    return f"podhealth-ready@{pod}:{app}.service"
