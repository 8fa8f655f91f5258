# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr auto-update against a real registry on 127.0.0.1 in a bed: a dry run, an update
that restarts a pod once for all its changed apps, a run with nothing to do, a broken
image rolled back with the pod left on the old one, an unsigned image refused, and the
shipped service doing an update."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from bed import Bed
from test_registry import (
    SIGSTORE,
    TLS,
    auth_json,
    push,
    serve_signed_registries,
    set_auth,
    set_config,
)

pytestmark = pytest.mark.integration

CHECKOUT = Path(__file__).resolve().parent.parent
ROOTFS = "/tmp/rootfs"
X = f"{TLS}/shop/x:stable"  # apps a and b of pod web
Y = f"{TLS}/shop/y:stable"  # app c of pod web, and app d of pod solo

# Images that say which they are when they start, and one whose command fails at once.
BUILD = f"""
import sys
sys.path.insert(0, "{CHECKOUT}/tests")
from pathlib import Path
import imagebuild as ib
base = ib.tar(ib.tree(Path("{ROOTFS}")))
say = ["/bin/sh", "-c", "echo started $(cat /etc/version); exec sleep infinity"]
images = {{
    f"{{name}}{{n}}": ib.Image(
        [base, ib.tar([ib.file("etc/version", f"{{name}}{{n}}".encode())])], "gzip", {{"Cmd": say}}
    )
    for name in ("x", "y")
    for n in (1, 2, 3)
}}
images["broken"] = ib.Image(
    [base, ib.tar([ib.file("etc/version", b"broken")])],
    "gzip",
    {{"Cmd": ["/bin/sh", "-c", "echo broken; exit 3"]}},
)
images["missing"] = ib.Image(
    [base, ib.tar([ib.file("etc/version", b"missing")])],
    "gzip",
    {{"Cmd": ["/bin/no-such-program"]}},
)
ib.write_layout(Path("/tmp/au/layout"), images)
"""
WEB = textwrap.dedent(f"""\
    [pod]
    restart = "on-failure"          # a broken app is restarted until its start limit

    [app.a]
    image = "{X}"
    auto_update = "registry"

    [app.b]
    image = "{X}"
    auto_update = "registry"

    [app.c]
    image = "{Y}"
    auto_update = "registry"
    """)
SOLO = f'[app.d]\nimage = "{Y}"\n'  # not auto-updated: its pod is left alone


def fingerprint(bed: Bed) -> str:
    return bed.run(
        "sh",
        "-c",
        "gpg --with-colons --list-keys release@shop.example | awk -F: '/^fpr/ {print $10; exit}'",
        env={"GNUPGHOME": "/tmp/gnupg"},
    ).stdout.strip()


def publish(bed: Bed, image: str, target: str, signed: bool = True) -> None:
    options = ["--sign-by", fingerprint(bed)] if signed else []
    push(bed, f"oci:/tmp/au/layout:{image}", target, *options)


def show(bed: Bed, unit: str, prop: str) -> str:
    return bed.run("systemctl", "show", "-P", prop, unit).stdout.strip()


def version(bed: Bed, app: str, pod: str = "web") -> str:
    """What the running app sees as /etc/version: the image it runs now."""
    pid = show(bed, f"podapp@{pod}:{app}.service", "MainPID")
    assert pid != "0", f"{app} does not run"
    return str(bed.run("cat", f"/proc/{pid}/root/etc/version").stdout)


def stored(bed: Bed, name: str) -> str:
    return str(json.loads(bed.run("podmgr", "image", "inspect", name).stdout)["manifest"])


def registry(bed: Bed, name: str) -> str:
    """The manifest digest the registry's tag names, as skopeo reads it."""
    out = bed.run(
        "skopeo", "inspect", "--creds", "shop:secret", "--format", "{{.Digest}}", f"docker://{name}"
    )
    return out.stdout.strip()


def auto_update(bed: Bed, *options: str) -> tuple[int, list[dict[str, Any]]]:
    result = bed.run("podmgr", "auto-update", "--json", *options, check=False, timeout=300)
    assert result.stderr == "", result.stderr
    return result.returncode, json.loads(result.stdout)


def journal(bed: Bed, since: int, *matches: str) -> list[dict[str, Any]]:
    """Journal entries matching ``matches`` after the time ``since`` (µs; journalctl 252's
    --after-cursor finds nothing together with matches)."""
    bed.run("journalctl", "--sync")
    out = bed.run("journalctl", "--no-pager", "-o", "json", *matches).stdout
    found = [json.loads(line) for line in out.splitlines()]
    return [e for e in found if int(e["__REALTIME_TIMESTAMP"]) > since]


