# SPDX-License-Identifier: LGPL-2.1-or-later
"""Serving the API table (api.py) on a bus connection.

dbus-next carries the messages; the dispatching is done here, from the table, because
the service needs what dbus-next's ServiceInterface does not give: the sender of each
call (for polkit), typed handlers, doc annotations in the introspection data, and error
replies that are not re-raised afterwards.  Implements the standard Introspectable,
Properties (read-only) and Peer interfaces for every exported object.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message
from dbus_next.signature import Variant

from podmgr.bus import api
from podmgr.errors import ManifestError, PodmgrError

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


@dataclass(frozen=True)
class Call:
    """One method call: what a handler may want besides its arguments."""

    message: Message

    @property
    def sender(self) -> str:
        return str(self.message.sender)


class BusError(Exception):
    """An error reply: ``name`` is a D-Bus error name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def error_reply(message: Message, error: BaseException) -> Message:
    if isinstance(error, BusError):
        return Message.new_error(message, error.name, str(error))
    if isinstance(error, ManifestError):
        text = "; ".join(str(error).splitlines())
        return Message.new_error(message, api.ERROR_PREFIX + error.code, text)
    if isinstance(error, PodmgrError):
        return Message.new_error(message, api.ERROR_PREFIX + error.code, str(error))
    log.exception("%s.%s failed", message.interface, message.member, exc_info=error)
    return Message.new_error(message, api.ERROR_PREFIX + "Failed", f"internal error: {error}")


class Dispatcher:
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self.objects: dict[str, dict[str, tuple[api.Interface, object]]] = {}
        self.in_flight = 0
        self.last_activity = asyncio.get_running_loop().time()
        self.tasks: set[asyncio.Task[None]] = set()
        bus.add_message_handler(self.handle)

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
        self.objects.setdefault(path, {})[interface.name] = (interface, implementation)

    def unexport(self, path: str) -> None:
        self.objects.pop(path, None)

    def handle(self, message: Message) -> bool:
        if message.message_type is not MessageType.METHOD_CALL or message.path is None:
            return False
        self.last_activity = asyncio.get_running_loop().time()
        if message.interface == INTROSPECTABLE and message.member == "Introspect":
            self.bus.send(Message.new_method_return(message, "s", [self.introspect(
                message.path)]))
            return True
        if message.interface == PEER:
            return False  # dbus-next answers Ping and GetMachineId itself
        entry = self.objects.get(message.path)
        if entry is None:
            return self._reply_error(message, "org.freedesktop.DBus.Error.UnknownObject",
                                     f"no object {message.path}")
        if message.interface == PROPERTIES:
            return self._properties(message, entry)
        return self._call(message, entry)

    def _call(self, message: Message, entry: dict[str, tuple[api.Interface, object]]) -> bool:
        found = [(i, impl) for i, impl in entry.values() if message.member in i.method_index
                 and message.interface in (None, i.name)]
        if not found:
            return self._reply_error(message, "org.freedesktop.DBus.Error.UnknownMethod",
                                     f"no method {message.interface}.{message.member}")
        interface, implementation = found[0]
        method = interface.method_index[str(message.member)]
        if message.signature != method.in_signature:
            return self._reply_error(message, "org.freedesktop.DBus.Error.InvalidArgs",
                                     f"{method.name} takes ({method.in_signature}), "
                                     f"not ({message.signature})")
        handler = getattr(implementation, method.handler)
        task = asyncio.get_running_loop().create_task(self._run(message, method, handler))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _run(self, message: Message, method: api.Method,
                   handler: Callable[..., Awaitable[Any]]) -> None:
        self.in_flight += 1
        try:
            result = await handler(Call(message), *message.body)
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
            self.in_flight -= 1
            self.last_activity = asyncio.get_running_loop().time()
        self.bus.send(reply)

    def _reply_error(self, message: Message, name: str, text: str) -> bool:
        self.bus.send(Message.new_error(message, name, text))
        return True

    def _properties(self, message: Message,
                    entry: dict[str, tuple[api.Interface, object]]) -> bool:
        member, body = message.member, message.body
        if member == "Set":
            return self._reply_error(message, "org.freedesktop.DBus.Error.PropertyReadOnly",
                                     "the properties of org.podmgr1 are read-only")
        if member not in ("Get", "GetAll") or not body or body[0] not in entry:
            return self._reply_error(message, "org.freedesktop.DBus.Error.UnknownInterface",
                                     f"no interface {body[0] if body else ''!r} here")
        interface, implementation = entry[body[0]]
        values = {p.name: Variant(p.signature, getattr(implementation, p.handler)())
                  for p in interface.properties}
        if member == "GetAll":
            self.bus.send(Message.new_method_return(message, "a{sv}", [values]))
        elif len(body) > 1 and body[1] in values:
            self.bus.send(Message.new_method_return(message, "v", [values[body[1]]]))
        else:
            return self._reply_error(message, "org.freedesktop.DBus.Error.UnknownProperty",
                                     f"no property {body[1] if len(body) > 1 else ''!r}")
        return True

    def emit(self, path: str, interface: api.Interface, signal: str, *body: Any) -> None:
        spec = interface.signal(signal)
        self.bus.send(Message.new_signal(path, interface.name, signal, spec.signature,
                                         list(body)))

    def properties_changed(self, path: str, interface: api.Interface,
                           names: list[str]) -> None:
        entry = self.objects.get(path, {}).get(interface.name)
        if entry is None:
            return
        _, implementation = entry
        changed = {p.name: Variant(p.signature, getattr(implementation, p.handler)())
                   for p in interface.properties if p.name in names}
        self.bus.send(Message.new_signal(path, PROPERTIES, "PropertiesChanged", "sa{sv}as",
                                         [interface.name, changed, []]))

    def introspect(self, path: str) -> str:
        parts = ['<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection '
                 '1.0//EN"\n "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">',
                 "<node>", STANDARD]
        for interface, _ in self.objects.get(path, {}).values():
            parts.append(_interface_xml(interface))
        prefix = path.rstrip("/") + "/"
        children = sorted({p[len(prefix):].split("/")[0] for p in self.objects
                           if p.startswith(prefix)})
        parts.extend(f' <node name="{child}"/>' for child in children)
        parts.append("</node>")
        return "\n".join(parts) + "\n"


