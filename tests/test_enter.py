# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr enter: a command inside a running app gets exactly the app's confinement.

Fast: every key the generator writes into an app unit's [Service] is copied from the
loaded unit (or is said not to be, and why), the copy itself, the exit status, the
argument checks at the edge, the command line, and file descriptors over a private
bus (this file is one of test_dbuslib.BUS_TESTS, so that runs on both libraries).
In the bed: an entered process compared with the app's main process (bounding set,
NoNewPrivileges, seccomp, cgroup, uid/gid/groups, namespaces, root), exit statuses,
pipes, a terminal (tty, window size, ^C), polkit, refusals, and nothing left loaded."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bed import Bed
from hypothesis import given
from hypothesis import strategies as st
from test_pods import wait_for
from test_private_bus import bus_address  # noqa: F401 -- the private dbus-daemon fixture

from podmgr.bus import api, arguments, enter
from podmgr.bus.connection import Bus
from podmgr.bus.dbuslib import Message, MessageType
from podmgr.bus.dispatch import Call, close_fds
from podmgr.cli import command
from podmgr.errors import InvalidName, SystemdError

CHECKOUT = Path(__file__).resolve().parent.parent
GOLDEN = CHECKOUT / "tests" / "golden"
UNITS_PY = CHECKOUT / "podmgr" / "generator" / "units.py"

# [Service] keys of an app unit that are not its confinement, and why enter sets its own.
NOT_COPIED = {
    "Type": "the command's own: exec",
    "ExecStart": "the command given",
    "Restart": "a command run once is not restarted",
    "TimeoutStopSec": "systemd's default for the command",
    "SyslogIdentifier": "its output goes to the caller, not the journal",
    "LogExtraFields": "its output goes to the caller, not the journal",
    "Slice": "set to the pod's slice (checked below)",
}


def generated_service_keys(source: str) -> set[str]:
    """The [Service] keys of every app unit in the golden files, and every key units.py
    (``source``) names for an app unit's [Service], so that a key only an unusual
    manifest gets is not missed."""
    keys: set[str] = set()
    for golden in GOLDEN.glob("*.units"):
        in_app = in_service = False
        for line in golden.read_text().splitlines():
            if line.startswith("# "):
                in_app, in_service = line.startswith("# podapp@"), False
            elif line.startswith("["):
                in_service = line == "[Service]"
            elif in_app and in_service and "=" in line:
                keys.add(line.split("=", 1)[0])
    keys.update(re.findall(r'unit\.add(?:_words)?\(\s*(?:service|section)\s*,\s*"(\w+)"', source))
    for loop in re.findall(r"for key in \(([^)]*)\):\s*\n\s*unit\.add\(service, key", source):
        keys.update(re.findall(r'"(\w+)"', loop))
    return keys


def not_copied(keys: set[str]) -> set[str]:
    return {
        key
        for key in keys - NOT_COPIED.keys()
        if enter.PROPERTY_OF_KEY.get(key, key) not in enter.COPIED
    }


def test_every_key_the_generator_sets_for_an_app_is_copied() -> None:
    keys = generated_service_keys(UNITS_PY.read_text())
    assert {"RootDirectory", "CapabilityBoundingSet", "SystemCallFilter", "User"} <= keys
    assert {"PrivateDevices", "ProtectControlGroups", "EnvironmentFile"} <= keys
    missing = not_copied(keys)
    assert not missing, f"enter does not copy {sorted(missing)} (add them to enter.COPIED)"


def test_a_key_the_generator_would_add_is_seen() -> None:
    added = UNITS_PY.read_text().replace(
        '    unit.add(service, "MountAPIVFS", True)\n',
        '    unit.add(service, "MountAPIVFS", True)\n'
        '    unit.add(service, "PrivateNetwork", True)\n'
        '    for key in ("ProtectProc", "ProtectClock"):\n        unit.add(service, key, "x")\n',
    )
    assert not_copied(generated_service_keys(added)) == {"PrivateNetwork", "ProtectProc"}


def fake_service() -> dict[str, Any]:
    """A distinct value of the right type for each copied property."""
    values: dict[str, Any] = {}
    for number, (name, signature) in enumerate(enter.COPIED.items()):
        values[name] = {
            "s": f"value-{number}",
            "b": number % 2 == 0,
            "t": 1000 + number,
            "as": [f"item-{number}"],
            "a(ssbt)": [[f"/src{number}", f"/dst{number}", False, 0]],
            "a(ss)": [[f"/tmp{number}", "mode=0755"]],
            "a(sb)": [[f"/env{number}", False]],
            "(bas)": [True, ["read", "write"]],
        }[signature]
    return values


