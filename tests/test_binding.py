# SPDX-License-Identifier: LGPL-2.1-or-later
"""Binding the API table to its code (podmgr/bus/binding.py): each way the code can
disagree with the table stops the service at start-up with one line naming the entry;
deferred entries are loaded on their first call and checked then."""

from __future__ import annotations

import logging

import pytest

from podmgr.bus import api, binding, service
from podmgr.bus.binding import BindingError, Deferred, Exported, implements
from podmgr.bus.dispatch import Call

TRANSFER_ENTRIES = ("Cancel", "Id", "Source", "Progress")


class Transfer:
    """A complete implementation of org.podmgr1.Transfer."""

    @implements(api.TRANSFER, "Cancel")
    async def cancel(self, call: Call) -> None:
        pass

    @implements(api.TRANSFER, "Id")
    def id(self) -> int:
        return 7

    @implements(api.TRANSFER, "Source")
    def source(self) -> str:
        return "oci:/x"

    @implements(api.TRANSFER, "Progress")
    def progress(self) -> float:
        return 0.5


def test_a_complete_class_binds_each_entry_to_its_method() -> None:
    bound = binding.bind(Transfer, api.TRANSFER)
    assert bound.attributes == {
        "Cancel": "cancel",
        "Id": "id",
        "Source": "source",
        "Progress": "progress",
    }
    assert bound.deferred == {}
    assert Exported.of(api.TRANSFER, Transfer()).member("Id")() == 7


def test_an_entry_without_code_is_refused() -> None:
    class Incomplete:
        @implements(api.TRANSFER, "Cancel")
        async def cancel(self, call: Call) -> None:
            pass

        @implements(api.TRANSFER, "Source")
        def source(self) -> str:
            return ""

        @implements(api.TRANSFER, "Progress")
        def progress(self) -> float:
            return 0.0

    with pytest.raises(BindingError) as refused:
        binding.bind(Incomplete, api.TRANSFER)
    assert str(refused.value) == (
        "test_an_entry_without_code_is_refused.<locals>.Incomplete "
        "does not implement org.podmgr1.Transfer.Id (mark its "
        "implementation with @implements)"
    )

    class Inheriting(Transfer):
        pass

    binding.bind(Inheriting, api.TRANSFER)  # inherited marks count


def test_code_for_no_entry_is_refused() -> None:
    class Extra(Transfer):
        @implements(api.TRANSFER, "Pause")
        async def pause(self, call: Call) -> None:
            pass

    with pytest.raises(BindingError) as refused:
        binding.bind(Extra, api.TRANSFER)
    assert str(refused.value) == (
        "test_code_for_no_entry_is_refused.<locals>.Extra.pause implements "
        "org.podmgr1.Transfer.Pause, which the table does not have (api.py lists what it "
        "has)"
    )


def test_two_implementations_of_one_entry_are_refused() -> None:
    class Twice(Transfer):
        @implements(api.TRANSFER, "Id")
        def number(self) -> int:
            return 1

        @implements(api.TRANSFER, "Id")
        def other_number(self) -> int:
            return 2

    with pytest.raises(
        BindingError,
        match=r"Twice.number and .other_number both implement "
        r"org.podmgr1.Transfer.Id",
    ):
        binding.bind(Twice, api.TRANSFER)


def test_a_subclass_may_rebind_an_entry() -> None:
    class Renumbered(Transfer):
        @implements(api.TRANSFER, "Id")
        def number(self) -> int:
            return 1

    assert binding.bind(Renumbered, api.TRANSFER).attributes["Id"] == "number"


def test_parameters_must_be_the_tables() -> None:
    class Wrong(Transfer):
        @implements(api.TRANSFER, "Cancel")
        async def cancel(self, call: Call, now: bool) -> None:  # type: ignore[override]
            pass

    with pytest.raises(BindingError) as refused:
        binding.bind(Wrong, api.TRANSFER)
    assert str(refused.value) == (
        "test_parameters_must_be_the_tables.<locals>.Wrong.cancel implements "
        "org.podmgr1.Transfer.Cancel: its parameters are (self, call, now), the table's "
        "are (self, call)"
    )


def test_a_method_must_be_async_and_a_property_must_take_nothing() -> None:
    class Blocking(Transfer):
        @implements(api.TRANSFER, "Cancel")
        def cancel(self, call: Call) -> None:  # type: ignore[override]
            pass

    with pytest.raises(
        BindingError,
        match=r"Blocking\.cancel implements method "
        r"org\.podmgr1\.Transfer\.Cancel: it must be async",
    ):
        binding.bind(Blocking, api.TRANSFER)

    class Asking(Transfer):
        @implements(api.TRANSFER, "Id")
        def id(self, call: Call) -> int:  # type: ignore[override]
            return 1

    with pytest.raises(
        BindingError,
        match=r"its parameters are \(self, call\), the "
        r"table's are \(self\)",
    ):
        binding.bind(Asking, api.TRANSFER)


