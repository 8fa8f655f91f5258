# SPDX-License-Identifier: LGPL-2.1-or-later
"""User and group of an app, looked up in the app's own /etc/passwd and /etc/group.

systemd looks up User= and Group= names on the host, which would be wrong for an app
with its own rootfs; so names are resolved here, from the rootfs, and the generated unit
carries numbers.  Numbers need no lookup, except for the default group of a user, which
follows the OCI runtime's rule: the user's group from /etc/passwd, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from podmgr.rootfs import Source


@dataclass(frozen=True)
class Credentials:
    uid: int
    gid: int
    name: str | None  # from the rootfs's /etc/passwd, for $USER and $LOGNAME
    home: str | None  # from the rootfs's /etc/passwd, for $HOME


class UnknownName(Exception):
    """A user or group name the rootfs does not know; ``key`` is "user" or "group"."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _entries(data: bytes | None) -> list[list[str]]:
    if data is None:
        return []
    text = data.decode("utf-8", errors="replace")
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve(user: str | int, group: str | int | None, passwd: bytes | None,
            group_file: bytes | None, root: str = "the rootfs") -> Credentials:
    """Pure: numeric credentials given the app's passwd and group files; ``root`` names
    the rootfs in messages."""
    users = [e for e in _entries(passwd) if len(e) >= 7 and e[2].isdigit() and e[3].isdigit()]
    if isinstance(user, int):
        entry = next((e for e in users if int(e[2]) == user), None)
        uid = user
    else:
        entry = next((e for e in users if e[0] == user), None)
        if entry is None and passwd is None:
            raise UnknownName("user", f"cannot look up user {user!r}: {root} has no "
                              "/etc/passwd (create it, or use a numeric uid)")
        if entry is None:
            raise UnknownName("user", f"user {user!r} is not in /etc/passwd of {root} (add "
                              "the user there, or use a numeric uid)")
        uid = int(entry[2])
    gid = int(entry[3]) if entry else 0
    if isinstance(group, int):
        gid = group
    elif group is not None:
        groups = [e for e in _entries(group_file) if len(e) >= 3 and e[2].isdigit()]
        match = next((e for e in groups if e[0] == group), None)
        if match is None:
            raise UnknownName("group", f"group {group!r} is not in /etc/group of {root} (add "
                              "the group there, or use a numeric gid)")
        gid = int(match[2])
    return Credentials(uid, gid, entry[0] if entry else None, entry[5] if entry else None)


def lookup(user: str | int, group: str | int | None, source: Source) -> Credentials:
    """Resolve ``user`` and ``group`` in ``source``, reading its files only if needed."""
    needs_passwd = not (isinstance(user, int) and isinstance(group, int))
    passwd = source.read_file("etc/passwd") if needs_passwd else None
    group_file = source.read_file("etc/group") if isinstance(group, str) else None
    return resolve(user, group, passwd, group_file, source.describe())