def test_each_copied_property_is_passed_with_its_value() -> None:
    service = fake_service()
    properties = dict(
        (name, variant)
        for name, variant in enter.transient_properties(service, "web", "main", ["/bin/id"], "")
    )
    for name, signature in enter.COPIED.items():
        assert properties[name].signature == signature, name
        assert properties[name].value == service[name], name
    assert properties["Slice"].value == "pod-web.slice"
    assert properties["ExecStartEx"].value == [["/bin/id", ["/bin/id"], ["no-env-expand"]]]
    assert [
        properties[f"Standard{s}FileDescriptor"].value for s in ("Input", "Output", "Error")
    ] == [
        0,
        1,
        2,
    ]
    assert properties["CollectMode"].value == "inactive-or-failed"
    assert properties["AddRef"].value is True


def test_a_property_systemd_does_not_report_is_an_error_not_left_out() -> None:
    service = fake_service()
    del service["CapabilityBoundingSet"]
    with pytest.raises(SystemdError, match="CapabilityBoundingSet"):
        enter.transient_properties(service, "web", "main", ["/bin/sh"], "")


def test_unset_limits_stay_unset_and_term_is_added_last() -> None:
    service = fake_service() | {"MemoryMax": 2**64 - 1, "CPUWeight": 2**64 - 1}
    properties = dict(enter.transient_properties(service, "web", "main", ["sh"], "xterm"))
    assert "MemoryMax" not in properties
    assert "CPUWeight" not in properties
    assert properties["Environment"].value[-1] == "TERM=xterm"


def test_the_exit_status_is_the_shells() -> None:
    assert enter.exit_status(1, 0) == 0
    assert enter.exit_status(1, 42) == 42
    assert enter.exit_status(2, signal.SIGTERM) == 143  # CLD_KILLED
    assert enter.exit_status(3, signal.SIGSEGV) == 139  # CLD_DUMPED


words = st.lists(st.text(st.characters(blacklist_characters="\0"), max_size=50), max_size=20)


@given(words)
def test_a_command_is_its_words_unchanged(value: list[str]) -> None:
    if value and not value[0]:
        with pytest.raises(InvalidName, match="empty word"):
            arguments.convert("command", value)
    else:
        assert arguments.convert("command", value) == tuple(value)


@given(words, st.integers(0, 20), st.text(max_size=5))
def test_a_nul_anywhere_in_a_command_is_refused(value: list[str], at: int, around: str) -> None:
    value = [*value, "x"]
    index = at % len(value)
    value[index] = value[index] + around + "\0"
    with pytest.raises(InvalidName, match="NUL") as error:
        arguments.convert("command", value)
    assert "\n" not in str(error.value)


def test_a_command_over_its_limits_is_refused_before_its_words_are_read() -> None:
    with pytest.raises(InvalidName, match="words"):
        arguments.convert("command", ["x"] * (api.COMMAND_WORDS + 1))
    with pytest.raises(InvalidName, match="characters long"):
        arguments.convert("command", ["/bin/echo", "a" * api.COMMAND_LIMIT])
    for bad in ("/bin/sh", [1], None, [b"/bin/sh"]):
        with pytest.raises(InvalidName):
            arguments.convert("command", bad)


@given(st.text(max_size=80))
def test_a_terminal_type_is_a_plain_word(value: str) -> None:
    ok = len(value) <= 64 and re.fullmatch(r"[A-Za-z0-9._+-]*", value) is not None
    if ok:
        assert arguments.convert("term", value) == value
    else:
        with pytest.raises(InvalidName):
            arguments.convert("term", value)


def test_file_descriptor_slots_name_only_what_was_passed() -> None:
    method = api.MANAGER.method_index["EnterApp"]
    values = ["web", "", [], "", 0, 1, 1]
    arguments.check_fds(method, values, 2)
    for bad in ([*values[:4], 0, 1, 2], [*values[:4], -1, 0, 0], [*values[:4], "0", 0, 0]):
        with pytest.raises(InvalidName, match="names none of the 2 passed"):
            arguments.check_fds(method, bad, 2)
    for bad_value in (True, "0", None):
        with pytest.raises(InvalidName):
            arguments.convert("fd", bad_value)


