# SPDX-License-Identifier: LGPL-2.1-or-later
"""org.podmgr1 as a trust boundary, in a bed: every argument of every method is checked
at the edge, unprivileged callers learn nothing root can read, one caller's big request
does not hold up another's, and clients notice the service going away."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from bed import Bed

from podmgr.bus import api

pytestmark = pytest.mark.integration

CHECKOUT = Path(__file__).resolve().parent.parent
ROOTFS = "/var/lib/machines/podmgr-busybox"
POD = f'[app.main]\nrootfs = "{ROOTFS}"\nexec = ["/bin/sleep", "infinity"]\n'


@pytest.fixture(scope="module")
def edge_bed(bed: Bed) -> Bed:
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run("useradd", "--create-home", "alice")
    # As on a host where pods ran and networks are defined: ".." in a name resolves.
    bed.run("mkdir", "-p", "/run/podmgr/pods", "/etc/podmgr/networks")
    bed.run(
        "sh",
        "-c",
        "echo precious > /home/alice/file; mkdir -p /var/tmp/x.d; "
        "printf 'subnet = \"10.99.0.0/24\"\\n' > /var/tmp/x.toml",
    )
    bed.run("sh", "-c", "cat > /etc/podmgr/pods/alpha.toml", input=POD)
    bed.run("systemctl", "daemon-reload")
    return bed


# A client in the bed's own Python: sends each call exactly as given (any string, any
# length) and prints one JSON line per reply.
CALLER = textwrap.dedent("""
    import asyncio, json, os, sys
    from podmgr.bus.dbuslib import Message, MessageType
    from podmgr.bus.connection import Bus  # the libraries' own writers drop big messages

    async def main():
        bus = await Bus().connect()
        for line in sys.stdin:
            call = json.loads(line)
            body = [bytes(v["bytes"]) if isinstance(v, dict) else v for v in call["body"]]
            reply = await bus.call(Message(
                destination="org.podmgr1", path=call.get("path", "/org/podmgr1"),
                interface=call.get("interface", "org.podmgr1.Manager"),
                member=call["member"], signature=call["signature"], body=body,
                unix_fds=[os.open("/dev/null", os.O_RDWR) for _ in range(call.get("fds", 0))]))
            error = reply.error_name if reply.message_type is MessageType.ERROR else None
            text = reply.body[0] if error and reply.body else None
            print(json.dumps({"member": call["member"], "error": error, "text": text,
                              "body": None if error else reply.body}, default=str),
                  flush=True)

    asyncio.run(main())
