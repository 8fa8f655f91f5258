# SPDX-License-Identifier: LGPL-2.1-or-later
"""The dispatcher against a fake connection: fast, no bed.

Whatever a caller sends (any member, interface, signature and values, on the wire as
dbus-next marshals them), the answer is one method return of the table's signature or
one error with a known name and a one-line message that gives no internal detail; a
handler only ever sees typed arguments; a method with a polkit action is authorized
before its handler runs, and one without is never sent to polkit.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import textwrap
import threading
from typing import Any, cast

import pytest
from busfakes import ALLOWED, REFUSED, FakeBus, Recorder, RecordingAuthority, fake
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from podmgr import errors, names
from podmgr.bus import api, arguments, binding, callers, dispatch, polkit, service
from podmgr.bus.dbuslib import (
    Message,
    MessageBus,
    MessageType,
    SignatureTree,
    Unmarshaller,
    Variant,
)
from podmgr.bus.work import PRIVILEGED, Work
from podmgr.errors import AccessDenied, Busy, NoSuchPod, PodmgrError
from podmgr.image import oci, signing, store, trust, unpack  # noqa: F401 (their errors)
from podmgr.image.reference import Reference
from podmgr.image.transports import base  # noqa: F401 (its error)

# What each kind of argument becomes before a handler sees it.
TYPES: dict[str, object] = {
    "pod": names.PodName,
    "app": names.AppName,
    "network": names.NetworkName,
    "image": Reference,
    "image-or-empty": Reference | None,
    "pull": Reference,
    "source": str,
    "manifest": str,
    "prefix": str,
    "fingerprint": arguments.Fingerprint,
    "armored": bytes,
    "digest": str,
    "app-or-empty": names.AppName | None,
    "command": tuple[str, ...],
    "term": str,
    "fd": int,  # an index into the call's file descriptors (dispatch.Call.take_fds)
    "flag": bool,
    "duration": int,
}
# A value of each kind that passes the edge.
GOOD: dict[str, object] = {
    "pod": "alpha",
    "app": "main",
    "network": "podmgr",
    "image": "example.org/a:1",
    "image-or-empty": "",
    "pull": "example.org/a:1",
    "source": "oci:/x",
    "manifest": "",
    "prefix": "example.org",
    "fingerprint": "0" * 40,
    "armored": b"key",
    "digest": "0" * 64,
    "app-or-empty": "",
    "command": ["/bin/true"],
    "term": "xterm",
    "fd": 0,
    "flag": False,
    "duration": 0,
}
STANDARD_ERRORS = {
    f"org.freedesktop.DBus.Error.{name}"
    for name in (
        "UnknownMethod",
        "UnknownObject",
        "InvalidArgs",
        "UnknownInterface",
        "UnknownProperty",
        "PropertyReadOnly",
    )
}


def _codes(cls: type[PodmgrError]) -> set[str]:
    return {cls.code}.union(*(_codes(sub) for sub in cls.__subclasses__()))


OUTCOMES = [
    None,
    NoSuchPod("no pod 'x'\n(create one)"),
    PodmgrError("line one\nline two"),
    ValueError("secret internal detail /var/lib/podmgr"),
    KeyError("secret"),
    RecursionError("secret"),
    OSError(28, "No space left on device", "/secret"),
    AccessDenied("refused"),
]

_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=80)
_names = st.sampled_from(
    [
        "../../../home/alice",
        "",
        "alpha",
        "a" * 64,
        "pöd",
        "Alpha",
        "example.org/app:1",
        "0" * 40,
        "oci:/x",
        "docker://busybox",
    ]
)
_string = st.one_of(_names, _text, st.builds(lambda n: "a" * n, st.integers(0, 2 * api.MiB)))


_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "s": _string,
    "o": st.sampled_from(["/", "/org/podmgr1", "/org/podmgr1/pod/alpha", "/x/_1"]),
    "u": st.integers(0, 2**32 - 1),
    "i": st.integers(-(2**31), 2**31 - 1),
    "b": st.booleans(),
    "t": st.integers(0, 2**64 - 1),
    "v": st.builds(lambda s: Variant("s", s), _text),
    "ay": st.binary(max_size=64),
    "as": st.lists(_string, max_size=3),
    "h": st.integers(0, 3),  # an index into the fds passed: none are, here
    "a{ss}": st.dictionaries(_text, _text, max_size=3),
}


def value_of(signature: str) -> st.SearchStrategy[Any]:
    return _VALUES[signature]


SIGNATURES = sorted(
    {m.in_signature for i in api.INTERFACES for m in i.methods}
    | {"ss", "s", "ssv", "u", "as", "ii", "a{ss}", "sv", "sss", "b", "ay"}
)
_ELEMENTS = {
    "ss": ["s", "s"],
    "s": ["s"],
    "ssv": ["s", "s", "v"],
    "u": ["u"],
    "as": ["as"],
    "ii": ["i", "i"],
    "a{ss}": ["a{ss}"],
    "sv": ["s", "v"],
    "sss": ["s", "s", "s"],
    "b": ["b"],
    "ay": ["ay"],
    "": [],
    "say": ["s", "ay"],
    "ssasshhh": ["s", "s", "as", "s", "h", "h", "h"],
    "t": ["t"],
}


PATHS = {
    api.MANAGER: "/org/podmgr1",
    api.POD: "/org/podmgr1/pod/alpha",
    api.TRANSFER: "/org/podmgr1/transfer/_1",
}


@st.composite
def calls(draw: st.DrawFn) -> Message:
    """Mostly calls that reach a handler or the edge (a method of the object's own
    interface), then standard interfaces, then anything at all."""
    interface = draw(st.sampled_from(api.INTERFACES))
    path = PATHS[interface]
    what = draw(st.sampled_from(["method"] * 6 + ["properties"] * 2 + ["anything"]))
    if what == "method" and interface.methods:
        method = draw(st.sampled_from(interface.methods))
        member, interface_name = method.name, draw(st.sampled_from([interface.name, None]))
        signature = draw(st.sampled_from([method.in_signature] * 40 + SIGNATURES))
    elif what in ("method", "properties"):
        member = draw(st.sampled_from(["Get", "GetAll", "Set", "Other"]))
        interface_name = dispatch.PROPERTIES
        signature = draw(
            st.sampled_from(
                [{"Get": "ss", "GetAll": "s", "Set": "ssv"}.get(member, "")] * 20 + SIGNATURES
            )
        )
    else:
        member = draw(
            st.sampled_from(
                [
                    "Introspect",
                    "Nothing",
                    "Get",
                    *[m.name for i in api.INTERFACES for m in i.methods],
                ]
            )
        )
        interface_name = draw(
            st.sampled_from(
                [
                    None,
                    dispatch.PROPERTIES,
                    dispatch.INTROSPECTABLE,
                    "org.example.Other",
                    *[i.name for i in api.INTERFACES],
                ]
            )
        )
        signature = draw(st.sampled_from(SIGNATURES))
        path = draw(st.sampled_from([*PATHS.values(), "/elsewhere", "/"]))
    body = [draw(value_of(element)) for element in _ELEMENTS[signature]]
    if (
        interface_name == dispatch.PROPERTIES
        and body
        and isinstance(body[0], str)
        and draw(st.booleans())
    ):
        body[0] = draw(st.sampled_from([i.name for i in api.INTERFACES]))
        if len(body) > 1 and isinstance(body[1], str):
            body[1] = draw(
                st.sampled_from([p.name for i in api.INTERFACES for p in i.properties] + ["X"])
            )
    if what == "method" and draw(st.booleans()) and interface.methods:
        # Good values in some slots, so that others are what fails (or nothing does).
        target = interface.method_index.get(member)
        if target and signature == target.in_signature:
            body = [
                draw(st.sampled_from([GOOD[a.kind], value]))
                for a, value in zip(target.in_args, body, strict=True)
            ]
    return Message(
        destination=api.BUS_NAME,
        path=path,
        interface=interface_name,  # type: ignore[arg-type, unused-ignore]  # None: any
        member=member,
        signature=signature,
        body=body,
        serial=7,
        sender=":1.42",
    )


def wire(message: Message) -> Message:
    """``message`` as the other end reads it: marshalled and unmarshalled again."""
    import io  # noqa: PLC0415

    data = io.BytesIO(message._marshall(False))  # type: ignore[no-untyped-call, unused-ignore]
    unmarshaller = Unmarshaller(data)  # type: ignore[no-untyped-call, arg-type, unused-ignore]
    unmarshaller.unmarshall()  # type: ignore[no-untyped-call, unused-ignore]
    result = cast(Message, unmarshaller.message)
    result.sender = message.sender  # dbus-daemon stamps it; the library does not marshal it
    return result


async def dispatch_one(
    message: Message,
    outcome: BaseException | None,
    allow: bool,
    authority: RecordingAuthority | None = None,
) -> tuple[list[Message], dict[str, Recorder], list[tuple[str, str, dict[str, str]]]]:
    authority = authority or (RecordingAuthority() if allow else RecordingAuthority(REFUSED))
    bus = FakeBus()
    dispatcher = dispatch.Dispatcher(cast(MessageBus, bus), authority)
    objects = {
        "/org/podmgr1": fake(api.MANAGER, outcome),
        "/org/podmgr1/pod/alpha": fake(api.POD, outcome),
        "/org/podmgr1/transfer/_1": fake(api.TRANSFER, outcome),
    }
    for (path, implementation), interface in zip(objects.items(), api.INTERFACES, strict=True):
        dispatcher.export(path, interface, implementation)
    try:
        handled = dispatcher.handle(message)
        assert handled or message.interface == dispatch.PEER
        while dispatcher.tasks:
            await asyncio.gather(*dispatcher.tasks)
    finally:
        dispatcher.work.shutdown()
    return bus.sent, objects, [(q.sender, q.action, q.details) for q in authority.asked]


KNOWN = {api.ERROR_PREFIX + code for code in _codes(PodmgrError)} | STANDARD_ERRORS


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(calls(), st.sampled_from(OUTCOMES), st.booleans())
def test_every_call_gets_one_proper_answer(
    message: Message, outcome: BaseException | None, allow: bool
) -> None:
    try:
        message = wire(message)
    except Exception:  # not a message a bus would carry (dbus-next refuses to marshal it)
        return
    sent, objects, asked = asyncio.run(dispatch_one(message, outcome, allow))
    assert len(sent) == 1, sent
    [reply] = sent
    wire(reply)  # a well-formed message
    assert reply.reply_serial == message.serial
    ran = [(m, values) for impl in objects.values() for m, values in impl.ran]
    event(f"ran {ran[0][0].name}" if ran else f"answered {reply.error_name}")
    for method, values in ran:
        for arg, value in zip(method.in_args, values, strict=True):
            expected = TYPES[arg.kind]
            assert isinstance(value, expected), (method.name, arg.name, value)  # type: ignore[arg-type]
        # Only after polkit said yes, and only asked for methods with an action.
        assert (method.action is None) == (not asked), (method.name, asked)
        if method.action:
            assert allow
            assert asked[0][0] == ":1.42"
            assert asked[0][1] == method.action
            assert asked[0][2]["verb"] == method.verb
            # A second action the table names is asked too, of the same caller.
            assert [a for _, a, _ in asked] == [method.action, *filter(None, [method.also])]
    if not ran:
        assert all(action for _, action, _ in asked)  # refused, or never got that far
    if reply.message_type is MessageType.METHOD_RETURN:
        return
    assert reply.message_type is MessageType.ERROR
    assert reply.error_name in KNOWN, reply.error_name
    [text] = reply.body
    assert isinstance(text, str)
    assert text
    assert "\n" not in text
    assert len(text) < 400, text
    assert "Traceback" not in text
    assert "secret" not in text, text  # nothing of what a bug's exception says


@pytest.mark.parametrize(
    "method", [m for i in api.INTERFACES for m in i.methods], ids=lambda m: m.name
)
def test_authorization_comes_from_the_table(method: api.Method) -> None:
    """A caller polkit refuses is refused every method with an action before its handler
    runs; a method without one never asks polkit."""
    interface = next(i for i in api.INTERFACES if method in i.methods)
    path = {api.MANAGER: "/org/podmgr1", api.TRANSFER: "/org/podmgr1/transfer/_1"}[interface]
    message = wire(
        Message(
            destination=api.BUS_NAME,
            path=path,
            interface=interface.name,
            member=method.name,
            signature=method.in_signature,
            body=[GOOD[a.kind] for a in method.in_args],
            serial=3,
            sender=":1.9",
        )
    )
    if "h" in method.in_signature:  # what its h arguments name (the dispatcher closes them)
        message.unix_fds = [os.open(os.devnull, os.O_RDONLY)]
    [reply], objects, asked = asyncio.run(dispatch_one(message, None, allow=False))
    ran = [m.name for impl in objects.values() for m, _ in impl.ran]
    if method.action:
        assert reply.error_name == api.ERROR_PREFIX + "AccessDenied"
        assert ran == []
        assert [action for _, action, _ in asked] == [method.action]
    else:
        assert reply.message_type is MessageType.METHOD_RETURN, reply.body
        assert ran == [method.name]
        assert asked == []


class RefusingOne(RecordingAuthority):
    """Allows every action but ``refused``."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    async def check_authorization(
        self, sender: str, action: str, details: dict[str, str], flags: int
    ) -> polkit.Result:
        await super().check_authorization(sender, action, details, flags)
        return REFUSED if action == self.refused else ALLOWED


