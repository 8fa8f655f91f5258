# SPDX-License-Identifier: LGPL-2.1-or-later
"""Value types: sizes and durations as systemd writes them, round trips."""

from __future__ import annotations

import pytest

from podmgr.values import BadValue, Duration, Size, format_duration, format_size


@pytest.mark.parametrize(("raw", "expected"), [
    (4096, 4096), ("512", 512), ("1K", 1024), ("512M", 512 << 20), ("2G", 2 << 30),
    ("1.5G", 3 << 29), ("1T", 1 << 40),
])
def test_size(raw: object, expected: int) -> None:
    assert Size().parse(raw) == expected


@pytest.mark.parametrize("raw", ["12X", "1 G", "-1", "1g", "", "G"])
def test_bad_size(raw: str) -> None:
    with pytest.raises(BadValue, match="is not a size"):
        Size().parse(raw)


@pytest.mark.parametrize(("raw", "seconds"), [
    (30, 30), ("30s", 30), ("5min", 300), ("2m", 120), ("1h 30min", 5400), ("1d", 86400),
    ("1.5s", 1.5), ("500ms", 0.5), ("250us", 0.00025), ("1min30s", 90),
])
def test_duration(raw: object, seconds: float) -> None:
    assert Duration().parse(raw) == round(seconds * 10**6)


@pytest.mark.parametrize("raw", ["3 parsecs", "s", "5 minutes", "1h junk", ""])
def test_bad_duration(raw: str) -> None:
    with pytest.raises(BadValue, match="is not a duration"):
        Duration().parse(raw)


@pytest.mark.parametrize("value", [1, 1023, 1024, 512 << 20, 3 << 29, 5 << 40])
def test_format_size_round_trips(value: int) -> None:
    assert Size().parse(format_size(value)) == value


@pytest.mark.parametrize("usec", [1, 999, 1000, 10**6, 90 * 10**6, 3600 * 10**6, 1500])
def test_format_duration_round_trips(usec: int) -> None:
    assert Duration().parse(format_duration(usec)) == usec


def test_formats_read_as_systemd_writes_them() -> None:
    assert format_size(512 << 20) == "512M"
    assert format_size(1536 << 20) == "1536M"
    assert format_duration(90 * 10**6) == "90s"
    assert format_duration(120 * 10**6) == "2min"
    assert format_duration(500_000) == "500ms"
