# SPDX-License-Identifier: LGPL-2.1-or-later
"""Serving the API table (api.py) on a bus connection.

The D-Bus library (dbuslib.py) carries the messages; the dispatching is done here, from
the table, because the service needs what its ServiceInterface does not give: the sender
of each call (for polkit), typed handlers, doc annotations in the introspection data, and
error replies that are not re-raised afterwards.  The table drives all of it: arguments are
converted to typed values at the edge (arguments.py), the method's polkit action is
checked here, never by handlers, each method and property runs the code bound to it
(binding.py), and every exception becomes a one-line error reply.
Implements the standard Introspectable, Properties (read-only) and Peer interfaces for
every exported object.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from podmgr import names
from podmgr.bus import api, arguments, callers, polkit
from podmgr.bus.binding import Exported
from podmgr.bus.dbuslib import Message, MessageBus, MessageType, Variant
from podmgr.bus.work import PRIVILEGED, Work
from podmgr.errors import AccessDenied, InvalidName, PodmgrError

log = logging.getLogger(__name__)

INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
PROPERTIES = "org.freedesktop.DBus.Properties"
PEER = "org.freedesktop.DBus.Peer"
STANDARD = """\
 <interface name="org.freedesktop.DBus.Peer">
  <method name="Ping"/>
  <method name="GetMachineId"><arg type="s" name="machine_uuid" direction="out"/></method>
 </interface>
 <interface name="org.freedesktop.DBus.Introspectable">
  <method name="Introspect"><arg name="xml" type="s" direction="out"/></method>
 </interface>
 <interface name="org.freedesktop.DBus.Properties">
  <method name="Get"><arg name="interface" direction="in" type="s"/>
   <arg name="property" direction="in" type="s"/>
   <arg name="value" direction="out" type="v"/></method>
  <method name="GetAll"><arg name="interface" direction="in" type="s"/>
   <arg name="properties" direction="out" type="a{sv}"/></method>
  <method name="Set"><arg name="interface" direction="in" type="s"/>
   <arg name="property" direction="in" type="s"/>
   <arg name="value" direction="in" type="v"/></method>
  <signal name="PropertiesChanged"><arg type="s" name="interface"/>
   <arg type="a{sv}" name="changed_properties"/>
   <arg type="as" name="invalidated_properties"/></signal>
 </interface>
"""
DOC = "org.gtk.GDBus.DocString"
CALLERS_KEPT = 512  # the credentials of this many recent callers


@dataclass(frozen=True)
class Call:
    """One method call: what a handler may want besides its arguments."""

    message: Message
    taken: set[int] = field(default_factory=set)  # indices of unix_fds a handler took

    @property
    def sender(self) -> str:
        return str(self.message.sender)

    def take_fds(self, indices: Sequence[int]) -> list[int]:
        """The file descriptors ``h`` arguments name (the edge checked that each was
        passed), now the handler's to close, each once (several arguments may name one);
        the dispatcher closes what no handler took when the call ends."""
        fds = self.message.unix_fds or []
        if not all(0 <= index < len(fds) for index in indices):
            raise InvalidName(f"a file descriptor argument names none of the {len(fds)} passed")
        self.taken.update(indices)
        return [fds[index] for index in indices]


def close_fds(message: Message, taken: Collection[int] = ()) -> None:
    """Close what came with ``message`` and nobody took (once: the list is emptied): a
    caller must not be able to fill the service's table of open files."""
    fds, message.unix_fds = message.unix_fds or [], []
    for index, fd in enumerate(fds):
        if index not in taken:
            os.close(fd)


