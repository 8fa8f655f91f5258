# SPDX-License-Identifier: LGPL-2.1-or-later
"""Asking polkit whether the sender of a call may perform an action.

org.freedesktop.PolicyKit1.Authority.CheckAuthorization, with the caller as a
system-bus-name subject, so polkit judges the process that sent the message, not a pid
that could be reused.  Details (verb, pod, image, ...) reach rules in
/etc/polkit-1/rules.d.  The dispatcher asks before a method with an action runs (the
API table says which); handlers never ask themselves.

The authority is a seam (Authority): the service asks polkitd on the system bus
(BusAuthority); the unit tests of the dispatcher give an authority that records what it
was asked and answers as polkitd would.  What the answer means (allowed, refused, needs
authentication, no answer) is decided here, in check(), for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from podmgr.bus.dbuslib import Message, MessageBus, MessageType, Variant
from podmgr.errors import AccessDenied

AUTHORITY = "org.freedesktop.PolicyKit1"
AUTHORITY_PATH = "/org/freedesktop/PolicyKit1/Authority"
ALLOW_USER_INTERACTION = 1


@dataclass(frozen=True)
class Result:
    """What CheckAuthorization answers (polkit's AuthorizationResult)."""

    authorized: bool
    challenge: bool  # not authorized yet, but would be after authentication
    details: dict[str, str]


class Unavailable(Exception):
    """polkit could not be asked, or answered with an error: ``str()`` says why."""


class Authority(Protocol):
    async def check_authorization(
        self, sender: str, action: str, details: dict[str, str], flags: int
    ) -> Result:
        """polkit's answer for the system-bus-name ``sender``; Unavailable if none."""
        ...


class BusAuthority:
    """polkitd, asked on ``bus``."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def check_authorization(
        self, sender: str, action: str, details: dict[str, str], flags: int
    ) -> Result:
        subject = ["system-bus-name", {"name": Variant("s", sender)}]
        reply = await self.bus.call(
            Message(
                destination=AUTHORITY,
                path=AUTHORITY_PATH,
                interface=f"{AUTHORITY}.Authority",
                member="CheckAuthorization",
                signature="(sa{sv})sa{ss}us",
                body=[subject, action, details, flags, ""],
            )
        )
        if reply is None or reply.message_type is MessageType.ERROR:
            raise Unavailable(reply.body[0] if reply and reply.body else "no answer")
        authorized, challenge, result_details = reply.body[0]
        return Result(bool(authorized), bool(challenge), dict(result_details))


async def check(
    authority: Authority,
    sender: str,
    action: str,
    details: dict[str, str],
    interactive: bool = True,
) -> None:
    """Return if polkit allows ``sender`` to do ``action``; raise AccessDenied otherwise.
    ``interactive`` False: only what is allowed without authentication counts."""
    flags = ALLOW_USER_INTERACTION if interactive else 0
    try:
        result = await authority.check_authorization(sender, action, details, flags)
    except Unavailable as error:
        raise AccessDenied(f"cannot ask polkit about {action}: {error}") from None
    if not result.authorized:
        what = "needs authentication" if result.challenge else "is not allowed"
        raise AccessDenied(
            f"{action} {what} for this caller (ask an administrator, or to be "
            "added to the group podmgr)"
        )