@pytest.mark.parametrize(
    "method", [m for i in api.INTERFACES for m in i.methods if m.also], ids=lambda m: m.name
)
def test_a_method_needing_two_actions_needs_both(method: api.Method) -> None:
    """AutoUpdate pulls and restarts: a caller allowed one of its actions only is refused,
    whichever it is, before anything runs."""
    assert method.action
    assert method.also
    for refused in (method.action, method.also):
        message = wire(
            Message(
                destination=api.BUS_NAME,
                path="/org/podmgr1",
                interface=api.MANAGER.name,
                member=method.name,
                signature=method.in_signature,
                body=[GOOD[a.kind] for a in method.in_args],
                serial=3,
                sender=":1.9",
            )
        )
        [reply], objects, asked = asyncio.run(
            dispatch_one(message, None, True, RefusingOne(refused))
        )
        assert reply.error_name == api.ERROR_PREFIX + "AccessDenied"
        assert [m.name for impl in objects.values() for m, _ in impl.ran] == []
        assert [action for _, action, _ in asked][-1] == refused


def test_polkit_details_carry_the_checked_names() -> None:
    message = wire(
        Message(
            destination=api.BUS_NAME,
            path="/org/podmgr1",
            interface=api.MANAGER.name,
            member="ImportImage",
            signature="ss",
            body=["oci:/srv/x", "busybox"],
            serial=3,
            sender=":1.9",
        )
    )
    _, _, asked = asyncio.run(dispatch_one(message, None, allow=True))
    assert asked == [
        (
            ":1.9",
            api.MANAGE_IMAGES,
            {"verb": "import", "source": "oci:/srv/x", "image": "docker.io/library/busybox:latest"},
        )
    ]