class BusError(Exception):
    """An error reply: ``name`` is a D-Bus error name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def one_line(text: str) -> str:
    """A message as one line: D-Bus clients print the first line of an error only."""
    return "; ".join(line for line in text.splitlines() if line.strip())


def error_reply(message: Message, error: BaseException) -> Message:
    """The error reply for ``error``: its code and one line for what a caller can cause;
    for anything else (a bug) a short message, and the traceback in the journal only."""
    if isinstance(error, BusError):
        return Message.new_error(message, error.name, one_line(str(error)))
    if isinstance(error, PodmgrError):
        return Message.new_error(message, api.ERROR_PREFIX + error.code, one_line(str(error)))
    log.error("%s.%s failed", message.interface, message.member, exc_info=error)
    if isinstance(error, OSError) and error.strerror:
        text = f"{message.member}: {error.strerror}"  # a full disk is not a bug
    else:
        text = f"{message.member} failed unexpectedly (journalctl -u podmgr1 says why)"
    return Message.new_error(message, api.ERROR_PREFIX + "Failed", text)


class Dispatcher:
    """Calls from the table: each argument converted at the edge (arguments.py), the
    method's polkit action checked, then the handler called with the typed values."""

    def __init__(self, bus: MessageBus, authority: polkit.Authority | None = None) -> None:
        arguments.check_table()
        self.bus = bus
        self.authority = authority or polkit.BusAuthority(bus)
        self.work = Work()
        self.objects: dict[str, dict[str, Exported]] = {}
        self.in_flight = 0
        self.last_activity = asyncio.get_running_loop().time()
        self.tasks: set[asyncio.Task[None]] = set()
        self.callers: dict[str, callers.Caller] = {}  # by unique name, oldest first
        bus.add_message_handler(self.handle)

    async def close(self) -> None:
        """Cancel what still runs (a call whose caller went away with the connection,
        background work) and stop the work queues: nothing is left behind."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.work.shutdown()

    async def authorize(
        self, sender: str, action: str, details: dict[str, str], interactive: bool = True
    ) -> None:
        """Return if polkit allows it; AccessDenied otherwise (polkit.check)."""
        await polkit.check(self.authority, sender, action, details, interactive)

    def spawn(self, work: Awaitable[None]) -> None:
        """Run ``work`` in the background; a failure is logged, never lost."""

        async def run() -> None:
            try:
                await work
            except Exception:  # background work has nobody to report to but the journal
                log.exception("background work failed")

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def export(self, path: str, interface: api.Interface, implementation: object) -> None:
        """Serve ``interface`` at ``path`` with the code ``implementation``'s class binds
        to its entries (BindingError if it does not implement each exactly once)."""
        self.objects.setdefault(path, {})[interface.name] = Exported.of(interface, implementation)

    def unexport(self, path: str) -> None:
        self.objects.pop(path, None)

    def handle(self, message: Message) -> bool:
        if message.message_type is not MessageType.METHOD_CALL or message.path is None:
            if message.message_type is MessageType.SIGNAL:
                close_fds(message)  # a signal sent to this service carries none it wants
            return False
        self.last_activity = asyncio.get_running_loop().time()
        if message.interface == PEER:
            close_fds(message)
            return False  # the library answers Ping and GetMachineId itself
        try:
            self._handle(message)
        except Exception as error:  # whatever a caller sends, the answer is a reply
            close_fds(message)
            self.bus.send(error_reply(message, error))
        return True

    def _handle(self, message: Message) -> None:
        if message.unix_fds and "h" not in self._in_signature(message):
            close_fds(message)  # none is an argument: nothing will take them
        if message.interface in (INTROSPECTABLE, None) and message.member == "Introspect":
            self.bus.send(
                Message.new_method_return(message, "s", [self.introspect(str(message.path))])
            )
            return
        entry = self.objects.get(str(message.path))
        if entry is None:
            raise BusError("org.freedesktop.DBus.Error.UnknownObject", f"no object {message.path}")
        if message.interface == PROPERTIES:
            self._properties(message, entry)
        else:
            self._call(message, entry)

    def _call(self, message: Message, entry: dict[str, Exported]) -> None:
        found = [
            e
            for e in entry.values()
            if message.member in e.interface.method_index
            and message.interface in (None, e.interface.name)
        ]
        if not found:
            raise BusError(
                "org.freedesktop.DBus.Error.UnknownMethod",
                f"no method {message.interface}.{message.member}",
            )
        exported = found[0]
        method = exported.interface.method_index[str(message.member)]
        if message.signature != method.in_signature:
            raise BusError(
                "org.freedesktop.DBus.Error.InvalidArgs",
                f"{method.name} takes ({method.in_signature}), not ({message.signature})",
            )
        values = arguments.convert_all(method, message.body)  # the edge: before anything
        arguments.check_fds(method, values, len(message.unix_fds or ()))
        task = asyncio.get_running_loop().create_task(self._run(message, method, exported, values))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _in_signature(self, message: Message) -> str:
        """The signature of the table's method ``message`` calls, if it calls one."""
        for exported in self.objects.get(str(message.path), {}).values():
            method = exported.interface.method_index.get(str(message.member))
            if method and message.interface in (None, exported.interface.name):
                return method.in_signature
        return ""

    async def _authorize(
        self, message: Message, method: api.Method, implementation: object, values: list[object]
    ) -> None:
        """polkit asked for the method's action, with the checked values as details."""
        if method.action is None:
            return
        details = {"verb": method.verb}
        for arg, value in zip(method.in_args, values, strict=True):
            detail = api.KINDS[arg.kind].detail
            if detail and value is not None and str(value) and detail not in details:
                details[detail] = str(value)
        # An object whose calls concern more than their arguments (a Transfer: its source)
        # says so; looked up on the class, so that nothing is loaded or computed otherwise.
        hook = getattr(type(implementation), "authorization_details", None)
        if hook is not None:
            details.update(hook(implementation))
        await self.authorize(str(message.sender), method.action, details, True)
        if method.also:
            await self.authorize(str(message.sender), method.also, details, True)

    async def _run(
        self, message: Message, method: api.Method, exported: Exported, values: list[object]
    ) -> None:
        self.in_flight += 1
        call = Call(message)
        try:
            # This task's own context: its work goes to the queue of its kind (work.py).
            PRIVILEGED.set(method.action is not None)
            await self._authorize(message, method, exported.implementation, values)
            result = await exported.member(method.name)(call, *values)
            if len(method.out_args) == 0:
                body = []
            elif len(method.out_args) == 1:
                body = [result]
            else:
                body = list(result)
            reply = Message.new_method_return(message, method.out_signature, body)
        except Exception as error:  # every failure becomes an error reply, never a crash
            reply = error_reply(message, error)
        finally:
            close_fds(message, call.taken)
            self.in_flight -= 1
            self.last_activity = asyncio.get_running_loop().time()
        self.bus.send(reply)

    def _properties(self, message: Message, entry: dict[str, Exported]) -> None:
        member, body = message.member, message.body
        expected = {"Get": "ss", "GetAll": "s", "Set": "ssv"}.get(str(member))
        if expected is None:
            raise BusError(
                "org.freedesktop.DBus.Error.UnknownMethod", f"no method {PROPERTIES}.{member}"
            )
        if message.signature != expected:
            raise BusError(
                "org.freedesktop.DBus.Error.InvalidArgs",
                f"{member} takes ({expected}), not ({message.signature})",
            )
        if member == "Set":
            raise BusError(
                "org.freedesktop.DBus.Error.PropertyReadOnly",
                "the properties of org.podmgr1 are read-only",
            )
        if body[0] not in entry:
            raise BusError(
                "org.freedesktop.DBus.Error.UnknownInterface",
                f"no interface {names.shown(body[0])} here",
            )
        exported = entry[body[0]]
        interface = exported.interface
        wanted = [p for p in interface.properties if member == "GetAll" or p.name == body[1]]
        if not wanted:
            raise BusError(
                "org.freedesktop.DBus.Error.UnknownProperty",
                f"no property {names.shown(body[1])} in {interface.name}",
            )
        if any(p.per_caller for p in wanted):
            # Who asks decides what some values are: the bus daemon says, off this call.
            task = asyncio.get_running_loop().create_task(
                self._send_properties(message, exported, wanted)
            )
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            self._reply_properties(message, exported, wanted, None)

    async def _manages_pods(self, sender: str) -> bool:
        try:
            await self.authorize(sender, api.MANAGE_PODS, {"verb": "read"}, False)
        except AccessDenied:
            return False
        return True

    async def _send_properties(
        self, message: Message, exported: Exported, wanted: list[api.Property]
    ) -> None:
        try:
            sender = str(message.sender)
            caller = self.callers.get(sender)
            if caller is None:
                caller = await callers.of(self.bus, sender)
                if caller.uid != callers.ROOT:
                    caller = replace(caller, manages_pods=await self._manages_pods(sender))
                # A unique name is never given to another connection, and the bus daemon
                # took its credentials when it connected: so they are kept, and polkit's
                # answer with them (it changes when rules or memberships do, which a
                # process sees on its next connection, as for its groups).
                if len(self.callers) >= CALLERS_KEPT:
                    self.callers.pop(next(iter(self.callers)))
                self.callers[sender] = caller
            self._reply_properties(message, exported, wanted, caller)
        except Exception as error:  # as for a call: an error reply, never a crash
            self.bus.send(error_reply(message, error))

    def _reply_properties(
        self,
        message: Message,
        exported: Exported,
        wanted: list[api.Property],
        caller: callers.Caller | None,
    ) -> None:
        values = {
            p.name: Variant(
                p.signature,
                exported.member(p.name)(caller) if p.per_caller else exported.member(p.name)(),
            )
            for p in wanted
        }
        if message.member == "GetAll":
            self.bus.send(Message.new_method_return(message, "a{sv}", [values]))
        else:
            self.bus.send(Message.new_method_return(message, "v", [values[message.body[1]]]))

    def emit(self, path: str, interface: api.Interface, signal: str, *body: Any) -> None:
        spec = interface.signal(signal)
        self.bus.send(Message.new_signal(path, interface.name, signal, spec.signature, list(body)))

    def properties_changed(self, path: str, interface: api.Interface, names: list[str]) -> None:
        exported = self.objects.get(path, {}).get(interface.name)
        if exported is None:
            return
        # A value that depends on who asks is not broadcast: it is named as invalidated,
        # and each client that wants it asks (and gets what it may see).
        wanted = [p for p in interface.properties if p.name in names]
        changed = {
            p.name: Variant(p.signature, exported.member(p.name)())
            for p in wanted
            if not p.per_caller
        }
        invalidated = [p.name for p in wanted if p.per_caller]
        self.bus.send(
            Message.new_signal(
                path,
                PROPERTIES,
                "PropertiesChanged",
                "sa{sv}as",
                [interface.name, changed, invalidated],
            )
        )

    def introspect(self, path: str) -> str:
        parts = [
            '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection '
            '1.0//EN"\n "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">',
            "<node>",
            STANDARD,
        ]
        for exported in self.objects.get(path, {}).values():
            parts.append(_interface_xml(exported.interface))
        prefix = path.rstrip("/") + "/"
        children = sorted(
            {p[len(prefix) :].split("/")[0] for p in self.objects if p.startswith(prefix)}
        )
        parts.extend(f' <node name="{child}"/>' for child in children)
        parts.append("</node>")
        return "\n".join(parts) + "\n"


