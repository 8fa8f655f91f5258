# SPDX-License-Identifier: LGPL-2.1-or-later
"""The dispatcher and the client on a private dbus-daemon: real marshalling, real name
ownership, fast and without a bed.  The service side here is the real Dispatcher serving
the API table with stand-in handlers; what is tested is the bus layer between them: the
client notices a service that goes away, a read is sent again after NoReply, a call
that changes something never is, and polkit is asked (a stand-in polkitd here, the real
one in the bed's tests) about the caller the bus names."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest
from busfakes import RecordingAuthority, implementation

from podmgr.bus import api, polkit, systemd
from podmgr.bus.client import Client, ServiceError
from podmgr.bus.connection import Bus
from podmgr.bus.dbuslib import (
    Message,
    MessageBus,
    MessageType,
    NameFlag,
    RequestNameReply,
    Variant,
)
from podmgr.bus.dispatch import Dispatcher
from podmgr.bus.podobjects import UNIT_PATHS, Pods
from podmgr.errors import PodmgrError

pytestmark = pytest.mark.skipif(not shutil.which("dbus-daemon"), reason="needs dbus-daemon")

CONFIG = """<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@pytest.fixture
def bus_address(tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "bus.conf"
    config.write_text(CONFIG.format(socket=tmp_path / "bus"))
    daemon = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        yield daemon.stdout.readline().strip()
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


class Service(implementation(api.MANAGER)):  # type: ignore[misc]
    """A Dispatcher on its own connection, owning org.podmgr1 (or queued for it), with
    the table's Manager methods bound to recording stand-ins (busfakes)."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address
        self.calls: list[str] = []
        self.vanish_on: set[str] = set()  # methods during which the service "is killed"
        self.answers.update(
            {
                "ImportImage": (1, api.transfer_path(1)),  # never ends
                "PullImage": (1, api.transfer_path(1)),
                "ListImages": [],
            }
        )

    async def start(self, queue: bool = False, polkitd: bool = False) -> Service:
        """``polkitd``: ask polkit on the bus (BusAuthority), else allow everything."""
        self.bus = await Bus(self.address).connect()
        self.dispatcher = Dispatcher(self.bus, None if polkitd else RecordingAuthority())
        self.dispatcher.export(api.MANAGER_PATH, api.MANAGER, self)
        flags = NameFlag.NONE if queue else NameFlag.DO_NOT_QUEUE
        reply = await self.bus.request_name(api.BUS_NAME, flags)
        assert reply in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.IN_QUEUE)
        return self

    async def stop(self) -> None:
        self.bus.disconnect()  # type: ignore[no-untyped-call, unused-ignore]
        await self.dispatcher.close()  # a vanished handler's call, too

    async def before(self, method: api.Method) -> None:
        self.calls.append(method.name)
        if method.name in self.vanish_on:
            self.bus.disconnect()  # type: ignore[no-untyped-call, unused-ignore]
            await asyncio.sleep(3600)  # never answers, as a killed process


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def test_a_transfer_ends_when_the_service_goes_away(bus_address: str) -> None:
    async def main() -> str:
        service = await Service(bus_address).start()
        try:
            async with Client(bus_address) as client:
                follow = asyncio.ensure_future(client.transfer("ImportImage", "oci:/x", ""))
                while "ImportImage" not in service.calls:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.1)
                service.bus.disconnect()  # type: ignore[no-untyped-call, unused-ignore]
                with pytest.raises(PodmgrError) as failed:
                    await follow
                return str(failed.value)
        finally:
            await service.stop()

    assert run(main()) == (
        "org.podmgr1 stopped during the transfer (see journalctl -u "
        "podmgr1); podmgr image list shows what was stored"
    )


def test_a_read_is_sent_again_to_the_next_service(bus_address: str) -> None:
    """The first service vanishes during ListImages (dbus-daemon answers NoReply); the
    client asks again and the next owner of the name answers."""

    async def main() -> tuple[object, list[str], list[str]]:
        first = await Service(bus_address).start()
        first.vanish_on.add("ListImages")
        second = await Service(bus_address).start(queue=True)
        try:
            async with Client(bus_address) as client:
                images = await client.call("ListImages")
            return images, first.calls, second.calls
        finally:
            await first.stop()
            await second.stop()

    images, first_calls, second_calls = run(main())
    assert images == []
    assert first_calls == ["ListImages"]
    assert second_calls == ["ListImages"]


def test_a_change_is_never_sent_twice(bus_address: str) -> None:
    async def main() -> tuple[str, list[str]]:
        first = await Service(bus_address).start()
        first.vanish_on.add("StartPod")
        second = await Service(bus_address).start(queue=True)
        try:
            async with Client(bus_address) as client:
                with pytest.raises(ServiceError) as failed:
                    await client.call("StartPod", "web")
            return failed.value.bus_error, second.calls
        finally:
            await first.stop()
            await second.stop()

    bus_error, second_calls = run(main())
    assert bus_error == "org.freedesktop.DBus.Error.NoReply"
    assert second_calls == []


def test_bad_names_are_refused_on_the_wire(bus_address: str) -> None:
    """The edge, through real marshalling: InvalidName for a path, nothing called."""

    async def main() -> tuple[str, str, list[str]]:
        service = await Service(bus_address).start()
        try:
            async with Client(bus_address) as client:
                with pytest.raises(ServiceError) as failed:
                    await client.call("ReleasePod", "../../../home/alice")
            return failed.value.code, str(failed.value), service.calls
        finally:
            await service.stop()

    code, message, calls = run(main())
    assert code == "InvalidName"
    assert message.startswith("'../../../home/alice' is not a valid pod name")
    assert calls == []


class NameOwner:
    """A connection of its own that owns NAME and answers calls with handle()."""

    NAME = ""

    async def start(self, address: str) -> Self:
        self.bus = await Bus(address).connect()
        self.bus.add_message_handler(self.handle)
        await self.bus.request_name(self.NAME, NameFlag.DO_NOT_QUEUE)
        return self

    def handle(self, message: Message) -> Message | None:
        raise NotImplementedError


class Polkitd(NameOwner):
    """Answers CheckAuthorization on the bus as polkitd does, as told: a result, or an
    error; keeps what it was asked (the message body, as polkitd reads it)."""

    NAME = polkit.AUTHORITY

    def __init__(self, answer: polkit.Result | None) -> None:
        self.answer = answer  # None: an error reply
        self.asked: list[list[Any]] = []

    def handle(self, message: Message) -> Message | None:
        if (
            message.message_type is not MessageType.METHOD_CALL
            or message.member != "CheckAuthorization"
        ):
            return None
        assert (message.path, message.interface, message.signature) == (
            polkit.AUTHORITY_PATH,
            f"{polkit.AUTHORITY}.Authority",
            "(sa{sv})sa{ss}us",
        )
        self.asked.append(message.body)
        if self.answer is None:
            return Message.new_error(
                message, "org.freedesktop.PolicyKit1.Error.Failed", "the authority broke"
            )
        return Message.new_method_return(
            message,
            "(bba{ss})",
            [[self.answer.authorized, self.answer.challenge, self.answer.details]],
        )


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (polkit.Result(True, False, {}), None),
        (polkit.Result(False, False, {}), "org.podmgr1.manage-pods is not allowed"),
        (polkit.Result(False, True, {}), "org.podmgr1.manage-pods needs authentication"),
        (None, "cannot ask polkit about org.podmgr1.manage-pods: the authority broke"),
    ],
    ids=["authorized", "not-authorized", "challenge", "error"],
)
def test_polkit_is_asked_about_the_caller_on_the_bus(
    bus_address: str, answer: polkit.Result | None, outcome: str | None
) -> None:
    """The real BusAuthority: the subject is the caller's unique name as dbus-daemon
    stamped it, with the details, interactively; polkit's answer decides."""

    async def main() -> tuple[str | None, list[str], list[list[Any]], str]:
        polkitd = await Polkitd(answer).start(bus_address)
        service = await Service(bus_address).start(polkitd=True)
        try:
            async with Client(bus_address) as client:
                assert client.bus is not None
                caller = str(client.bus.unique_name)
                try:
                    await client.call("StartPod", "web")
                    refused = None
                except ServiceError as error:
                    refused = f"{error.code}: {error}"
            return refused, service.calls, polkitd.asked, caller
        finally:
            await service.stop()
            polkitd.bus.disconnect()  # type: ignore[no-untyped-call, unused-ignore]

    refused, calls, asked, caller = run(main())
    assert asked == [
        [
            ["system-bus-name", {"name": Variant("s", caller)}],
            api.MANAGE_PODS,
            {"verb": "start", "pod": "web"},
            polkit.ALLOW_USER_INTERACTION,
            "",
        ]
    ]
    if outcome is None:
        assert (refused, calls) == (None, ["StartPod"])
    else:
        assert refused is not None
        assert refused.startswith(f"AccessDenied: {outcome}"), refused
        assert calls == []


def heard(
    bus: MessageBus, member: str, enough: Callable[[list[str]], bool]
) -> tuple[list[str], asyncio.Event]:
    """The first argument of each signal ``member`` that reaches ``bus``, in order, and an
    event set once ``enough`` says so of them."""
    got: list[str] = []
    done = asyncio.Event()

    def on_signal(message: Message) -> bool:
        if message.message_type is MessageType.SIGNAL and message.member == member:
            got.append(message.body[0])
            if enough(got):
                done.set()
        return False

    bus.add_message_handler(on_signal)
    return got, done


def test_a_flood_of_big_messages_arrives_whole_and_in_order(bus_address: str) -> None:
    """Messages sent faster than dbus-daemon reads fill the socket: Bus's writer waits
    for it to drain and keeps their order (the libraries' own writers drop the
    connection at EAGAIN, and dbus-fast 1.84's sends what queued last first)."""
    count = 400

    async def main() -> tuple[list[str], bool]:
        receiver = await Bus(bus_address).connect()
        received, everything = heard(receiver, "Big", lambda got: len(got) == count)
        await receiver.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="AddMatch",
                signature="s",
                body=["type='signal',member='Big'"],
            )
        )
        sender = await Bus(bus_address).connect()
        padding = "x" * 200_000  # 400 of them are 80 MB: more than any socket buffer
        for number in range(count):
            sender.send(
                Message.new_signal("/big", "test.Flood", "Big", "ss", [str(number), padding])
            )
        with contextlib.suppress(TimeoutError):  # what arrived is compared below
            await asyncio.wait_for(everything.wait(), 15)
        connected = bool(sender.connected)
        sender.disconnect()  # type: ignore[no-untyped-call, unused-ignore]
        receiver.disconnect()  # type: ignore[no-untyped-call, unused-ignore]
        return received, connected

    received, connected = run(main())
    assert connected
    assert received == [str(number) for number in range(count)]


