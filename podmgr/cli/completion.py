# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shell completion: ``podmgr __complete WORD... CURRENT``, which the bash and zsh scripts in
shell-completion/ call at every TAB.

It walks the same argparse parser the command line is parsed with, so every command and
option, also one added later, completes without more work.  Arguments whose metavar names
something on the system complete from the running system, read without privilege:

    POD       the pods with a manifest (the manifest directories, as systemd's rules find
              them; no D-Bus call, so it works while org.podmgr1 is not running)
    APP       the apps of the POD named earlier on the line (the Pod object's Apps)
    IMAGE     the stored images (ListImages)
    NETWORK   the defined networks (ListNetworks)
    KEY       the fingerprints of the trusted keys (ListTrustedKeys)

FILE and KEY.asc complete file names (the scripts do that when the first line is
``:files``); an option with choices completes them.  Every candidate is a line, with a tab
and a description where there is one (zsh shows it, bash drops it).  Nothing here asks
polkit (reads need no privilege), changes anything or prints an error: a failing source
offers nothing, and D-Bus is given SOURCE_TIMEOUT at most.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

COMMAND = "__complete"  # the hidden subcommand (command.main)
FILES = ":files"  # the first line when the shell should complete file names
FILE_METAVARS = ("FILE", "KEY.asc")
SYSTEM_METAVARS = ("POD", "APP", "IMAGE", "NETWORK", "KEY")  # the values Source gives
SOURCE_TIMEOUT = 2.0  # seconds: a TAB must never hang on a bus that does not answer

# Where the values of an argument come from: its metavar and the pod named on the line.
Source = Callable[[str, str | None], list[str]]


@dataclass(frozen=True)
class Candidate:
    value: str
    description: str = ""

    def line(self) -> str:
        return f"{self.value}\t{self.description}" if self.description else self.value


@dataclass
class _Position:
    """Where the words before the current one left the parser."""

    parser: argparse.ArgumentParser
    positionals: int = 0  # how many positional arguments of ``parser`` are filled
    pending: argparse.Action | None = None  # an option whose value comes next
    pod: str | None = None  # the POD named on the line, for APP
    after_separator: bool = False  # after "--": no more options
    lost: bool = False  # after a command that does not exist: nothing can follow


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0  # store_true, help, version ... take none


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings]


def _option(parser: argparse.ArgumentParser, word: str) -> argparse.Action | None:
    return parser._option_string_actions.get(word.split("=", 1)[0])


def _positional_at(position: _Position) -> argparse.Action | None:
    """The positional argument the next word fills, if any; nargs "+" and "*" take the
    rest of the line."""
    filled = position.positionals
    for action in _positionals(position.parser):
        if action.nargs in ("+", "*", argparse.REMAINDER):
            return action
        if filled == 0:
            return action
        filled -= 1
    return None


def _walk(top: argparse.ArgumentParser, words: Sequence[str]) -> _Position:
    position = _Position(top)
    for word in words:
        if position.pending is not None:
            if position.pending.metavar == "POD":
                position.pod = word
            position.pending = None
            continue
        if word == "--" and not position.after_separator:
            position.after_separator = True
            continue
        if word.startswith("-") and not position.after_separator:
            action = _option(position.parser, word)
            if action is not None and _takes_value(action) and "=" not in word:
                position.pending = action
            continue
        action = _positional_at(position)
        if isinstance(action, argparse._SubParsersAction):
            if word not in action.choices:
                position.lost = True
                return position
            position = _Position(action.choices[word], pod=position.pod)
            continue
        if action is not None and action.metavar == "POD":
            position.pod = word
        position.positionals += 1
    return position


def _visible_commands(
    action: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[Candidate]:
    """The subcommands with a help text: one added without help stays hidden."""
    helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return [Candidate(name, helps[name]) for name in action.choices if name in helps]


def _options(parser: argparse.ArgumentParser) -> list[Candidate]:
    return [
        Candidate(option, action.help or "")
        for action in parser._actions
        for option in action.option_strings
        if action.help != argparse.SUPPRESS
    ]


def _values(action: argparse.Action, position: _Position, source: Source) -> list[Candidate]:
    if isinstance(action, argparse._SubParsersAction):
        return _visible_commands(action)
    if action.choices is not None:
        return [Candidate(str(choice)) for choice in action.choices]
    metavar = action.metavar if isinstance(action.metavar, str) else None
    if metavar in FILE_METAVARS:
        return [Candidate(FILES)]
    if metavar not in SYSTEM_METAVARS:
        return []
    return [Candidate(value) for value in source(metavar, position.pod)]


def complete(top: argparse.ArgumentParser, words: Sequence[str], source: Source) -> list[str]:
    """The candidates for the last of ``words`` (the words after "podmgr", the last one
    being completed, possibly empty), as lines."""
    *before, current = words or [""]
    position = _walk(top, before)
    if position.lost:
        return []
    if position.pending is not None:
        found = _values(position.pending, position, source)
    elif current.startswith("-") and not position.after_separator:
        option, equals, _value = current.partition("=")
        action = _option(position.parser, option)
        if equals and action is not None and _takes_value(action):
            found = [
                Candidate(f"{option}={c.value}", c.description) if c.value != FILES else c
                for c in _values(action, position, source)
            ]
        else:
            found = _options(position.parser)
    else:
        action = _positional_at(position)
        found = _options(position.parser) if action is None else _values(action, position, source)
    if found and found[0].value == FILES:
        return [FILES]
    return [c.line() for c in found if c.value.startswith(current)]


def system_values(metavar: str, pod: str | None) -> list[str]:
    """What the running system has for ``metavar``, read without privilege."""
    if metavar == "POD":
        from podmgr import names  # noqa: PLC0415 -- each source imports what it needs
        from podmgr.manifest import lookup  # noqa: PLC0415

        return [name for name in lookup.find_manifests() if names.is_valid_name(name)]
    if metavar not in SYSTEM_METAVARS or (metavar == "APP" and not pod):
        return []
    import asyncio  # noqa: PLC0415

    return asyncio.run(asyncio.wait_for(_from_bus(metavar, pod), SOURCE_TIMEOUT))


async def _from_bus(metavar: str, pod: str | None) -> list[str]:
    from podmgr.bus import api  # noqa: PLC0415
    from podmgr.bus.client import Client  # noqa: PLC0415

    async with Client() as client:
        if metavar == "APP":
            path = await client.call("GetPod", pod)
            return [
                name for name, _unit, _state in (await client.properties(path, api.POD))["Apps"]
            ]
        member = {"IMAGE": "ListImages", "NETWORK": "ListNetworks", "KEY": "ListTrustedKeys"}
        rows = await client.call(member[metavar])
        return list(dict.fromkeys(row[0] for row in rows))  # a key trusted twice: once


def main(top: argparse.ArgumentParser, words: Sequence[str], source: Source = system_values) -> int:
    """Print the candidates; never fail (the shell would show the error under the line)."""
    try:
        lines = complete(top, words, source)
    # Whatever went wrong, also no D-Bus library (dbuslib exits): completion stays silent.
    except (Exception, SystemExit):
        return 0
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0
