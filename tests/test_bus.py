# SPDX-License-Identifier: LGPL-2.1-or-later
"""org.podmgr1 on a real system bus with a real polkitd, in a bed: busctl and dbus-send
as clients, root, a user outside the group podmgr and one in it."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from bed import Bed

from podmgr.bus import api

pytestmark = pytest.mark.integration

CHECKOUT = Path(__file__).resolve().parent.parent
ROOTFS = "/var/lib/machines/podmgr-busybox"
MANAGER = ("org.podmgr1", "/org/podmgr1", "org.podmgr1.Manager")
IDLE = 2  # seconds, as the bed's podmgr.toml sets it

POD = f"""
[app.main]
rootfs = "{ROOTFS}"
exec = ["/bin/sleep", "infinity"]
"""


@pytest.fixture(scope="module")
def bus_bed(bed: Bed) -> Bed:
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run(
        "sh", "-c", "cat > /etc/podmgr/podmgr.toml", input=f'[service]\nidle_timeout = "{IDLE}s"\n'
    )
    bed.run("groupadd", "--system", "podmgr")
    bed.run("useradd", "--create-home", "alice")  # not in the group
    bed.run("useradd", "--create-home", "--groups", "podmgr", "bob")
    bed.run(
        "install",
        "-m",
        "644",
        f"{CHECKOUT}/polkit/50-podmgr.rules",
        "/etc/polkit-1/rules.d/50-podmgr.rules",
    )
    for name in ("alpha", "beta"):
        install(bed, name, POD)
    bed.run("systemctl", "daemon-reload")
    # polkitd reads rules asynchronously: wait until bob is allowed.
    deadline = time.monotonic() + 30
    while busctl(bed, "StopPod", "s", "alpha", user="bob", check=False).returncode != 0:
        assert time.monotonic() < deadline, "polkitd never applied the group rule"
        time.sleep(0.2)
    return bed


def install(bed: Bed, name: str, text: str) -> None:
    bed.run("sh", "-c", f"cat > /etc/podmgr/pods/{name}.toml", input=textwrap.dedent(text))


def as_user(user: str | None, argv: list[str]) -> list[str]:
    return argv if user is None else ["runuser", "-u", user, "--", *argv]


def busctl(
    bed: Bed,
    method: str,
    *args: str,
    user: str | None = None,
    check: bool = True,
    path: str = "/org/podmgr1",
    interface: str = "org.podmgr1.Manager",
) -> subprocess.CompletedProcess[str]:
    argv = ["busctl", "--json=short", "call", "org.podmgr1", path, interface, method, *args]
    return bed.run(*as_user(user, argv), check=check, timeout=120)


def reply(result: subprocess.CompletedProcess[str]) -> list[object]:
    data: list[object] = json.loads(result.stdout)["data"]
    return data


def test_introspection_documents_the_api(bus_bed: Bed) -> None:
    xml = bus_bed.run(
        "busctl", "introspect", "--xml-interface", "org.podmgr1", "/org/podmgr1"
    ).stdout
    assert '<method name="StartPod">' in xml
    assert "Needs polkit action org.podmgr1.manage-pods." in xml
    assert '<signal name="TransferRemoved">' in xml
    assert '<node name="pod"/>' in xml
    pods = bus_bed.run("busctl", "tree", "--list", "org.podmgr1").stdout.split()
    assert "/org/podmgr1/pod/alpha" in pods


def test_reads_need_no_authorization(bus_bed: Bed) -> None:
    bed = bus_bed
    for user in (None, "alice", "bob"):
        [pods] = reply(busctl(bed, "ListPods", user=user))
        assert ["alpha", "inactive", "/org/podmgr1/pod/alpha"] in pods  # type: ignore[operator]
        assert reply(busctl(bed, "GetPod", "s", "beta", user=user)) == ["/org/podmgr1/pod/beta"]
        state = bed.run(
            *as_user(
                user,
                [
                    "busctl",
                    "get-property",
                    "org.podmgr1",
                    "/org/podmgr1/pod/alpha",
                    "org.podmgr1.Pod",
                    "State",
                ],
            )
        ).stdout
        assert state == 's "inactive"\n'
        assert reply(busctl(bed, "ListTrustedKeys", user=user)) == [[]]
        assert reply(busctl(bed, "ValidateManifest", "s", "[app.x]\nexec = 1\n", user=user)) == [
            [["app.x.exec", "expected an array of strings like [...], got an integer"]]
        ]
    # dbus-send, the other classic client.
    sent = bed.run(
        "dbus-send",
        "--system",
        "--print-reply",
        "--dest=org.podmgr1",
        "/org/podmgr1",
        "org.podmgr1.Manager.GetPod",
        "string:alpha",
    ).stdout
    assert 'object path "/org/podmgr1/pod/alpha"' in sent


# Every method that changes something, with arguments that would work for an allowed
# caller (a denied one must be refused before anything happens).
MUTATING = [
    ("StartPod", ["s", "alpha"]),
    ("StopPod", ["s", "alpha"]),
    ("RestartPod", ["s", "alpha"]),
    ("EnterApp", []),  # busctl 252 cannot pass file descriptors: podmgr enter calls it
    ("CreatePod", ["ss", "gamma", POD]),
    ("UpdatePod", ["ss", "beta", POD]),
    ("UpdatePodIfUnchanged", ["sss", "beta", "0" * 64, POD]),
    ("RemovePod", ["s", "beta"]),
    ("PreparePod", ["s", "alpha"]),
    ("ReleasePod", ["s", "alpha"]),
    ("ReleaseMachine", ["ss", "alpha", "web"]),
    ("PullImage", ["s", "127.0.0.1:1/none:1"]),
    ("ImportImage", ["ss", "oci:/nowhere", ""]),
    ("RemoveImage", ["s", "example.org/none:1"]),
    ("GarbageCollect", []),
    ("GarbageCollectWithGrace", ["t", "0"]),
    ("AutoUpdate", ["b", "true"]),
    ("TrustKey", ["say", "example.org", "1", "0"]),
    ("UntrustKey", ["s", "0000000000000000000000000000000000000000"]),
    ("UntrustKeyForPrefix", ["ss", "example.org", "0000000000000000000000000000000000000000"]),
    ("RemoveNetwork", ["s", "podmgr"]),
]


# Every method that needs no action, with arguments it answers without an error.
READS = [
    ("ListPods", []),
    ("GetPod", ["s", "alpha"]),
    ("ValidateManifest", ["s", POD]),
    ("ListImages", []),
    ("ListNetworks", []),
    ("ListTrustedKeys", []),
    ("InspectImage", ["s", "example.org/none:1"]),  # answered: no such image
]


def test_every_method_of_the_table_is_tried() -> None:
    """The lists above follow the API table: the dispatcher enforces each method's action
    from it, so a method added there is tried here.  (Transfer.Cancel, the one method of
    another interface, is tried in test_a_transfer_can_be_canceled_by_whom_may.)"""
    assert {m.name for m in api.MANAGER.methods if m.action} == {m for m, _ in MUTATING}
    assert {m.name for m in api.MANAGER.methods if not m.action} == {m for m, _ in READS}
    assert [m.name for m in api.TRANSFER.methods] == ["Cancel"]
    assert api.TRANSFER.methods[0].action == api.MANAGE_IMAGES


@pytest.mark.parametrize(("method", "args"), READS, ids=[m for m, _ in READS])
def test_anyone_may_read(bus_bed: Bed, method: str, args: list[str]) -> None:
    for user in ("alice", "bob"):
        result = busctl(bus_bed, method, *args, user=user, check=False)
        assert "org.podmgr1.manage-" not in result.stderr
        if method == "InspectImage":
            assert "no image" in result.stderr, result.stderr
        else:
            assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("method", "args"), MUTATING, ids=[m for m, _ in MUTATING])
def test_a_user_outside_the_group_is_refused(bus_bed: Bed, method: str, args: list[str]) -> None:
    if method == "EnterApp":
        argv = ["podmgr", "enter", "alpha", "--", "/bin/true"]
        result = bus_bed.run(*as_user("alice", argv), check=False)
    else:
        result = busctl(bus_bed, method, *args, user="alice", check=False)
    assert result.returncode != 0
    assert "org.podmgr1.manage-" in result.stderr
    assert "is not allowed" in result.stderr or "needs authentication" in result.stderr
    assert bus_bed.run("test", "-e", "/etc/podmgr/pods/gamma.toml", check=False).returncode == 1


def test_root_and_group_members_may_manage_pods(bus_bed: Bed) -> None:
    bed = bus_bed
    for user in (None, "bob"):
        busctl(bed, "StartPod", "s", "alpha", user=user)
        state = bed.run("systemctl", "is-active", "podapp@alpha:main.service").stdout.strip()
        assert state == "active"
        busctl(bed, "StopPod", "s", "alpha", user=user)
    # The CLI is a client like the others: bob uses it without root.
    listing = json.loads(bed.run("runuser", "-u", "bob", "--", "podmgr", "list", "--json").stdout)
    assert {
        "name": "alpha",
        "state": "inactive",
        "unit": "pod@alpha.service",
        "object": "/org/podmgr1/pod/alpha",
        "health": "",
        "problems": [],
    } in listing
    bed.run("runuser", "-u", "bob", "--", "podmgr", "start", "beta")
    bed.run("runuser", "-u", "bob", "--", "podmgr", "stop", "beta")
    refused = bed.run("runuser", "-u", "alice", "--", "podmgr", "start", "beta", check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("podmgr: org.podmgr1.manage-pods ")


def test_manifests_are_created_checked_and_removed(bus_bed: Bed) -> None:
    bed = bus_bed
    # busctl monitor runs inside the bed: it ends by itself, after the calls below.
    monitor = subprocess.Popen(
        bed.command("timeout", "8", "busctl", "--json=short", "monitor", "org.podmgr1"),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        invalid = busctl(bed, "CreatePod", "ss", "delta", "[app.main]\nexec = 'x'\n", check=False)
        assert "ManifestInvalid" in invalid.stderr or "app.main.exec" in invalid.stderr
        assert bed.run("test", "-e", "/etc/podmgr/pods/delta.toml", check=False).returncode == 1
        assert reply(busctl(bed, "CreatePod", "ss", "delta", POD)) == ["/org/podmgr1/pod/delta"]
        taken = busctl(bed, "CreatePod", "ss", "delta", POD, check=False)
        assert "there is a pod 'delta' already" in taken.stderr
        # A failed update leaves the stored manifest as it was.
        before = bed.run("cat", "/etc/podmgr/pods/delta.toml").stdout
        busctl(bed, "UpdatePod", "ss", "delta", "version = 2\n", check=False)
        assert bed.run("cat", "/etc/podmgr/pods/delta.toml").stdout == before
        busctl(bed, "StartPod", "s", "delta")
        busctl(bed, "RemovePod", "s", "delta")
        assert (
            bed.run("systemctl", "is-active", "pod@delta.service", check=False).stdout.strip()
            == "inactive"
        )
        assert bed.run("test", "-e", "/etc/podmgr/pods/delta.toml", check=False).returncode == 1
        time.sleep(0.5)
    finally:
        out, _ = monitor.communicate(timeout=30)
    signals = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    members = [s.get("member") for s in signals if s.get("type") == "signal"]
    assert "PodNew" in members
    assert "PodRemoved" in members
    state_changes = [
        s
        for s in signals
        if s.get("member") == "PropertiesChanged" and s.get("path") == "/org/podmgr1/pod/delta"
    ]
    assert state_changes, "State changes of the pod were signalled"


def test_fifty_clients_at_once(bus_bed: Bed) -> None:
    bed = bus_bed
    names = [f"many{i:02}" for i in range(25)]
    for name in names:
        install(bed, name, POD)
    bed.run("systemctl", "daemon-reload")
    # Two clients per pod: each starts it, lists the pods and stops it again.
    script = textwrap.dedent("""
        set -u
        call() { busctl call org.podmgr1 /org/podmgr1 org.podmgr1.Manager "$@"; }
        client() {
            call StartPod s "$1" >/dev/null && call ListPods >/dev/null &&
                call StopPod s "$1" >/dev/null && echo "ok $1"
        }
        for name in "$@"; do client "$name" & client "$name" & done
        wait
    """)
    result = bed.run("sh", "-c", script, "clients", *names, timeout=600)
    assert sorted(result.stdout.split("\n")) == sorted(
        [""] + [f"ok {name}" for name in names for _ in range(2)]
    ), result.stderr
    # Every pod ended stopped, and the service says so.
    [pods] = reply(busctl(bed, "ListPods"))
    for name in names:
        assert [name, "inactive", f"/org/podmgr1/pod/{name}"] in pods  # type: ignore[operator]
        assert (
            bed.run("systemctl", "is-active", f"pod@{name}.service", check=False).stdout.strip()
            == "inactive"
        )
        bed.run("rm", f"/etc/podmgr/pods/{name}.toml")
    bed.run("systemctl", "daemon-reload")


def test_the_service_exits_when_idle_and_comes_back(bus_bed: Bed) -> None:
    bed = bus_bed
    busctl(bed, "ListPods")
    assert bed.run("systemctl", "is-active", "podmgr1.service").stdout.strip() == "active"
    deadline = time.monotonic() + IDLE + 10
    while (
        bed.run("systemctl", "is-active", "podmgr1.service", check=False).stdout.strip()
        != "inactive"
        or bed.run("pgrep", "-f", "/usr/lib/podmgr/podmgr1", check=False).returncode != 1
    ):
        assert time.monotonic() < deadline, "the service stayed after its idle time"
        time.sleep(0.1)
    # Calls around the idle boundary never fail: they reach the old service or start a
    # new one.
    for wait in (IDLE - 0.1, IDLE, IDLE + 0.05, IDLE + 0.15, IDLE + 0.3, IDLE - 0.05):
        busctl(bed, "ListPods")
        time.sleep(wait)
    busctl(bed, "ListPods")


BIG_LAYOUT = f"""
import os, sys
sys.path.insert(0, "{CHECKOUT}/tests")
from pathlib import Path
import imagebuild as ib
noise = os.urandom(1 << 20)
files = [ib.file(f"data/{{i:03}}", noise[i:] + noise[:i]) for i in range(200)]
ib.write_layout(Path("/tmp/big"), {{"1": ib.Image([ib.tar(files)], "gzip")}})
"""


def test_a_transfer_can_be_canceled_by_whom_may(bus_bed: Bed) -> None:
    bed = bus_bed
    bed.run("/usr/bin/python3", "-c", BIG_LAYOUT, timeout=300)
    bed.run(
        "sh", "-c", "cat >> /etc/podmgr/podmgr.toml", input='[images]\ninsecure = ["example.org"]\n'
    )
    monitor = subprocess.Popen(
        bed.command("timeout", "12", "busctl", "--json=short", "monitor", "org.podmgr1"),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    number, path = reply(
        busctl(bed, "ImportImage", "ss", "oci:/tmp/big:1", "example.org/big/app:1")
    )
    assert isinstance(path, str)
    refused = busctl(
        bed, "Cancel", path=path, interface="org.podmgr1.Transfer", user="alice", check=False
    )
    assert "org.podmgr1.manage-images" in refused.stderr
    busctl(bed, "Cancel", path=path, interface="org.podmgr1.Transfer")
    out, _ = monitor.communicate(timeout=60)
    removed = [
        json.loads(line)["payload"]["data"]
        for line in out.splitlines()
        if '"member":"TransferRemoved"' in line
    ]
    assert [number, path, "canceled"] in removed
    [images] = reply(busctl(bed, "ListImages"))
    assert isinstance(images, list)
    assert not [image for image in images if image[0] == "example.org/big/app:1"]
