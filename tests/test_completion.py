# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shell completion: ``podmgr __complete`` walks the command line parser, and the bash and
zsh scripts in shell-completion/ offer what it prints, in real shells.

The first tests run without a bed, with a source of values of their own; those marked
integration complete from a running system in a bed, through the installed scripts."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bed import Bed

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


def bash_argv(line: str, script: Path | None = BASH_SCRIPT) -> list[str]:
    """bash completing ``line`` (cursor at its end) and printing COMPREPLY.  With no
    ``script``, bash-completion finds podmgr's itself, where it looks for it."""
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
    return ["bash", "--norc", "--noprofile", "-c", program, "bash", line, *bash_words(line)]


def zsh_argv(line: str) -> list[str]:
    """zsh completing ``line`` and printing its matches (zsh_complete.zsh)."""
    return ["zsh", "-f", str(ZSH_HARNESS), line]


SHELL_ENV = {"HOME": "/nonexistent", "LANG": "C.UTF-8", "TERM": "xterm"}


def complete_in_bash(line: str, path: str) -> list[str]:
    result = subprocess.run(
        bash_argv(line),
        capture_output=True,
        text=True,
        env={**SHELL_ENV, "PATH": path},
        check=True,
        timeout=60,
    )
    assert result.stderr == ""
    return [reply for reply in result.stdout.split("\n") if reply]


