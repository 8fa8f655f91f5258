# SPDX-License-Identifier: LGPL-2.1-or-later
"""Each entry of the API table (api.py) bound to the code that implements it, by name.

A class marks its methods with ``@implements(api.MANAGER, "StartPod")``: a method of the
table, or a property (a method without arguments returning its value; with the caller as
its one argument for a property whose value depends on who asks).  The dispatcher
binds a class when it exports an object of it, and the service binds every class it
serves when it starts, so a table entry without an implementation, an implementation of
no table entry, two implementations of one entry, or parameters that are not the
table's arguments stop the service at start-up with one line saying which.

Some entries are implemented in a module loaded on their first call (the image and
trust methods: gpg, TLS and tar would slow every start of the service).  Their class
says so explicitly with a Deferred: the entries, and the module and class implementing
them.  Start-up checks that the deferred entries and the marked methods cover the table
exactly, without loading the module; loading it checks that its class implements
exactly the entries declared.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from podmgr.bus import api

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "_podmgr_implements"


class BindingError(Exception):
    """The code does not implement the table as it says: a bug, found at start-up."""


def members(interface: api.Interface) -> dict[str, api.Method | api.Property]:
    """The entries of an interface a class implements, by name."""
    return {**{m.name: m for m in interface.methods}, **{p.name: p for p in interface.properties}}


def implements(interface: api.Interface, member: str) -> Callable[[F], F]:
    """Mark a method as the implementation of ``interface``'s method or property
    ``member``.  A name the table does not have is refused when the class is bound (at
    start-up, where the service reports it in one line), not here at import."""

    def mark(function: F) -> F:
        setattr(function, _MARK, (interface.name, member))
        return function

    return mark


@dataclass(frozen=True)
class Deferred:
    """Entries of ``interface`` implemented by class ``name`` of ``module``, loaded on
    the first call of one; the class is constructed with the object that defers to it."""

    interface: api.Interface
    module: str
    name: str
    entries: tuple[str, ...]

    def load(self) -> tuple[type, Binding]:
        cls = getattr(importlib.import_module(self.module), self.name, None)
        if not isinstance(cls, type):
            raise BindingError(
                f"{self.module} has no class {self.name} (for {', '.join(self.entries)})"
            )
        binding = bind(cls, self.interface, complete=False)
        if set(binding.attributes) != set(self.entries):
            raise BindingError(
                f"{self.module}.{self.name} implements "
                f"{sorted(binding.attributes)} of {self.interface.name}, "
                f"but {sorted(self.entries)} are deferred to it"
            )
        return cls, binding


@dataclass(frozen=True)
class Binding:
    """How one class implements one interface: the attribute of each entry it has
    itself, and the Deferred of each entry that is elsewhere."""

    attributes: dict[str, str]
    deferred: dict[str, Deferred]


def _marked(cls: type, interface: api.Interface) -> dict[str, str]:
    """Entry -> attribute, from the marks on ``cls`` and its bases (a subclass's mark
    wins over its base's)."""
    found: dict[str, str] = {}
    for klass in cls.__mro__:
        own: dict[str, str] = {}
        for attribute, value in vars(klass).items():
            function = value.__func__ if isinstance(value, staticmethod) else value
            interface_name, member = getattr(function, _MARK, (None, ""))
            if interface_name != interface.name:
                continue
            if member in own:
                raise BindingError(
                    f"{klass.__qualname__}.{own[member]} and .{attribute} "
                    f"both implement {interface.name}.{member}"
                )
            own[member] = attribute
        for member, attribute in own.items():
            found.setdefault(member, attribute)
    return found


def _check_parameters(
    cls: type, attribute: str, entry: api.Method | api.Property, interface: api.Interface
) -> None:
    function = inspect.getattr_static(cls, attribute)
    if isinstance(function, staticmethod):
        raise BindingError(
            f"{cls.__qualname__}.{attribute} implements "
            f"{interface.name}.{entry.name}: it must not be a staticmethod"
        )
    parameters = list(inspect.signature(function).parameters)
    if isinstance(entry, api.Method):
        expected = ["self", "call", *(a.name for a in entry.in_args)]
        if not inspect.iscoroutinefunction(function):
            raise BindingError(
                f"{cls.__qualname__}.{attribute} implements method "
                f"{interface.name}.{entry.name}: it must be async"
            )
    else:
        expected = ["self", "caller"] if entry.per_caller else ["self"]
    if parameters != expected:
        raise BindingError(
            f"{cls.__qualname__}.{attribute} implements "
            f"{interface.name}.{entry.name}: its parameters are "
            f"({', '.join(parameters)}), the table's are "
            f"({', '.join(expected)})"
        )


_BOUND: dict[tuple[type, str, bool], Binding] = {}


def bind(cls: type, interface: api.Interface, complete: bool = True) -> Binding:
    """How ``cls`` implements ``interface``; BindingError unless every entry is
    implemented exactly once (``complete``: by ``cls`` or its Deferred parts)."""
    key = (cls, interface.name, complete)
    if key in _BOUND:
        return _BOUND[key]
    table = members(interface)
    attributes = _marked(cls, interface)
    for member, attribute in attributes.items():
        if member not in table:
            raise BindingError(
                f"{cls.__qualname__}.{attribute} implements "
                f"{interface.name}.{member}, which the table does not have "
                "(api.py lists what it has)"
            )
        _check_parameters(cls, attribute, table[member], interface)
    deferred: dict[str, Deferred] = {}
    for part in getattr(cls, "DEFERRED", ()):
        if not isinstance(part, Deferred) or part.interface is not interface:
            continue
        for member in part.entries:
            if member not in table:
                raise BindingError(
                    f"{cls.__qualname__} defers {member!r} to {part.module}, "
                    f"but {interface.name} has no such entry"
                )
            if member in attributes or member in deferred:
                raise BindingError(
                    f"{cls.__qualname__} implements {interface.name}.{member} "
                    "twice (marked and deferred, or deferred twice)"
                )
            deferred[member] = part
        if importlib.util.find_spec(part.module) is None:  # found, not loaded
            raise BindingError(f"{cls.__qualname__} defers to {part.module}, which is missing")
    missing = [m for m in table if m not in attributes and m not in deferred]
    if complete and missing:
        raise BindingError(
            f"{cls.__qualname__} does not implement "
            f"{', '.join(f'{interface.name}.{m}' for m in missing)} "
            "(mark its implementation with @implements)"
        )
    binding = Binding(attributes, deferred)
    _BOUND[key] = binding
    return binding


def check(served: Iterable[tuple[api.Interface, type]]) -> None:
    """Bind each class the service serves: run when the service starts."""
    for interface, cls in served:
        bind(cls, interface)


@dataclass
class Exported:
    """An object exported with one interface: its implementation and how to find each
    entry's code (loading a Deferred part on its first use)."""

    interface: api.Interface
    implementation: object
    binding: Binding
    parts: dict[Deferred, tuple[object, Binding]] = field(default_factory=dict)

    @classmethod
    def of(cls, interface: api.Interface, implementation: object) -> Exported:
        return cls(interface, implementation, bind(type(implementation), interface))

    def member(self, name: str) -> Callable[..., Any]:
        """The bound method implementing entry ``name``."""
        attribute = self.binding.attributes.get(name)
        if attribute is not None:
            bound: Callable[..., Any] = getattr(self.implementation, attribute)
            return bound
        part = self.binding.deferred[name]
        if part not in self.parts:
            part_class, part_binding = part.load()
            self.parts[part] = (part_class(self.implementation), part_binding)
        instance, part_binding = self.parts[part]
        method: Callable[..., Any] = getattr(instance, part_binding.attributes[name])
        return method
