# SPDX-License-Identifier: LGPL-2.1-or-later
"""gpg runs confined: NoNewPrivileges, no capabilities, and nowhere to write but its home.

The probes run in the very sandbox gpgsandbox.run() puts gpg in (gpgchild --exec), as
gpg itself and as a program that reports what the kernel says of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from signing_keys import Key, Keyring

from podmgr.image import gpgsandbox

ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true", reason="the mount namespace needs root"
)

PROBE = """
import json, os, sys
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines())
def can_write(path):
    try:
        with open(path, "w") as file:
            file.write("x")
        return True
    except OSError as error:
        return error.strerror
print(json.dumps({"no_new_privs": status["NoNewPrivs"].strip(),
                  "bounding": status["CapBnd"].strip(), "effective": status["CapEff"].strip(),
                  "outside": can_write(sys.argv[1]), "home": can_write(sys.argv[2]),
                  "hidden": {d: os.listdir(d) for d in sys.argv[3:] if os.path.isdir(d)}}))
"""


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Keyring, Key]]:
    ring = Keyring(tmp_path_factory.mktemp("gnupg") / "home")
    yield ring, ring.make("sandbox")
    ring.close()


def confined(home: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        gpgsandbox.exec_argv(str(home), argv),
        capture_output=True,
        text=True,
        env=gpgsandbox.child_environment(),
        check=False,
    )


@ROOT_ONLY
def test_what_runs_in_the_sandbox_has_no_privileges_and_one_writable_place(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    hidden = [str(path) for path in gpgsandbox.HIDDEN]
    probe = confined(
        home,
        [sys.executable, "-c", PROBE, str(tmp_path / "outside"), str(home / "inside"), *hidden],
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert seen["no_new_privs"] == "1"
    assert seen["bounding"] == seen["effective"] == "0000000000000000"
    assert seen["outside"] == "Read-only file system"
    assert seen["home"] is True
    assert all(entries == [] for entries in seen["hidden"].values())  # the store is not seen
    assert not (tmp_path / "outside").exists()
    assert not (home / "inside").exists()  # the home was a tmpfs of the sandbox's own


@ROOT_ONLY
def test_gpg_itself_cannot_write_outside_its_home(
    tmp_path: Path, signer: tuple[Keyring, Key]
) -> None:
    _, key = signer
    (tmp_path / "key.asc").write_bytes(key.armored)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--yes", "--dearmor", "--output"]
    outside = confined(home, [*gpg, str(tmp_path / "key.gpg"), str(tmp_path / "key.asc")])
    assert outside.returncode != 0
    assert "Read-only file system" in outside.stderr
    assert not (tmp_path / "key.gpg").exists()
    inside = confined(home, [*gpg, str(home / "key.gpg"), str(tmp_path / "key.asc")])
    assert inside.returncode == 0, inside.stderr


@ROOT_ONLY
def test_verification_runs_confined(signer: tuple[Keyring, Key]) -> None:
    ring, key = signer
    signature = ring.sign_simple(key, "sha256:" + "a" * 64, "example.org/a:1")
    reply = gpgsandbox.run([key.armored], [signature])
    assert reply.confinement["mount_namespace"] == "yes"
    assert reply.confinement["no_new_privs"] == "1"
    assert reply.confinement["capability_bounding_set"] == "0000000000000000"
    assert not Path(reply.confinement["home"]).exists()  # removed after
    [outcome] = reply.outcomes
    assert ("GOODSIG", f"{key.fingerprint[-16:]} sandbox <sandbox@example.org>") in outcome.statuses
    assert b"example.org/a:1" in outcome.data


def test_without_privileges_gpg_still_gets_no_new_privileges(signer: tuple[Keyring, Key]) -> None:
    """A user's `podmgr trust add` reads the key before asking: no mount namespace then,
    but NoNewPrivileges and a throwaway home."""
    _, key = signer
    script = (
        "import sys; from podmgr.image import gpgsandbox; "
        "r = gpgsandbox.run([sys.stdin.buffer.read()], [], list_keys=True); "
        "print(r.confinement['mount_namespace'], r.confinement['no_new_privs'], "
        "r.keys[0].fingerprint)"
    )
    user = (
        []
        if os.geteuid() != 0
        else ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    )
    done = subprocess.run(
        [*user, sys.executable, "-c", script],
        input=key.armored,
        capture_output=True,
        check=False,
        env={**gpgsandbox.child_environment(), "HOME": "/nonexistent"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ["no", "1", key.fingerprint]