def _implementations() -> list[tuple[api.Interface, str, type, str]]:
    """(interface, entry, class, attribute) for every entry the service binds, the
    deferred image methods loaded."""
    found: list[tuple[api.Interface, str, type, str]] = []
    for interface, cls in service.SERVED:
        bound = binding.bind(cls, interface)
        found += [(interface, e, cls, a) for e, a in bound.attributes.items()]
        for part in set(bound.deferred.values()):
            part_class, part_binding = part.load()
            found += [(interface, e, part_class, a) for e, a in part_binding.attributes.items()]
    return found


def test_every_entry_of_the_table_is_implemented_once() -> None:
    implemented = [(interface.name, entry) for interface, entry, _, _ in _implementations()]
    assert sorted(implemented) == sorted(
        [(i.name, m.name) for i in api.INTERFACES for m in i.methods]
        + [(i.name, p.name) for i in api.INTERFACES for p in i.properties]
    )


_SIMPLE: dict[str, object] = {
    "s": str,
    "o": str,
    "u": int,
    "t": int,
    "i": int,
    "b": bool,
    "d": float,
    "ay": bytes,
}


def python_type(signature: str) -> object:
    """The annotation a handler returns a complete D-Bus type as: a struct is a list
    (dbus-next marshals lists), of one type or of ``object``."""
    if signature in _SIMPLE:
        return _SIMPLE[signature]
    if signature.startswith("a{"):
        key, value = SignatureTree(signature[2:-1]).types
        return dict[python_type(key.signature), python_type(value.signature)]  # type: ignore[misc]
    if signature.startswith("a"):
        return list[python_type(signature[1:])]  # type: ignore[misc]
    [tree] = SignatureTree(signature).types
    members = {python_type(child.signature) for child in tree.children}
    return list[members.pop() if len(members) == 1 else object]  # type: ignore[misc]