def test_the_dispatcher_closes_what_no_handler_took() -> None:
    read_end, write_end = os.pipe()
    message = Message(path="/", member="EnterApp", unix_fds=[read_end, write_end])
    call = Call(message)
    assert call.take_fds([1, 1]) == [write_end, write_end]
    close_fds(message, call.taken)  # closes the one not taken, once
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(read_end)
    os.fstat(write_end)
    os.close(write_end)
    close_fds(message)  # again: the list is empty now, nothing is closed twice


def test_the_command_line_takes_options_around_pod_and_words_after_dashes() -> None:
    parse = command.parser().parse_args
    args = parse(["enter", "web", "--app", "db", "--", "sh", "-c", "echo --app x"])
    assert (args.pod, args.app, args.command) == ("web", "db", ["sh", "-c", "echo --app x"])
    args = parse(["enter", "--app", "db", "web"])
    assert (args.pod, args.app, args.command) == ("web", "db", [])
    assert command.check_arguments(parse(["enter", "Web"])) is not None
    assert command.check_arguments(parse(["enter", "web", "--app", "a/b"])) is not None


def test_a_nul_in_a_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["enter", "web", "--", "/bin/echo", "a\0b"]) == 2
    assert "NUL" in capsys.readouterr().err


# File descriptors on the wire: a private dbus-daemon, this run's library.


async def _pass_a_pipe(address: str) -> bytes:
    service = await Bus(address).connect()
    client = await Bus(address).connect()
    received: list[bytes] = []

    def on_call(message: Message) -> bool:
        if message.message_type is not MessageType.METHOD_CALL or message.member != "Take":
            return False
        [index] = message.body
        fd = message.unix_fds[index]
        received.append(os.read(fd, 100))
        close_fds(message)
        service.send(Message.new_method_return(message, "s", ["ok"]))
        return True

    service.add_message_handler(on_call)
    read_end, write_end = os.pipe()
    os.write(write_end, b"through the bus")
    os.close(write_end)
    try:
        reply = await client.call(
            Message(
                destination=str(service.unique_name),
                path="/",
                interface="org.example.Test",
                member="Take",
                signature="h",
                body=[0],
                unix_fds=[read_end],
            )
        )
    finally:
        os.close(read_end)  # the connection sent a copy of its own
    assert reply is not None
    assert reply.body == ["ok"], reply.body
    client.disconnect()  # type: ignore[no-untyped-call, unused-ignore]
    service.disconnect()  # type: ignore[no-untyped-call, unused-ignore]
    return received[0]


def test_a_file_descriptor_goes_over_the_bus(bus_address: str) -> None:  # noqa: F811
    before = set(os.listdir("/proc/self/fd"))
    assert asyncio.run(asyncio.wait_for(_pass_a_pipe(bus_address), 20)) == b"through the bus"
    time.sleep(0.1)
    # The sockets of the connections close when the library lets go of them; no copy of
    # the pipe may stay open, in the sender or in the receiver.
    pipes = [
        target
        for target in (
            os.readlink(f"/proc/self/fd/{fd}") for fd in set(os.listdir("/proc/self/fd")) - before
        )
        if target.startswith("pipe:")
    ]
    assert not pipes


# In the bed.

ROOTFS = "/var/lib/machines/podmgr-busybox"
WEB = f"""
[app.main]
rootfs = "{ROOTFS}"
exec = ["/bin/sleep", "infinity"]
user = "33"
capabilities_retain = ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"]
no_new_privileges = true
system_call_filter = ["@system-service", "~@mount"]

[app.side]
rootfs = "{ROOTFS}"
exec = ["/bin/sleep", "infinity"]
capabilities_remove = ["CAP_NET_RAW"]
"""
# Every other key of an app's confinement the generator knows.
FULL = f"""
[volume.data]
type = "empty"

[app.full]
rootfs = "{ROOTFS}"
exec = ["/bin/sleep", "infinity"]
environment = {{ FROM_ENV = "set in the manifest" }}
environment_files = ["/etc/full.env"]
working_directory = "/var/lib/data"
read_only = true
private_users = true
capabilities_remove = ["CAP_CHOWN"]

[app.full.resources]
memory_max = "64M"
memory_high = "48M"
tasks_max = 64
cpu_weight = 50
cpu_quota = "50%"
io_weight = 50

[[app.full.mount]]
volume = "data"
path = "/var/lib/data"
"""
IDLE = f"""
[app.only]
rootfs = "{ROOTFS}"
exec = ["/bin/sleep", "infinity"]
"""


