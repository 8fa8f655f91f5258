# SPDX-License-Identifier: LGPL-2.1-or-later
"""Tables of keys (Key, Section), and parsing TOML tables by them into frozen dataclasses.

Shared by pod manifests (manifest/model.py) and podmgr.toml (config.py).  Every problem is
collected with its key path; unknown keys are errors, with a suggestion where one fits.
"""

from __future__ import annotations

import enum
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from podmgr import names
from podmgr.errors import Problem
from podmgr.values import BadValue, String, ValueType, toml_key, toml_type


@dataclass(frozen=True)
class Key:
    """One key of a table: its value type, help and default."""

    name: str
    type: ValueType[Any]
    help: str
    default: object = None  # as written in TOML; None means unset
    required: bool = False
    example: str | None = None  # TOML text for the annotated example when there is no default
    example_set: bool = False  # set, not commented out, in the annotated example
    only_for: tuple[enum.StrEnum, ...] = ()  # volume keys that apply to some types only


_NAME = String(names.NAME_PATTERN.pattern, names.NAME_HINT, "name")


@dataclass(frozen=True)
class Section:
    """A TOML table: ``[pod]``, ``[app.NAME]`` (named) or ``[[app.NAME.mount]]`` (array)."""

    name: str
    attribute: str  # field of the parent dataclass
    help: str
    keys: tuple[Key, ...]
    subsections: tuple[Section, ...] = ()
    named: bool = False
    array: bool = False
    optional: bool = False  # a table that may be absent (None then), as [app.NAME.health]
    name_type: ValueType[str] = _NAME  # what NAME in [section.NAME] may be
    key_index: dict[str, Key] = field(init=False, repr=False, compare=False)
    subsection_index: dict[str, Section] = field(init=False, repr=False, compare=False)
    required_keys: tuple[Key, ...] = field(init=False, repr=False, compare=False)
    # What defaults() copies: each optional key's default as its type parses it, and which
    # of them are tables (each table gets its own copy).  Made on first use and set whole:
    # the service parses manifests in more than one thread, and none may see half of it.
    parsed_defaults: tuple[dict[str, Any], tuple[str, ...]] | None = field(
        init=False, repr=False, compare=False, default=None
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_index", {k.name: k for k in self.keys})
        object.__setattr__(self, "subsection_index", {s.name: s for s in self.subsections})
        object.__setattr__(self, "required_keys", tuple(k for k in self.keys if k.required))

    def subsection(self, name: str) -> Section | None:
        return self.subsection_index.get(name)

    def defaults(self) -> dict[str, Any]:
        """The values of a table that sets none of its optional keys (None: unset)."""
        made = self.parsed_defaults
        if made is None:
            parsed = {
                key.name: None if key.default is None else key.type.parse(key.default)
                for key in self.keys
                if not key.required
            }
            tables = tuple(name for name, value in parsed.items() if isinstance(value, dict))
            made = (parsed, tables)
            object.__setattr__(self, "parsed_defaults", made)
        parsed, tables = made
        values = dict(parsed)
        for name in tables:
            values[name] = dict(values[name])
        return values


def syntax_problem(error: tomllib.TOMLDecodeError) -> Problem:
    message = str(error)
    where = ""
    if match := re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message):
        message, where = match[1], f"line {match[2]}, column {match[3]}"
    elif match := re.fullmatch(r"(.*) \(at end of document\)", message):
        message, where = match[1], "end of file"
    if match := re.fullmatch(r"Cannot declare \((.*)\) twice", message):
        # The key is a tuple's repr: ('pod',) has a trailing comma, not an empty part.
        table = ".".join(part.strip(" '\"") for part in match[1].split(",") if part.strip())
        return Problem(
            where,
            f"[{table}] is declared twice (names of tables must be unique: rename or merge one)",
        )
    if message == "Cannot overwrite a value":
        return Problem(where, "this key is already set (set each key once)")
    return Problem(where, f"{message} (fix the TOML syntax here)")


