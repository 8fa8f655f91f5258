# SPDX-License-Identifier: LGPL-2.1-or-later
"""mount(2) and umount2(2) and the mount table, for prepare and release (host paths
opened literally are in hostpaths.py).

Called through ctypes rather than mount(8): prepare runs on every pod start, and a
process per mount would cost more than the mounts.
"""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def mount(
    source: str, target: Path, fstype: str | None = None, flags: int = 0, options: str | None = None
) -> None:
    _check(
        _libc.mount(
            source.encode(),
            bytes(target),
            fstype.encode() if fstype else None,
            flags,
            options.encode() if options else None,
        ),
        f"mount {source} on {target}",
    )


def umount(target: Path) -> None:
    """Detach ``target``: it goes now, and the file system once nothing uses it."""
    _check(_libc.umount2(bytes(target), MNT_DETACH), f"umount {target}")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mount_points_under(
    directory: Path, mountinfo: Path = Path("/proc/self/mountinfo")
) -> list[Path]:
    """Mount points at or below ``directory``, deepest first, so they can be unmounted in order."""
    prefix = str(directory).rstrip("/") + "/"
    found = []
    for line in mountinfo.read_text().splitlines():
        point = _unescape(line.split(" ")[4])
        if point == str(directory) or point.startswith(prefix):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)