def started(bed: Bed, since: int, app: str, expected: int = 0) -> list[str]:
    """What app of pod web said when it started, since ``since``: waiting up to 10 s for
    ``expected`` lines (journald reads a stream asynchronously)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [
            str(e["MESSAGE"])
            for e in journal(bed, since, "_TRANSPORT=stdout", "PODMGR_POD=web", f"PODMGR_APP={app}")
        ]
        if len(lines) >= expected or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def cursor(bed: Bed) -> int:
    """Now, as the journal's timestamps count it."""
    bed.run("journalctl", "--sync")
    [entry] = journal(bed, 0, "-n", "1")
    return int(entry["__REALTIME_TIMESTAMP"])


def entries(bed: Bed, since: int) -> list[dict[str, Any]]:
    """The service's auto-update journal entries since ``since``."""
    return [
        e for e in journal(bed, since, "SYSLOG_IDENTIFIER=podmgr1") if "PODMGR_AUTO_UPDATE" in e
    ]


def rows(reply: list[dict[str, Any]], pod: str = "web") -> dict[str, dict[str, Any]]:
    return {row["app"]: row for row in reply if row["pod"] == pod}


def wait_active(bed: Bed, unit: str) -> None:
    deadline = time.monotonic() + 30
    while show(bed, unit, "ActiveState") != "active":
        assert time.monotonic() < deadline, f"{unit} did not become active"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def au_bed(bed: Bed) -> Bed:
    serve_signed_registries(bed)
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run("mkdir", "-p", "/tmp/au")
    bed.run("/usr/bin/python3", "-c", BUILD, timeout=300)
    set_config(
        bed,
        f"""
        [registry."{TLS}"]
        lookaside = "file://{SIGSTORE}"

        [auto_update]
        timeout = "30s"
        """,
    )
    set_auth(bed, auth_json())
    bed.run("podmgr", "trust", "add", "--yes", "--prefix", f"{TLS}/shop", "/tmp/release.asc")
    publish(bed, "x1", X)
    publish(bed, "y1", Y)
    for name in (X, Y):
        bed.run("podmgr", "image", "pull", name, timeout=300)
    bed.run("sh", "-c", "cat > /etc/podmgr/pods/web.toml", input=WEB)
    bed.run("sh", "-c", "cat > /etc/podmgr/pods/solo.toml", input=SOLO)
    bed.run("systemctl", "daemon-reload")
    bed.run("podmgr", "start", "web")
    bed.run("podmgr", "start", "solo")
    assert [version(bed, app) for app in "abc"] == ["x1", "x1", "y1"]
    return bed


def test_a_dry_run_reports_and_changes_nothing(au_bed: Bed) -> None:
    bed = au_bed
    before = {name: stored(bed, name) for name in (X, Y)}
    invocation = show(bed, "pod@web.service", "InvocationID")
    assert auto_update(bed, "--dry-run") == (
        0,
        [
            {"pod": "web", "app": app, "image": image, "old": before[image], "new": before[image]}
            | {"result": "unchanged"}
            for app, image in (("a", X), ("b", X), ("c", Y))
        ],
    )
    publish(bed, "x2", X)
    publish(bed, "y2", Y)
    status, reply = auto_update(bed, "--dry-run")
    assert status == 0
    assert {app: (r["old"], r["new"], r["result"]) for app, r in rows(reply).items()} == {
        "a": (before[X], registry(bed, X), "available"),
        "b": (before[X], registry(bed, X), "available"),
        "c": (before[Y], registry(bed, Y), "available"),
    }
    assert {name: stored(bed, name) for name in (X, Y)} == before
    assert show(bed, "pod@web.service", "InvocationID") == invocation
    assert [version(bed, app) for app in "abc"] == ["x1", "x1", "y1"]


def test_an_update_restarts_the_pod_once_on_the_new_images(au_bed: Bed) -> None:
    bed = au_bed
    old = {name: stored(bed, name) for name in (X, Y)}
    invocation = show(bed, "pod@web.service", "InvocationID")
    solo = show(bed, "pod@solo.service", "InvocationID")
    since = cursor(bed)
    status, reply = auto_update(bed)
    assert status == 0, reply
    new = {X: registry(bed, X), Y: registry(bed, Y)}
    assert {app: (r["old"], r["new"], r["result"]) for app, r in rows(reply).items()} == {
        "a": (old[X], new[X], "updated"),
        "b": (old[X], new[X], "updated"),
        "c": (old[Y], new[Y], "updated"),
    }
    assert {name: stored(bed, name) for name in (X, Y)} == new
    assert show(bed, "pod@web.service", "InvocationID") != invocation
    assert [version(bed, app) for app in "abc"] == ["x2", "x2", "y2"]
    # Restarted once: each app started once since, on its new image.
    assert {app: started(bed, since, app, 1) for app in "abc"} == {
        "a": ["started x2"],
        "b": ["started x2"],
        "c": ["started y2"],
    }
    # A pod without auto_update is left alone, though it runs image y: until it restarts,
    # it runs what it was started with.
    assert show(bed, "pod@solo.service", "InvocationID") == solo
    assert version(bed, "d", "solo") == "y1"
    [entry] = [e for e in entries(bed, since) if e["PODMGR_POD"] == "web"]
    assert entry["PODMGR_AUTO_UPDATE"] == "updated"
    assert entry["PRIORITY"] == "6"
    assert sorted(entry["PODMGR_IMAGE"]) == sorted([X, Y])
    assert sorted(entry["PODMGR_IMAGE_NEW"]) == sorted(new.values())
    assert f"{X} {old[X]} -> {new[X]}: updated" in entry["MESSAGE"]


