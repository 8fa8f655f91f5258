# SPDX-License-Identifier: LGPL-2.1-or-later
"""Host user records for the uids and gids that only an app's rootfs knows.

systemd 252 looks up User= and Group= numbers in the host's user database and refuses to
start a service whose uid is not there ("Failed to determine user credentials").  An
app's user usually exists only in its own /etc/passwd, so prepare makes such ids known
the systemd way: drop-in user and group records in /run/userdb/, which nss-systemd
serves to the whole host (https://systemd.io/USER_RECORD/, nss-systemd(8)).  They are
named podmgr-ID, so `ps` on the host shows which processes run as a pod's user.

Each prepared pod lists the ids it registered in its runtime dir; release removes the
records that no other prepared pod still lists.  A lock serializes pods that start and
stop at the same time.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from podmgr import locks, paths
from podmgr.errors import PrepareError

USERDB_DIR = Path("/run/userdb")
LOCK = paths.RUN_DIR / "userdb.lock"
IDS_FILE = "userdb-ids.json"  # in a pod's runtime dir

USER = "user"
GROUP = "group"


@contextmanager
def _locked() -> Iterator[None]:
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with locks.flocked(LOCK):
        yield


def _record_name(kind: str, number: int) -> str:
    return f"podmgr-{number}.{kind}"


def _is_ours(kind: str, number: int) -> bool:
    link = USERDB_DIR / f"{number}.{kind}"
    return link.is_symlink() and os.readlink(link) == _record_name(kind, number)


def _host_knows(kind: str, number: int) -> bool:
    try:
        (pwd.getpwuid if kind == USER else grp.getgrgid)(number)
    except KeyError:
        return False
    return True


def _write_record(kind: str, number: int) -> None:
    name = f"podmgr-{number}"
    if kind == USER:
        record = {
            "userName": name,
            "uid": number,
            "gid": number,
            "homeDirectory": "/",
            "shell": "/usr/sbin/nologin",
            "disposition": "container",
            "realName": "user of a podmgr pod",
        }
    else:
        record = {"groupName": name, "gid": number, "disposition": "container"}
    USERDB_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    target = USERDB_DIR / _record_name(kind, number)
    temp = target.with_name(f".{target.name}.tmp")
    temp.write_text(json.dumps(record) + "\n")
    temp.chmod(0o644)
    temp.rename(target)
    link = USERDB_DIR / f"{number}.{kind}"
    link_temp = link.with_name(f".{link.name}.tmp")
    link_temp.unlink(missing_ok=True)
    link_temp.symlink_to(target.name)
    link_temp.rename(link)


def register(runtime_dir: Path, ids: set[tuple[str, int]]) -> None:
    """Make every (kind, number) in ``ids`` resolvable on the host; remember ours."""
    registered = []
    with _locked():
        for kind, number in sorted(ids):
            if not _is_ours(kind, number):
                if _host_knows(kind, number):
                    continue
                _write_record(kind, number)
            registered.append([kind, number])
            if not _host_knows(kind, number):
                raise PrepareError(
                    f"{kind} {number} is not known to the host, and the host does not read "
                    f'{USERDB_DIR} (install libnss-systemd and add "systemd" to the passwd '
                    "and group lines of /etc/nsswitch.conf)"
                )
        (runtime_dir / IDS_FILE).write_text(json.dumps(registered))


def _listed(runtime_dir: Path) -> set[tuple[str, int]]:
    try:
        return {(kind, number) for kind, number in json.loads((runtime_dir / IDS_FILE).read_text())}
    except FileNotFoundError:
        return set()


def unregister(runtime_dir: Path) -> None:
    """Remove the records only this pod used."""
    with _locked():
        ours = _listed(runtime_dir)
        for other in runtime_dir.parent.iterdir():
            if other != runtime_dir:
                ours -= _listed(other)
        for kind, number in ours:
            if _is_ours(kind, number):
                (USERDB_DIR / f"{number}.{kind}").unlink(missing_ok=True)
                (USERDB_DIR / _record_name(kind, number)).unlink(missing_ok=True)
        (runtime_dir / IDS_FILE).unlink(missing_ok=True)
