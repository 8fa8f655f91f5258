# SPDX-License-Identifier: LGPL-2.1-or-later
"""A Pod object per manifest, its properties kept current from systemd's signals.

The service keeps one table of the ActiveState of every pod and app unit: filled by one
ListUnitsByPatterns when the pods are scanned, then updated from the PropertiesChanged
signals systemd sends for units, which carry ActiveState when it changes.  So listing a
thousand pods asks systemd nothing, and a pod's State and Apps change with its units
(and emit PropertiesChanged in turn).  Manifests are scanned when the service starts,
after systemd finishes a reload, after CreatePod, UpdatePod and RemovePod, and when a
manifest file changes on disk (watch.py); a pod whose file changed (its stamp: inode, size,
times) emits PropertiesChanged for what the manifest decides.  A pod's manifest is read
and parsed only when a property that needs it is asked for.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from podmgr import names, paths
from podmgr.bus import api
from podmgr.bus.binding import implements
from podmgr.bus.callers import Caller, may_read
from podmgr.bus.dbuslib import Message, MessageType
from podmgr.bus.dispatch import Dispatcher
from podmgr.bus.watch import ManifestWatch
from podmgr.errors import ManifestError, Problem
from podmgr.manifest import lookup
from podmgr.network import joining

if TYPE_CHECKING:
    from podmgr.manifest.model import Manifest
from podmgr.bus.systemd import SYSTEMD, UNIT, Systemd

log = logging.getLogger(__name__)

UNIT_PATHS = "/org/freedesktop/systemd1/unit"
# An app's states in which its health checks run.
RUNNING = ("active", "activating", "reloading")
GENERATOR_DIR = Path("/run/systemd/generator")


def stamp(path: str) -> tuple[object, ...]:
    """What changes when a manifest file is written, replaced, moved or chmod'ed."""
    try:
        info = os.stat(path)
    except OSError as error:
        return (path, error.errno)
    return (path, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class PodObject:
    """The org.podmgr1.Pod properties of one pod (read by the dispatcher)."""

    def __init__(self, pod: str, manifest_path: str, pods: Pods) -> None:
        self.pod = pod
        self.path = manifest_path
        self.pods = pods
        self.stamp = stamp(manifest_path)
        self._parsed: Manifest | None = None  # None: does not load, or not read
        self._problems: list[Problem] = []
        self._text = b""
        self._read = False
        self._health: tuple[str, list[list[str]]] | None = None  # as last signalled

    def _manifest(self) -> Manifest | None:
        if not self._read:
            from podmgr.manifest import model  # noqa: PLC0415 -- parsed only on demand, see above

            self._read = True
            try:
                self._text = Path(self.path).read_bytes()
            except OSError:
                self._text = b""  # load says why
            try:
                self._parsed, self._problems = model.load(Path(self.path)), []
            except ManifestError as error:
                self._parsed, self._problems = None, error.problems
        return self._parsed

    def forget_manifest(self) -> None:
        self._parsed, self._problems, self._text, self._read = None, [], b"", False
        self.stamp = stamp(self.path)

    @implements(api.POD, "Name")
    def name(self) -> str:
        return self.pod

    @implements(api.POD, "State")
    def state(self) -> str:
        unit = names.pod_unit(self.pod)
        if unit not in self.pods.generated and self._manifest() is None:
            return "invalid"
        return self.pods.unit_states.get(unit, "inactive")

    @implements(api.POD, "Unit")
    def unit(self) -> str:
        return names.pod_unit(self.pod)

    @implements(api.POD, "Apps")
    def apps(self) -> list[list[str]]:
        parsed = self._manifest()
        if parsed is None:
            return []
        return [
            [
                app,
                names.app_unit(self.pod, app),
                self.pods.unit_states.get(names.app_unit(self.pod, app), "inactive"),
            ]
            for app in parsed.apps
        ]

    @implements(api.POD, "Images")
    def images(self) -> list[str]:
        parsed = self._manifest()
        return sorted({a.image for a in parsed.apps.values() if a.image}) if parsed else []

    @implements(api.POD, "Addresses")
    def addresses(self) -> list[str]:
        from podmgr.manifest.schema import NetworkMode  # noqa: PLC0415 -- loaded with the manifest

        parsed = self._manifest()
        if self.state() != "active" or parsed is None or parsed.network.kind is NetworkMode.HOST:
            return []  # the host's network is the host's
        return [address for _, address in joining.addresses(self.pod)] + ["127.0.0.1", "::1"]

    @implements(api.POD, "ManifestPath")
    def manifest_path(self) -> str:
        return self.path

    @implements(api.POD, "Annotations")
    def annotations(self) -> dict[str, str]:
        parsed = self._manifest()
        return dict(parsed.pod.annotations) if parsed else {}

    @implements(api.POD, "Problems")
    def problems(self, caller: Caller) -> list[list[str]]:
        self._manifest()
        if not may_read(self.path, caller):
            hidden = f"not shown: {self.path} is not readable by you"
            return [[problem.where, hidden] for problem in self._problems]
        return [[problem.where, problem.message] for problem in self._problems]

    @implements(api.POD, "Manifest")
    def manifest(self, caller: Caller) -> str:
        self._manifest()
        return self._text.decode(errors="replace") if may_read(self.path, caller) else ""

    @implements(api.POD, "ManifestDigest")
    def manifest_digest(self, caller: Caller) -> str:
        self._manifest()
        return hashlib.sha256(self._text).hexdigest() if may_read(self.path, caller) else ""

    @implements(api.POD, "Health")
    def health(self) -> str:
        return worst_health(self.app_health())

    @implements(api.POD, "AppHealth")
    def app_health(self) -> list[list[str]]:
        """Read from the state files of the apps' checks (runtime/health.py): asking
        runs no check."""
        parsed = self._manifest()
        checked = [a.name for a in parsed.apps.values() if a.health] if parsed else []
        if not checked:
            return []
        from podmgr.runtime import health  # noqa: PLC0415 -- pods with checks only

        runtime = paths.PodRuntime(self.pod)
        found = []
        for app in checked:
            status = health.status(runtime, app)
            running = self.pods.unit_states.get(names.app_unit(self.pod, app)) in RUNNING
            shown = status if running or status is health.Status.UNHEALTHY else ""
            found.append([app, str(shown)])
        return found

    def health_changes(self) -> list[str]:
        """Health and AppHealth if they changed since last asked (they are signalled only
        then: every check's unit changes state, few change the health)."""
        apps = self.app_health()
        now = (worst_health(apps), apps)
        if now == self._health:
            return []
        self._health = now
        return ["Health", "AppHealth"]

    @implements(api.POD, "Ports")
    def ports(self) -> list[list[object]]:
        parsed = self._manifest()
        if parsed is None:
            return []
        return [[p.host_ip, p.host_port, p.pod_port, p.protocol] for p in parsed.network.ports]


def worst_health(apps: list[list[str]]) -> str:
    """The pod's Health from its AppHealth rows; "" without loading the checks' code
    when none of its apps has a check."""
    if not apps:
        return ""
    from podmgr.runtime import health  # noqa: PLC0415 -- pods with checks only

    return health.worst([status for _, status in apps])


# What a change of the manifest file can change.
FROM_MANIFEST = [
    "State",
    "Apps",
    "Images",
    "Addresses",
    "ManifestPath",
    "Annotations",
    "Problems",
    "Manifest",
    "ManifestDigest",
    "Ports",
    "Health",
    "AppHealth",
]


def unit_of_path(path: str) -> str:
    """systemd's object path of a unit back to its name (sd_bus_path_decode)."""
    encoded = path.removeprefix(UNIT_PATHS + "/")
    return re.sub(r"_([0-9a-f]{2})", lambda m: chr(int(m[1], 16)), encoded)


def pod_of_unit(unit: str) -> str | None:
    if match := re.fullmatch(r"pod@([^:]+)\.service|podapp@([^:]+):[^:]+\.service", unit):
        return match[1] or match[2]
    return None


def pod_of_health_unit(unit: str) -> str | None:
    """The pod of an app's health check unit or failure counter (names.py)."""
    if match := re.fullmatch(r"podhealth(?:-[a-z]+)?@([^:]+):[^:]+\.service", unit):
        return match[1]
    return None


class Pods:
    def __init__(self, dispatcher: Dispatcher, systemd: Systemd) -> None:
        self.dispatcher = dispatcher
        self.systemd = systemd
        self.objects: dict[str, PodObject] = {}
        self.unit_states: dict[str, str] = {}
        self.generated: set[str] = set()  # pod units the generator wrote a drop-in for
        self.watch = ManifestWatch(lambda: self.dispatcher.spawn(self.rescan()))
        # Told the pod's name when one of its apps becomes active (machined.py).
        self.on_app_active: Callable[[str], None] | None = None

    async def start(self) -> None:
        self.dispatcher.bus.add_message_handler(self._on_signal)
        self.watch.start()
        # In one round trip: each is a call the service would otherwise wait for, in
        # turn, before it serves the call that started it.
        await asyncio.gather(
            # Only the Unit interface's changes (arg0, the interface): systemd signals
            # every property of every unit, and with many pods starting the rest would
            # wake the service thousands of times for nothing.
            self.systemd.add_match(
                f"type='signal',sender='{SYSTEMD}',member='PropertiesChanged',"
                f"path_namespace='{UNIT_PATHS}',arg0='{UNIT}'"
            ),
            self.systemd.add_match(f"type='signal',sender='{SYSTEMD}',member='Reloading'"),
            self.systemd.subscribe(),
        )
        await self.rescan()

    async def rescan(self) -> None:
        """Pods from the manifest directories; unit states from one call to systemd."""
        self.watch.watch(paths.MANIFEST_DIRS)
        found = lookup.find_manifests()
        # The generator wrote a drop-in for every manifest it accepted.
        try:
            self.generated = {
                entry.removesuffix(".d")
                for entry in os.listdir(GENERATOR_DIR)
                if entry.startswith("pod@") and entry.endswith(".service.d")
            }
        except FileNotFoundError:
            self.generated = set()
        for gone in set(self.objects) - set(found):
            self.dispatcher.unexport(api.pod_path(gone))
            del self.objects[gone]
            self.dispatcher.emit(
                api.MANAGER_PATH, api.MANAGER, "PodRemoved", gone, api.pod_path(gone)
            )
        changed = []
        for name, path in found.items():
            if name not in self.objects:
                self.objects[name] = PodObject(name, str(path), self)
                self.dispatcher.export(api.pod_path(name), api.POD, self.objects[name])
                self.dispatcher.emit(
                    api.MANAGER_PATH, api.MANAGER, "PodNew", name, api.pod_path(name)
                )
            pod = self.objects[name]
            before = pod.stamp
            pod.path = str(path)
            pod.forget_manifest()
            if pod.stamp != before:
                changed.append(name)
        states = await self.systemd.list_units(["pod@*.service", "podapp@*.service"])
        self.unit_states = {unit: state.active_state for unit, state in states.items()}
        for name in changed:
            if name in self.objects:
                self.dispatcher.properties_changed(api.pod_path(name), api.POD, FROM_MANIFEST)

    async def refresh(self, pod: str) -> None:
        """Read the state of one pod's units again (after a job on it)."""
        states = await self.systemd.list_units([names.pod_unit(pod), names.app_unit(pod, "*")])
        for unit in [u for u in self.unit_states if pod_of_unit(u) == pod]:
            self.unit_states.pop(unit)
        self.unit_states.update({unit: state.active_state for unit, state in states.items()})
        changed = ["State", "Apps", "Addresses"]
        if pod in self.objects:
            changed += self.objects[pod].health_changes()
        self.dispatcher.properties_changed(api.pod_path(pod), api.POD, changed)

    def _on_signal(self, message: Message) -> bool:
        if message.message_type is not MessageType.SIGNAL:
            return False
        if message.member == "Reloading" and message.body == [False]:
            self.dispatcher.spawn(self.rescan())
        elif (
            message.member == "PropertiesChanged"
            and message.path
            and message.body
            and message.body[0] == UNIT
            and "ActiveState" in message.body[1]
        ):
            unit = unit_of_path(message.path)
            pod = pod_of_unit(unit)
            if pod in self.objects:
                state = self.unit_states[unit] = message.body[1]["ActiveState"].value
                changed = ["State", "Addresses"] if unit == names.pod_unit(pod) else ["Apps"]
                changed += self.objects[pod].health_changes()
                self.dispatcher.properties_changed(api.pod_path(pod), api.POD, changed)
                if state == "active" and unit != names.pod_unit(pod) and self.on_app_active:
                    self.on_app_active(pod)
            elif (pod := pod_of_health_unit(unit)) in self.objects and (
                changed := self.objects[pod].health_changes()
            ):
                # A check or its failure counter finished: the state files say what changed.
                self.dispatcher.properties_changed(api.pod_path(pod), api.POD, changed)
        return False