@pytest.fixture(scope="module")
def enter_bed(bed: Bed) -> Bed:
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run("groupadd", "--system", "podmgr")
    bed.run("useradd", "--create-home", "alice")
    bed.run("useradd", "--create-home", "--groups", "podmgr", "bob")
    bed.run("install", "-m", "644", f"{CHECKOUT}/polkit/50-podmgr.rules", "/etc/polkit-1/rules.d/")
    bed.run("sh", "-c", "echo FROM_FILE=read-from-a-file > /etc/full.env")
    for name, text in (("web", WEB), ("idle", IDLE), ("full", FULL)):
        bed.run("sh", "-c", f"cat > /etc/podmgr/pods/{name}.toml", input=textwrap.dedent(text))
    bed.run("systemctl", "daemon-reload")
    bed.run("podmgr", "start", "web")
    bed.run("podmgr", "start", "full")
    # polkitd reads rules asynchronously: wait until bob is allowed.
    wait_for(
        lambda: (
            bed.run(*as_bob("podmgr", "enter", "web", "--", "true"), check=False).returncode == 0
        ),
        30,
        "polkitd to apply the group rule",
    )
    return bed


def as_bob(*argv: str) -> list[str]:
    return ["runuser", "-u", "bob", "--", *argv]


def entered(bed: Bed, app: str, script: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return bed.run("podmgr", "enter", "web", "--app", app, "--", "/bin/sh", "-c", script, **kwargs)


STATUS_LINES = ("CapBnd", "CapEff", "CapPrm", "NoNewPrivs", "Seccomp", "Uid", "Gid", "Groups")
REPORT = (
    "grep -E '^(" + "|".join(STATUS_LINES) + "):' /proc/$$/status; "
    "grep name=systemd /proc/$$/cgroup || grep '^0::' /proc/$$/cgroup; "
    "readlink /proc/$$/ns/net; readlink /proc/$$/ns/ipc; stat -c %d:%i /"
)


def app_report(bed: Bed, app: str) -> tuple[dict[str, str], str, list[str], str]:
    pid = bed.run(
        "systemctl", "show", "--value", "-p", "MainPID", f"podapp@web:{app}.service"
    ).stdout.strip()
    status = bed.run("cat", f"/proc/{pid}/status").stdout
    cgroup = next(
        line
        for line in bed.run("cat", f"/proc/{pid}/cgroup").stdout.splitlines()
        if "name=systemd" in line or line.startswith("0::")
    )
    namespaces = [
        bed.run("readlink", f"/proc/{pid}/ns/{ns}").stdout.strip() for ns in ("net", "ipc")
    ]
    root = bed.run("stat", "-L", "-c", "%d:%i", f"/proc/{pid}/root/").stdout.strip()
    return status_fields(status), cgroup, namespaces, root


def status_fields(text: str) -> dict[str, str]:
    return {
        key: value.strip()
        for key, _, value in (line.partition(":") for line in text.splitlines())
        if key in STATUS_LINES
    }


@pytest.mark.integration
@pytest.mark.parametrize("app", ["main", "side"])
def test_an_entered_process_is_confined_as_the_app(enter_bed: Bed, app: str) -> None:
    fields, cgroup, namespaces, root = app_report(enter_bed, app)
    lines = entered(enter_bed, app, REPORT).stdout.splitlines()
    inside = status_fields("\n".join(lines[: len(STATUS_LINES)]))
    assert inside == fields
    inside_cgroup, *inside_ns, inside_root = lines[len(STATUS_LINES) :]
    slice_path = "/pod.slice/pod-web.slice/"
    assert cgroup.split(":", 2)[2].startswith(slice_path)
    assert inside_cgroup.split(":", 2)[2].startswith(slice_path + "podenter@web:" + app + ":")
    assert inside_ns == namespaces
    assert inside_root == root
    if app == "main":  # the values that make a wrong copy show
        assert fields["NoNewPrivs"] == "1"
        assert fields["Seccomp"] == "2"
        assert fields["Uid"].split()[0] == "33"
        assert fields["Gid"].split()[0] == "33"
        assert int(fields["CapBnd"], 16) == (1 << 0) | (1 << 5) | (1 << 10)
    else:
        assert fields["NoNewPrivs"] == "0"
        assert fields["Uid"].split()[0] == "0"
        assert not int(fields["CapBnd"], 16) & (1 << 13)  # CAP_NET_RAW removed


@pytest.mark.integration
def test_what_an_entered_process_writes_is_in_the_apps_root(enter_bed: Bed) -> None:
    entered(enter_bed, "main", "echo from-enter > /tmp/entered")
    pid = enter_bed.run(
        "systemctl", "show", "--value", "-p", "MainPID", "podapp@web:main.service"
    ).stdout.strip()
    assert enter_bed.run("cat", f"/proc/{pid}/root/tmp/entered").stdout == "from-enter\n"


@pytest.mark.integration
def test_the_exit_status_is_the_commands(enter_bed: Bed) -> None:
    assert entered(enter_bed, "main", "exit 42", check=False).returncode == 42
    assert entered(enter_bed, "main", "kill -TERM $$", check=False).returncode == 128 + 15
    failed = enter_bed.run("podmgr", "enter", "web", "--", "/nonexistent", check=False)
    assert failed.returncode == 1
    assert failed.stderr.count("\n") == 1
    assert "/nonexistent did not start" in failed.stderr


@pytest.mark.integration
def test_the_words_of_a_command_reach_it_unchanged(enter_bed: Bed) -> None:
    words = ["$HOME", "${PATH}", "$$", "%n", "a b", "'", '"', "\\", ";", "-", "--app"]
    result = enter_bed.run("podmgr", "enter", "web", "--", "printf", "%s\\n", *words)
    assert result.stdout.splitlines() == words


@pytest.mark.integration
def test_pipes_work(enter_bed: Bed) -> None:
    result = enter_bed.run("podmgr", "enter", "web", "--", "cat", input="hi\nthere\n")
    assert result.stdout == "hi\nthere\n"
    upper = enter_bed.run(
        "sh", "-c", "echo hi | podmgr enter web -- tr a-z A-Z | cat; echo status=$?"
    ).stdout
    assert upper == "HI\nstatus=0\n"


@pytest.mark.integration
def test_the_default_is_the_first_app_and_a_shell(enter_bed: Bed) -> None:
    result = enter_bed.run("podmgr", "enter", "web", input="id -u; echo $0\n")
    assert result.stdout == "33\n/bin/sh\n"


@pytest.mark.integration
def test_polkit_refuses_alice_and_allows_the_group(enter_bed: Bed) -> None:
    refused = enter_bed.run(
        "runuser", "-u", "alice", "--", "podmgr", "enter", "web", "--", "id", check=False
    )
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "org.podmgr1.manage-pods needs authentication" in refused.stderr
    allowed = enter_bed.run(*as_bob("podmgr", "enter", "web", "--", "id", "-u"))
    assert allowed.stdout == "33\n"


@pytest.mark.integration
def test_a_stopped_app_or_a_missing_one_is_refused_in_one_line(enter_bed: Bed) -> None:
    stopped = enter_bed.run("podmgr", "enter", "idle", "--", "true", check=False)
    assert stopped.returncode == 1
    assert stopped.stderr == (
        "podmgr: pod idle: app only is not running (podapp@idle:only.service is "
        "inactive; start it with podmgr start idle)\n"
    )
    missing = enter_bed.run("podmgr", "enter", "web", "--app", "nope", check=False)
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1
    assert "pod web has no app nope" in missing.stderr
    nopod = enter_bed.run("podmgr", "enter", "nopod", check=False)
    assert nopod.returncode == 1
    assert nopod.stderr.count("\n") == 1
    assert "nopod" in nopod.stderr


def loaded_enter_units(bed: Bed) -> str:
    return bed.run(
        "systemctl", "list-units", "--all", "--no-legend", "--plain", "podenter@*"
    ).stdout.strip()


@pytest.mark.integration
def test_a_command_whose_caller_leaves_is_stopped(enter_bed: Bed) -> None:
    script = (
        "podmgr enter web -- sleep 1000 </dev/null & pid=$!; "
        "until systemctl list-units --no-legend 'podenter@*' | grep -q running; "
        "do sleep 0.1; done; "
        "kill $pid; wait $pid; echo killed"
    )
    assert enter_bed.run("sh", "-c", script, timeout=60).stdout == "killed\n"
    wait_for(lambda: not loaded_enter_units(enter_bed), 20, "the entered unit to be unloaded")


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """``podmgr enter`` run in the bed under a pseudo-terminal of this test's."""

    def __init__(self, bed: Bed, *argv: str) -> None:
        self.master, slave = pty.openpty()
        set_size(slave, 33, 111)
        self.saved = termios.tcgetattr(slave)  # what podmgr must leave it as
        self.slave = slave
        self.process = subprocess.Popen(
            bed.command("podmgr", "enter", *argv, env={"TERM": "xterm"}),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # noqa: PLW1509
        )
        self.seen = b""

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, pattern: str, timeout: float = 30) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while not (found := re.search(pattern.encode(), self.seen)):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} in {self.seen!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:  # EIO: the other side is gone
                    time.sleep(0.05)
        self.seen = self.seen[found.end() :]
        return found

    def wait(self) -> int:
        return self.process.wait(timeout=30)

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal(enter_bed: Bed) -> Iterator[Terminal]:
    session = Terminal(enter_bed, "web")
    yield session
    session.cleanup()


@pytest.mark.integration
def test_a_terminal_follows_its_size_and_takes_ctrl_c(enter_bed: Bed, terminal: Terminal) -> None:
    # Typed at once, before the command has its terminal (systemd flushes what is in
    # it when it sets it up): podmgr holds it back until then, so none of it is lost.
    # ma''rk: the echo of what is typed does not match, the command's output does.
    terminal.send("tty; stty size; echo $TERM; echo ma''rk\n")
    found = terminal.expect(r"(/dev/pts/\d+)\r\n(\d+ \d+)\r\n(\S+)\r\nmark")
    assert found.group(2) == b"33 111"
    assert found.group(3) == b"xterm"
    set_size(terminal.master, 40, 100)  # SIGWINCH to podmgr, which passes it on
    time.sleep(0.5)
    terminal.expect(r"\$ ")
    terminal.send("stty size; echo ma''rk\n")
    assert terminal.expect(r"(\d+ \d+)\r\nmark").group(1) == b"40 100"
    terminal.expect(r"\$ ")
    terminal.send("sleep 100\n")
    time.sleep(1)
    terminal.send("\x03")  # ^C: to the sleep, not to podmgr
    terminal.send("echo af''ter\n")
    terminal.expect(r"after", timeout=20)
    terminal.send("exit 5\n")
    assert terminal.wait() == 5
    assert not loaded_enter_units(enter_bed)


@pytest.mark.integration
def test_the_terminal_is_restored_afterwards(enter_bed: Bed) -> None:
    session = Terminal(enter_bed, "web", "--", "true")
    try:
        assert session.wait() == 0
        assert termios.tcgetattr(session.slave) == session.saved
    finally:
        session.cleanup()


@pytest.mark.integration
def test_podmgr_ended_by_a_signal_restores_the_terminal_and_stops_the_command(
    enter_bed: Bed,
) -> None:
    session = Terminal(enter_bed, "web", "--", "sleep", "1000")
    try:
        wait_for(lambda: "running" in loaded_enter_units(enter_bed), 30, "the command to run")
        # nsenter forks once to enter the bed's PID namespace; its child became podmgr.
        nsenter = session.process.pid
        [podmgr] = Path(f"/proc/{nsenter}/task/{nsenter}/children").read_text().split()
        assert "podmgr" in Path(f"/proc/{podmgr}/cmdline").read_text()
        os.kill(int(podmgr), signal.SIGTERM)
        assert session.wait() == 128 + signal.SIGTERM
        assert termios.tcgetattr(session.slave) == session.saved
        wait_for(lambda: not loaded_enter_units(enter_bed), 30, "the entered unit to be unloaded")
    finally:
        session.cleanup()


@pytest.mark.integration
def test_the_entered_unit_has_each_copied_property_of_the_app(enter_bed: Bed) -> None:
    """systemd's own view: every property enter copies, of the running entered unit and
    of the app's unit, for an app that sets each key the generator knows."""
    names = ",".join(enter.COPIED)
    show = f"systemctl show --property={names}"
    script = (
        "podmgr enter full -- sleep 1000 </dev/null & "
        "until systemctl list-units --no-legend 'podenter@full:*' | grep -q running; "
        "do sleep 0.1; done; "
        "unit=$(systemctl list-units --no-legend --plain 'podenter@full:*' | cut -d' ' -f1); "
        f"{show} podapp@full:full.service; echo ---; {show} $unit; kill $!"
    )
    app, entered_unit = enter_bed.run("sh", "-c", script).stdout.split("---\n")
    assert entered_unit == app
    assert "MemoryMax=67108864" in app
    assert "FROM_ENV=" in app
    done = enter_bed.run(
        "podmgr",
        "enter",
        "full",
        "--",
        "sh",
        "-c",
        "echo $FROM_ENV; echo $FROM_FILE; pwd; echo kept > f; cat f; touch /x || echo read-only",
    )
    assert done.stdout.splitlines() == [
        "set in the manifest",
        "read-from-a-file",
        "/var/lib/data",
        "kept",
        "read-only",
    ]
