# SPDX-License-Identifier: LGPL-2.1-or-later
"""The middle layer of the service, one behaviour at a time, fast and without a bed:
the dispatcher on a fake connection (what it sends is what a client would read), the
service's own Transfer and Manager where they take part, and polkit's decisions through a
recording authority whose answers polkit.check interprets as it does polkitd's.
test_dispatch.py throws every kind of call at the same layer; test_private_bus.py runs it
on a real dbus-daemon."""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from typing import Any, cast

import pytest
from busfakes import ALLOWED, CHALLENGE, REFUSED, FakeBus, Recorder, RecordingAuthority, fake

from podmgr import names
from podmgr.bus import api, dispatch, polkit, service, transfers
from podmgr.bus.dbuslib import Message, MessageBus, MessageType, Variant
from podmgr.bus.podobjects import unit_of_path
from podmgr.bus.systemd import unit_path
from podmgr.errors import Exists, NoSuchPod

SENDER = ":1.77"
POD_PATH = api.pod_path("web")


def call(
    member: str,
    body: list[Any],
    signature: str | None = None,
    path: str = api.MANAGER_PATH,
    interface: str | None = api.MANAGER.name,
) -> Message:
    if signature is None:
        signature = next(
            m.in_signature for i in api.INTERFACES for m in i.methods if m.name == member
        )
    return Message(
        destination=api.BUS_NAME,
        path=path,
        interface=interface,  # type: ignore[arg-type, unused-ignore]  # None: any
        member=member,
        signature=signature,
        body=body,
        serial=11,
        sender=SENDER,
    )


class Served:
    """A dispatcher on a FakeBus with a recording Manager and Pod exported."""

    def __init__(
        self, authority: RecordingAuthority | None = None, outcome: BaseException | None = None
    ) -> None:
        self.bus = FakeBus()
        self.authority = authority or RecordingAuthority()
        self.manager = fake(api.MANAGER, outcome)
        self.pod = fake(api.POD, outcome)
        self._dispatcher: dispatch.Dispatcher | None = None

    @property
    def dispatcher(self) -> dispatch.Dispatcher:
        """Made on first use: a dispatcher lives in a running event loop."""
        if self._dispatcher is None:
            self._dispatcher = dispatch.Dispatcher(cast(MessageBus, self.bus), self.authority)
            self._dispatcher.export(api.MANAGER_PATH, api.MANAGER, self.manager)
            self._dispatcher.export(POD_PATH, api.POD, self.pod)
        return self._dispatcher

    async def answer(self, message: Message) -> Message:
        """The one message the dispatcher sends for ``message``."""
        before = len(self.bus.sent)
        assert self.dispatcher.handle(message)
        while self.dispatcher.tasks:
            await asyncio.gather(*self.dispatcher.tasks)
        [reply] = self.bus.sent[before:]
        assert reply.reply_serial == message.serial
        return reply


def answer(message: Message, served: Served | None = None) -> tuple[Message, Served]:
    async def main() -> tuple[Message, Served]:
        nonlocal served
        served = served or Served()
        try:
            return await served.answer(message), served
        finally:
            await served.dispatcher.close()

    return asyncio.run(main())


def error_of(reply: Message) -> tuple[str | None, str]:
    assert reply.message_type is MessageType.ERROR, reply.body
    [text] = reply.body
    return str(reply.error_name), text


def ran(recorder: Recorder) -> list[tuple[str, tuple[object, ...]]]:
    return [(method.name, values) for method, values in recorder.ran]


# Dispatch


def test_a_call_runs_its_bound_handler_with_typed_values_and_replies_its_signature() -> None:
    reply, served = answer(call("GetPod", ["web"]))
    assert reply.message_type is MessageType.METHOD_RETURN
    assert (reply.signature, reply.body) == ("o", ["/x"])
    [(member, values)] = ran(served.manager)
    assert (member, values) == ("GetPod", (names.PodName("web"),))
    assert type(values[0]) is names.PodName


def test_methods_with_several_results_reply_each() -> None:
    served = Served()
    served.manager.answers["GarbageCollect"] = (2, 3, ["lease of pod gone"])
    reply, _ = answer(call("GarbageCollect", []), served)
    assert (reply.signature, reply.body) == ("uuas", [2, 3, ["lease of pod gone"]])


