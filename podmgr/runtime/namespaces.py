# SPDX-License-Identifier: LGPL-2.1-or-later
"""The pod's network and IPC namespaces, pinned by bind mounts under /run.

systemd joins them through NetworkNamespacePath= and IPCNamespacePath=; nothing has to
run in them for them to live.  A short-lived thread unshares (network and IPC namespaces
belong to a thread, not to the process), brings loopback up, bind-mounts its own
/proc/thread-self/ns/* files onto the pin files and ends.  A thread rather than a child
process: forking the service copies its page tables, which costs more than the rest of
it, and a fork of a process with threads may inherit a lock some other thread held.

Loopback is raised with one ioctl rather than pyroute2: this runs in a fresh process on
every pod start, and importing pyroute2 alone takes longer than starting a pod.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from pathlib import Path

from podmgr.runtime import mounts
from podmgr.threads import in_own_thread

CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = "16sH22x"  # struct ifreq: name, then ifr_flags in the union

_libc = ctypes.CDLL(None, use_errno=True)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(_IFREQ, b"lo", 0)
        flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | IFF_UP))


def create(pins: dict[str, Path]) -> None:
    """Create new namespaces and pin them; ``pins`` maps "net"/"ipc" to the pin file."""
    flags = {"net": CLONE_NEWNET, "ipc": CLONE_NEWIPC}

    def pin() -> None:  # in a thread of its own, whose namespaces end with it
        if _libc.unshare(sum(flags[kind] for kind in pins)) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"cannot create namespaces: unshare: {os.strerror(code)}")
        if "net" in pins:
            _loopback_up()
        for kind, path in pins.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o444)
            mounts.mount(f"/proc/thread-self/ns/{kind}", path, flags=mounts.MS_BIND)

    in_own_thread(pin, "podmgr-namespaces")