def _join(where: str, key: str) -> str:
    """The path of ``key`` in the table at ``where``; a key that is not a bare TOML key is
    quoted as TOML writes it, so that a path is one line whatever the key holds."""
    key = toml_key(key)
    return f"{where}.{key}" if where else key


class Parser:
    """Parses TOML tables by their Section, building ``classes[section.attribute]`` for
    each; collects every problem in ``problems`` instead of stopping at the first."""

    def __init__(self, classes: dict[str, type], problems: list[Problem]) -> None:
        self.classes = classes
        self.problems = problems

    def section(self, section: Section, raw: dict[str, Any], where: str) -> dict[str, Any]:
        """Turn one TOML table into keyword arguments for its dataclass."""
        return _parse_section(self, section, raw, where)


def _parse_section(
    parser: Parser, section: Section, raw: dict[str, Any], where: str
) -> dict[str, Any]:
    problems = parser.problems
    values = section.defaults()  # what raw sets replaces them
    for key, value in raw.items():
        # A key's path is made only for a message or a table: most keys need neither.
        if spec := section.key_index.get(key):
            try:
                values[key] = spec.type.parse(value)
            except BadValue as error:
                problems.append(Problem(_join(where, key) + error.subpath, str(error)))
        elif sub := section.subsection(key):
            values[sub.attribute] = _parse_subsection(parser, sub, value, _join(where, key))
        else:
            problems.append(Problem(_join(where, key), _unknown_key(section, key, where)))
    for spec in section.required_keys:
        if spec.name not in raw:
            problems.append(
                Problem(_join(where, spec.name), f"missing (add: {spec.name} = {spec.example})")
            )
    for sub in section.subsections:
        if sub.attribute not in values and sub.optional:
            values[sub.attribute] = None
        elif sub.attribute not in values:
            values[sub.attribute] = _parse_subsection(
                parser, sub, {} if not sub.array else [], _join(where, sub.name)
            )
    return values


def _parse_subsection(parser: Parser, section: Section, raw: object, where: str) -> Any:
    problems = parser.problems
    cls = parser.classes[section.attribute]
    if section.named:
        if not _is_table(raw, where, f"[{where}.NAME] tables", problems):
            return {}
        assert isinstance(raw, dict)
        built = {}
        for name, table in raw.items():
            path = _join(where, name)
            try:
                section.name_type.parse(name)
            except BadValue as error:
                problems.append(Problem(path, str(error)))
                continue
            if _is_table(table, path, f"a [{path}] table", problems):
                built[name] = _build(parser, cls, section, table, path, name=name)
        return built
    if section.array:
        if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
            problems.append(Problem(where, f"expected [[{where}]] tables, got {toml_type(raw)}"))
            return ()
        return tuple(
            _build(parser, cls, section, table, f"{where}[{index}]")
            for index, table in enumerate(raw)
        )
    if not _is_table(raw, where, f"a [{where}] table", problems):
        raw = {}
    assert isinstance(raw, dict)
    return _build(parser, cls, section, raw, where)


def _build(
    parser: Parser, cls: type, section: Section, raw: dict[str, Any], where: str, **extra: str
) -> Any:
    """The dataclass for one table, or None when its values had problems (already listed)."""
    before = len(parser.problems)
    values = _parse_section(parser, section, raw, where)
    return cls(**extra, **values) if len(parser.problems) == before else None


def _is_table(raw: object, where: str, expected: str, problems: list[Problem]) -> bool:
    if isinstance(raw, dict):
        return True
    problems.append(Problem(where, f"expected {expected}, got {toml_type(raw)}"))
    return False


def _unknown_key(section: Section, key: str, where: str) -> str:
    known = [k.name for k in section.keys] + [s.name for s in section.subsections]
    for sub in section.subsections:
        if key in sub.key_index and not sub.named and not sub.array:
            return f"unknown key (did you mean {key} in [{_join(where, sub.name)}]?)"
    import difflib  # noqa: PLC0415 -- only for a manifest with a mistake

    if close := difflib.get_close_matches(key, known, n=1):
        return f"unknown key (did you mean {close[0]}?)"
    return "unknown key (see podmgr.toml(5) for the keys of this table)"
