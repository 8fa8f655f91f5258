# SPDX-License-Identifier: LGPL-2.1-or-later
"""Unit files as data: sections of (key, value) pairs, rendered once.

The writer cannot make a line that systemd reads differently from what was added: ``add``
refuses (raises UnsafeValue) a section, key, value or comment with any control character
(systemd ends a line at ``\\n``, ``\\r`` and NUL; the rest of C0, DEL, C1 and the Unicode line
separators are refused too, as nothing podmgr writes needs them raw), a value ending in a
backslash (systemd would join the next line to it), a value with white space at either end
(systemd strips it), text systemd does not take as UTF-8 (a noncharacter such as U+FFFE
fails the whole unit) and a line longer than systemd reads.  Values are checked when they are
typed (values.py); this is the last line of defence, so no caller can ever add a line.

Values that come from a manifest or an image pass through the quoting helpers here, which
escape what a key's parser would otherwise interpret: a specifier (``%``), a variable
(``$``), a second command (``;``), a quote, a backslash, and control characters.  See
systemd.unit(5) "Specifiers" and "Quoting", systemd.service(5) "Command lines".

Which values may hold control characters follows from how systemd parses each key:

- ExecStart= arguments and Environment= assignments are split into words, unquoted and
  C-unescaped (extract_first_word() with EXTRACT_CUNESCAPE), so any text but NUL can be
  written: ``quote`` escapes control characters, and an app gets exactly its argument or
  variable (a variable's value may hold a new line, as env(1) allows).
- The program (exec[0]) is unquoted but systemd refuses one with quotes, backslashes or
  control characters: values.Executable refuses them.
- Paths (WorkingDirectory=, RootDirectory=, BindPaths=, EnvironmentFile=, SourcePath=) are
  taken as written, without unescaping: a control character cannot be written in one, so
  values.AbsolutePath refuses them.
- Names (Description=, Slice=, Wants=, SyslogIdentifier=, LogExtraFields=) are made of pod
  and app names, whose grammar has none; numbers are formatted by podmgr.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from podmgr.limits import CONTROL_CHARACTERS, NOT_TEXT, is_text

_SAFE_WORD = re.compile(r"[A-Za-z0-9_./:=,+@-]+")
_SECTION = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*")

# systemd reads a unit file's line (after joining continued lines) into at most LONG_LINE_MAX
# bytes, and refuses to load a unit with a longer one.
LONG_LINE_MAX = 1 << 20


def fits_line(key: str, value: str) -> bool:
    """Whether ``key=value`` is a line systemd reads whole."""
    if len(key) + 1 + 4 * len(value) < LONG_LINE_MAX:
        return True  # no code point takes more than 4 bytes: no need to encode it
    return len(key) + 1 + len(value.encode(errors="surrogatepass")) < LONG_LINE_MAX


class UnsafeValue(ValueError):
    """What a unit file cannot carry as given; a caller let an unchecked value through."""


def escape_specifiers(value: str) -> str:
    return value.replace("%", "%%")


def _escape(char: str) -> str:
    code = ord(char)
    # systemd's cunescape() takes \xNN as one byte: for a character beyond ASCII, \uNNNN
    # gives its UTF-8 encoding, which systemd needs (Environment= values must be UTF-8).
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


# Inside a double-quoted word: C escapes for backslash, quote and control characters, and
# %% for a literal % (specifiers are expanded after unquoting, and "%%" survives unquoting).
_ESCAPES = {
    code: _escape(chr(code)) for code in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
} | {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\t"): "\\t", ord("%"): "%%"}


def quote(value: str) -> str:
    """One word for a setting that splits, unquotes and C-unescapes its value (ExecStart=
    arguments, Environment=): any text but NUL and what systemd does not take as UTF-8,
    which no escape can write (values.is_text)."""
    if not is_text(value):
        raise UnsafeValue(f"{value!r} cannot be written in a unit file")
    if _SAFE_WORD.fullmatch(value):
        return value
    return '"' + value.translate(_ESCAPES) + '"'


def command_line(argv: tuple[str, ...] | list[str]) -> str:
    """ExecStart= for argv, run as given: no variable expansion, no command separators.

    systemd refuses an argv[0] with quotes, backslashes or control characters, and would
    run one with "$$" as written (values.Executable checks argv[0] first)."""
    words = []
    for arg in argv:
        word = quote(arg).replace("$", "$$")
        # A lone ";" separates commands in ExecStart=, quoted or not; "\;" is a literal one.
        words.append("\\;" if arg == ";" else word)
    return " ".join(words)


def _check_text(what: str, text: str) -> None:
    # str.isprintable() is false for every character refused here: control characters
    # (Cc), the line and paragraph separators (Zl, Zp), lone surrogates (Cs) and
    # noncharacters (Cn); tests/test_unit_injection.py checks each code point.  So most
    # values are checked in one pass, and only the rest are searched.
    if text.isprintable():
        return
    if char := CONTROL_CHARACTERS.search(text):
        raise UnsafeValue(f"{what} contains the control character {char[0]!r}: {text!r}")
    if NOT_TEXT.search(text):
        # systemd refuses to load a unit that is not valid UTF-8 as its utf8_is_valid() sees it.
        raise UnsafeValue(f"{what} is not text systemd takes: {text!r}")


# (section, key) pairs already checked: podmgr writes few names, each in every unit.
_CHECKED_NAMES: set[tuple[str, str]] = set()


def _check_names(section: str, key: str) -> None:
    if not _SECTION.fullmatch(section):
        raise UnsafeValue(f"[{section!r}] is not a section name podmgr writes")
    if not _KEY.fullmatch(key):
        raise UnsafeValue(f"{key!r} is not a key name podmgr writes")
    _CHECKED_NAMES.add((section, key))


# A value must not end in a backslash (systemd would join the next line to it) nor have
# white space at either end (systemd strips it).
_BAD_LAST = frozenset("\\ \t")
_BAD_FIRST = frozenset(" \t")


def _check_ends(key: str, text: str) -> None:
    if text.endswith("\\"):
        raise UnsafeValue(f"{key}= ends in a backslash, which would continue the line: {text!r}")
    if text != text.strip(" \t"):
        raise UnsafeValue(f"{key}= has white space at an end, which systemd strips: {text!r}")


@dataclass
class UnitFile:
    """A unit file or drop-in under construction."""

    comment: list[str] = field(default_factory=list)
    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for line in self.comment:
            _check_text("a comment", line)

    def add(self, section: str, key: str, value: str | int | bool | None) -> None:
        """Add ``key=value`` to ``section``; None adds nothing, so optional settings stay out."""
        if value is None:
            return
        if type(value) is not str:
            value = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        if (section, key) not in _CHECKED_NAMES:
            _check_names(section, key)
        if not value.isprintable():  # the fast path of _check_text(), without its message
            _check_text(f"{key}=", value)
        # One look at each end for what systemd would read differently there.
        if value and (value[-1] in _BAD_LAST or value[0] in _BAD_FIRST):
            _check_ends(key, value)
        # fits_line(), but without a call for what is short whatever it encodes to.
        if 4 * len(value) + len(key) + 1 >= LONG_LINE_MAX and not fits_line(key, value):
            raise UnsafeValue(f"{key}= is longer than systemd reads a line ({LONG_LINE_MAX} bytes)")
        if section in self.sections:
            self.sections[section].append((key, value))
        else:
            self.sections[section] = [(key, value)]

    def add_words(self, section: str, key: str, words: Iterable[str]) -> None:
        """``key=`` with a list of words (Wants=, After=), on as many lines as it takes: such
        settings add up, and one line holds at most LONG_LINE_MAX bytes."""
        line: list[str] = []
        size = 0
        for word in words:
            if line and size + 1 + len(word) > LONG_LINE_MAX // 2:
                self.add(section, key, " ".join(line))
                line, size = [], 0
            line.append(word)
            size += len(word) + 1
        if line:
            self.add(section, key, " ".join(line))

    def render(self) -> str:
        lines = [f"# {line}" if line else "#" for line in self.comment]
        for name, entries in self.sections.items():
            if lines:
                lines.append("")
            lines.append(f"[{name}]")
            lines.extend(f"{key}={value}" for key, value in entries)
        return "\n".join(lines) + "\n"
