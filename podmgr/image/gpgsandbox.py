# SPDX-License-Identifier: LGPL-2.1-or-later
"""gpg in a sandbox: one confined process per verification (this is the parent's side;
gpgchild.py is the child's).

gpg parses what an image's publisher (or anyone on the way) wrote, as root in the
service.  So it never runs there: ``run()`` starts gpgchild as a process that confines
itself, then imports the keys and checks the signatures with python-gnupg, and answers
with gpg's own status lines, which signing.py judges.  The confinement, as
systemd-importd confines tar:

- a mount namespace of its own in which every mount is read-only (one recursive
  mount_setattr), except a fresh tmpfs that is GNUPGHOME (and TMPDIR), mounted on an
  empty directory the parent made and removes, and gone with the process; podmgr's
  store, runtime and configuration directories are hidden under empty read-only tmpfs
  mounts;
- every capability dropped from the bounding set and from the process itself, so nothing
  can mount anything back, and NoNewPrivileges, which gpg and everything it runs inherit.

A user who is not root (a user's `podmgr trust add` shows the key before asking) gets no
mount namespace: gpg then runs with NoNewPrivileges in a throwaway home.  As root, a
sandbox that cannot be made is an error: gpg never runs unconfined there (so
podmgr1.service must allow mount namespaces and mount_setattr).

``python3 -m podmgr.image.gpgchild`` reads the request as JSON on stdin; ``--exec HOME HIDDEN
ARGV`` confines itself the same way and executes ARGV (what tests probe the sandbox with).
One child costs about a Python start more than gpg alone; it checks all of an image's
signatures in one keyring.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import podmgr
from podmgr import paths
from podmgr.errors import PodmgrError

TIMEOUT = 120  # seconds for one batch; gpg takes milliseconds per signature
HIDDEN = (paths.STATE_DIR, paths.RUN_DIR, Path("/etc/podmgr"))
ENVIRONMENT = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}


class SandboxError(PodmgrError):
    code = "SignatureRejected"


@dataclass(frozen=True)
class Outcome:
    """What gpg said about one signature: its status lines and the signed data."""

    statuses: tuple[tuple[str, str], ...]
    data: bytes
    complaint: str = ""  # gpg's last message, when it gave no verdict


@dataclass(frozen=True)
class KeyDetails:
    fingerprint: str
    key_ids: tuple[str, ...]  # long key ids of the primary key and its subkeys
    expires: str  # seconds since the epoch, "" for never
    user_ids: tuple[str, ...]
    validity: str  # gpg's: "e" expired, "r" revoked, ...


@dataclass(frozen=True)
class Reply:
    keys: tuple[KeyDetails, ...]
    imported: int
    outcomes: tuple[Outcome, ...]
    confinement: dict[str, str]


def run(
    keys: list[bytes],
    signatures: list[bytes],
    detached: tuple[str, bytes] | None = None,
    list_keys: bool = False,
) -> Reply:
    """Import ``keys`` into a fresh keyring and check each of ``signatures`` (signed
    messages), and a ``detached`` (file, signature) pair, in a confined gpg.  The reply
    lists the keys when asked to, or when a signature is not simply good."""
    home = tempfile.mkdtemp(prefix="podmgr-gpg-")
    request = {
        "home": home,
        "hidden": [str(path) for path in HIDDEN],
        "keys": [_b64(key) for key in keys],
        "messages": [_b64(signature) for signature in signatures],
        "detached": [detached[0], _b64(detached[1])] if detached else None,
        "list_keys": list_keys,
    }
    try:
        # The one subprocess podmgr feeds on stdin: process.run() takes none.
        done = subprocess.run(
            [sys.executable, "-m", "podmgr.image.gpgchild"],
            input=json.dumps(request).encode(),
            capture_output=True,
            env=child_environment(),
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SandboxError(
            f"gpg did not answer within {TIMEOUT} s (signatures not checked)"
        ) from None
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        raise SandboxError(f"the gpg sandbox failed: {last}")
    try:
        answer = json.loads(done.stdout)
        return Reply(
            tuple(
                KeyDetails(
                    str(k["fingerprint"]),
                    tuple(k["key_ids"]),
                    str(k["expires"]),
                    tuple(k["user_ids"]),
                    str(k["validity"]),
                )
                for k in answer["keys"]
            ),
            int(answer["imported"]),
            tuple(
                Outcome(
                    tuple((str(s[0]), str(s[1])) for s in o["statuses"]),
                    base64.b64decode(o["data"]),
                    str(o["complaint"]),
                )
                for o in answer["outcomes"]
            ),
            dict(answer["confinement"]),
        )
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise SandboxError(f"the gpg sandbox answered nonsense ({error!r})") from None


def child_environment() -> dict[str, str]:
    """The child's environment: nothing of the service's but where podmgr is."""
    return {**ENVIRONMENT, "PYTHONPATH": str(Path(podmgr.__file__).resolve().parent.parent)}


def exec_argv(home: str, argv: list[str]) -> list[str]:
    """How to run ``argv`` confined as gpg is, with ``home`` (an empty directory) as its
    only writable place (run it with child_environment()): for probing the sandbox."""
    return [
        sys.executable,
        "-m",
        "podmgr.image.gpgchild",
        "--exec",
        home,
        ",".join(str(path) for path in HIDDEN),
        *argv,
    ]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
