# SPDX-License-Identifier: LGPL-2.1-or-later
"""Quantities as systemd reads them: sizes in bytes, durations in microseconds and
percentages, parsed exactly (in integers, never through a float) and range-checked
against what systemd counts (limits.py); with the writers that give them back in
systemd's own notation for generated units.
"""

from __future__ import annotations

import re

from podmgr.limits import DURATION_MAX, PERCENT_MAX, SIZE_MAX
from podmgr.values import BadValue, ValueType, shown, toml_type

_SIZE = re.compile(r"([0-9]+)(?:\.([0-9]+))?([KMGT]?)")
_SIZE_FACTORS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
# More digits than this are out of range whatever they say; they are not converted, as int()
# refuses strings of more than 4300 digits.
_DIGITS_MAX = 30


def _scaled(whole: str, fraction: str | None, factor: int) -> int | None:
    """whole.fraction * factor in integers, rounded down (no float: "1.1G" is exact); None
    when there are too many digits to be in range anyway."""
    whole = whole.lstrip("0") or "0"
    fraction = (fraction or "")[:_DIGITS_MAX]
    if len(whole) > _DIGITS_MAX:
        return None
    value = int(whole) * factor
    if fraction:
        value += int(fraction) * factor // 10 ** len(fraction)
    return value


class Size(ValueType[int]):
    """Bytes, as systemd counts them: suffixes K, M, G, T are powers of 1024."""

    doc = "size"

    def parse(self, raw: object) -> int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            value: int | None = raw
        elif isinstance(raw, str) and (match := _SIZE.fullmatch(raw)):
            value = _scaled(match[1], match[2], _SIZE_FACTORS[match[3]])
        elif isinstance(raw, str):
            raise BadValue(f"{shown(raw)} is not a size (use 512M, 2G)")
        else:
            raise BadValue(f'expected a size like "512M", got {toml_type(raw)}')
        if value is not None and value <= 0:
            raise BadValue(f"{shown(raw)} must be positive (use 512M, 2G)")
        if value is None or value > SIZE_MAX:
            raise BadValue(
                f"{shown(raw)} is more than systemd counts (use at most {SIZE_MAX >> 40}T)"
            )
        return value


def format_size(value: int) -> str:
    for suffix in "TGMK":
        factor = _SIZE_FACTORS[suffix]
        if value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)


_SPAN_UNITS = {
    "us": 1,
    "ms": 1000,
    "s": 10**6,
    "sec": 10**6,
    "m": 60 * 10**6,
    "min": 60 * 10**6,
    "h": 3600 * 10**6,
    "hr": 3600 * 10**6,
    "d": 86400 * 10**6,
}
# A number without a unit is seconds, as systemd reads it.
_SPAN_PART = re.compile(r"\s*([0-9]+)(?:\.([0-9]+))?\s*(us|ms|sec|s|min|m|hr|h|d)?")


class Duration(ValueType[int]):
    """A time span in microseconds; written as systemd does ("30s", "1min 30s", "500ms")."""

    doc = "duration"

    def parse(self, raw: object) -> int:
        hint = "use 30s, 5min, 1h 30min, 500ms"
        if isinstance(raw, int) and not isinstance(raw, bool):
            if raw < 0:
                raise BadValue(f'{raw} is negative (use seconds from 0 up, or a string like "30s")')
            total: int | None = raw * 10**6 if raw <= DURATION_MAX else None
        elif isinstance(raw, str):
            total, pos = 0, 0
            while pos < len(raw) and (match := _SPAN_PART.match(raw, pos)):
                part = _scaled(match[1], match[2], _SPAN_UNITS[match[3] or "s"])
                total = None if part is None or total is None else total + part
                pos = match.end()
            if pos == 0 or raw[pos:].strip():
                raise BadValue(f"{shown(raw)} is not a duration ({hint})")
        else:
            raise BadValue(f'expected a duration like "30s", got {toml_type(raw)}')
        if total is None or total > DURATION_MAX:
            raise BadValue(
                f"{shown(raw)} is longer than systemd counts (use at most "
                f"{DURATION_MAX // _SPAN_UNITS['d']}d)"
            )
        return total


def format_duration(usec: int) -> str:
    for unit, factor in (("min", 60 * 10**6), ("s", 10**6), ("ms", 1000)):
        if usec % factor == 0:
            return f"{usec // factor}{unit}"
    return f"{usec}us"


class Percent(ValueType[int]):
    doc = "percentage"

    def parse(self, raw: object) -> int:
        hint = 'use "50%"; 200% is two CPUs'
        if isinstance(raw, str) and (match := re.fullmatch(r"([0-9]+)%", raw)):
            digits = match[1].lstrip("0")
            if digits and (len(digits) > len(str(PERCENT_MAX)) or int(digits) > PERCENT_MAX):
                raise BadValue(
                    f"{shown(raw)} is more than systemd takes (use at most {PERCENT_MAX}%)"
                )
            if digits:
                return int(digits)
        raise BadValue(f"{shown(raw)} is not a percentage ({hint})")