class Deferring:
    """Implements Id itself; the rest in Rest below, loaded on first use."""

    DEFERRED = (Deferred(api.TRANSFER, __name__, "Rest", ("Cancel", "Source", "Progress")),)

    @implements(api.TRANSFER, "Id")
    def id(self) -> int:
        return 3


class Rest:
    def __init__(self, owner: Deferring) -> None:
        self.owner = owner

    @implements(api.TRANSFER, "Cancel")
    async def cancel(self, call: Call) -> None:
        pass

    @implements(api.TRANSFER, "Source")
    def source(self) -> str:
        return f"of {self.owner.id()}"

    @implements(api.TRANSFER, "Progress")
    def progress(self) -> float:
        return 1.0


def test_deferred_entries_are_loaded_on_first_use_and_given_their_owner() -> None:
    bound = binding.bind(Deferring, api.TRANSFER)
    assert set(bound.deferred) == {"Cancel", "Source", "Progress"}
    exported = Exported.of(api.TRANSFER, Deferring())
    assert exported.parts == {}
    exported.member("Id")
    assert exported.parts == {}  # its own entries load nothing
    assert exported.member("Source")() == "of 3"
    [(part, _)] = exported.parts.values()
    exported.member("Progress")
    assert [p for p, _ in exported.parts.values()] == [part]  # loaded once


def test_a_deferred_class_must_implement_exactly_what_is_deferred_to_it() -> None:
    part = Deferred(api.TRANSFER, __name__, "Rest", ("Cancel", "Source"))
    with pytest.raises(BindingError) as refused:
        part.load()
    assert str(refused.value) == (
        f"{__name__}.Rest implements ['Cancel', 'Progress', "
        "'Source'] of org.podmgr1.Transfer, but ['Cancel', "
        "'Source'] are deferred to it"
    )
    with pytest.raises(BindingError, match=f"{__name__} has no class Other"):
        Deferred(api.TRANSFER, __name__, "Other", ("Cancel",)).load()


def test_deferring_to_a_missing_module_or_entry_is_refused_without_loading() -> None:
    class Missing:
        DEFERRED = (Deferred(api.TRANSFER, "podmgr.bus.nothing", "X", TRANSFER_ENTRIES),)

    with pytest.raises(BindingError, match=r"defers to podmgr\.bus\.nothing, which is missing"):
        binding.bind(Missing, api.TRANSFER)

    class Unknown:
        DEFERRED = (Deferred(api.TRANSFER, __name__, "Rest", (*TRANSFER_ENTRIES, "Pause")),)

    with pytest.raises(
        BindingError,
        match=r"defers 'Pause' to .*, but org\.podmgr1\.Transfer "
        r"has no such entry",
    ):
        binding.bind(Unknown, api.TRANSFER)

    class Both(Transfer):
        DEFERRED = (Deferred(api.TRANSFER, __name__, "Rest", ("Cancel",)),)

    with pytest.raises(BindingError, match=r"implements org.podmgr1.Transfer.Cancel twice"):
        binding.bind(Both, api.TRANSFER)


def test_the_service_binds_every_entry() -> None:
    """What the service checks first (without loading the image methods: see
    test_dispatch.py::test_service_imports_stay_lean), and what loading them checks."""
    binding.check(service.SERVED)
    bound = binding.bind(service.Manager, api.MANAGER)
    deferred = {*service.IMAGES.entries, *service.AUTO_UPDATE.entries}
    assert set(bound.deferred) == deferred
    assert set(bound.attributes) | set(bound.deferred) == set(binding.members(api.MANAGER))
    for part in service.Manager.DEFERRED:
        _, loaded = part.load()
        assert set(loaded.attributes) == set(part.entries)


def test_a_service_whose_code_disagrees_with_the_table_does_not_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Incomplete:
        pass

    monkeypatch.setattr(service, "SERVED", ((api.TRANSFER, Incomplete),))
    with caplog.at_level(logging.ERROR, logger="podmgr1"):
        assert service.main() == 1
    [record] = caplog.records
    assert record.getMessage() == (
        "podmgr1: the API table and its code disagree: test_a_service_whose_code_disagrees_"
        "with_the_table_does_not_start.<locals>.Incomplete does not implement "
        + ", ".join(f"org.podmgr1.Transfer.{e}" for e in TRANSFER_ENTRIES)
        + " (mark its implementation with @implements)"
    )