def test_the_interface_may_be_left_out_and_unknown_members_are_refused() -> None:
    reply, served = answer(call("ListPods", [], interface=None))
    assert reply.message_type is MessageType.METHOD_RETURN
    assert ran(served.manager) == [("ListPods", ())]
    assert error_of(answer(call("StartPods", [], signature=""))[0]) == (
        "org.freedesktop.DBus.Error.UnknownMethod",
        "no method org.podmgr1.Manager.StartPods",
    )
    assert (
        error_of(answer(call("Name", [], signature="", path=POD_PATH, interface=api.POD.name))[0])[
            0
        ]
        == "org.freedesktop.DBus.Error.UnknownMethod"
    )  # a property is not a method
    assert error_of(answer(call("ListPods", [], path="/org/podmgr1/pod/nothing"))[0]) == (
        "org.freedesktop.DBus.Error.UnknownObject",
        "no object /org/podmgr1/pod/nothing",
    )


# Signatures


@pytest.mark.parametrize(
    ("member", "signature", "body"),
    [
        ("StartPod", "", []),
        ("StartPod", "u", [1]),
        ("StartPod", "ss", ["web", "x"]),
        ("CreatePod", "s", ["web"]),
        ("TrustKey", "ss", ["", "key"]),
    ],
)
def test_a_wrong_signature_is_invalid_args_and_runs_nothing(
    member: str, signature: str, body: list[Any]
) -> None:
    reply, served = answer(call(member, body, signature))
    expected = api.MANAGER.method_index[member].in_signature
    assert error_of(reply) == (
        "org.freedesktop.DBus.Error.InvalidArgs",
        f"{member} takes ({expected}), not ({signature})",
    )
    assert ran(served.manager) == []
    assert served.authority.asked == []  # refused before polkit is bothered


def test_a_value_outside_its_kind_is_refused_at_the_edge() -> None:
    reply, served = answer(call("StartPod", ["../etc"]))
    name, text = error_of(reply)
    assert name == "org.podmgr1.Error.InvalidName"
    assert text.startswith("'../etc' is not a valid pod name")
    assert ran(served.manager) == []
    assert served.authority.asked == []


# Errors


@pytest.mark.parametrize(
    "error",
    [NoSuchPod("no pod 'web'\n(podmgr list shows them)"), Exists("there is a pod 'web' already")],
    ids=lambda e: type(e).__name__,
)
def test_a_typed_error_is_its_code_in_one_line(error: Exception) -> None:
    reply, _ = answer(call("GetPod", ["web"]), Served(outcome=error))
    name, text = error_of(reply)
    assert name == api.ERROR_PREFIX + cast(Any, error).code
    assert text == dispatch.one_line(str(error))
    assert "\n" not in text


def test_an_unexpected_error_is_failed_and_its_traceback_goes_to_the_journal_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        reply, _ = answer(
            call("GetPod", ["web"]), Served(outcome=KeyError("/var/lib/podmgr/secret"))
        )
    assert error_of(reply) == (
        "org.podmgr1.Error.Failed",
        "GetPod failed unexpectedly (journalctl -u podmgr1 says why)",
    )
    [record] = caplog.records
    assert record.getMessage() == "org.podmgr1.Manager.GetPod failed"
    assert record.exc_info is not None  # the traceback, for the journal


def test_a_failing_system_call_says_what_failed_but_not_where() -> None:
    reply, _ = answer(
        call("GetPod", ["web"]), Served(outcome=OSError(28, "No space left on device", "/secret"))
    )
    assert error_of(reply) == ("org.podmgr1.Error.Failed", "GetPod: No space left on device")


# Properties


def props(member: str, body: list[Any], signature: str, path: str = POD_PATH) -> Message:
    return call(member, body, signature, path, dispatch.PROPERTIES)


