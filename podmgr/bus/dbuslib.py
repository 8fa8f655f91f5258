# SPDX-License-Identifier: LGPL-2.1-or-later
"""The D-Bus library, dbus-next or dbus-fast: the one module that imports either.

dbus-fast is a maintained fork of dbus-next with the same API.  Debian 12 packages both
(python3-dbus-next 0.2.3, python3-dbus-fast 1.84); Fedora packages only dbus-fast.
Every other module takes the names it needs from here, so podmgr runs on whichever the
distribution has.  Where both are installed, dbus-next is used: it is what the Debian
package depends on, and a package that happens to pull in dbus-fast (a Bluetooth stack
does) must not change the library a running service uses behind the administrator's
back.  ``PODMGR_DBUS=dbus_fast`` (or ``dbus_next``) in the environment forces one; a
value that names neither, or a library that is not installed, ends the program with one
line that says so.

The two differ, where podmgr looks, only in their private writer: connection.py has its
own, so the same code runs on both.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator

FORCE = "PODMGR_DBUS"  # the environment variable that picks the library
LIBRARIES = ("dbus_next", "dbus_fast")  # in the order of preference
PACKAGES = {"dbus_next": "python3-dbus-next", "dbus_fast": "python3-dbus-fast"}


def choose(forced: str | None) -> str:
    """The library to use: ``forced`` (the value of PODMGR_DBUS) if set, else the first of
    LIBRARIES installed.  SystemExit with one line if there is none."""
    if forced:
        if forced not in LIBRARIES:
            raise SystemExit(
                f"podmgr: {FORCE}={forced!r} is not a D-Bus library podmgr uses "
                f"(set {' or '.join(LIBRARIES)}, or unset it)"
            )
        if importlib.util.find_spec(forced) is None:
            raise SystemExit(
                f"podmgr: {FORCE}={forced}, but {forced} is not installed "
                f"(install {PACKAGES[forced]}, or unset {FORCE})"
            )
        return forced
    for name in LIBRARIES:
        if importlib.util.find_spec(name) is not None:
            return name
    raise SystemExit(f"podmgr: needs a D-Bus library: install {' or '.join(PACKAGES.values())}")


NAME = choose(os.environ.get(FORCE))
# mypy checks the code against each library in turn: setup.cfg makes this always false,
# `mypy --always-true DBUS_FAST` (make typecheck) always true.
DBUS_FAST = NAME == "dbus_fast"


@contextlib.contextmanager
def _without_gi() -> Iterator[None]:
    """Both packages import their GLib main loop integration, and with it PyGObject when
    installed (a desktop has it), which alone takes longer than the rest of the library:
    every start of the service and the CLI would pay for a main loop they never use.  The
    integration treats a missing gi as optional, so gi is made to look missing while the
    library loads (None in sys.modules stops an import), unless something loaded it."""
    blocked = "gi" not in sys.modules
    if blocked:
        sys.modules["gi"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if blocked and sys.modules.get("gi", ...) is None:
            del sys.modules["gi"]


with _without_gi():
    if DBUS_FAST:
        from dbus_fast._private.unmarshaller import Unmarshaller  # tests read bytes back
        from dbus_fast.aio.message_bus import MessageBus
        from dbus_fast.constants import BusType, MessageType, NameFlag, RequestNameReply
        from dbus_fast.message import Message
        from dbus_fast.signature import SignatureTree, Variant
    else:
        from dbus_next._private.unmarshaller import Unmarshaller  # tests read bytes back
        from dbus_next.aio.message_bus import MessageBus
        from dbus_next.constants import BusType, MessageType, NameFlag, RequestNameReply
        from dbus_next.message import Message
        from dbus_next.signature import SignatureTree, Variant


def _writes_multibyte_strings_whole() -> bool:
    """Whether a string of non-ASCII characters goes out with its length in bytes, as
    the D-Bus specification says.  dbus-fast 1.84 (Debian 12) writes the number of
    characters instead, so every such string corrupts its message; dbus-fast fixed it in
    October 2023 (its pull request 261), dbus-next never had it."""
    import io  # noqa: PLC0415 -- once, at import

    probe = Message(path="/", member="Probe", signature="s", body=["\u00e9\u6f22"], serial=1)
    unmarshaller = Unmarshaller(io.BytesIO(probe._marshall(False)))  # type: ignore[no-untyped-call, arg-type, unused-ignore]
    try:
        unmarshaller.unmarshall()  # type: ignore[no-untyped-call, unused-ignore]
    except Exception:  # whatever the library makes of its own bytes
        return False
    message = unmarshaller.message
    return message is not None and list(message.body) == ["\u00e9\u6f22"]


if not _writes_multibyte_strings_whole():
    raise SystemExit(
        f"podmgr: this {NAME} writes non-ASCII strings with wrong lengths, which corrupts "
        f"messages (install {PACKAGES['dbus_next']}, or {PACKAGES[NAME]} 2.12 or later, "
        "which has the fix)"
    )

__all__ = [
    "NAME",
    "BusType",
    "Message",
    "MessageBus",
    "MessageType",
    "NameFlag",
    "RequestNameReply",
    "SignatureTree",
    "Unmarshaller",
    "Variant",
]
