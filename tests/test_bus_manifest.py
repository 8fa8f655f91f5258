# SPDX-License-Identifier: LGPL-2.1-or-later
"""A pod's manifest through the real service, in a bed: busctl reads its text, digest,
problems and ports (root, and a user who may read less), UpdatePodIfUnchanged writes only
over the file the caller read, a file edited on disk is signalled, and the CLI shows it
all (podmgr list, status, cat)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time

import pytest
from bed import Bed
from test_bus import CHECKOUT, ROOTFS, as_user, busctl

pytestmark = pytest.mark.integration

POD = f'[app.main]\nrootfs = "{ROOTFS}"\nexec = ["/bin/sleep", "infinity"]\n'
PORTS = POD + '[network]\nmode = "bridge"\nports = ["127.0.0.1:8080:80", "5353:53/udp"]\n'
SECRET = POD + '[app.main.environment]\nTOKEN = "hunter2"\n'
BROKEN = "[app.main\nexec = 1\n"  # not TOML
WRONG = '[app.main]\nexec = "x"\n'  # TOML, but not a manifest


@pytest.fixture(scope="module")
def manifest_bed(bed: Bed) -> Bed:
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run("useradd", "--create-home", "alice")
    bed.run("groupadd", "--system", "podmgr")
    bed.run("useradd", "--create-home", "--groups", "podmgr", "bob")  # manages pods
    rules = "/etc/polkit-1/rules.d/50-podmgr.rules"
    bed.run("install", "-m", "644", f"{CHECKOUT}/polkit/50-podmgr.rules", rules)
    for name, text in (("web", PORTS), ("vault", SECRET), ("broken", BROKEN), ("wrong", WRONG)):
        bed.run("sh", "-c", f"cat > /etc/podmgr/pods/{name}.toml", input=text)
    bed.run("chmod", "600", "/etc/podmgr/pods/vault.toml")
    bed.run("systemctl", "daemon-reload")
    return bed


def prop(bed: Bed, pod: str, name: str, user: str | None = None) -> object:
    argv = ["busctl", "--json=short", "get-property", "org.podmgr1", f"/org/podmgr1/pod/{pod}"]
    result = bed.run(*as_user(user, [*argv, "org.podmgr1.Pod", name]))
    return json.loads(result.stdout)["data"]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_manifest_is_read_as_its_file_allows(manifest_bed: Bed) -> None:
    bed = manifest_bed
    assert prop(bed, "web", "Manifest") == PORTS
    assert prop(bed, "web", "ManifestDigest") == sha256(PORTS)
    assert prop(bed, "web", "Manifest", user="alice") == PORTS  # 0644: anyone may
    assert prop(bed, "web", "Ports") == [["127.0.0.1", 8080, 80, "tcp"], ["", 5353, 53, "udp"]]
    assert prop(bed, "web", "Problems") == []
    # 0600, for the secret in its environment: root reads it, alice learns nothing.
    assert prop(bed, "vault", "Manifest") == SECRET
    assert prop(bed, "vault", "Manifest", user="alice") == ""
    assert prop(bed, "vault", "ManifestDigest", user="alice") == ""
    everything = bed.run(
        *as_user(
            "alice",
            [
                "busctl",
                "--json=short",
                "call",
                "org.podmgr1",
                "/org/podmgr1/pod/vault",
                "org.freedesktop.DBus.Properties",
                "GetAll",
                "s",
                "org.podmgr1.Pod",
            ],
        )
    ).stdout
    assert "hunter2" not in everything
    assert sha256(SECRET) not in everything
    # bob may replace any manifest (polkit allows him manage-pods): he may read them.
    deadline = time.monotonic() + 30  # polkitd reads the rule asynchronously
    while prop(bed, "vault", "Manifest", user="bob") != SECRET:
        assert time.monotonic() < deadline, "bob never got the text"
        time.sleep(0.2)
    assert prop(bed, "vault", "ManifestDigest", user="bob") == sha256(SECRET)
    refused = bed.run("runuser", "-u", "alice", "--", "podmgr", "cat", "vault", check=False)
    assert refused.returncode == 1
    assert refused.stderr == (
        "podmgr: /etc/podmgr/pods/vault.toml: permission denied (it is not readable by "
        "you; run podmgr cat as its owner or as root)\n"
    )
    # As systemctl cat prints units.
    shown = bed.run("podmgr", "cat", "web", "vault").stdout
    assert shown == f"# /etc/podmgr/pods/web.toml\n{PORTS}\n# /etc/podmgr/pods/vault.toml\n{SECRET}"


def test_invalid_manifests_are_listed_with_their_problems(manifest_bed: Bed) -> None:
    bed = manifest_bed
    [pods] = json.loads(busctl(bed, "ListPods").stdout)["data"]
    assert ["broken", "invalid", "/org/podmgr1/pod/broken"] in pods
    assert ["wrong", "invalid", "/org/podmgr1/pod/wrong"] in pods
    problems = prop(bed, "broken", "Problems")
    assert isinstance(problems, list)
    [[where, message]] = problems
    assert where.startswith("line 1, column ")
    assert "fix the TOML syntax here" in message
    wrong = prop(bed, "wrong", "Problems")
    assert ["app.main.exec", "expected an array of strings like [...], got a string"] in wrong  # type: ignore[operator]
    listing = bed.run("podmgr", "list").stdout
    assert "\n        /etc/podmgr/pods/broken.toml: line 1, column " in listing, listing
    assert "/etc/podmgr/pods/wrong.toml: app.main.exec: expected an array" in listing, listing
    listed = json.loads(bed.run("podmgr", "list", "--json").stdout)
    [broken] = [p for p in listed if p["name"] == "broken"]
    assert broken["state"] == "invalid"
    assert broken["problems"][0]["key"].startswith("line 1, column ")
    assert all(p["problems"] == [] for p in listed if p["state"] != "invalid")
    status = bed.run("podmgr", "status", "wrong").stdout
    assert "Problems: /etc/podmgr/pods/wrong.toml: app.main.exec: expected" in status, status
    web = bed.run("podmgr", "status", "web").stdout
    assert "Ports: 127.0.0.1:8080:80/tcp\n             5353:53/udp\n" in web, web


def test_update_if_unchanged_writes_only_over_what_was_read(manifest_bed: Bed) -> None:
    bed = manifest_bed
    path = "/etc/podmgr/pods/web.toml"
    digest = str(prop(bed, "web", "ManifestDigest"))
    edited = PORTS + "# edited\n"
    # A caller polkit does not allow manage-pods is refused; nothing is written.
    denied = busctl(
        bed, "UpdatePodIfUnchanged", "sss", "web", digest, edited, user="alice", check=False
    )
    assert "org.podmgr1.manage-pods" in denied.stderr, denied.stderr
    # A digest that is not one: a clear argument error, before anything.
    bad = busctl(bed, "UpdatePodIfUnchanged", "sss", "web", "xyz", edited, check=False)
    assert bad.stderr.strip() == (
        "Call failed: 'xyz' is not a sha256 digest (give the 64 hex digits of the pod's "
        "ManifestDigest property)"
    ), bad.stderr
    # Someone else's change since: ManifestChanged, and their file stays as it is.
    theirs = PORTS + "# theirs\n"
    bed.run("sh", "-c", f"cat > {path}", input=theirs)
    changed = busctl(bed, "UpdatePodIfUnchanged", "sss", "web", digest, edited, check=False)
    assert changed.returncode != 0
    assert f"{path} changed since it was read" in changed.stderr, changed.stderr
    assert bed.run("cat", path).stdout == theirs
    # With the digest of what is there now, it is written.
    busctl(bed, "UpdatePodIfUnchanged", "sss", "web", sha256(theirs), edited)
    assert bed.run("cat", path).stdout == edited
    assert prop(bed, "web", "ManifestDigest") == sha256(edited)
    # An invalid manifest is refused as UpdatePod refuses it.
    invalid = busctl(bed, "UpdatePodIfUnchanged", "sss", "web", sha256(edited), WRONG, check=False)
    assert "app.main.exec" in invalid.stderr
    assert bed.run("cat", path).stdout == edited


def test_a_manifest_edited_on_disk_is_signalled(manifest_bed: Bed) -> None:
    """No daemon-reload, no call: the service notices the file and emits
    PropertiesChanged, with the values anyone may see and the others invalidated."""
    bed = manifest_bed
    busctl(bed, "ListPods")  # the service runs
    monitor = subprocess.Popen(
        bed.command(
            "timeout",
            "6",
            "busctl",
            "--json=short",
            "monitor",
            "--match",
            "type='signal',path='/org/podmgr1/pod/web',member='PropertiesChanged'",
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)
        bed.run(
            "sh",
            "-c",
            "cat > /etc/podmgr/pods/web.toml.new && "
            "mv /etc/podmgr/pods/web.toml.new /etc/podmgr/pods/web.toml",
            input=BROKEN,
        )
    finally:
        out, _ = monitor.communicate(timeout=30)
    signals = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert signals, out
    interface, changed, invalidated = signals[0]["payload"]["data"]
    assert interface == "org.podmgr1.Pod"
    assert {"Manifest", "ManifestDigest", "Problems"} <= set(invalidated)
    assert changed["Ports"]["data"] == []
    assert prop(bed, "web", "ManifestDigest") == sha256(BROKEN)
    assert prop(bed, "web", "Problems") != []


def test_an_update_keeps_the_files_mode_and_owner(manifest_bed: Bed) -> None:
    """A manifest made 0600 for its secrets (or given to a group) stays so when the
    service replaces it, as an editor keeps a file's mode."""
    bed = manifest_bed
    path = "/etc/podmgr/pods/vault.toml"
    bed.run("chown", "root:podmgr", path)
    bed.run("chmod", "640", path)
    busctl(bed, "UpdatePod", "ss", "vault", SECRET + "# one\n")
    assert bed.run("stat", "-c", "%a %U:%G", path).stdout == "640 root:podmgr\n"
    bed.run("chmod", "600", path)
    digest = sha256(SECRET + "# one\n")
    busctl(bed, "UpdatePodIfUnchanged", "sss", "vault", digest, SECRET + "# two\n")
    assert bed.run("stat", "-c", "%a %U:%G", path).stdout == "600 root:podmgr\n"
    assert prop(bed, "vault", "Manifest", user="alice") == ""
    # A new pod's file is as before: readable by all, as /etc's files are.
    busctl(bed, "CreatePod", "ss", "fresh", POD)
    assert (
        bed.run("stat", "-c", "%a %U:%G", "/etc/podmgr/pods/fresh.toml").stdout == "644 root:root\n"
    )
