# SPDX-License-Identifier: LGPL-2.1-or-later
"""A Pod object per manifest, its properties kept current from systemd's signals.

While the service runs it listens to systemd: PropertiesChanged of the pods' and apps'
units refreshes that pod's State and Apps (and emits PropertiesChanged in turn), and the
end of a daemon-reload rescans the manifests, emitting PodNew and PodRemoved.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from dbus_next.constants import MessageType
from dbus_next.message import Message

from podmgr import generator, manifest, names
from podmgr.bus import api
from podmgr.bus.dispatch import Dispatcher
from podmgr.errors import ManifestError
from podmgr.systemd import SYSTEMD, Systemd

log = logging.getLogger(__name__)

UNIT_PATHS = "/org/freedesktop/systemd1/unit"


class PodObject:
    """The org.podmgr1.Pod properties of one pod (read by the dispatcher)."""

    def __init__(self, pod: str, manifest_path: str) -> None:
        self.pod = pod
        self.path = manifest_path
        self.state_value = "inactive"
        self.app_states: list[tuple[str, str, str]] = []
        self.image_names: list[str] = []
        self.annotation_values: dict[str, str] = {}

    def name(self) -> str:
        return self.pod

    def state(self) -> str:
        return self.state_value

    def unit(self) -> str:
        return names.pod_unit(self.pod)

    def apps(self) -> list[list[str]]:
        return [list(app) for app in self.app_states]

    def images(self) -> list[str]:
        return list(self.image_names)

    def addresses(self) -> list[str]:
        # A private network has only loopback; the host's network is the host's.
        return ["127.0.0.1", "::1"] if self.state_value == "active" else []

    def manifest_path(self) -> str:
        return self.path

    def annotations(self) -> dict[str, str]:
        return dict(self.annotation_values)


def unit_of_path(path: str) -> str:
    """systemd's object path of a unit back to its name (sd_bus_path_decode)."""
    encoded = path.removeprefix(UNIT_PATHS + "/")
    return re.sub(r"_([0-9a-f]{2})", lambda m: chr(int(m[1], 16)), encoded)


def pod_of_unit(unit: str) -> str | None:
    if match := re.fullmatch(r"pod@([^:]+)\.service|podapp@([^:]+):[^:]+\.service", unit):
        return match[1] or match[2]
    return None


class Pods:
    def __init__(self, dispatcher: Dispatcher, systemd: Systemd) -> None:
        self.dispatcher = dispatcher
        self.systemd = systemd
        self.objects: dict[str, PodObject] = {}
        self._pending: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        bus = self.dispatcher.bus
        bus.add_message_handler(self._on_signal)
        for rule in (f"type='signal',sender='{SYSTEMD}',member='PropertiesChanged',"
                     f"path_namespace='{UNIT_PATHS}'",
                     f"type='signal',sender='{SYSTEMD}',member='Reloading'"):
            await self.systemd.call("/org/freedesktop/DBus", "org.freedesktop.DBus",
                                    "AddMatch", "s", [rule], destination="org.freedesktop.DBus")
        await self.systemd.subscribe()
        await self.rescan()

    async def rescan(self) -> None:
        found = generator.find_manifests()
        for gone in set(self.objects) - set(found):
            self.dispatcher.unexport(api.pod_path(gone))
            del self.objects[gone]
            self.dispatcher.emit(api.MANAGER_PATH, api.MANAGER, "PodRemoved", gone,
                                 api.pod_path(gone))
        for name, path in found.items():
            if name not in self.objects:
                self.objects[name] = PodObject(name, str(path))
                self.dispatcher.export(api.pod_path(name), api.POD, self.objects[name])
                self.dispatcher.emit(api.MANAGER_PATH, api.MANAGER, "PodNew", name,
                                     api.pod_path(name))
            self.objects[name].path = str(path)
        await asyncio.gather(*(self.refresh(name) for name in list(self.objects)))

    async def refresh(self, name: str) -> None:
        """Read the pod's state from systemd; emit PropertiesChanged for what changed."""
        pod = self.objects.get(name)
        if pod is None:
            return
        before = (pod.state_value, pod.app_states, pod.image_names, pod.annotation_values)
        try:
            parsed = manifest.load(Path(pod.path))
        except ManifestError:
            pod.state_value, pod.app_states, pod.image_names = "invalid", [], []
        else:
            units = await self.systemd.list_units([names.pod_unit(name),
                                                   names.app_unit(name, "*")])
            state = units.get(names.pod_unit(name))
            pod.state_value = state.active_state if state else "inactive"
            pod.app_states = []
            for app in parsed.apps.values():
                unit = names.app_unit(name, app.name)
                app_state = units[unit].active_state if unit in units else "inactive"
                pod.app_states.append((app.name, unit, app_state))
            pod.image_names = sorted({a.image for a in parsed.apps.values() if a.image})
            pod.annotation_values = parsed.pod.annotations
        after = (pod.state_value, pod.app_states, pod.image_names, pod.annotation_values)
        changed = [prop for prop, old, new in zip(("State", "Apps", "Images", "Annotations"),
                                                  before, after, strict=True) if old != new]
        if changed:
            self.dispatcher.properties_changed(api.pod_path(name), api.POD, changed)

    def _on_signal(self, message: Message) -> bool:
        if message.message_type is not MessageType.SIGNAL:
            return False
        if message.member == "Reloading" and message.body == [False]:
            self._schedule("", self.rescan)
        elif message.member == "PropertiesChanged" and message.path and \
                message.path.startswith(UNIT_PATHS) and \
                (pod := pod_of_unit(unit_of_path(message.path))) in self.objects:
            assert pod is not None
            self._schedule(pod, lambda: self.refresh(pod))
        return False

    def _schedule(self, key: str, refresh: Callable[[], Awaitable[None]]) -> None:
        """Run ``refresh`` soon: once for a burst of signals about the same pod, and again
        for signals that come while it runs."""
        if key in self._pending:
            return
        self._pending.add(key)

        async def later() -> None:
            await asyncio.sleep(0.05)
            self._pending.discard(key)
            try:
                await refresh()
            except Exception:  # a failed refresh must not stop the next ones
                log.exception("refreshing pod %s", key or "list")

        task = asyncio.get_running_loop().create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
