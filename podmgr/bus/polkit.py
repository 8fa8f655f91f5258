# SPDX-License-Identifier: LGPL-2.1-or-later
"""Asking polkit whether the sender of a call may perform an action.

org.freedesktop.PolicyKit1.Authority.CheckAuthorization, with the caller as a
system-bus-name subject, so polkit judges the process that sent the message, not a pid
that could be reused.  Details (verb, pod, image, ...) reach rules in
/etc/polkit-1/rules.d.  The dispatcher asks before a method with an action runs (the
API table says which); handlers never ask themselves.
"""

from __future__ import annotations

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message
from dbus_next.signature import Variant

from podmgr.errors import AccessDenied

AUTHORITY = "org.freedesktop.PolicyKit1"
AUTHORITY_PATH = "/org/freedesktop/PolicyKit1/Authority"
ALLOW_USER_INTERACTION = 1


async def check(bus: MessageBus, sender: str, action: str, details: dict[str, str],
                interactive: bool = True) -> None:
    """Return if polkit allows ``sender`` to do ``action``; raise AccessDenied otherwise.
    ``interactive`` False: only what is allowed without authentication counts."""
    subject = ["system-bus-name", {"name": Variant("s", sender)}]
    flags = ALLOW_USER_INTERACTION if interactive else 0
    reply = await bus.call(Message(
        destination=AUTHORITY, path=AUTHORITY_PATH, interface=f"{AUTHORITY}.Authority",
        member="CheckAuthorization", signature="(sa{sv})sa{ss}us",
        body=[subject, action, details, flags, ""]))
    if reply is None or reply.message_type is MessageType.ERROR:
        detail = reply.body[0] if reply and reply.body else "no answer"
        raise AccessDenied(f"cannot ask polkit about {action}: {detail}")
    authorized, challenge, _ = reply.body[0]
    if not authorized:
        what = "needs authentication" if challenge else "is not allowed"
        raise AccessDenied(f"{action} {what} for this caller (ask an administrator, or to be "
                           "added to the group podmgr if its rule is installed)")