def test_get_and_get_all_answer_from_the_bound_properties() -> None:
    served = Served()
    served.pod.answers.update({"Name": "web", "Annotations": {"team": "infra"}})
    reply, _ = answer(props("Get", [api.POD.name, "Name"], "ss"), served)
    assert (reply.signature, reply.body) == ("v", [Variant("s", "web")])
    reply, _ = answer(props("GetAll", [api.POD.name], "s"), Served())
    [values] = reply.body
    assert {name: value.signature for name, value in values.items()} == {
        p.name: p.signature for p in api.POD.properties
    }


@pytest.mark.parametrize(
    ("member", "body", "signature", "error", "text"),
    [
        (
            "Set",
            [api.POD.name, "Name", Variant("s", "x")],
            "ssv",
            "org.freedesktop.DBus.Error.PropertyReadOnly",
            "the properties of org.podmgr1 are read-only",
        ),
        (
            "Get",
            [api.POD.name, "Nmae"],
            "ss",
            "org.freedesktop.DBus.Error.UnknownProperty",
            "no property 'Nmae' in org.podmgr1.Pod",
        ),
        (
            "Get",
            [api.MANAGER.name, "Name"],
            "ss",
            "org.freedesktop.DBus.Error.UnknownInterface",
            "no interface 'org.podmgr1.Manager' here",
        ),
        (
            "Get",
            [api.POD.name],
            "s",
            "org.freedesktop.DBus.Error.InvalidArgs",
            "Get takes (ss), not (s)",
        ),
        ("GetAll", [1], "u", "org.freedesktop.DBus.Error.InvalidArgs", "GetAll takes (s), not (u)"),
        (
            "Watch",
            [],
            "",
            "org.freedesktop.DBus.Error.UnknownMethod",
            "no method org.freedesktop.DBus.Properties.Watch",
        ),
    ],
    ids=[
        "Set",
        "unknown-property",
        "unknown-interface",
        "Get-signature",
        "GetAll-signature",
        "unknown-member",
    ],
)
def test_properties_refuse_what_they_do_not_have(
    member: str, body: list[Any], signature: str, error: str, text: str
) -> None:
    reply, _ = answer(props(member, body, signature))
    assert error_of(reply) == (error, text)


def test_properties_changed_carries_the_current_values() -> None:
    async def main() -> list[Message]:
        served = Served()
        served.pod.answers.update({"State": "active", "Addresses": ["10.0.0.2"]})
        served.dispatcher.properties_changed(POD_PATH, api.POD, ["State", "Addresses"])
        served.dispatcher.properties_changed("/org/podmgr1/pod/gone", api.POD, ["State"])
        await served.dispatcher.close()
        return served.bus.sent

    [signal] = asyncio.run(main())  # nothing for an object that is not exported
    assert signal.message_type is MessageType.SIGNAL
    assert (signal.path, signal.interface, signal.member, signal.signature) == (
        POD_PATH,
        dispatch.PROPERTIES,
        "PropertiesChanged",
        "sa{sv}as",
    )
    assert signal.body == [
        api.POD.name,
        {"State": Variant("s", "active"), "Addresses": Variant("as", ["10.0.0.2"])},
        [],
    ]


def test_signals_have_the_tables_signature() -> None:
    async def main() -> list[Message]:
        served = Served()
        served.dispatcher.emit(
            api.MANAGER_PATH, api.MANAGER, "TransferRemoved", 3, api.transfer_path(3), "done"
        )
        await served.dispatcher.close()
        return served.bus.sent

    [signal] = asyncio.run(main())
    assert (signal.interface, signal.member, signal.signature, signal.body) == (
        api.MANAGER.name,
        "TransferRemoved",
        "uos",
        [3, "/org/podmgr1/transfer/_3", "done"],
    )


# Introspection


DOC = "{org.gtk.GDBus.DocString}"


def introspect(path: str) -> ET.Element:
    reply, _ = answer(call("Introspect", [], "", path, dispatch.INTROSPECTABLE))
    assert reply.signature == "s"
    return ET.fromstring(reply.body[0])  # noqa: S314 -- our own output


def _doc(element: ET.Element) -> str:
    [annotation] = [
        a for a in element.findall("annotation") if a.get("name") == "org.gtk.GDBus.DocString"
    ]
    return str(annotation.get("value"))


