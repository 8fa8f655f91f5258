# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shell completion: ``podmgr __complete`` walks the command line parser, and the bash and
zsh scripts in shell-completion/ offer what it prints, in real shells.

The tests here run without a bed, with a source of values of their own; test_completion_bed
(in this file, marker integration) completes from a running system."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podmgr.cli import command, completion

ROOT = Path(__file__).resolve().parent.parent
BASH_SCRIPT = ROOT / "shell-completion" / "bash" / "podmgr"
ZSH_DIR = ROOT / "shell-completion" / "zsh"
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
ZSH_HARNESS = Path(__file__).parent / "zsh_complete.zsh"
SYSTEM_METAVARS = completion.SYSTEM_METAVARS


def fake_system(metavar: str, pod: str | None) -> list[str]:
    """Values that name their metavar and the pod they were asked for."""
    return [f"{metavar.lower()}-of-{pod}", f"{metavar.lower()}-2"]


def lines(*words: str) -> list[str]:
    return completion.complete(command.parser(), list(words), fake_system)


def values(*words: str) -> list[str]:
    return [line.split("\t")[0] for line in lines(*words)]


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command of the parser, nested ones too, with the words that name it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


COMMANDS = dict(commands(command.parser()))


def filler(action: argparse.Action) -> str:
    """A word that fills a positional argument, a known subcommand or a plain value."""
    if isinstance(action, argparse._SubParsersAction):
        return next(iter(action.choices))
    return "web" if action.metavar == "POD" else "x"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "podmgr")
def test_every_option_of_every_command_is_offered(path: tuple[str, ...]) -> None:
    parser = COMMANDS[path]
    options = {o for a in parser._actions for o in a.option_strings}
    assert set(values(*path, "-")) == options
    assert set(values(*path, "--")) == {o for o in options if o.startswith("--")}
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if subcommands:
        assert values(*path, "") == list(subcommands[0].choices)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "podmgr")
def test_every_argument_that_names_something_completes_from_the_system(
    path: tuple[str, ...],
) -> None:
    """Each positional and option whose metavar names something on the system (POD, APP,
    IMAGE, NETWORK, KEY) asks the system for exactly that; so does every command added
    later with those metavars."""
    parser = COMMANDS[path]
    before: list[str] = []
    for action in parser._actions:
        metavar = action.metavar
        if metavar in SYSTEM_METAVARS:
            assert isinstance(metavar, str)
            pod = "web" if "web" in before and metavar == "APP" else None
            where = [*action.option_strings[:1]]
            got = values(*path, *before, *where, "")
            assert got == [f"{metavar.lower()}-of-{pod}", f"{metavar.lower()}-2"], (
                action.dest,
                before,
            )
            # Also as --option=VALUE, and filtered by what is typed.
            if action.option_strings:
                option = action.option_strings[-1]
                assert values(*path, *before, f"{option}=") == [f"{option}={v}" for v in got]
            assert values(*path, *before, *where, f"{metavar.lower()}-2") == [got[1]]
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            before.append(filler(action))


def test_the_contract_metavars_are_used() -> None:
    found = {a.metavar for parser in COMMANDS.values() for a in parser._actions if a.metavar} & set(
        SYSTEM_METAVARS
    )
    assert found == set(SYSTEM_METAVARS)


def test_app_completes_the_apps_of_the_pod_named_earlier() -> None:
    assert values("logs", "shop", "--app", "") == ["app-of-shop", "app-2"]
    assert values("logs", "-f", "shop", "-n", "5", "--app=") == ["--app=app-of-shop", "--app=app-2"]
    assert values("--debug", "logs", "shop", "--app", "app-o") == ["app-of-shop"]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("st",), ["status", "start", "stop"]),
        (("start", ""), ["pod-of-None", "pod-2"]),
        (("start", "web", ""), ["-h", "--help"]),  # nothing positional left: the options
        (("cat", "a", "b", ""), ["pod-of-b", "pod-2"]),  # POD...: as many as you like
        (("validate", ""), [completion.FILES]),
        (("trust", "add", "--prefix", "x", ""), [completion.FILES]),
        (("render", "a.toml", ""), ["-h", "--help"]),
        (("image", "i"), ["import", "inspect"]),
        (("image", "rm", "x", "z"), []),  # what is typed matches none
        (("network", "rm", ""), ["network-of-None", "network-2"]),
        (("trust", "rm", ""), ["key-of-None", "key-2"]),
        (("logs", "web", "-n", ""), []),  # a number: nothing to offer
        (("nosuch", ""), []),  # no such command: nothing can follow
        (("nosuch", "-"), []),
    ],
)
def test_what_is_offered(words: tuple[str, ...], expected: list[str]) -> None:
    assert values(*words) == expected


def test_commands_and_options_carry_their_help_for_zsh() -> None:
    assert "start\tstart a pod through systemd and wait until its apps are done" in lines("st")
    assert "--follow\tkeep printing new lines" in lines("logs", "web", "--f")