def test_handlers_return_the_tables_types() -> None:
    for interface, entry, owner, attribute in _implementations():
        function = getattr(owner, attribute)
        hints = inspect.get_annotations(
            function, eval_str=True, globals=vars(inspect.getmodule(owner))
        )
        method = interface.method_index.get(entry)
        if method is None:
            [prop] = [p for p in interface.properties if p.name == entry]
            expected = python_type(prop.signature)
        else:
            outs = [python_type(a.signature) for a in method.out_args]
            expected = (
                None
                if not outs
                else outs[0]
                if len(outs) == 1
                else tuple.__class_getitem__(tuple(outs))
            )
        assert hints["return"] == expected, (interface.name, entry)


def test_handlers_take_typed_arguments() -> None:
    """Each handler of the service is bound to its table entry, with the typed values the
    edge produces as its parameters: none can take a raw name."""
    for interface, entry, owner, attribute in _implementations():
        function = getattr(owner, attribute)
        hints = inspect.get_annotations(
            function, eval_str=True, globals=vars(inspect.getmodule(owner))
        )
        method = interface.method_index.get(entry)
        if method is None:  # a property: no arguments, or the caller it depends on
            [prop] = [p for p in interface.properties if p.name == entry]
            parameters = list(inspect.signature(function).parameters)
            if prop.per_caller:
                assert parameters == ["self", "caller"], entry
                assert hints["caller"] is callers.Caller, entry
            else:
                assert parameters == ["self"], entry
            continue
        assert inspect.iscoroutinefunction(function), method.name
        parameters = list(inspect.signature(function).parameters)[2:]  # self, call
        assert parameters == [a.name for a in method.in_args], method.name
        assert hints["call"] is dispatch.Call, method.name
        for arg in method.in_args:
            assert hints[arg.name] == TYPES[arg.kind], (method.name, arg.name)


