# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the [[app.NAME.socket]] tables of a manifest may say together: one socket unit per
fd_name, addresses that do not overlap, namespaces that exist."""

from __future__ import annotations

from typing import TYPE_CHECKING

from podmgr.errors import Problem
from podmgr.manifest.listen import Listen, Taken
from podmgr.manifest.schema import Isolation, NetworkMode
from podmgr.manifest.socketkeys import SocketNamespace, SocketType
from podmgr.values import toml_key

if TYPE_CHECKING:  # model imports this module
    from podmgr.manifest.model import App, Manifest, Socket


def socket_name(app: App, socket: Socket) -> str:
    """The socket's fd_name, or the app's name: its FileDescriptorName= and the last part
    of its socket unit's name."""
    return socket.fd_name or app.name


def check(manifest: Manifest) -> list[Problem]:
    problems = []
    # The addresses taken so far: a file system's paths, and each type of socket in each
    # namespace; the pod's published ports are taken in the host's first.
    taken: dict[tuple[SocketType, SocketNamespace] | None, Taken] = {}
    if manifest.network.kind is NetworkMode.BRIDGE:
        for index, port in enumerate(manifest.network.ports):
            kind = SocketType.STREAM if port.protocol == "tcp" else SocketType.DATAGRAM
            # Published ports are IPv4 (the pods' addresses are), on every address by default.
            published = Listen(address=port.host_ip or "0.0.0.0", port=port.host_port)  # noqa: S104
            place = taken.setdefault((kind, SocketNamespace.HOST), Taken())
            place.take(published, f"network.ports[{index}]")
    for app in manifest.apps.values():
        # The first socket of each of the app's socket units, with its key path.
        units: dict[str, tuple[Socket, str]] = {}
        for index, socket in enumerate(app.sockets):
            where = f"app.{toml_key(app.name)}.socket[{index}]"
            problems.extend(_check_socket(manifest, socket, where))
            name = socket_name(app, socket)
            first, first_where = units.setdefault(name, (socket, where))
            for key in ("namespace", "activate"):
                if getattr(first, key) != getattr(socket, key):
                    problems.append(
                        Problem(
                            f"{where}.{key}",
                            f"differs from {first_where}.{key}, a socket of the same fd_name "
                            f"({name!r}), and both are one socket unit (give this one "
                            "another fd_name)",
                        )
                    )
            place = taken.setdefault(
                None if socket.listen.path else (socket.type, socket.namespace), Taken()
            )
            if other := place.overlapped(socket.listen):
                problems.append(Problem(f"{where}.listen", _overlap(socket.listen, other)))
            place.take(socket.listen, f"{socket.listen} of {where}")
    return problems


def _overlap(listen: Listen, other: str) -> str:
    """What is wrong with ``listen``, which overlaps the address labelled ``other``."""
    if other.startswith("network.ports"):
        return (
            f"{listen} is published to the pod by {other}, which takes its connections "
            'first (listen on another port, or remove the port and listen with namespace = "pod")'
        )
    return f"{listen} overlaps {other}, and both cannot listen (listen on another port or address)"


def _check_socket(manifest: Manifest, socket: Socket, where: str) -> list[Problem]:
    problems = []
    in_pod = socket.namespace is SocketNamespace.POD
    if in_pod and socket.listen.path:
        problems.append(
            Problem(
                f"{where}.namespace",
                "a unix socket is in the file system, not in a network namespace "
                '(remove namespace = "pod")',
            )
        )
    elif in_pod and manifest.pod.isolation is Isolation.FLY:
        problems.append(
            Problem(
                f"{where}.namespace",
                'with isolation = "fly" the apps use the host\'s network, so the pod has no '
                'namespace of its own (set namespace = "host")',
            )
        )
    elif in_pod and manifest.network.kind is NetworkMode.HOST:
        problems.append(
            Problem(
                f"{where}.namespace",
                'the pod uses the host\'s network (mode = "host"), so it has no namespace '
                'of its own (set namespace = "host")',
            )
        )
    if in_pod and socket.activate:
        problems.append(
            Problem(
                f"{where}.activate",
                "a socket in the pod's namespace exists only once the pod is prepared, so a "
                'connection to it cannot start the pod (set namespace = "host", or remove '
                "activate)",
            )
        )
    return problems