def test_a_failing_source_offers_nothing_and_says_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(metavar: str, pod: str | None) -> list[str]:
        raise OSError("no bus")

    assert completion.main(command.parser(), ["start", ""], broken) == 0
    assert capsys.readouterr() == ("", "")


def test_the_hidden_command_is_not_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        command.main(["--help"])
    assert completion.COMMAND not in capsys.readouterr().out
    assert completion.COMMAND not in values("")


# Real shells, with a podmgr of this checkout on PATH.


@pytest.fixture(scope="module")
def podmgr_on_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bin_dir = tmp_path_factory.mktemp("bin")
    wrapper = bin_dir / "podmgr"
    wrapper.write_text(
        f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -c "
        "'import sys; from podmgr.cli.command import main; sys.exit(main())' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return bin_dir


def bash_words(line: str) -> list[str]:
    """COMP_WORDS as bash splits ``line``: at blanks, and around ':' and '=' (both are in
    COMP_WORDBREAKS), which the script joins again."""
    words: list[str] = []
    for blank_separated in line.split(" "):
        word = ""
        for char in blank_separated:
            if char in ":=":
                words += [w for w in (word, char) if w]
                word = ""
            else:
                word += char
        words.append(word)
    return words


def complete_in_bash(line: str, path: str, script: Path | None = BASH_SCRIPT) -> list[str]:
    """What bash's completion of ``line`` (cursor at its end) sets COMPREPLY to.  With no
    ``script``, bash-completion finds podmgr's itself, where it looks."""
    words = bash_words(line)
    load = f"source {script}" if script else "_completion_loader podmgr"
    program = f"""
        source {BASH_COMPLETION}
        {load}
        COMP_LINE="$1"; COMP_POINT=${{#COMP_LINE}}; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
        COMP_TYPE=9 COMP_KEY=9
        $(complete -p podmgr | sed 's/.*-F \\([^ ]*\\).*/\\1/') podmgr "${{COMP_WORDS[-1]}}" \
            "${{COMP_WORDS[-2]}}"
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program, "bash", line, *words],
        capture_output=True,
        text=True,
        env={"PATH": path, "HOME": "/nonexistent", "LANG": "C.UTF-8"},
        check=True,
        timeout=60,
    )
    assert result.stderr == ""
    return [reply for reply in result.stdout.split("\n") if reply]


def complete_in_zsh(line: str, path: str, fpath_first: Path | None = ZSH_DIR) -> list[str]:
    env = {"PATH": path, "HOME": "/nonexistent", "LANG": "C.UTF-8", "TERM": "xterm"}
    if fpath_first:
        env["FPATH_FIRST"] = str(fpath_first)
    result = subprocess.run(
        ["zsh", "-f", str(ZSH_HARNESS), line],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    return result.stdout.split()


needs_bash_completion = pytest.mark.skipif(
    not BASH_COMPLETION.exists() and os.environ.get("CI") != "true",
    reason="needs bash-completion (make deps)",
)
needs_zsh = pytest.mark.skipif(
    shutil.which("zsh") is None and os.environ.get("CI") != "true", reason="needs zsh (make deps)"
)


@needs_bash_completion
def test_bash_completes_commands_options_and_files(podmgr_on_path: Path, tmp_path: Path) -> None:
    path = f"{podmgr_on_path}:/usr/bin:/bin"
    assert complete_in_bash("podmgr st", path) == ["status", "start", "stop"]
    assert complete_in_bash("podmgr logs web --", path) == [
        "--help",
        "--follow",
        "--app",
        "--lines",
    ]
    assert complete_in_bash("podmgr image ", path) == ["pull", "import", "list", "inspect", "rm"]
    (tmp_path / "web.toml").write_text("")
    (tmp_path / "db.toml").write_text("")
    os.chdir(tmp_path)
    assert sorted(complete_in_bash("podmgr validate ", path)) == ["db.toml", "web.toml"]


@needs_zsh
def test_zsh_completes_commands_options_and_files(podmgr_on_path: Path, tmp_path: Path) -> None:
    path = f"{podmgr_on_path}:/usr/bin:/bin"
    assert complete_in_zsh("podmgr st", path) == ["start", "status", "stop"]
    assert complete_in_zsh("podmgr logs web --", path) == ["--app", "--follow", "--help", "--lines"]
    (tmp_path / "web.toml").write_text("")
    os.chdir(tmp_path)
    assert "web.toml" in complete_in_zsh("podmgr validate ", path)


def test_a_tab_without_the_system_is_quick(podmgr_on_path: Path) -> None:
    """Command names need no D-Bus: a TAB costs what starting podmgr costs."""
    start = time.monotonic()
    subprocess.run(
        [str(podmgr_on_path / "podmgr"), completion.COMMAND, "st"], check=True, capture_output=True
    )
    assert time.monotonic() - start < 3