def test_a_run_with_nothing_new_does_nothing(au_bed: Bed) -> None:
    bed = au_bed
    invocation = show(bed, "pod@web.service", "InvocationID")
    since = cursor(bed)
    status, reply = auto_update(bed)
    assert status == 0
    assert {r["result"] for r in reply} == {"unchanged"}
    assert show(bed, "pod@web.service", "InvocationID") == invocation
    assert {app: started(bed, since, app) for app in "abc"} == {"a": [], "b": [], "c": []}
    out = bed.run("podmgr", "auto-update").stdout
    assert "web/a  " + X in out
    assert out.count("unchanged") == 3


@pytest.mark.parametrize("broken", ["broken", "missing"])
def test_a_broken_image_is_rolled_back(au_bed: Bed, broken: str) -> None:
    """Whether its command exits at once or does not exist, the pod does not come up on
    the new image: it runs on the old one again, which its tag names again."""
    bed = au_bed
    good = stored(bed, X)
    publish(bed, broken, X)
    bad = registry(bed, X)
    since = cursor(bed)
    status, reply = auto_update(bed)
    assert status == 1
    by_app = rows(reply)
    for app in "ab":
        assert (by_app[app]["old"], by_app[app]["new"]) == (good, bad)
        assert by_app[app]["result"].startswith("rolled-back: pod web did not come up on it: ")
        assert "podapp@web:" in by_app[app]["result"]
    assert by_app["c"]["result"] == "unchanged"
    # The tag points at the old image again, and the pod runs it.
    assert stored(bed, X) == good
    wait_active(bed, "pod@web.service")
    assert [version(bed, app) for app in "abc"] == ["x2", "x2", "y2"]
    said = started(bed, since, "a", 2 if broken == "broken" else 1)
    assert said[-1] == "started x2"
    assert set(said[:-1]) <= {"broken"}
    [entry] = [e for e in entries(bed, since) if e["PODMGR_POD"] == "web"]
    assert entry["PODMGR_AUTO_UPDATE"] == "rolled-back"
    assert entry["PRIORITY"] == "3"
    assert f"{X} {good} -> {bad}: rolled-back" in entry["MESSAGE"]
    # The broken image is kept as removed, for [gc] grace; gc --grace 0 frees it.
    record = json.loads(
        bed.run("sh", "-c", f"cat /var/lib/podmgr/removed/*@{bad[7:]}.json").stdout
    )["record"]
    top = f"/var/lib/podmgr/layers/sha256/{record['layers'][-1][7:]}"
    bed.run("podmgr", "gc")
    assert bed.run("test", "-d", top, check=False).returncode == 0
    bed.run("podmgr", "gc", "--grace", "0")
    assert bed.run("test", "-e", top, check=False).returncode == 1
    # The D-Bus reply says what the command says.
    publish(bed, "x2", X)  # the registry has the good image again
    reply_bus = bed.run(
        "busctl",
        "--json=short",
        "--timeout=300",
        "call",
        "org.podmgr1",
        "/org/podmgr1",
        "org.podmgr1.Manager",
        "AutoUpdate",
        "b",
        "true",
    ).stdout
    assert [row[5] for row in json.loads(reply_bus)["data"][0]] == ["unchanged"] * 3


def test_an_unsigned_image_is_refused_and_the_pod_runs_on(au_bed: Bed) -> None:
    bed = au_bed
    before = stored(bed, Y)
    invocation = show(bed, "pod@web.service", "InvocationID")
    publish(bed, "y3", Y, signed=False)
    status, reply = auto_update(bed)
    assert status == 1
    result = rows(reply)["c"]["result"]
    assert result.startswith("failed: ")
    assert "unsigned" in result
    assert stored(bed, Y) == before
    assert show(bed, "pod@web.service", "InvocationID") == invocation
    assert version(bed, "c") == "y2"


def test_the_shipped_service_updates(au_bed: Bed) -> None:
    bed = au_bed
    invocation = show(bed, "pod@web.service", "InvocationID")
    publish(bed, "y3", Y)  # now signed
    bed.run("systemctl", "start", "podmgr-auto-update.service", timeout=300)
    assert show(bed, "podmgr-auto-update.service", "Result") == "success"
    assert stored(bed, Y) == registry(bed, Y)
    assert show(bed, "pod@web.service", "InvocationID") != invocation
    assert version(bed, "c") == "y3"
    said = bed.run(
        "journalctl",
        "--no-pager",
        "-o",
        "cat",
        "-u",
        "podmgr-auto-update.service",
        "_TRANSPORT=stdout",
    ).stdout
    assert f"web/c  {Y}" in said
    assert "updated" in said