def _interface_xml(interface: api.Interface) -> str:
    lines = [f" <interface name={quoteattr(interface.name)}>",
             f"  <annotation name=\"{DOC}\" value={quoteattr(interface.doc)}/>"]
    for method in interface.methods:
        lines.append(f"  <method name={quoteattr(method.name)}>")
        lines += [f"   <arg type={quoteattr(a.signature)} name={quoteattr(a.name)} "
                  f"direction=\"in\"/>" for a in method.in_args]
        lines += [f"   <arg type={quoteattr(a.signature)} name={quoteattr(a.name)} "
                  f"direction=\"out\"/>" for a in method.out_args]
        doc = method.doc + (f" Needs polkit action {method.action}." if method.action else "")
        lines += [f"   <annotation name=\"{DOC}\" value={quoteattr(doc)}/>", "  </method>"]
    for prop in interface.properties:
        lines += [f"  <property name={quoteattr(prop.name)} type={quoteattr(prop.signature)} "
                  "access=\"read\">",
                  "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" "
                  "value=\"true\"/>",
                  f"   <annotation name=\"{DOC}\" value={quoteattr(prop.doc)}/>",
                  "  </property>"]
    for signal in interface.signals:
        lines.append(f"  <signal name={quoteattr(signal.name)}>")
        lines += [f"   <arg type={quoteattr(a.signature)} name={quoteattr(a.name)}/>"
                  for a in signal.args]
        lines += [f"   <annotation name=\"{DOC}\" value={quoteattr(signal.doc)}/>",
                  "  </signal>"]
    lines.append(" </interface>")
    return "\n".join(lines)
