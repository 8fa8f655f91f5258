# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the unit tests of podmgr/bus put where the service has polkitd, a bus
connection and its handlers: a polkit authority that records each question and answers
as the test decides (polkit.check still decides what the answer means), a connection
that keeps what is sent, and implementations of the API table built from the table
itself (bound with @implements, as the service's own classes are)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from podmgr.bus import api, dispatch, polkit
from podmgr.bus.binding import implements
from podmgr.bus.dbuslib import Message, SignatureTree, Variant


@dataclass
class Question:
    sender: str
    action: str
    details: dict[str, str]
    flags: int


@dataclass
class RecordingAuthority:
    """Answers every question with ``answer`` (or raises polkit.Unavailable with
    ``unavailable``), and keeps the questions."""

    answer: polkit.Result = field(default_factory=lambda: polkit.Result(True, False, {}))
    unavailable: str | None = None
    asked: list[Question] = field(default_factory=list)

    async def check_authorization(
        self, sender: str, action: str, details: dict[str, str], flags: int
    ) -> polkit.Result:
        self.asked.append(Question(sender, action, dict(details), flags))
        if self.unavailable is not None:
            raise polkit.Unavailable(self.unavailable)
        return self.answer


ALLOWED = polkit.Result(True, False, {})
REFUSED = polkit.Result(False, False, {})
CHALLENGE = polkit.Result(False, True, {"polkit.retains_authorization_after_challenge": "1"})


class FakeBus:
    """What the dispatcher uses of a connection: a message handler and send()."""

    def __init__(self) -> None:
        self.handlers: list[Any] = []
        self.sent: list[Message] = []
        self.credentials_asked = 0

    def add_message_handler(self, handler: Any) -> None:
        self.handlers.append(handler)

    def send(self, message: Message) -> None:
        self.sent.append(message)

    async def call(self, message: Message) -> Message:
        """What the bus daemon answers about a caller: uid ``CALLER_UID``, no groups."""
        assert message.member == "GetConnectionCredentials", message.member
        message.serial = message.serial or 1  # a connection numbers what it sends
        self.credentials_asked += 1
        credentials = {"UnixUserID": Variant("u", CALLER_UID), "UnixGroupIDs": Variant("au", [])}
        return Message.new_method_return(message, "a{sv}", [credentials])


CALLER_UID = 4242


def sample(signature: str) -> Any:
    """A value of a complete D-Bus signature, for handlers to return."""
    code = signature[0]
    simple = {"s": "x", "o": "/x", "u": 1, "t": 1, "b": True, "d": 0.5, "y": 1, "i": -1}
    if code in simple:
        return simple[code]
    if code == "v":
        return Variant("s", "x")
    if signature.startswith("a{"):
        return {}
    if code == "a":
        return []
    if code == "(":
        [tree] = SignatureTree(signature).types
        return [sample(child.signature) for child in tree.children]
    raise AssertionError(signature)


class Recorder:
    """The base of the generated implementations: what their handlers received, and
    what they answer (a value of the table's type, or ``outcome`` raised)."""

    interface: api.Interface

    def __init__(self, outcome: BaseException | None = None) -> None:
        self.outcome = outcome
        self.ran: list[tuple[api.Method, tuple[object, ...]]] = []
        self.answers: dict[str, Any] = {}  # entry -> what it returns instead of a sample
        self.callers: list[Any] = []  # whom each property that depends on it was read for

    async def before(self, method: api.Method) -> None:
        """Called when a handler runs, before it answers."""

    def answer(self, name: str, signature: str) -> Any:
        if self.outcome is not None:
            raise self.outcome
        return self.answers.get(name, sample(signature))


def _handler(method: api.Method) -> Callable[..., Any]:
    async def run(self: Recorder, call: dispatch.Call, *values: object) -> Any:
        self.ran.append((method, values))
        await self.before(method)
        if self.outcome is not None:
            raise self.outcome
        if method.name in self.answers:
            return self.answers[method.name]
        out = [sample(a.signature) for a in method.out_args]
        return out[0] if len(out) == 1 else tuple(out)

    # The table's parameters, as a real handler has them (binding checks them).
    plain = inspect.Parameter.POSITIONAL_OR_KEYWORD
    run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, plain) for n in ("self", "call", *(a.name for a in method.in_args))]
    )
    return run


def _getter(prop: api.Property) -> Callable[..., Any]:
    def get(self: Recorder) -> Any:
        return self.answer(prop.name, prop.signature)

    def get_for(self: Recorder, caller: Any) -> Any:
        self.callers.append(caller)
        return self.answer(prop.name, prop.signature)

    return get_for if prop.per_caller else get


def implementation(interface: api.Interface) -> type[Recorder]:
    """A class implementing every entry of ``interface``, bound with @implements."""
    namespace: dict[str, Any] = {"interface": interface}
    for method in interface.methods:
        namespace[f"method_{method.name}"] = implements(interface, method.name)(_handler(method))
    for prop in interface.properties:
        namespace[f"property_{prop.name}"] = implements(interface, prop.name)(_getter(prop))
    return type(f"Fake{interface.name.rsplit('.', 1)[-1]}", (Recorder,), namespace)


FAKES = {interface.name: implementation(interface) for interface in api.INTERFACES}


def fake(interface: api.Interface, outcome: BaseException | None = None) -> Recorder:
    return FAKES[interface.name](outcome)
