# SPDX-License-Identifier: LGPL-2.1-or-later
"""The keys of [[app.NAME.socket]]: socket activation (generator/sockets.py).  Part of
the key table in ``schema.py``."""

from __future__ import annotations

import enum

from podmgr import names
from podmgr.manifest.listen import ListenAddress
from podmgr.tables import Key, Section
from podmgr.values import Boolean, Choice, String


class SocketType(enum.StrEnum):
    STREAM = "stream"  # ListenStream=: TCP, or a unix stream socket
    DATAGRAM = "datagram"  # ListenDatagram=: UDP, or a unix datagram socket


class SocketNamespace(enum.StrEnum):
    HOST = "host"
    POD = "pod"


SOCKET = Section(
    "socket",
    "sockets",
    "A socket systemd listens on and passes to the app: its main process gets the fds "
    "from fd 3 on, with LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES (sd_listen_fds(3)). "
    "Each fd_name of an app is one socket unit, podsocket@POD:APP:FD_NAME.socket, whose "
    "fds come in the order of its tables; those of different units come in no fixed "
    "order, so an app with several finds them by name. Repeat the table for more sockets.",
    (
        Key(
            "listen",
            ListenAddress(),
            'A port on every address ("8080"), an IP address and port ("127.0.0.1:8080", '
            '"[::1]:8080") or the absolute path of a unix socket ("/run/web.sock", at most '
            "107 bytes).",
            required=True,
            example='"127.0.0.1:8080"',
        ),
        Key(
            "type",
            Choice(SocketType),
            '"stream" (ListenStream=: TCP, or a unix stream socket) or "datagram" '
            "(ListenDatagram=: UDP, or a unix datagram socket).",
            default="stream",
        ),
        Key(
            "namespace",
            Choice(SocketNamespace),
            '"host": the socket listens in the host\'s network namespace; "pod": in the '
            "pod's (NetworkNamespacePath=), so it is there only while the pod is prepared, "
            "and it is reached from the pod's apps or through its address. A unix socket is "
            'in the file system, so always "host".',
            default="host",
        ),
        Key(
            "activate",
            Boolean(),
            "Listen from boot (the socket unit is in sockets.target) and start the pod on "
            "the first connection, which waits until the app accepts it. "
            "systemctl stop pod@NAME leaves the socket listening, so the next connection "
            "starts the pod again; stop the socket unit to stop that. false: the socket "
            'starts and stops with the pod. Only with namespace = "host".',
            default=False,
        ),
        Key(
            "fd_name",
            String(names.NAME_PATTERN.pattern, names.NAME_HINT, "file descriptor name"),
            "The name the app sees in LISTEN_FDNAMES (FileDescriptorName=); defaults to "
            "the app's name. Sockets of one app with the same fd_name are one socket unit, "
            "so they must agree on namespace and activate.",
            example='"http"',
        ),
    ),
    array=True,
)
