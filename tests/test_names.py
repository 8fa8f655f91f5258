# SPDX-License-Identifier: LGPL-2.1-or-later
"""Names at the edge: a PodName (AppName, NetworkName, Fingerprint, ...) exists only when
its text matched the grammar, so it can never be a path; and every text either converts
or is refused with one line."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podmgr import names
from podmgr.bus import api, arguments
from podmgr.errors import InvalidName, PodmgrError
from podmgr.image import reference
from podmgr.limits import DURATION_MAX

HOSTILE = [
    "",
    ".",
    "..",
    "../x",
    "a/b",
    "/etc/passwd",
    "a" * 64,
    "a" * 100_000,
    "pöd",
    "\uff41",
    "a\nb",
    "a\rb",
    "a\u2028b",
    "A",
    "-a",
    "_a",
    "a b",
    "a\tb",
    "a:b",
    "a\\x2db",
]


@pytest.mark.parametrize("cls", [names.PodName, names.AppName, names.NetworkName])
@pytest.mark.parametrize("text", HOSTILE, ids=repr)
def test_hostile_names_are_refused(cls: type[names.CheckedName], text: str) -> None:
    with pytest.raises(InvalidName) as refused:
        cls(text)
    message = str(refused.value)
    assert "\n" not in message
    assert len(message) < 200
    assert cls.kind in message


def test_a_name_is_a_string_of_its_kind() -> None:
    pod = names.PodName("web-1.a_b")
    assert pod == "web-1.a_b"
    assert isinstance(pod, str)
    assert names.pod_unit(pod) == "pod@web-1.a_b.service"
    with pytest.raises(InvalidName, match="must be a string, not int"):
        names.PodName(5)


@given(st.text(max_size=100))
def test_a_pod_name_matches_the_grammar_or_is_refused(text: str) -> None:
    problem: InvalidName | None = None
    try:
        pod = names.PodName(text)
    except InvalidName as error:
        problem = error
    if problem is not None:
        assert "\n" not in str(problem)
        assert names.NAME_PATTERN.fullmatch(text) is None
    else:
        assert names.NAME_PATTERN.fullmatch(pod)
        assert "/" not in pod
        assert pod not in (".", "..")


_any = st.one_of(
    st.text(max_size=80),
    st.text("abc./:@-_0123456789ABCDEF \n", max_size=80),
    st.builds(lambda n: "a" * n, st.integers(0, 600)),
)


@pytest.mark.parametrize("kind", sorted(set(arguments.CONVERTERS) - {"armored"}))
@given(text=_any)
def test_every_kind_converts_or_refuses_in_one_line(kind: str, text: str) -> None:
    problem: PodmgrError | None = None
    try:
        value = arguments.convert(kind, text)
    except PodmgrError as error:
        problem = error
    if problem is not None:
        assert problem.code in ("InvalidName", "BadReference")
        assert "\n" not in str(problem)
        assert len(str(problem)) < 400
        return
    assert len(text) <= api.KINDS[kind].limit
    if isinstance(value, str) and kind in ("pod", "app", "network"):
        assert ".." not in value.split("/")
        assert "/" not in value
    if isinstance(value, reference.Reference):
        assert reference.parse(str(value)) == value  # normalized, stable


# A flag (b) is true or false: nothing is over a limit (test_flags_are_booleans).
@pytest.mark.parametrize("kind", sorted(set(api.KINDS) - {"flag"}))
def test_each_limit_is_enforced_before_parsing(kind: str) -> None:
    limit = api.KINDS[kind].limit
    over: object = {
        "armored": b"x" * (limit + 1),
        "command": ["a" * (limit + 1)],
        "fd": limit,
        "duration": DURATION_MAX + 1,
    }.get(kind, "a" * (limit + 1))
    with pytest.raises(InvalidName, match=r"at most|over the limit"):
        arguments.convert(kind, over)


def test_flags_are_booleans_and_durations_numbers() -> None:
    assert arguments.convert("flag", True) is True
    assert arguments.convert("duration", DURATION_MAX) == DURATION_MAX
    for kind, bad in (("flag", 1), ("flag", "true"), ("duration", -1), ("duration", True)):
        with pytest.raises(InvalidName, match=f"the {kind} must be"):
            arguments.convert(kind, bad)


def test_fingerprints() -> None:
    assert arguments.Fingerprint("ab" * 20) == "AB" * 20
    assert arguments.Fingerprint("ABCD " * 10) == "ABCD" * 10
    assert arguments.Fingerprint("a" * 64) == "A" * 64
    for bad in ("", "a" * 39, "g" * 40, "../" * 14, "a" * 41):
        with pytest.raises(InvalidName, match="is not a key fingerprint"):
            arguments.Fingerprint(bad)


def test_pull_takes_registries_only() -> None:
    assert str(arguments.convert("pull", "busybox")) == "docker.io/library/busybox:latest"
    assert str(arguments.convert("pull", "docker://example.org/a:1")) == "example.org/a:1"
    with pytest.raises(InvalidName, match="PullImage fetches from registries"):
        arguments.convert("pull", "oci-archive:///x")


def test_prefixes() -> None:
    for good in ("", "example.org", "example.org/shop", "localhost:5000/a", "testing/x"):
        assert arguments.convert("prefix", good) == good
    for bad in ("../..", "a/../b", "ü", "x y", "a/B"):
        with pytest.raises(
            InvalidName,
            match=r"is not an image name prefix|is not a repository "
            r"path|is not a registry host",
        ):
            arguments.convert("prefix", bad)


def test_shown_keeps_messages_on_one_line() -> None:
    assert names.shown("a\u2028b\r") == "'a\\u2028b\\r'"
    assert re.fullmatch(r"'a{40}'\.\.\. \(100000 characters\)", names.shown("a" * 100_000))


@pytest.mark.parametrize("name", ["../../../home/alice", "", "a" * 64, "pöd"])
def test_podmgr_pod_refuses_what_is_not_a_pod_name(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from podmgr.runtime import prepare  # noqa: PLC0415

    assert prepare.main(["release", name]) == 2
    err = capsys.readouterr().err
    assert err.startswith("podmgr-pod: ")
    assert err.count("\n") == 1
