# SPDX-License-Identifier: LGPL-2.1-or-later
"""Unit files read back as systemd 252 reads them, for tests.

Written from systemd's rules (src/basic/fileio.c read_line_full(), src/shared/conf-parser.c
config_parse(), src/basic/extract-word.c, src/basic/escape.c cunescape_one()) and checked
against systemd-analyze itself in test_unit_injection.py:

- a line ends at "\\n", "\\r" or NUL; a run of distinct ones ("\\r\\n", "\\n\\r") is one end,
  and nothing after a NUL belongs to its end;
- a line whose first non-blank character is "#" or ";" is a comment, even within a
  continued line;
- a line ending in an odd number of backslashes continues on the next, the backslash
  becoming a space;
- a line still continued at the end of the file counts as one more line;
- "[NAME]" starts a section; otherwise KEY=VALUE, both stripped of white space.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EOL = {"\n": 1, "\r": 2, "\0": 4}
_WHITESPACE = " \t\n\r"


def lines(text: str) -> list[str]:
    """The lines of ``text`` as read_line() splits them."""
    found: list[str] = []
    line: list[str] = []
    ended = 0  # the kinds of end seen since the line's last character
    for char in text:
        kind = _EOL.get(char, 0)
        if ended and (ended & 4 or not kind or kind & ended):
            found.append("".join(line))
            line, ended = [], 0
        if kind:
            ended |= kind
        else:
            line.append(char)
    if line or ended:
        found.append("".join(line))
    return found


@dataclass(frozen=True)
class Setting:
    line: int  # 1-based, the last line of a continued one (as systemd reports it)
    section: str
    key: str
    value: str


def settings(text: str) -> list[Setting]:
    """Every KEY=VALUE of ``text`` with its section, in order, as config_parse() sees them;
    a line without "=" outside a section header gives key "" (systemd refuses it)."""
    found = []
    section = ""
    continuation: str | None = None
    read = lines(text)
    # A line still continued at the end of the file is read as one more line.
    for number, raw in enumerate([*read, None], start=1):
        if raw is None:
            if continuation is None:
                break
            line, continuation = continuation, None
        elif raw.lstrip(_WHITESPACE)[:1] in ("#", ";"):
            continue
        else:
            line = raw if continuation is None else continuation + raw
            escaped = False
            for char in line:
                escaped = not escaped if char == "\\" else False
            if escaped:
                continuation = line[:-1] + " "
                continue
            continuation = None
        line = line.strip(_WHITESPACE)
        if not line:
            continue
        if line.startswith("["):
            section = line[1:-1] if line.endswith("]") else "<invalid section>"
            continue
        key, equals, value = line.partition("=")
        found.append(
            Setting(
                number, section, key.strip(_WHITESPACE) if equals else "", value.strip(_WHITESPACE)
            )
        )
    return found


_SIMPLE_ESCAPES = {
    "a": b"\a",
    "b": b"\b",
    "f": b"\f",
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "v": b"\v",
    "\\": b"\\",
    '"': b'"',
    "'": b"'",
    "s": b" ",
}


class NotAWord(ValueError):
    """What extract_first_word() refuses or a specifier or variable systemd would expand."""


def _unescape(text: str, pos: int) -> tuple[bytes, int]:
    """cunescape_one() of the escape after the backslash at ``pos - 1``."""
    char = text[pos : pos + 1]
    if char in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[char], pos + 1
    for prefix, digits in (("x", 2), ("u", 4), ("U", 8)):
        if char == prefix:
            code = text[pos + 1 : pos + 1 + digits]
            if not re.fullmatch(f"[0-9a-fA-F]{{{digits}}}", code) or int(code, 16) == 0:
                raise NotAWord(f"bad escape \\{prefix}{code}")
            value = int(code, 16)
            encoded = bytes([value]) if prefix == "x" else chr(value).encode()
            return encoded, pos + 1 + digits
    if re.fullmatch("[0-7]{3}", text[pos : pos + 3]) and int(text[pos : pos + 3], 8):
        return bytes([int(text[pos : pos + 3], 8)]), pos + 3
    raise NotAWord(f"unknown escape \\{char}")


def words(value: str, command_line: bool = False) -> list[tuple[str, str]]:
    """extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE) over ``value``, word by word:
    (the word's raw text, the word).  In a command line, a word "\\;" is checked before
    that, as config_parse_exec() does."""
    found: list[tuple[str, str]] = []
    pos = 0
    while True:
        while pos < len(value) and value[pos] in _WHITESPACE:
            pos += 1
        if pos >= len(value):
            return found
        if (
            command_line
            and value[pos : pos + 2] == "\\;"
            and value[pos + 2 : pos + 3] in ("", *_WHITESPACE)
        ):
            found.append(("\\;", ";"))
            pos += 2
            continue
        start = pos
        word, pos, quote = _word(value, pos)
        if quote:
            raise NotAWord("unbalanced quoting")
        found.append((value[start:pos], word.decode()))


def _word(value: str, pos: int) -> tuple[bytes, int, str]:
    """One word from ``pos``: its bytes, where it ends, and the quote left open, if any."""
    word, quote = b"", ""
    while pos < len(value):
        char = value[pos]
        if char == "\\":
            escaped, pos = _unescape(value, pos + 1)
            word += escaped
            continue
        if quote:
            quote = "" if char == quote else quote
            word += b"" if not quote and char in "\"'" else char.encode()
        elif char in "\"'":
            quote = char
        elif char in _WHITESPACE:
            break
        else:
            word += char.encode()
        pos += 1
    return word, pos, quote


def unspecify(word: str) -> str:
    """A word after specifier expansion, which must not expand anything."""
    if re.search(r"%[^%]", word.replace("%%", "")) or word.replace("%%", "").endswith("%"):
        raise NotAWord(f"{word!r} has a specifier")
    return word.replace("%%", "%")


def command(value: str) -> list[str]:
    """The argv of an ExecStart= value: one command, words unquoted, specifiers and then
    variables ("$$" is "$") resolved, none of them expanding anything."""
    argv = []
    for raw, word in words(value, command_line=True):
        if raw == ";":
            raise NotAWord("a second command")
        text = ";" if raw == "\\;" else unspecify(word)
        if re.search(r"\$[^$]", text.replace("$$", "")) or text.replace("$$", "").endswith("$"):
            raise NotAWord(f"{text!r} expands a variable")
        argv.append(text.replace("$$", "$"))
    return argv
