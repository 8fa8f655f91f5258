# SPDX-License-Identifier: LGPL-2.1-or-later
"""Socket units: ``[[app.NAME.socket]]`` as systemd.socket(5) units that pass their
listening sockets to the app (sd_listen_fds(3)).

For app "web" of pod "shop" with sockets of fd_name "web" (the default) and "admin":

    podsocket@shop:web:web.socket     ListenStream=..., Service=podapp@shop:web.service
    podsocket@shop:web:admin.socket
    sockets.target.wants/podsocket@shop:web:web.socket   with activate = true

How they tie to the pod and the app:

- The app unit has Sockets= (systemd passes their fds to its main process: LISTEN_FDS,
  LISTEN_PID, LISTEN_FDNAMES) and Requires= of its socket units, so it never runs
  without them.  The fds of different socket units come in no fixed order: an app finds
  them by name, in LISTEN_FDNAMES (FileDescriptorName=).
- activate = true (only in the host's namespace): the socket listens from boot, as an
  enabled socket unit in sockets.target does.  The first connection starts the app,
  whose BindsTo=/After= pod@POD.service prepare the pod first, and the pod then starts
  its other apps; meanwhile the connection waits in the socket's listen queue, so it is
  served.  Stopping the pod leaves the socket listening, as systemd does for any
  socket-activated service: the next connection starts the pod again.
- activate = false: PartOf=pod@POD.service: the socket starts when its app does and
  stops with the pod.
- namespace = "pod": NetworkNamespacePath= of the pod's namespace, which exists only
  while the pod is prepared: BindsTo= and After= pod@POD.service.
"""

from __future__ import annotations

from dataclasses import dataclass

from podmgr import names, paths
from podmgr.generator.unitfile import UnitFile, escape_specifiers
from podmgr.manifest.model import App, Manifest, Socket
from podmgr.manifest.socketkeys import SocketNamespace, SocketType
from podmgr.manifest.sockets import socket_name

SOCKETS_TARGET = "sockets.target"


@dataclass(frozen=True)
class SocketUnit:
    """One socket unit of an app, with the targets that want it."""

    name: str
    unit: UnitFile
    wanted_by: tuple[str, ...]  # targets whose .wants/ links it, as if enabled


def _by_name(app: App) -> dict[str, list[Socket]]:
    """The app's sockets by socket unit: those of one fd_name are one unit, in order."""
    units: dict[str, list[Socket]] = {}
    for socket in app.sockets:
        units.setdefault(socket_name(app, socket), []).append(socket)
    return units


def app_settings(unit: UnitFile, manifest: Manifest, app: App) -> None:
    """What the app unit needs to get its sockets' fds: Sockets=, and Requires= (Sockets=
    alone only wants them)."""
    sockets = [names.socket_unit(manifest.name, app.name, name) for name in _by_name(app)]
    unit.add_words("Unit", "Requires", sockets)
    unit.add_words("Service", "Sockets", sockets)


def socket_units(
    manifest: Manifest, comment: list[str], source_path: str | None
) -> list[SocketUnit]:
    """The socket units of every app of ``manifest``, with the header ``comment`` and
    SourcePath= of its other units."""
    return [
        _socket_unit(manifest, app, name, sockets, comment, source_path)
        for app in manifest.apps.values()
        for name, sockets in _by_name(app).items()
    ]


def _socket_unit(
    manifest: Manifest,
    app: App,
    name: str,
    sockets: list[Socket],
    comment: list[str],
    source_path: str | None,
) -> SocketUnit:
    pod = manifest.name
    # The model checks that the sockets of one fd_name agree on these.
    in_pod = sockets[0].namespace is SocketNamespace.POD
    activate = sockets[0].activate
    unit = UnitFile(list(comment))
    unit.add("Unit", "Description", f"Socket {name} of app {app.name} of pod {pod}")
    unit.add("Unit", "Documentation", "man:podmgr.toml(5)")
    unit.add("Unit", "SourcePath", source_path)
    if in_pod:
        # Not the default Before=sockets.target: the pod is after basic.target, which is
        # after sockets.target, so at boot that would be an ordering cycle.  The pod's
        # own default dependencies order this after sysinit.target and stop it at
        # shutdown.
        unit.add("Unit", "DefaultDependencies", False)
        unit.add("Unit", "BindsTo", names.pod_unit(pod))
        unit.add("Unit", "After", names.pod_unit(pod))
    elif not activate:
        unit.add("Unit", "PartOf", names.pod_unit(pod))

    section = "Socket"
    for socket in sockets:
        key = "ListenStream" if socket.type is SocketType.STREAM else "ListenDatagram"
        unit.add(section, key, escape_specifiers(str(socket.listen)))
    if in_pod:
        unit.add(section, "NetworkNamespacePath", str(paths.PodRuntime(pod).netns))
    unit.add(section, "FileDescriptorName", name)
    unit.add(section, "Service", names.app_unit(pod, app.name))
    if any(socket.listen.path for socket in sockets):
        # A unix socket's file goes with its socket unit, as the pod's files go with it.
        unit.add(section, "RemoveOnStop", True)
    return SocketUnit(
        names.socket_unit(pod, app.name, name), unit, (SOCKETS_TARGET,) if activate else ()
    )