""")


def call_all(
    bed: Bed, calls: Sequence[Mapping[str, object]], user: str | None = None
) -> list[dict[str, Any]]:
    argv = ["/usr/bin/python3", "-c", CALLER]
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    result = bed.run(*argv, input="".join(json.dumps(c) + "\n" for c in calls), timeout=300)
    return [json.loads(line) for line in result.stdout.splitlines()]


LONG = "a" * 100_000
# Values that are not names, for each kind of argument slot.
BAD: dict[str, list[Any]] = {
    "pod": [
        "../../../home/alice",
        "a/../../b",
        "/etc/passwd",
        "",
        ".",
        "a" * 64,
        LONG,
        "pöd",
        "\uff41",
        "a\nb",
        "a\u2028b",
        "Alpha",
    ],
    "network": ["../../../var/tmp/x", "", "a" * 64, LONG, "nét", "x\rb"],
    "app": ["../../../var/tmp/x", "", "a" * 64, LONG, "nét", "x:y", "x\rb"],
    "image": [
        "../../../home/alice",
        "/etc/passwd",
        "",
        "a" * 513,
        LONG,
        "bUsybox",
        "café/x:1",
        "x:1\n2",
    ],
    "image-or-empty": ["../../../home/alice", "a" * 513, LONG, "ü"],
    "pull": ["../../../home/alice", "", LONG, "file:///etc/passwd", "ü"],
    "source": ["x" * 4201, LONG],
    "prefix": ["../../..", "a/../../b", "a" * 513, LONG, "ü/x", "x\ny"],
    "fingerprint": ["../../../home/alice", "", "0" * 39, "G" * 40, LONG, "ü" * 40],
    "app-or-empty": ["A", "a/../b", "a" * 64, LONG, "\u00e4"],
    # (a NUL cannot be sent: the bus daemon drops a connection whose string has one)
    "command": [["", "x"], ["x"] * (api.COMMAND_WORDS + 1), [LONG, LONG]],
    "term": ["xterm 256", "a" * 65, "x\ny", "\u00e4", LONG],
    "digest": ["", "0" * 63, "0" * 65, "g" * 64, "sha256:" + "0" * 64, LONG, "ü" * 64, "0\n" * 32],
    "duration": [2**63, 2**64 - 1],  # beyond what systemd counts
}
# A value that passes, for the other slots of a call.
GOOD = {
    "pod": "alpha",
    "network": "podmgr",
    "app": "web",
    "image": "example.org/none:1",
    "image-or-empty": "",
    "pull": "127.0.0.1:1/none:1",
    "source": "oci:/nowhere",
    "manifest": POD,
    "prefix": "example.org",
    "fingerprint": "0" * 40,
    "armored": {"bytes": [1]},
    "digest": "0" * 64,
    "app-or-empty": "",
    "command": [],
    "term": "",
    "fd": 0,
    "flag": False,
    "duration": 0,
}


def bad_calls() -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    for method in api.MANAGER.methods:
        for slot, arg in enumerate(method.in_args):
            for value in BAD.get(arg.kind, []):
                body: list[object] = [GOOD[a.kind] for a in method.in_args]
                body[slot] = value
                calls.append(
                    {
                        "member": method.name,
                        "signature": method.in_signature,
                        "body": body,
                        "slot": arg.name,
                        "fds": 1 if "h" in method.in_signature else 0,
                    }
                )
    return calls


def snapshot(bed: Bed) -> str:
    return bed.run(
        "sh",
        "-c",
        "find /home /var/tmp /etc/podmgr /var/lib/podmgr /run/podmgr "
        "-xdev -printf '%p %s %m\\n' 2>/dev/null | sort",
        check=False,
    ).stdout


def test_every_name_slot_of_every_method_is_checked(edge_bed: Bed) -> None:
    """As root (who may do anything): a name that is not one is refused with a clear
    error before anything runs; nothing on disk changes."""
    bed = edge_bed
    calls = bad_calls()
    # Every name slot of the table is tried (the manifest and the key have only a size
    # limit: test_over_the_limit_is_refused_before_parsing and test_names.py).
    kinds = {a.kind for m in api.MANAGER.methods for a in m.in_args}
    # An h argument naming no descriptor passed is a malformed message, which the bus
    # daemon itself refuses, dropping the connection (test_enter.py checks the edge).
    # A boolean has no value out of range: the bus refuses anything else.
    assert kinds - {"manifest", "armored", "fd", "flag"} <= set(BAD)
    slots = {(c["member"], c["slot"]) for c in calls}
    assert slots == {
        (m.name, a.name) for m in api.MANAGER.methods for a in m.in_args if a.kind in BAD
    }
    call_all(bed, [{"member": "ListPods", "signature": "", "body": []}])  # started
    before = snapshot(bed)
    replies = call_all(bed, calls)
    assert len(replies) == len(calls)
    for call, got in zip(calls, replies, strict=True):
        shown = f"{call['member']}({str(call['body'])[:80]})"
        assert got["error"] in (
            "org.podmgr1.Error.InvalidName",
            "org.podmgr1.Error.BadReference",
        ), (shown, got)
        text = got["text"] or ""
        assert text, (shown, got)
        assert "\n" not in text, (shown, got)
        assert len(text) < 300, (shown, got)
    assert bed.run("cat", "/home/alice/file").stdout == "precious\n"
    assert bed.run("test", "-e", "/var/tmp/x.toml", check=False).returncode == 0
    assert snapshot(bed) == before


def test_wrongly_typed_standard_calls_are_one_line_errors(edge_bed: Bed) -> None:
    replies = call_all(
        edge_bed,
        [
            {
                "member": "Get",
                "interface": "org.freedesktop.DBus.Properties",
                "path": "/org/podmgr1/pod/alpha",
                "signature": "ii",
                "body": [1, 2],
            },
            {
                "member": "GetAll",
                "interface": "org.freedesktop.DBus.Properties",
                "path": "/org/podmgr1/pod/alpha",
                "signature": "as",
                "body": [["x"]],
            },
            {
                "member": "Get",
                "interface": "org.freedesktop.DBus.Properties",
                "path": "/org/podmgr1/pod/alpha",
                "signature": "ss",
                "body": ["org.podmgr1.Pod", LONG],
            },
            {"member": "StartPod", "signature": "u", "body": [1]},
        ],
    )
    for got in replies:
        assert got["error"] in (
            "org.freedesktop.DBus.Error.InvalidArgs",
            "org.freedesktop.DBus.Error.UnknownProperty",
        ), got
        text = got["text"] or ""
        assert text, got
        assert "\n" not in text, got
        assert "Traceback" not in text, got
        assert len(text) < 300, got


USER_PROBE = '[app.main]\nrootfs = "{rootfs}"\nexec = ["/bin/sh"]\nuser = "{user}"\n'


def test_validate_tells_an_unprivileged_caller_nothing_root_can_read(edge_bed: Bed) -> None:
    bed = edge_bed
    bed.run(
        "sh",
        "-c",
        "chmod 700 /root && mkdir -p /root/x/etc /root/x/bin && "
        "echo 'secretuser:x:4321:4321::/:/bin/sh' > /root/x/etc/passwd && "
        "echo 'secretuser:x:4321:' > /root/x/etc/group && cp /bin/true /root/x/bin/sh",
    )
    probes = [("/root/x", "secretuser"), ("/root/x", "nosuchuser"), ("/root/nothere", "secretuser")]
    calls = [
        {
            "member": "ValidateManifest",
            "signature": "s",
            "body": [USER_PROBE.format(rootfs=rootfs, user=user)],
        }
        for rootfs, user in probes
    ]
    as_alice = call_all(bed, calls, user="alice")
    assert all(reply["error"] is None for reply in as_alice), as_alice
    # The same answer whatever the files under /root hold.
    answers = {json.dumps(call_all(bed, [c], user="alice")) for c in calls}
    assert len(answers) == 1, answers
    # root, whom polkit allows manage-pods, gets the full check, which can tell.
    as_root = {json.dumps(call_all(bed, [c])) for c in calls}
    assert len(as_root) > 1, as_root


BIG = '[app.main]\nrootfs = "/srv/x"\nexec = ["/bin/true"' + ', "aaa"' * 140_000 + "]\n"


def test_big_requests_do_not_hold_up_small_ones(edge_bed: Bed) -> None:
    """Six 1 MB manifests take seconds to parse; a GetPod sent after them is answered
    first, because the parsing runs off the event loop."""
    bed = edge_bed
    script = textwrap.dedent("""
        import asyncio, sys
        from podmgr.bus.dbuslib import Message
        from podmgr.bus.connection import Bus  # the libraries' own writers drop big messages

        def call(bus, member, signature, body):
            return bus.call(Message(destination="org.podmgr1", path="/org/podmgr1",
                                    interface="org.podmgr1.Manager", member=member,
                                    signature=signature, body=body))

        async def main():
            big = sys.stdin.read()
            bus = await Bus().connect()
            await call(bus, "ListPods", "", [])
            order = []
            async def track(name, coroutine):
                reply = await coroutine
                order.append((name, reply.message_type.name))
            tasks = [asyncio.create_task(track("big", call(bus, "ValidateManifest", "s",
                                                            [big]))) for _ in range(6)]
            await asyncio.sleep(0.3)  # the big ones are in the service by now
            tasks.append(asyncio.create_task(track("small", call(bus, "GetPod", "s",
                                                                  ["alpha"]))))
            await asyncio.gather(*tasks)
            print(" ".join(f"{name}:{kind}" for name, kind in order))

        asyncio.run(main())
    """)
    order = bed.run(
        "runuser", "-u", "alice", "--", "/usr/bin/python3", "-c", script, input=BIG, timeout=300
    ).stdout.split()
    assert order[0] == "small:METHOD_RETURN", order
    assert order.count("big:METHOD_RETURN") == 6, order


def test_over_the_limit_is_refused_before_parsing(edge_bed: Bed) -> None:
    """A manifest over 1 MiB is refused at the edge: InvalidName, not 12 s of parsing."""
    huge = "#" + "x" * (api.KINDS["manifest"].limit + 1) + "\n"
    script = textwrap.dedent("""
        import asyncio, sys, time
        from podmgr.bus.dbuslib import Message
        from podmgr.bus.connection import Bus  # the libraries' own writers drop big messages

        async def main():
            text = sys.stdin.read()
            bus = await Bus().connect()
            reply = await bus.call(Message(destination="org.podmgr1", path="/org/podmgr1",
                                           interface="org.podmgr1.Manager",
                                           member="ValidateManifest", signature="s",
                                           body=[text]))
            print(reply.error_name, reply.body[0])

        asyncio.run(main())
    """)
    out = edge_bed.run(
        "runuser",
        "-u",
        "alice",
        "--",
        "/usr/bin/python3",
        "-c",
        script,
        input=huge * 26,
        timeout=120,
    ).stdout
    assert out.startswith("org.podmgr1.Error.InvalidName the manifest is "), out


BIG_LAYOUT = f"""
import os, sys
sys.path.insert(0, "{CHECKOUT}/tests")
from pathlib import Path
import imagebuild as ib
noise = os.urandom(1 << 20)
files = [ib.file(f"data/{{i:03}}", noise[i:] + noise[:i]) for i in range(200)]
ib.write_layout(Path("/tmp/big"), {{"1": ib.Image([ib.tar(files)], "gzip")}})
"""


def test_clients_notice_the_service_killed_mid_transfer(edge_bed: Bed) -> None:
    """kill -9 of the service during an import: the import ends with a one-line error,
    and the next podmgr image list reaches a new service, trial after trial."""
    bed = edge_bed
    bed.run("/usr/bin/python3", "-c", BIG_LAYOUT, timeout=300)
    bed.run(
        "sh", "-c", "cat >> /etc/podmgr/podmgr.toml", input='[images]\ninsecure = ["example.org"]\n'
    )
    for trial in range(6):
        importing = subprocess.Popen(
            bed.command(
                "podmgr",
                "image",
                "import",
                "oci:/tmp/big:1",
                "--name",
                f"example.org/big/app:{trial}",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while (
            not (
                pid := bed.run(
                    "systemctl", "show", "-P", "MainPID", "podmgr1.service"
                ).stdout.strip()
            )
            or pid == "0"
            or bed.run("busctl", "--list", "tree", "org.podmgr1", check=False).stdout.count(
                "/org/podmgr1/transfer/"
            )
            == 0
        ):
            assert time.monotonic() < deadline, "the transfer never started"
            time.sleep(0.05)
        bed.run("kill", "-9", pid)
        try:
            listing = bed.run("podmgr", "image", "list", check=False, timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"trial {trial}: podmgr image list never reached a new service")
        try:
            _, err = importing.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            importing.kill()
            pytest.fail(f"trial {trial}: podmgr image import waits for a dead service")
        assert importing.returncode == 1, err
        assert err.startswith("podmgr: org.podmgr1 stopped during the transfer"), err
        assert err.count("\n") == 1, err
        assert listing.returncode == 0, f"trial {trial}: {listing.stderr}"


def test_a_transfer_that_fails_at_once_says_why(edge_bed: Bed) -> None:
    """TransferRemoved can come before the client has read the call's reply: the client
    still reports the transfer's own result."""
    for _ in range(3):
        result = edge_bed.run(
            "podmgr",
            "image",
            "import",
            "oci:/nowhere",
            "--name",
            "example.org/none:1",
            check=False,
            timeout=60,
        )
        assert result.returncode == 1
        assert result.stderr.startswith("podmgr: "), result.stderr
        assert "stopped during the transfer" not in result.stderr
        assert "/nowhere" in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
