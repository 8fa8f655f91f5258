# SPDX-License-Identifier: LGPL-2.1-or-later
"""Who calls, and what that caller could read itself.

The service runs as root, and reads need no authorization: so a property that shows a
file's content (a pod's Manifest) must not show more than the caller could read without
the service.  The bus daemon vouches for the caller's uid and groups
(GetConnectionCredentials); may_read() applies the permission bits of the file and of
every directory above it to them, as the kernel would for an open(2) by that caller.  A
caller whom polkit allows org.podmgr1.manage-pods without authentication may replace
any manifest (and run anything as root through one), so it may read them all.
An access ACL can deny what the bits allow, so a file or directory that has one counts
as readable by its owner only: the check errs on the side of saying no.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from dataclasses import dataclass

from podmgr.bus.dbuslib import Message, MessageBus, MessageType
from podmgr.errors import AccessDenied

ROOT = 0


@dataclass(frozen=True)
class Caller:
    uid: int
    gids: frozenset[int]
    # polkit allows it org.podmgr1.manage-pods without authentication: it may replace
    # any manifest (and so run anything as root), so it may read them too.
    manages_pods: bool = False


async def of(bus: MessageBus, sender: str) -> Caller:
    """The caller ``sender`` (a unique bus name) as the bus daemon knows it."""
    reply = await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="GetConnectionCredentials",
            signature="s",
            body=[sender],
        )
    )
    if reply is None or reply.message_type is not MessageType.METHOD_RETURN:
        raise AccessDenied(f"the bus cannot tell who {sender} is, so it is shown nothing private")
    credentials = reply.body[0]
    uid = int(credentials["UnixUserID"].value)
    if "UnixGroupIDs" in credentials:
        gids = frozenset(int(g) for g in credentials["UnixGroupIDs"].value)
    else:  # a bus daemon older than 1.12 does not say: the user database does
        try:
            entry = pwd.getpwuid(uid)
            gids = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
        except KeyError:
            gids = frozenset()
    return Caller(uid, gids)


def _has_acl(path: str) -> bool:
    try:
        os.getxattr(path, "system.posix_acl_access", follow_symlinks=False)
    except OSError as error:
        # No ACL, or none possible here; any other failure: as if it had one.
        return error.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP)
    return True


def _allows(path: str, caller: Caller, want: int) -> bool:
    """Whether the permission bits of ``path`` give ``caller`` ``want`` (4: read, 1:
    search), owner class first, as the kernel picks one class."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    if caller.uid == info.st_uid:
        shift = 6
    elif _has_acl(path):
        return False
    elif info.st_gid in caller.gids:
        shift = 3
    else:
        shift = 0
    return bool((info.st_mode >> shift) & want)


def _directories(path: str) -> list[str]:
    """Every directory above the absolute ``path``: /, /etc, /etc/podmgr, ..."""
    parts = path.strip("/").split("/")[:-1]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def may_read(path: str, caller: Caller) -> bool:
    """Whether ``caller`` may see the manifest at ``path``: if it could open the file for
    reading itself (root can; anyone else needs search permission on each directory of
    the path, and of the path its symlinks lead to, and read permission on the file), or
    if it manages pods anyway."""
    if caller.uid == ROOT or caller.manages_pods:
        return True
    absolute = os.path.abspath(path)
    real = os.path.realpath(absolute)
    try:
        if not stat.S_ISREG(os.stat(real).st_mode):
            return False
    except OSError:
        return False
    searched = set(_directories(absolute)) | set(_directories(real))
    return all(_allows(d, caller, 1) for d in sorted(searched)) and _allows(real, caller, 4)
