# SPDX-License-Identifier: LGPL-2.1-or-later
"""Unit files as data: sections of (key, value) pairs, rendered once.

Values that come from a manifest pass through the quoting helpers here, so that no
manifest can inject a specifier (``%``), a variable (``$``), a second command (``;``) or a
new line into a generated unit.  See systemd.unit(5) "Specifiers" and systemd.service(5)
"Command lines".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SAFE_WORD = re.compile(r"[A-Za-z0-9_./:=,+@-]+")


def escape_specifiers(value: str) -> str:
    return value.replace("%", "%%")


# Inside a double-quoted word: C escapes for backslash, quote and control characters, and
# %% for a literal % (specifiers are expanded before unquoting).
_ESCAPES = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]} | {
    ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\t"): "\\t", ord("%"): "%%"}


def quote(value: str) -> str:
    """One word for a setting that splits and unquotes its value (Environment=, ExecStart=)."""
    if _SAFE_WORD.fullmatch(value):
        return value
    return '"' + value.translate(_ESCAPES) + '"'


def command_line(argv: tuple[str, ...] | list[str]) -> str:
    """ExecStart= for argv, run as given: no variable expansion, no command separators."""
    words = []
    for arg in argv:
        word = quote(arg).replace("$", "$$")
        # A lone ";" separates commands in ExecStart=, quoted or not; "\;" is a literal one.
        words.append("\\;" if arg == ";" else word)
    return " ".join(words)


@dataclass
class UnitFile:
    """A unit file or drop-in under construction."""

    comment: list[str] = field(default_factory=list)
    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def set(self, section: str, key: str, value: str | int | bool | None) -> None:
        """Add ``key=value`` to ``section``; None adds nothing, so optional settings stay out."""
        if value is None:
            return
        if isinstance(value, bool):
            value = "yes" if value else "no"
        text = str(value)
        if "\n" in text:
            raise ValueError(f"{key}= value contains a new line: {text!r}")
        self.sections.setdefault(section, []).append((key, text))

    def render(self) -> str:
        lines = [f"# {line}" if line else "#" for line in self.comment]
        for name, entries in self.sections.items():
            if lines:
                lines.append("")
            lines.append(f"[{name}]")
            lines.extend(f"{key}={value}" for key, value in entries)
        return "\n".join(lines) + "\n"