def _interface_xml(interface: api.Interface) -> str:
    # Only introspection needs it, and xml.sax loads urllib, http and email with it.
    from xml.sax.saxutils import quoteattr  # noqa: PLC0415

    lines = [
        f" <interface name={quoteattr(interface.name)}>",
        f'  <annotation name="{DOC}" value={quoteattr(interface.doc)}/>',
    ]
    for method in interface.methods:
        lines.append(f"  <method name={quoteattr(method.name)}>")
        lines += [
            f'   <arg type={quoteattr(a.signature)} name={quoteattr(a.name)} direction="in"/>'
            for a in method.in_args
        ]
        lines += [
            f'   <arg type={quoteattr(a.signature)} name={quoteattr(a.name)} direction="out"/>'
            for a in method.out_args
        ]
        doc = method.doc + (f" Needs polkit action {method.action}." if method.action else "")
        lines += [f'   <annotation name="{DOC}" value={quoteattr(doc)}/>', "  </method>"]
    for prop in interface.properties:
        lines += [
            f"  <property name={quoteattr(prop.name)} type={quoteattr(prop.signature)} "
            'access="read">',
            '   <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" '
            f'value="{"invalidates" if prop.per_caller else "true"}"/>',
            f'   <annotation name="{DOC}" value={quoteattr(prop.doc)}/>',
            "  </property>",
        ]
    for signal in interface.signals:
        lines.append(f"  <signal name={quoteattr(signal.name)}>")
        lines += [
            f"   <arg type={quoteattr(a.signature)} name={quoteattr(a.name)}/>" for a in signal.args
        ]
        lines += [f'   <annotation name="{DOC}" value={quoteattr(signal.doc)}/>', "  </signal>"]
    lines.append(" </interface>")
    return "\n".join(lines)