class Systemd1(NameOwner):
    """Answers what the service asks systemd at start, with no units at all, and sends
    the signals a test tells it to."""

    NAME = systemd.SYSTEMD

    def handle(self, message: Message) -> Message | None:
        if message.message_type is not MessageType.METHOD_CALL:
            return None
        if message.member == "ListUnitsByPatterns":
            return Message.new_method_return(message, "a(ssssssouso)", [[]])
        if message.member == "Subscribe":
            return Message.new_method_return(message)
        return None

    def changed(self, unit_path: str, interface: str, values: dict[str, Variant]) -> None:
        self.bus.send(
            Message.new_signal(
                unit_path,
                systemd.PROPERTIES,
                "PropertiesChanged",
                "sa{sv}as",
                [interface, values, []],
            )
        )


def test_the_service_hears_only_what_units_change_of_their_unit_interface(
    bus_address: str,
) -> None:
    """systemd signals PropertiesChanged of every interface of every unit (Service,
    Slice, ... as well as Unit): with many pods starting at once, thousands.  The
    service's match asks the bus for the Unit interface's only, which carries the
    ActiveState it keeps."""

    async def main() -> list[str]:
        fake = await Systemd1().start(bus_address)
        bus = await Bus(bus_address).connect()
        interfaces, unit_heard = heard(
            bus, "PropertiesChanged", lambda got: got[-1] == systemd.UNIT
        )
        dispatcher = Dispatcher(bus, RecordingAuthority())
        pods = Pods(dispatcher, systemd.Systemd(bus))
        await pods.start()
        unit = f"{UNIT_PATHS}/pod_40web_2eservice"
        fake.changed(unit, systemd.SERVICE, {"MainPID": Variant("u", 42)})
        fake.changed(unit, "org.freedesktop.systemd1.Slice", {"MemoryCurrent": Variant("t", 1)})
        # Sent last by the same sender, so delivered last: the others came before, if at all.
        fake.changed(unit, systemd.UNIT, {"ActiveState": Variant("s", "active")})
        await asyncio.wait_for(unit_heard.wait(), 10)
        pods.watch.close()
        bus.disconnect()  # type: ignore[no-untyped-call, unused-ignore]
        await dispatcher.close()
        fake.bus.disconnect()  # type: ignore[no-untyped-call, unused-ignore]
        return interfaces

    assert run(main()) == [systemd.UNIT]
