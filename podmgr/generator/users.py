# SPDX-License-Identifier: LGPL-2.1-or-later
"""User and group of an app, looked up in the app's own /etc/passwd and /etc/group.

systemd looks up User= and Group= names on the host, which would be wrong for an app
with its own rootfs; so names are resolved here, from the rootfs, and the generated unit
carries numbers.  Numbers need no lookup, except for the default group of a user, which
follows the OCI runtime's rule: the user's group from /etc/passwd, else 0.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from podmgr import limits, values
from podmgr.generator.rootfs import Source


@dataclass(frozen=True)
class Credentials:
    """The numeric user and group an app runs as, with its name and home if known."""

    uid: int
    gid: int
    name: str | None  # from the rootfs's /etc/passwd, for $USER and $LOGNAME
    home: str | None  # from the rootfs's /etc/passwd, for $HOME


class UnknownName(Exception):
    """A user or group name the rootfs does not know; ``key`` is "user" or "group"."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@functools.lru_cache(maxsize=4)  # the generator looks up the apps of a rootfs in turn
def _entries(data: bytes | None, fields: int) -> tuple[tuple[str, ...], ...]:
    """The entries of a passwd or group file with at least ``fields`` fields.  Lines end
    at "\n" only, as glibc reads them; a field may then hold any other character, and
    is checked where it is used."""
    if data is None:
        return ()
    text = data.decode("utf-8", errors="replace")
    return tuple(
        tuple(fields_)
        for line in text.split("\n")
        if line and not line.startswith("#") and len(fields_ := line.split(":")) >= fields
    )


def _number(text: str) -> int | None:
    """A uid or gid field: ASCII digits (not str.isdigit(), which "\u00b2" passes), any
    number systemd takes (limits.is_valid_id); None for anything else."""
    if not re.fullmatch(r"[0-9]{1,10}", text):
        return None
    number = int(text)
    return number if limits.is_valid_id(number) else None


def _id_of(entry: tuple[str, ...], index: int, where: tuple[str, str, str], root: str) -> int:
    """Field ``index`` of ``entry`` as a number systemd takes, else UnknownName; ``where``
    is (the manifest key, the field's name, the file) for the message."""
    number = _number(entry[index])
    if number is None:
        key, field_name, file = where
        raise UnknownName(
            key,
            f"{key} {entry[0]!r} has {field_name} "
            f"{values.shown(entry[index])} in {file} of {root}, which is not a "
            f"number systemd takes ({limits.ID_HINT}; fix the file, or use a "
            "numeric id)",
        )
    return number


def resolve(
    user: str | int,
    group: str | int | None,
    passwd: bytes | None,
    group_file: bytes | None,
    root: str = "the rootfs",
) -> Credentials:
    """Pure: numeric credentials given the app's passwd and group files; ``root`` names
    the rootfs in messages.  Only valid numbers leave here: a uid systemd refuses in a
    file is an error when the entry is used, and ignored when looking up by number."""
    users = _entries(passwd, 7)
    if isinstance(user, int):
        entry = next((e for e in users if _number(e[2]) == user), None)
        uid = user
    else:
        entry = next((e for e in users if e[0] == user), None)
        if entry is None and passwd is None:
            raise UnknownName(
                "user",
                f"cannot look up user {user!r}: {root} has no "
                "/etc/passwd (create it, or use a numeric uid)",
            )
        if entry is None:
            raise UnknownName(
                "user",
                f"user {user!r} is not in /etc/passwd of {root} (add "
                "the user there, or use a numeric uid)",
            )
        uid = _id_of(entry, 2, ("user", "uid", "/etc/passwd"), root)
    gid = 0
    if entry and group is None:
        gid = _id_of(entry, 3, ("user", "gid", "/etc/passwd"), root)
    if isinstance(group, int):
        gid = group
    elif group is not None:
        groups = _entries(group_file, 3)
        match = next((e for e in groups if e[0] == group), None)
        if match is None:
            raise UnknownName(
                "group",
                f"group {group!r} is not in /etc/group of {root} (add "
                "the group there, or use a numeric gid)",
            )
        gid = _id_of(match, 2, ("group", "gid", "/etc/group"), root)
    name = home = None
    if entry:
        # $USER, $LOGNAME and $HOME: any text an environment variable holds, as a container
        # engine sets them, but a name only if it is one (a uid's entry may hold anything)
        # and a home only if it could be a path.
        name = entry[0] if values.USER_NAME.fullmatch(entry[0]) else None
        home = (
            entry[5]
            if limits.is_text(entry[5]) and len(entry[5].encode()) < limits.PATH_MAX
            else None
        )
    return Credentials(uid, gid, name, home or None)


def lookup(user: str | int, group: str | int | None, source: Source) -> Credentials:
    """Resolve ``user`` and ``group`` in ``source``, reading its files only if needed."""
    needs_passwd = not (isinstance(user, int) and isinstance(group, int))
    passwd = source.read_file("etc/passwd") if needs_passwd else None
    group_file = source.read_file("etc/group") if isinstance(group, str) else None
    return resolve(user, group, passwd, group_file, source.describe())
