# SPDX-License-Identifier: LGPL-2.1-or-later
"""Asking polkit whether the sender of a call may perform an action.

org.freedesktop.PolicyKit1.Authority.CheckAuthorization, with the caller as a
system-bus-name subject, so polkit judges the process that sent the message, not a pid
that could be reused.  Details (pod, verb, image) reach rules in /etc/polkit-1/rules.d.
"""

from __future__ import annotations

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message
from dbus_next.signature import Variant

from podmgr.bus import api
from podmgr.bus.dispatch import BusError

AUTHORITY = "org.freedesktop.PolicyKit1"
AUTHORITY_PATH = "/org/freedesktop/PolicyKit1/Authority"
ALLOW_USER_INTERACTION = 1


async def check(bus: MessageBus, sender: str, action: str, details: dict[str, str]) -> None:
    """Return if polkit allows ``sender`` to do ``action``; raise AccessDenied otherwise."""
    subject = ["system-bus-name", {"name": Variant("s", sender)}]
    reply = await bus.call(Message(
        destination=AUTHORITY, path=AUTHORITY_PATH, interface=f"{AUTHORITY}.Authority",
        member="CheckAuthorization", signature="(sa{sv})sa{ss}us",
        body=[subject, action, details, ALLOW_USER_INTERACTION, ""]))
    if reply is None or reply.message_type is MessageType.ERROR:
        detail = reply.body[0] if reply and reply.body else "no answer"
        raise BusError(api.ERROR_PREFIX + "AccessDenied",
                       f"cannot ask polkit about {action}: {detail}")
    authorized, challenge, _ = reply.body[0]
    if not authorized:
        what = "needs authentication" if challenge else "is not allowed"
        raise BusError(api.ERROR_PREFIX + "AccessDenied",
                       f"{action} {what} for this caller (ask an administrator, or to be added "
                       "to the group podmgr if its rule is installed)")