def complete_in_zsh(line: str, path: str) -> list[str]:
    result = subprocess.run(
        zsh_argv(line),
        capture_output=True,
        text=True,
        env={**SHELL_ENV, "PATH": path, "FPATH_FIRST": str(ZSH_DIR)},
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
def test_bash_completes_commands_options_and_files(
    podmgr_on_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    monkeypatch.chdir(tmp_path)
    assert sorted(complete_in_bash("podmgr validate ", path)) == ["db.toml", "web.toml"]


@needs_zsh
def test_zsh_completes_commands_options_and_files(
    podmgr_on_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"{podmgr_on_path}:/usr/bin:/bin"
    assert complete_in_zsh("podmgr st", path) == ["start", "status", "stop"]
    assert complete_in_zsh("podmgr logs web --", path) == ["--app", "--follow", "--help", "--lines"]
    (tmp_path / "web.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    assert "web.toml" in complete_in_zsh("podmgr validate ", path)


def test_command_names_need_no_system(podmgr_on_path: Path) -> None:
    """Command names come from the parser alone, without D-Bus."""
    result = subprocess.run(
        [str(podmgr_on_path / "podmgr"), completion.COMMAND, "st"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [
        "status",
        "start",
        "stop",
    ]


def test_the_system_is_read_with_calls_that_need_no_privilege() -> None:
    """No TAB may ask polkit: every method completion calls is a read."""
    from podmgr.bus import api  # noqa: PLC0415

    source = Path(completion.__file__).read_text()
    called = [m for m in api.MANAGER.method_index if f'"{m}"' in source]
    assert sorted(called) == ["GetPod", "ListImages", "ListNetworks", "ListTrustedKeys"]
    assert [api.MANAGER.method_index[m].action for m in called] == [None] * len(called)


# In a bed: what the running system has, through the installed scripts, where
# bash-completion and zsh find them.

BUILD_IMAGE = f"""
import sys
sys.path.insert(0, "{ROOT}/tests")
from pathlib import Path
import imagebuild as ib
image = ib.Image([ib.tar([ib.directory("etc"), ib.file("etc/version", b"1")])], "gzip")
ib.write_layout(Path("/tmp/work/layout"), {{"1": image}})
"""
KEY_SPEC = """\
%no-protection
Key-Type: RSA
Key-Length: 2048
Name-Real: Completion Release
Name-Email: release@completion.example
Expire-Date: 0
%commit
"""
ROOTFS = "/var/lib/machines/podmgr-busybox"
PODS = {"web": ("front", "back"), "db": ("main",)}
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture(scope="module")
def comp_bed(bed: Bed) -> Bed:
    bed.run(f"{ROOT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run("mkdir", "-p", "/etc/podmgr/pods", "/etc/podmgr/networks", "/tmp/work")
    for pod, apps in PODS.items():
        text = "".join(
            f'[app.{app}]\nrootfs = "{ROOTFS}"\nexec = ["/bin/sleep", "infinity"]\n' for app in apps
        )
        bed.run("sh", "-c", f"cat > /etc/podmgr/pods/{pod}.toml", input=text)
    bed.run(
        "sh", "-c", "cat > /etc/podmgr/networks/backend.toml", input='subnet = "10.89.0.0/24"\n'
    )
    bed.run(
        "sh", "-c", "cat > /etc/podmgr/podmgr.toml", input='[images]\ninsecure = ["example.org"]\n'
    )
    bed.run("/usr/bin/python3", "-c", BUILD_IMAGE)
    bed.run(
        "podmgr", "image", "import", "oci:/tmp/work/layout:1", "--name", "example.org/comp/app:1"
    )
    bed.run(
        "sh",
        "-c",
        "mkdir -p -m 700 /tmp/gnupg && gpg --batch --quiet --gen-key && "
        "gpg --armor --export release@completion.example > /tmp/work/release.asc",
        env={"GNUPGHOME": "/tmp/gnupg"},
        input=KEY_SPEC,
    )
    bed.run("podmgr", "trust", "add", "--root", "--yes", "/tmp/work/release.asc")
    bed.run("systemctl", "daemon-reload")
    return bed


def in_bed(bed: Bed, argv: list[str], as_nobody: bool) -> list[str]:
    result = bed.run(*(NOBODY if as_nobody else []), *argv, env=SHELL_ENV)
    assert result.stderr == ""
    return [line for line in result.stdout.split("\n") if line]


def offered(bed: Bed, line: str, as_nobody: bool = False) -> dict[str, list[str]]:
    """What bash and zsh offer for ``line`` in the bed, each sorted."""
    return {
        "bash": sorted(in_bed(bed, bash_argv(line, script=None), as_nobody)),
        "zsh": sorted(in_bed(bed, zsh_argv(line), as_nobody)),
    }


def both(values: list[str]) -> dict[str, list[str]]:
    return {"bash": sorted(values), "zsh": sorted(values)}


@pytest.mark.integration
@pytest.mark.parametrize("as_nobody", [False, True], ids=["root", "nobody"])
def test_start_offers_the_pods(comp_bed: Bed, as_nobody: bool) -> None:
    assert offered(comp_bed, "podmgr start ", as_nobody) == both(["db", "web"])
    assert offered(comp_bed, "podmgr status w", as_nobody) == both(["web"])
    assert offered(comp_bed, "podmgr cat db ", as_nobody) == both(["db", "web"])


@pytest.mark.integration
@pytest.mark.parametrize("as_nobody", [False, True], ids=["root", "nobody"])
def test_app_offers_the_apps_of_the_pod_on_the_line(comp_bed: Bed, as_nobody: bool) -> None:
    assert offered(comp_bed, "podmgr logs web --app ", as_nobody) == both(["back", "front"])
    assert offered(comp_bed, "podmgr logs db -f --app ", as_nobody) == both(["main"])
    assert offered(comp_bed, "podmgr logs nosuch --app ", as_nobody) == both([])
    assert offered(comp_bed, "podmgr logs web --app=f", as_nobody) == {
        "bash": ["front"],  # what follows "=", which bash replaces
        "zsh": ["--app=front"],
    }


@pytest.mark.integration
@pytest.mark.parametrize("as_nobody", [False, True], ids=["root", "nobody"])
def test_images_networks_and_keys_come_from_the_service(comp_bed: Bed, as_nobody: bool) -> None:
    bed = comp_bed
    assert offered(bed, "podmgr image inspect ", as_nobody) == both(["example.org/comp/app:1"])
    # bash replaces only what follows the word's last ":" (COMP_WORDBREAKS)
    assert offered(bed, "podmgr image rm example.org/comp/app:", as_nobody) == {
        "bash": ["1"],
        "zsh": ["example.org/comp/app:1"],
    }
    networks = json.loads(bed.run("podmgr", "network", "list", "--json").stdout)
    assert offered(bed, "podmgr network rm ", as_nobody) == both([n["name"] for n in networks])
    assert "backend" in [n["name"] for n in networks]
    keys = json.loads(bed.run("podmgr", "trust", "list", "--json").stdout)
    assert offered(bed, "podmgr trust rm ", as_nobody) == both([k["fingerprint"] for k in keys])
    assert len(keys) == 1


@pytest.mark.integration
def test_completing_starts_nothing(comp_bed: Bed) -> None:
    bed = comp_bed
    cases = (
        ["start", ""],
        ["logs", "web", "--app", ""],
        ["image", "inspect", ""],
        ["trust", "rm", ""],
    )
    for index, words in enumerate(cases):
        if index == len(cases) - 1:  # the last one activates the service
            bed.run("systemctl", "stop", "podmgr1.service")
        result = bed.run("podmgr", completion.COMMAND, *words)
        assert result.stdout
        assert result.stderr == ""
    for pod in PODS:
        assert bed.run("systemctl", "is-active", f"pod@{pod}.service", check=False).stdout == (
            "inactive\n"
        )
