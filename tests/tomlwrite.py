# SPDX-License-Identifier: LGPL-2.1-or-later
"""TOML text from Python values, for tests that generate manifests: every table inline,
so any nesting (and any key) can be written."""

from __future__ import annotations

import datetime
import math
import re


def string(text: str) -> str:
    """A TOML basic string: quote, backslash and every control character escaped."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else string(name)


def value(raw: object) -> str:
    if isinstance(raw, list):
        return "[" + ", ".join(value(item) for item in raw) + "]"
    if isinstance(raw, dict):
        return "{" + ", ".join(f"{key(k)} = {value(v)}" for k, v in raw.items()) + "}"
    return _scalar(raw)


def _scalar(raw: object) -> str:
    if isinstance(raw, bool):
        text = "true" if raw else "false"
    elif isinstance(raw, float):
        text = (
            "nan"
            if math.isnan(raw)
            else repr(raw)
            if math.isfinite(raw)
            else ("inf" if raw > 0 else "-inf")
        )
    elif isinstance(raw, int):
        text = str(raw)
    elif isinstance(raw, str):
        text = string(raw)
    elif isinstance(raw, datetime.date | datetime.time):
        text = raw.isoformat()
    else:
        raise TypeError(raw)
    return text


def document(table: dict[str, object]) -> str:
    """A TOML document of ``table``: one line per top-level key."""
    return "".join(f"{key(k)} = {value(v)}\n" for k, v in table.items())
