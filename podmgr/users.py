# SPDX-License-Identifier: LGPL-2.1-or-later
"""User and group of an app, looked up in the app's own /etc/passwd and /etc/group.

systemd looks up User= and Group= names on the host, which would be wrong for an app
with its own rootfs; so names are resolved here, from the rootfs, and the generated unit
carries numbers.  Numbers need no lookup, except for the default group of a user, which
follows the OCI runtime's rule: the user's group from /etc/passwd, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from podmgr.errors import ManifestError, Problem
from podmgr.manifest import App, Manifest
from podmgr.rootfs import Source, source_of


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


def resolve(app: App, passwd: bytes | None, group: bytes | None, root: str = "the rootfs"
            ) -> Credentials:
    """Pure: the numeric credentials of ``app`` given its rootfs's passwd and group files;
    ``root`` names the rootfs in messages."""
    users = [e for e in _entries(passwd) if len(e) >= 7 and e[2].isdigit() and e[3].isdigit()]
    if isinstance(app.user, int):
        entry = next((e for e in users if int(e[2]) == app.user), None)
        uid = app.user
    else:
        entry = next((e for e in users if e[0] == app.user), None)
        if entry is None and passwd is None:
            raise UnknownName("user", f"cannot look up user {app.user!r}: {root}/etc/passwd "
                              "does not exist (create the rootfs, or use a numeric uid)")
        if entry is None:
            raise UnknownName("user", f"user {app.user!r} is not in {root}/etc/passwd (add "
                              "the user to the rootfs, or use a numeric uid)")
        uid = int(entry[2])
    gid = int(entry[3]) if entry else 0
    if isinstance(app.group, int):
        gid = app.group
    elif app.group is not None:
        groups = [e for e in _entries(group) if len(e) >= 3 and e[2].isdigit()]
        match = next((e for e in groups if e[0] == app.group), None)
        if match is None:
            raise UnknownName("group", f"group {app.group!r} is not in {root}/etc/group (add "
                              "the group to the rootfs, or use a numeric gid)")
        gid = int(match[2])
    return Credentials(uid, gid, entry[0] if entry else None, entry[5] if entry else None)


def credentials(manifest: Manifest) -> dict[str, Credentials]:
    """Resolve every app's user and group, reading the rootfs only where a name needs it."""
    problems = []
    result = {}
    for app in manifest.apps.values():
        source: Source = source_of(app)
        needs_passwd = not (isinstance(app.user, int) and isinstance(app.group, int))
        try:
            passwd = source.read_file("etc/passwd") if needs_passwd else None
            group = source.read_file("etc/group") if isinstance(app.group, str) else None
            result[app.name] = resolve(app, passwd, group, app.rootfs)
        except UnknownName as error:
            problems.append(Problem(f"app.{app.name}.{error.key}", str(error)))
        except OSError as error:
            problems.append(Problem(f"app.{app.name}.rootfs",
                                    f"cannot read {app.rootfs}: {error.strerror}"))
    if problems:
        raise ManifestError(manifest.path, problems)
    return result