def test_introspection_is_the_table_with_its_documentation() -> None:
    root = introspect(api.MANAGER_PATH)
    interfaces = {i.get("name"): i for i in root.findall("interface")}
    assert set(interfaces) == {
        "org.freedesktop.DBus.Peer",
        dispatch.INTROSPECTABLE,
        dispatch.PROPERTIES,
        api.MANAGER.name,
    }
    manager = interfaces[api.MANAGER.name]
    assert _doc(manager) == api.MANAGER.doc
    methods = {m.get("name"): m for m in manager.findall("method")}
    assert list(methods) == [m.name for m in api.MANAGER.methods]
    for method in api.MANAGER.methods:
        element = methods[method.name]
        assert [
            (a.get("name"), a.get("type"), a.get("direction")) for a in element.findall("arg")
        ] == [(a.name, a.signature, "in") for a in method.in_args] + [
            (a.name, a.signature, "out") for a in method.out_args
        ]
        doc = _doc(element)
        assert doc.startswith(method.doc)
        assert (f"Needs polkit action {method.action}." in doc) == bool(method.action)
    signals = {s.get("name"): s for s in manager.findall("signal")}
    assert list(signals) == [s.name for s in api.MANAGER.signals]
    assert [(a.get("name"), a.get("type")) for a in signals["TransferNew"].findall("arg")] == [
        ("id", "u"),
        ("transfer", "o"),
    ]
    assert [n.get("name") for n in root.findall("node")] == ["pod"]


def test_introspection_of_a_pod_has_its_read_only_documented_properties() -> None:
    root = introspect(POD_PATH)
    [pod] = [i for i in root.findall("interface") if i.get("name") == api.POD.name]
    properties = pod.findall("property")
    assert [(p.get("name"), p.get("type"), p.get("access")) for p in properties] == [
        (p.name, p.signature, "read") for p in api.POD.properties
    ]
    for element, prop in zip(properties, api.POD.properties, strict=True):
        assert _doc(element) == prop.doc
    assert [n.get("name") for n in introspect("/org/podmgr1/pod").findall("node")] == ["web"]
    assert (
        introspect("/org/podmgr1/pod").findall("interface")[-1].get("name") == dispatch.PROPERTIES
    )  # a path with children only: the standard interfaces


# polkit decisions


def test_an_authorized_call_asks_polkit_once_with_its_details_then_runs() -> None:
    served = Served(RecordingAuthority(ALLOWED))
    reply, _ = answer(call("ImportImage", ["oci:/srv/web", "web:1"]), served)
    assert reply.message_type is MessageType.METHOD_RETURN
    [question] = served.authority.asked
    assert (question.sender, question.action, question.flags) == (
        SENDER,
        api.MANAGE_IMAGES,
        polkit.ALLOW_USER_INTERACTION,
    )
    assert question.details == {
        "verb": "import",
        "source": "oci:/srv/web",
        "image": "docker.io/library/web:1",
    }
    assert ran(served.manager)[0][0] == "ImportImage"


def test_a_read_never_asks_polkit() -> None:
    served = Served(RecordingAuthority(REFUSED))
    reply, _ = answer(call("ListPods", []), served)
    assert reply.message_type is MessageType.METHOD_RETURN
    assert served.authority.asked == []


@pytest.mark.parametrize(
    ("authority", "why"),
    [
        (RecordingAuthority(REFUSED), "org.podmgr1.manage-pods is not allowed for this caller"),
        (
            RecordingAuthority(CHALLENGE),
            "org.podmgr1.manage-pods needs authentication for this caller",
        ),
        (
            RecordingAuthority(unavailable="org.freedesktop.DBus.Error.ServiceUnknown"),
            "cannot ask polkit about org.podmgr1.manage-pods: "
            "org.freedesktop.DBus.Error.ServiceUnknown",
        ),
    ],
    ids=["not-authorized", "challenge", "no-polkit"],
)
def test_a_call_polkit_does_not_allow_is_access_denied_and_runs_nothing(
    authority: RecordingAuthority, why: str
) -> None:
    served = Served(authority)
    reply, _ = answer(call("StartPod", ["web"]), served)
    name, text = error_of(reply)
    assert name == "org.podmgr1.Error.AccessDenied"
    assert text.startswith(why)
    assert ran(served.manager) == []
    assert [(q.action, q.details) for q in authority.asked] == [
        (api.MANAGE_PODS, {"verb": "start", "pod": "web"})
    ]


