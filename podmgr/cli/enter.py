# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr enter POD [--app APP] [-- CMD ARGS...]: a command inside a running app.

The service runs the command (EnterApp: a transient unit with the app's confinement);
this side only hands it standard streams and relays.  When standard input is a
terminal, the command gets a new pseudo-terminal, as ``systemd-run --pty`` and
``machinectl shell`` give one: this terminal goes into raw mode (restored on exit), so
every key, ^C included, goes to the command, and its window size follows this one's.
Otherwise the command gets this process's standard input, output and error themselves,
so ``echo hi | podmgr enter web -- cat`` works as a pipe.  The exit status is the
command's (128 plus the signal's number when a signal ended it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import signal
import sys
import termios
import tty
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, cast

from podmgr.bus import arguments
from podmgr.bus.client import Client
from podmgr.errors import PodmgrError

CHUNK = 65536
POLL = 0.02  # seconds between looks for the command's session on the terminal
SETTLE = 0.1  # then this long for systemd's reset of the terminal, microseconds later


class _Intermixed(argparse.ArgumentParser):
    """Options anywhere among the words, as ``enter POD --app APP -- CMD`` has them:
    plain argparse gives every positional its words at the first run of them, so CMD
    would get none after POD and the words after "--" would be left over."""

    mixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self.mixing:  # parse_known_intermixed_args calls this, twice
            return super().parse_known_args(args, namespace)
        self.mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self.mixing = False


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "run a command (default /bin/sh) inside a running app, confined as the app is"
    enter = sub.add_parser(
        "enter",
        usage="podmgr enter [-h] [--app APP] POD [-- CMD [ARG ...]]",
        help=text,
        description=text + ", with a terminal when standard input is one; "
        "the exit status is the command's",
    )
    enter.__class__ = _Intermixed  # the subcommands' parsers are all made by one class
    enter.add_argument("pod", metavar="POD", help="pod name")
    enter.add_argument("--app", metavar="APP", help="the app (default: the manifest's first)")
    enter.add_argument(
        "command",
        nargs="*",
        metavar="CMD",
        help="the command and its arguments, after -- (default: /bin/sh)",
    )
    enter.set_defaults(handler=cmd_enter, checks={"pod": "pod", "app": "app"})


def cmd_enter(args: argparse.Namespace) -> int | Coroutine[Any, Any, int]:
    try:
        command = arguments.convert("command", args.command)
    except PodmgrError as error:
        print(f"podmgr: {error}", file=sys.stderr)
        return 2
    return _enter(args.pod, args.app or "", list(cast(tuple[str, ...], command)))


def terminal_type() -> str:
    """$TERM for the command's terminal, if it is one the service takes."""
    term = os.environ.get("TERM", "")
    try:
        return str(arguments.convert("term", term))
    except PodmgrError:
        return ""


async def _enter(pod: str, app: str, command: list[str]) -> int:
    if not os.isatty(sys.stdin.fileno()):
        async with Client() as client:
            status: int = await client.call(
                "EnterApp", pod, app, command, "", 0, 1, 2, unix_fds=[0, 1, 2]
            )
        return status
    master, slave = os.openpty()
    ended_by: list[int] = []  # a signal that ends podmgr itself: the terminal is restored
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def end(number: int) -> None:
        ended_by.append(number)
        task.cancel()

    for number in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(number, end, number)
    try:
        copy_window_size(sys.stdin.fileno(), master)
        with raw(sys.stdin.fileno()), Relay(master) as relay:
            async with Client() as client:
                # The terminal once, for all three: the service closes each it gets once.
                status = await client.call(
                    "EnterApp", pod, app, command, terminal_type(), 0, 0, 0, unix_fds=[slave]
                )
            relay.drain()
        return status
    except asyncio.CancelledError:
        if not ended_by:
            raise
        return 128 + ended_by[0]  # the service stops the command: this caller left
    finally:
        for number in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(number)
        os.close(master)
        os.close(slave)


def copy_window_size(source: int, target: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)


@contextlib.contextmanager
def raw(fd: int) -> Iterator[None]:
    """The terminal ``fd`` in raw mode, its settings restored however this ends."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)  # not TCSAFLUSH: what was typed ahead is kept
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class Relay:
    """Copies this process's standard input to the pseudo-terminal's master and its
    output to standard output, and the window size on SIGWINCH; never blocks the loop
    (a command that reads nothing must not stop its output from being shown)."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.stdin = sys.stdin.fileno()
        self.stdout = sys.stdout.fileno()
        self.loop = asyncio.get_running_loop()
        self.to_master = b""
        self.closed = False

    def __enter__(self) -> Relay:
        os.set_blocking(self.master, False)
        self.loop.add_reader(self.master, self._read_master)
        self._wait_for_session()
        self.loop.add_signal_handler(signal.SIGWINCH, copy_window_size, self.stdin, self.master)
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True
        self.loop.remove_signal_handler(signal.SIGWINCH)
        for fd in (self.stdin, self.master):
            self.loop.remove_reader(fd)
        for fd in (self.master, self.stdout):
            self.loop.remove_writer(fd)

    def _wait_for_session(self) -> None:
        """Relay input only once the command has its terminal: systemd makes it the
        command's controlling terminal (it then has a foreground process group) and, just
        after, resets it and flushes what was typed so far.  Until then what is typed
        waits in this side's terminal, so nothing typed ahead is lost."""
        if self.closed:
            return
        try:
            started = os.tcgetpgrp(self.master) > 0
        except OSError:
            started = False
        if started:
            self.loop.call_later(SETTLE, self._start_input)
        else:
            self.loop.call_later(POLL, self._wait_for_session)

    def _start_input(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.stdin, self._read_stdin)

    def _read_stdin(self) -> None:
        try:
            data = os.read(self.stdin, CHUNK)
        except BlockingIOError:
            return
        if not data:
            self.loop.remove_reader(self.stdin)
            return
        self.to_master += data
        self.loop.remove_reader(self.stdin)  # until the master took it
        self.loop.add_writer(self.master, self._write_master)

    def _write_master(self) -> None:
        try:
            self.to_master = self.to_master[os.write(self.master, self.to_master) :]
        except BlockingIOError:
            return
        if not self.to_master:
            self.loop.remove_writer(self.master)
            self.loop.add_reader(self.stdin, self._read_stdin)

    def _read_master(self) -> None:
        try:
            data = os.read(self.master, CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: nobody holds the terminal any more (this side does, though)
            self.loop.remove_reader(self.master)
            return
        _write_all(self.stdout, data)  # a terminal: it takes it at once

    def drain(self) -> None:
        """What the command wrote just before it ended, still in the terminal."""
        while True:
            try:
                data = os.read(self.master, CHUNK)
            except OSError:
                return
            if not data:
                return
            _write_all(self.stdout, data)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
