# SPDX-License-Identifier: LGPL-2.1-or-later
"""The pod's network and IPC namespaces, pinned by bind mounts under /run.

systemd joins them through NetworkNamespacePath= and IPCNamespacePath=; nothing has to
run in them for them to live.  A short-lived child unshares, brings loopback up, and
waits while the parent bind-mounts its /proc/PID/ns/* files onto the pin files.

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
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: unshare, report, wait to be pinned
        status = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            if _libc.unshare(sum(flags[kind] for kind in pins)) != 0:
                raise OSError(ctypes.get_errno(), "unshare")
            if "net" in pins:
                _loopback_up()
            os.write(ready_w, b"ok")
            os.read(done_r, 1)
            status = 0
        except OSError as error:
            os.write(ready_w, str(error).encode())
        finally:
            os._exit(status)
    os.close(ready_w)
    os.close(done_r)
    try:
        report = os.read(ready_r, 4096).decode()
        if report != "ok":
            raise OSError(f"cannot create namespaces: {report}")
        for kind, pin in pins.items():
            pin.parent.mkdir(parents=True, exist_ok=True)
            pin.touch(mode=0o444)
            mounts.mount(f"/proc/{pid}/ns/{kind}", pin, flags=mounts.MS_BIND)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)