def test_every_argument_has_a_kind_with_a_limit() -> None:
    arguments.check_table()
    for interface in api.INTERFACES:
        for method in interface.methods:
            for arg in method.in_args:
                kind = api.KINDS[arg.kind]
                assert kind.limit > 0
                # documented where the method is: introspection and org.podmgr1(5)
                assert f"{arg.name.upper()} is {kind.doc}." in method.doc


def test_error_codes_are_names() -> None:
    for code in _codes(PodmgrError):
        assert re.fullmatch(r"[A-Z][A-Za-z]+", code), code
    assert errors.InvalidName.code == "InvalidName"


def test_a_full_work_queue_refuses_at_once() -> None:
    """With the queue full, one more request is told Busy, and the others still finish."""
    release = threading.Event()

    async def main() -> tuple[list[str], str]:
        work = Work(threads=1, queue=2)
        try:
            running = [asyncio.ensure_future(work.run(release.wait)) for _ in range(2)]
            await asyncio.sleep(0)
            with pytest.raises(Busy) as refused:
                await work.run(print, "never")
            release.set()
            return [str(r) for r in await asyncio.gather(*running)], str(refused.value)
        finally:
            release.set()
            work.shutdown()

    results, message = asyncio.run(main())
    assert results == ["True", "True"]
    assert message == "the service has 2 requests at work already (try again in a moment)"


def test_service_imports_stay_lean() -> None:
    """The service's first call must not load the image methods (gpg, tar, TLS)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = textwrap.dedent("""
        import asyncio, sys
        from podmgr.bus.dbuslib import Message
        from podmgr.bus import api, binding, polkit, service
        from podmgr.bus.dispatch import Dispatcher
        from podmgr.names import PodName

        class Bus:
            def add_message_handler(self, handler): pass

        class Allow:
            async def check_authorization(self, *args):
                return polkit.Result(True, False, {})

        async def main():
            binding.check(service.SERVED)  # as the service starts
            dispatcher = Dispatcher(Bus(), Allow())
            manager = service.Manager.__new__(service.Manager)  # authorizing needs no state
            dispatcher.export(api.MANAGER_PATH, api.MANAGER, manager)
            call = Message(path="/org/podmgr1", member="StartPod", sender=":1.1")
            await dispatcher._authorize(call, api.MANAGER.method_index["StartPod"], manager,
                                        [PodName("web")])
            dispatcher.work.shutdown()

        asyncio.run(main())
        print("podmgr.bus.imagemethods" in sys.modules, "podmgr.image.pull" in sys.modules)
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out == "False False\n"


def test_a_flood_of_reads_does_not_refuse_authorized_work() -> None:
    """Anyone may fill the queue of unauthorized calls; what polkit allowed (a pod's
    ReleasePod, an administrator's CreatePod) has a queue of its own."""
    release = threading.Event()

    async def main() -> tuple[str, bool]:
        work = Work(threads=1, queue=2)

        async def read() -> bool:
            PRIVILEGED.set(False)
            return await work.run(release.wait)

        try:
            flood = [asyncio.ensure_future(read()) for _ in range(2)]
            await asyncio.sleep(0)
            with pytest.raises(Busy) as refused:
                await asyncio.ensure_future(read())  # a task: a context of its own
            done = await work.run(lambda: True)  # privileged: not held up
            release.set()
            await asyncio.gather(*flood)
            return str(refused.value), done
        finally:
            release.set()
            work.shutdown()

    message, done = asyncio.run(main())
    assert message.startswith("the service has 2 requests at work already")
    assert done is True