def test_cancel_asks_polkit_about_the_transfers_image() -> None:
    """The service's own Transfer: its source is a polkit detail of Cancel."""

    async def main() -> tuple[Message, bool, RecordingAuthority]:
        authority = RecordingAuthority(ALLOWED)
        served = Served(authority)
        owner = transfers.Transfers(served.dispatcher)
        transfer = transfers.Transfer(4, "docker://example.org/web:1", "", owner)
        served.dispatcher.export(api.transfer_path(4), api.TRANSFER, transfer)
        try:
            reply = await served.answer(
                call("Cancel", [], "", api.transfer_path(4), api.TRANSFER.name)
            )
        finally:
            await served.dispatcher.close()
        return reply, transfer.canceled.is_set(), authority

    reply, canceled, authority = asyncio.run(main())
    assert reply.message_type is MessageType.METHOD_RETURN
    assert canceled
    [question] = authority.asked
    assert (question.action, question.details) == (
        api.MANAGE_IMAGES,
        {"verb": "cancel", "image": "docker://example.org/web:1"},
    )


@pytest.mark.parametrize(
    ("authority", "resolving"),
    [
        (RecordingAuthority(ALLOWED), True),
        (RecordingAuthority(CHALLENGE), False),
        (RecordingAuthority(REFUSED), False),
    ],
    ids=["allowed", "challenge", "refused"],
)
def test_validate_manifest_resolves_only_for_who_polkit_allows_without_asking(
    authority: RecordingAuthority, resolving: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's own Manager: it asks polkit non-interactively (flags 0), and a
    challenge is a no, as a refusal is."""
    checked: list[bool] = []
    monkeypatch.setattr(
        service.Manager,
        "_check",
        staticmethod(lambda toml, name, resolving=True: checked.append(resolving)),
    )

    async def main() -> Message:
        served = Served(authority)
        manager = service.Manager(
            served.dispatcher, cast(Any, None), cast(Any, None), cast(Any, None)
        )
        served.dispatcher.export(api.MANAGER_PATH, api.MANAGER, manager)
        try:
            return await served.answer(call("ValidateManifest", [""]))
        finally:
            await served.dispatcher.close()

    reply = asyncio.run(main())
    assert (reply.signature, reply.body) == ("a(ss)", [[]])
    assert checked == [resolving]
    assert [(q.action, q.details, q.flags) for q in authority.asked] == [
        (api.MANAGE_PODS, {"verb": "validate"}, 0)
    ]


@pytest.mark.parametrize(
    ("unit", "path"),
    [
        # As systemd names them: busctl tree org.freedesktop.systemd1
        ("pod@web.service", "/org/freedesktop/systemd1/unit/pod_40web_2eservice"),
        ("podapp@web:db.service", "/org/freedesktop/systemd1/unit/podapp_40web_3adb_2eservice"),
        ("pod-a_b.slice", "/org/freedesktop/systemd1/unit/pod_2da_5fb_2eslice"),
        ("1x.service", "/org/freedesktop/systemd1/unit/_31x_2eservice"),  # a leading digit
    ],
)
def test_a_units_object_path_is_systemds_and_reads_back(unit: str, path: str) -> None:
    """Systemd.unit_property asks the unit's object directly, so its path must be the
    one systemd serves (sd_bus_path_encode), and unit_of_path must read it back."""
    assert unit_path(unit) == path
    assert unit_of_path(path) == unit


@pytest.mark.parametrize(
    ("setting", "level"),
    [
        (None, logging.INFO),
        ("debug", logging.DEBUG),
        ("7", logging.DEBUG),
        ("info", logging.INFO),
        ("notice", logging.INFO),
        ("warning", logging.WARNING),
        ("4", logging.WARNING),
        ("err", logging.ERROR),
        ("0", logging.CRITICAL),
        ("loud", logging.INFO),  # not understood: the default, as systemd's tools do
        ("8", logging.INFO),
    ],
)
def test_systemd_log_level_sets_the_services_level(setting: str | None, level: int) -> None:
    assert service.log_level(setting) == level
