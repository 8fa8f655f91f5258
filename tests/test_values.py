# SPDX-License-Identifier: LGPL-2.1-or-later
"""Value types: what each accepts and normalizes to, sizes and durations as systemd
writes them, and round trips through the formatters."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from podmgr.manifest import schema
from podmgr.manifest.schema import Restart
from podmgr.quantities import Duration, Percent, Size, format_duration, format_size
from podmgr.values import (
    AbsolutePath,
    Address,
    BadValue,
    Capability,
    Choice,
    Executable,
    Integer,
    ListOf,
    MapOf,
    Mode,
    Port,
    PortSpec,
    String,
    SyscallFilter,
    UserRef,
    ValueType,
    toml_type,
)

SECOND = 10**6  # durations are in microseconds


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(4096, 4096, id="integer-bytes"),
        pytest.param("512", 512, id="string-bytes"),
        pytest.param("1K", 1024, id="K"),
        pytest.param("512M", 512 << 20, id="M"),
        pytest.param("2G", 2 << 30, id="G"),
        pytest.param("1.5G", 1536 << 20, id="fraction"),
        pytest.param("1T", 1 << 40, id="T"),
    ],
)
def test_size(raw: object, expected: int) -> None:
    assert Size().parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("12X", "'12X' is not a size (use 512M, 2G)", id="unknown-suffix"),
        pytest.param("1 G", "'1 G' is not a size", id="space"),
        pytest.param("1g", "'1g' is not a size", id="lower-case"),
        pytest.param("-1", "'-1' is not a size", id="negative-string"),
        pytest.param("", "'' is not a size", id="empty"),
        pytest.param("0", "'0' must be positive (use 512M, 2G)", id="zero-string"),
        pytest.param(0, "0 must be positive", id="zero"),
        pytest.param(-1, "-1 must be positive", id="negative"),
        pytest.param(1.5, 'expected a size like "512M", got a float', id="float"),
        pytest.param(True, 'expected a size like "512M", got a boolean', id="boolean"),
    ],
)
def test_bad_size(raw: object, message: str) -> None:
    with pytest.raises(BadValue) as error:
        Size().parse(raw)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(30, 30 * SECOND, id="integer-seconds"),
        pytest.param(0, 0, id="zero"),
        pytest.param("30s", 30 * SECOND, id="s"),
        pytest.param("30sec", 30 * SECOND, id="sec"),
        pytest.param("5min", 300 * SECOND, id="min"),
        pytest.param("2m", 120 * SECOND, id="m"),
        pytest.param("2h", 7200 * SECOND, id="h"),
        pytest.param("1d", 86400 * SECOND, id="d"),
        pytest.param("1.5s", 1_500_000, id="fraction"),
        pytest.param("500ms", 500_000, id="ms"),
        pytest.param("250us", 250, id="us"),
        pytest.param("1h 30min", 5400 * SECOND, id="compound"),
        pytest.param("1min30s", 90 * SECOND, id="compound-without-space"),
        pytest.param(" 1 h  2 s ", 3602 * SECOND, id="spaces"),
        pytest.param("30", 30 * SECOND, id="seconds-without-unit"),
        pytest.param("1min 30", 90 * SECOND, id="compound-seconds-without-unit"),
    ],
)
def test_duration(raw: object, expected: int) -> None:
    assert Duration().parse(raw) == expected


@pytest.mark.parametrize("raw", ["3 parsecs", "s", "5 minutes", "1h junk", "", "1h,30min"])
def test_bad_duration(raw: str) -> None:
    with pytest.raises(BadValue) as error:
        Duration().parse(raw)
    assert str(error.value) == f"{raw!r} is not a duration (use 30s, 5min, 1h 30min, 500ms)"


@pytest.mark.parametrize("value", [1, 1023, 1024, 1536, 512 << 20, 1536 << 20, 5 << 40])
def test_format_size_round_trips(value: int) -> None:
    assert Size().parse(format_size(value)) == value


@pytest.mark.parametrize(
    "usec", [1, 999, 1000, 1500, SECOND, 90 * SECOND, 3600 * SECOND, 86400 * SECOND + 1]
)
def test_format_duration_round_trips(usec: int) -> None:
    assert Duration().parse(format_duration(usec)) == usec


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5T", 5 << 40),
        ("512M", 512 << 20),
        ("1536M", 1536 << 20),
        ("1K", 1024),
        ("1023", 1023),
    ],
)
def test_format_size_uses_the_largest_exact_suffix(text: str, value: int) -> None:
    assert format_size(value) == text


@pytest.mark.parametrize(
    ("text", "usec"),
    [
        ("2min", 120 * SECOND),
        ("90s", 90 * SECOND),
        ("500ms", 500_000),
        ("1500us", 1500),
    ],
)
def test_format_duration_uses_the_largest_exact_unit(text: str, usec: int) -> None:
    assert format_duration(usec) == text


# (value type, raw TOML value, parsed value): what each type keeps or normalizes.
ACCEPTED: list[Any] = [
    pytest.param(String(), "text", "text", id="string"),
    pytest.param(Integer(1, 10), 10, 10, id="integer-maximum"),
    pytest.param(Choice(Restart), "on-failure", Restart.ON_FAILURE, id="choice"),
    pytest.param(Percent(), "200%", 200, id="percent"),
    pytest.param(AbsolutePath(), "/srv/./data/", "/srv/data", id="path-normalized"),
    pytest.param(AbsolutePath(), "/", "/", id="path-root"),
    pytest.param(Mode(), "0750", 0o750, id="mode"),
    pytest.param(Mode(), "644", 0o644, id="mode-without-zero"),
    pytest.param(Mode(), "1777", 0o1777, id="mode-sticky"),
    pytest.param(UserRef("user"), 0, 0, id="user-number"),
    pytest.param(UserRef("user"), "1000", 1000, id="user-digits"),
    pytest.param(UserRef("user"), "www-data", "www-data", id="user-name"),
    pytest.param(UserRef("user"), 4294967294, 4294967294, id="user-maximum"),
    pytest.param(Capability(), "net_raw", "CAP_NET_RAW", id="capability-short"),
    pytest.param(Capability(), "CAP_SYS_ADMIN", "CAP_SYS_ADMIN", id="capability"),
    pytest.param(SyscallFilter(), "~@privileged", "~@privileged", id="syscall-denied-group"),
    pytest.param(SyscallFilter(), "mkdir", "mkdir", id="syscall-name"),
    pytest.param(schema.ImageName(), "busybox", "docker.io/library/busybox:latest", id="image"),
    pytest.param(Address(), "::0001", "::1", id="address-v6"),
    pytest.param(PortSpec(), "8080:80", Port("", 8080, 80, "tcp"), id="port-default-tcp"),
    pytest.param(
        PortSpec(), "127.0.0.1:53:53/udp", Port("127.0.0.1", 53, 53, "udp"), id="port-address-udp"
    ),
    pytest.param(ListOf(String(), unique=False), ["a", "a"], ("a", "a"), id="list-not-unique"),
    pytest.param(ListOf(Capability()), [], (), id="list-empty"),
    pytest.param(MapOf(String(r"[A-Z]+")), {"A": "1"}, {"A": "1"}, id="map"),
]


@pytest.mark.parametrize(("value_type", "raw", "expected"), ACCEPTED)
def test_accepted_values(value_type: ValueType[object], raw: object, expected: object) -> None:
    assert value_type.parse(raw) == expected


def test_a_port_prints_as_written() -> None:
    assert str(Port("", 8080, 80, "tcp")) == "8080:80/tcp"
    assert str(Port("127.0.0.1", 53, 53, "udp")) == "127.0.0.1:53:53/udp"


@pytest.mark.parametrize(
    ("value_type", "raw", "subpath"),
    [
        pytest.param(ListOf(Size()), ["1M", "1X"], "[1]", id="list-item"),
        pytest.param(ListOf(Capability()), ["CHOWN", "cap_chown"], "[1]", id="list-duplicate"),
        pytest.param(MapOf(String(r"[A-Z]+")), {"A": "1", "b": "2"}, ".b", id="map-key"),
        pytest.param(MapOf(String(r"[A-Z]+")), {"A": 1}, ".A", id="map-value"),
        pytest.param(Size(), "1X", "", id="scalar"),
    ],
)
def test_a_bad_element_extends_the_key_path(
    value_type: ValueType[object], raw: object, subpath: str
) -> None:
    with pytest.raises(BadValue) as error:
        value_type.parse(raw)
    assert error.value.subpath == subpath


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (True, "a boolean"),
        (1, "an integer"),
        (1.0, "a float"),
        ("", "a string"),
        ([], "an array"),
        ({}, "a table"),
        (datetime.date(2024, 1, 1), "a date/time"),
    ],
)
def test_toml_type_names(raw: object, name: str) -> None:
    assert toml_type(raw) == name


def test_a_choice_of_the_wrong_type_reads_well() -> None:
    with pytest.raises(BadValue) as error:
        Choice(Restart).parse(1)
    assert "an one of" not in str(error.value)


@pytest.mark.parametrize(
    ("value_type", "doc"),
    [
        pytest.param(ListOf(Capability()), "array of capabilities", id="capability"),
        pytest.param(ListOf(SyscallFilter()), "array of system call filter entries", id="syscall"),
    ],
)
def test_arrays_are_named_in_plural(value_type: ValueType[object], doc: str) -> None:
    assert value_type.doc == doc


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("4294967295", id="one-above"),
        pytest.param("99999999999", id="far-above"),
    ],
)
def test_user_digits_out_of_range(raw: str) -> None:
    with pytest.raises(BadValue, match=r"use 0\.\.4294967294"):
        UserRef("user").parse(raw)


def test_user_with_a_unicode_digit() -> None:
    with pytest.raises(BadValue, match="use a number or a name"):
        UserRef("user").parse("\u00b2")


def test_a_double_slash_is_normalized() -> None:
    assert AbsolutePath().parse("//srv//data") == "/srv/data"


# Ranges as systemd parses the values podmgr writes (src/basic/parse-util.c parse_size(),
# src/basic/time-util.c parse_time(), parse_permyriad_unbounded(), uid_is_valid()).


@pytest.mark.parametrize(
    ("value_type", "raw", "message"),
    [
        pytest.param(
            Size(),
            "99999999T",
            "is more than systemd counts (use at most 16777215T)",
            id="size-over-64-bits",
        ),
        pytest.param(Size(), "16777216T", "is more than systemd counts", id="size-2-to-the-64"),
        pytest.param(Size(), 2**64 - 1, "is more than systemd counts", id="size-uint64-max"),
        pytest.param(Size(), "9" * 400, "is more than systemd counts", id="size-400-digits"),
        pytest.param(
            Size(), "9" * 5000 + "K", "is more than systemd counts", id="size-5000-digits"
        ),
        pytest.param(Size(), "1." + "9" * 5000 + "K", "", id="size-long-fraction-is-fine"),
        pytest.param(
            Duration(), "9" * 400 + "s", "is longer than systemd counts", id="duration-400-digits"
        ),
        pytest.param(
            Duration(),
            "1" + "0" * 5000 + "us",
            "is longer than systemd counts",
            id="duration-5000-digits",
        ),
        pytest.param(Duration(), 2**63, "is longer than systemd counts", id="duration-integer"),
        pytest.param(Duration(), f"{2**63}us", "is longer than systemd counts", id="duration-2-63"),
        pytest.param(
            Duration(), "153722867281min 1min", "is longer than systemd counts", id="duration-sum"
        ),
        pytest.param(
            Percent(),
            "21474837%",
            "is more than systemd takes (use at most 21474836%)",
            id="percent-over-int",
        ),
        pytest.param(
            Percent(), "9" * 5000 + "%", "is more than systemd takes", id="percent-5000-digits"
        ),
        pytest.param(Percent(), "0%", "is not a percentage", id="percent-zero"),
        pytest.param(
            UserRef("user"),
            65535,
            "is out of range (use 0..4294967294 except 65535",
            id="user-16-bit-minus-one",
        ),
        pytest.param(UserRef("user"), "65535", "is out of range", id="user-16-bit-minus-one-text"),
        pytest.param(UserRef("user"), 4294967295, "is out of range", id="user-minus-one"),
        pytest.param(
            AbsolutePath(),
            "/" + "a" * 3000,
            "has a name of 3000 bytes (systemd takes at most 255 bytes between slashes)",
            id="path-long-name",
        ),
        pytest.param(
            AbsolutePath(),
            "/" + "a/" * 2048,
            "is 4096 bytes long (systemd takes paths of at most 4095 bytes)",
            id="path-over-path-max",
        ),
        pytest.param(
            AbsolutePath(), "/" + "\u00e9" * 128, "has a name of 256 bytes", id="path-counts-bytes"
        ),
        pytest.param(AbsolutePath(), "/a\x01b", "a control character", id="path-c0"),
        pytest.param(AbsolutePath(), "/a\x7fb", "a control character", id="path-del"),
        pytest.param(AbsolutePath(), "/a\x9bb", "a control character", id="path-c1"),
        pytest.param(AbsolutePath(), "/a\u2028b", "a control character", id="path-line-separator"),
    ],
)
def test_what_systemd_would_refuse_or_ignore(
    value_type: ValueType[object], raw: object, message: str
) -> None:
    if not message:
        value_type.parse(raw)
        return
    with pytest.raises(BadValue) as error:
        value_type.parse(raw)
    assert message in str(error.value)
    assert len(str(error.value)) < 200  # a number of 5000 digits is not repeated


@pytest.mark.parametrize(
    ("value_type", "raw", "expected"),
    [
        pytest.param(Size(), "16777215T", (2**24 - 1) << 40, id="size-largest-T"),
        pytest.param(Size(), 2**64 - 2, 2**64 - 2, id="size-largest"),
        pytest.param(Size(), "1.1G", 1181116006, id="size-fraction-exact"),
        pytest.param(Size(), "0.5K", 512, id="size-below-one"),
        pytest.param(Duration(), f"{2**63 - 1}us", 2**63 - 1, id="duration-largest"),
        pytest.param(Duration(), "0.1us", 0, id="duration-fraction-rounds-down"),
        pytest.param(Duration(), "1.000001s", 1_000_001, id="duration-fraction-exact"),
        pytest.param(Percent(), "21474836%", 21474836, id="percent-largest"),
        pytest.param(Percent(), "007%", 7, id="percent-leading-zeros"),
        pytest.param(UserRef("user"), 65534, 65534, id="user-nobody"),
        pytest.param(UserRef("user"), 65536, 65536, id="user-above-16-bit"),
        pytest.param(AbsolutePath(), "/" + "a" * 255, "/" + "a" * 255, id="path-longest-name"),
        pytest.param(
            AbsolutePath(), "/" + "a/" * 2046 + "b", "/" + "a/" * 2046 + "b", id="path-longest"
        ),
    ],
)
def test_what_systemd_takes_at_the_edge(
    value_type: ValueType[object], raw: object, expected: object
) -> None:
    assert value_type.parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("bin/true", "is not an absolute path", id="relative"),
        pytest.param(
            '/bin/"true"', "contains a quote, a backslash or a control character", id="quote"
        ),
        pytest.param("/bin/it's", "contains a quote", id="single-quote"),
        pytest.param("/bin\\true", "contains a quote, a backslash", id="backslash"),
        pytest.param("/bin/tr\tue", "a control character", id="tab"),
        pytest.param("/bin/tr\x85ue", "a control character", id="c1"),
        pytest.param("/bin/", "ends in '/'", id="directory"),
        pytest.param("/bin/..", "so it names a directory", id="dot-dot"),
        pytest.param("/.", "so it names a directory", id="dot"),
        pytest.param("/" + "x" * 256, "has a name of 256 bytes", id="long-name"),
        pytest.param("/opt/$HOME/run", "contains '$'", id="dollar"),
    ],
)
def test_a_program_systemd_refuses(raw: str, message: str) -> None:
    with pytest.raises(BadValue) as error:
        Executable().parse(raw)
    assert message in str(error.value)


@pytest.mark.parametrize("raw", ["/bin/true", "/opt/my app/run", "/srv/100%", "/usr/bin/caf\u00e9"])
def test_a_program_systemd_takes(raw: str) -> None:
    assert Executable().parse(raw) == raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("a\ud800", "holds a character systemd refuses", id="surrogate"),
        pytest.param("a\ufdd0", "holds a character systemd refuses", id="noncharacter"),
        pytest.param("\U0001fffe", "holds a character systemd refuses", id="noncharacter-plane-1"),
        pytest.param("a\0", "must not contain NUL", id="nul"),
    ],
)
def test_a_string_is_text_a_unit_can_carry(raw: str, message: str) -> None:
    with pytest.raises(BadValue, match=message):
        String().parse(raw)
