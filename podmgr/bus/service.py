# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr1.service: org.podmgr1 on the system bus, started by D-Bus activation.

Everything that changes the system goes through here, after polkit said yes (the
dispatcher asks, for the action the API table names): pods (through systemd), manifests,
images and trusted keys.  Reads need no authorization.  Handlers take the typed values
the dispatcher converted each argument to (a PodName, never a raw string); what blocks
runs in the dispatcher's work queue, off the event loop.
When no call, job or transfer has been in flight for [service] idle_timeout, the service
releases its bus name, answers what was already on its way, and exits; the next call
starts it again, so nobody's call fails at the boundary.

Most starts are for one call, a pod's PreparePod, which waits for the start: so what no
such call needs (the configuration, the image store, introspection's XML, the manifest
parser) is loaded when first used, not here (tests/test_layout.py lists those modules).
SYSTEMD_LOG_LEVEL sets the log level, as for systemd's own programs; at debug the
journal says how long each step of the start and of each prepare took.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import stat
import sys

from podmgr import names, paths
from podmgr.bus import api, binding, jobs
from podmgr.bus.binding import Deferred, implements
from podmgr.bus.connection import Bus
from podmgr.bus.dbuslib import NameFlag, RequestNameReply
from podmgr.bus.dispatch import Call, Dispatcher
from podmgr.bus.machined import Machines
from podmgr.bus.podobjects import PodObject, Pods, pod_of_unit
from podmgr.bus.systemd import SERVICE, Systemd
from podmgr.bus.transfers import Transfer, Transfers
from podmgr.errors import (
    AccessDenied,
    Exists,
    ManifestChanged,
    ManifestError,
    NoSuchApp,
    PodmgrError,
    SystemdError,
)
from podmgr.manifest import lookup
from podmgr.names import AppName, NetworkName, PodName
from podmgr.network import joining
from podmgr.runtime import prepare
from podmgr.version import __version__

log = logging.getLogger("podmgr1")

ADMIN_PODS = paths.MANIFEST_DIRS[0]

# The image and trust methods, from a module loaded on their first call: the service
# starts on demand, mostly to prepare or list pods, and loading what images need (gpg,
# TLS, tar, compression) would make every start slower.
IMAGES = Deferred(
    api.MANAGER,
    "podmgr.bus.imagemethods",
    "ImageMethods",
    (
        "ListImages",
        "InspectImage",
        "PullImage",
        "ImportImage",
        "RemoveImage",
        "GarbageCollect",
        "GarbageCollectWithGrace",
        "ListTrustedKeys",
        "TrustKey",
        "UntrustKey",
        "UntrustKeyForPrefix",
    ),
)


# podmgr auto-update, loaded when first called (most starts never update).
AUTO_UPDATE = Deferred(api.MANAGER, "podmgr.bus.autoupdate", "AutoUpdater", ("AutoUpdate",))


class Manager:
    """org.podmgr1.Manager: the pod and network methods of api.MANAGER; IMAGES and
    AUTO_UPDATE the rest."""

    DEFERRED = (IMAGES, AUTO_UPDATE)

    def __init__(
        self,
        dispatcher: Dispatcher,
        systemd: Systemd,
        pod_objects: Pods,
        transfers: Transfers,
        machines: Machines | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.systemd = systemd
        self.pods = pod_objects
        self.transfers = transfers
        self.machines = machines or Machines(dispatcher.bus, systemd)
        self._pod_locks: dict[str, asyncio.Lock] = {}  # prepare and release, one pod at once

    @implements(api.MANAGER, "Version")
    def version(self) -> str:
        return __version__

    # Pods

    @implements(api.MANAGER, "ListPods")
    async def list_pods(self, call: Call) -> list[list[str]]:
        return [
            [name, pod.state(), api.pod_path(name)]
            for name, pod in sorted(self.pods.objects.items())
        ]

    @implements(api.MANAGER, "GetPod")
    async def get_pod(self, call: Call, name: PodName) -> str:
        lookup.find_pod(name)
        if name not in self.pods.objects:
            await self.pods.rescan()
        return api.pod_path(name)

    async def _job(self, call: Call, verb: str, name: PodName) -> None:
        failed = await jobs.run_job(self.systemd, verb, name)
        await self.pods.refresh(name)
        if failed:
            raise SystemdError(f"pod {name}: {'; '.join(failed)}")

    @implements(api.MANAGER, "StartPod")
    async def start_pod(self, call: Call, name: PodName) -> None:
        await self._job(call, "start", name)

    @implements(api.MANAGER, "StopPod")
    async def stop_pod(self, call: Call, name: PodName) -> None:
        await self._job(call, "stop", name)

    @implements(api.MANAGER, "RestartPod")
    async def restart_pod(self, call: Call, name: PodName) -> None:
        await self._job(call, "restart", name)

    @implements(api.MANAGER, "EnterApp")
    async def enter_app(
        self,
        call: Call,
        name: PodName,
        app: AppName | None,
        command: tuple[str, ...],
        term: str,
        stdin: int,
        stdout: int,
        stderr: int,
    ) -> int:
        from podmgr.bus import enter  # noqa: PLC0415 -- loaded when first needed

        await self.get_pod(call, name)
        apps = [entry[0] for entry in self.pods.objects[name].apps()]
        chosen = app or (apps[0] if apps else None)
        if chosen is None or chosen not in apps:
            raise NoSuchApp(
                f"pod {name} has no app {chosen or ''}".rstrip()
                + f" (podmgr status {name} lists its apps; its manifest must load)"
            )
        fds = call.take_fds([stdin, stdout, stderr])  # enter() closes them
        return await enter.enter(self.systemd, call.sender, name, chosen, command, term, fds)

    @implements(api.MANAGER, "ValidateManifest")
    async def validate_manifest(self, call: Call, toml: str) -> list[list[str]]:
        # Resolving reads the image store and the rootfs's /etc/passwd as root: that would
        # tell anyone what files root can read.  So only a caller who may manage pods
        # without authenticating gets it; anyone else gets the manifest's own checks.
        try:
            await self.dispatcher.authorize(
                call.sender, api.MANAGE_PODS, {"verb": "validate"}, False
            )
            resolving = True
        except AccessDenied:
            resolving = False
        try:
            await self.dispatcher.work.run(self._check, toml, PodName("manifest"), resolving)
        except ManifestError as error:
            return [[p.where, p.message] for p in error.problems]
        return []

    @staticmethod
    def _check(toml: str, name: PodName, resolving: bool = True) -> None:
        """Everything the generator would check of NAME.toml with this text (run in the
        work queue: parsing a big manifest takes a while)."""
        from podmgr.generator import resolve  # noqa: PLC0415 -- loaded when first needed
        from podmgr.image.store import Store  # noqa: PLC0415
        from podmgr.manifest import model  # noqa: PLC0415

        parsed = model.parse(toml, ADMIN_PODS / f"{name}.toml")
        if resolving:
            resolve.resolve(parsed, Store())

    @implements(api.MANAGER, "CreatePod")
    async def create_pod(self, call: Call, name: PodName, toml: str) -> str:
        if name in lookup.find_manifests():
            raise Exists(
                f"there is a pod {name!r} already (UpdatePod changes it, or choose another name)"
            )
        await self._write(name, toml)
        return api.pod_path(name)

    @implements(api.MANAGER, "UpdatePod")
    async def update_pod(self, call: Call, name: PodName, toml: str) -> None:
        lookup.find_pod(name)
        await self._write(name, toml)

    @implements(api.MANAGER, "UpdatePodIfUnchanged")
    async def update_pod_if_unchanged(
        self, call: Call, name: PodName, digest: str, toml: str
    ) -> None:
        lookup.find_pod(name)
        await self._write(name, toml, digest)

    async def _write(self, name: PodName, toml: str, digest: str | None = None) -> None:
        from podmgr.image.store import atomic_write  # noqa: PLC0415 -- pod starts never need the store

        await self.dispatcher.work.run(self._check, toml, name)  # refused: nothing changes
        # The comparison and the write with nothing awaited between them: no other call
        # of this service can write the file in between.
        if digest is not None:
            path = lookup.find_pod(name)
            try:
                current = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError as error:
                raise ManifestChanged(f"{path}: cannot read it ({error.strerror})") from None
            if current != digest:
                raise ManifestChanged(
                    f"{path} changed since it was read (its sha256 is now {current[:12]}..., "
                    f"not {digest[:12]}...): read it again, or replace it with UpdatePod"
                )
        ADMIN_PODS.mkdir(parents=True, exist_ok=True)
        # The new file keeps the mode and owner of the one it replaces, as an editor
        # does: a manifest made 0600 for the secrets in its environment stays 0600.
        # (Written 0600 first, so that it is never more open than both.)
        target = ADMIN_PODS / f"{name}.toml"
        before = lookup.find_manifests().get(name)
        info = before.stat() if before else None
        atomic_write(target, toml.encode(), 0o600 if info else 0o644)
        if info:
            os.chown(target, info.st_uid, info.st_gid)
            os.chmod(target, stat.S_IMODE(info.st_mode))
        await self._reload()

    @implements(api.MANAGER, "RemovePod")
    async def remove_pod(self, call: Call, name: PodName) -> None:
        from podmgr.image.store import atomic_write  # noqa: PLC0415 -- pod starts never need the store

        path = lookup.find_pod(name)
        await jobs.run_job(self.systemd, "stop", name)
        if path.parent == ADMIN_PODS:
            path.unlink()
        for lower in paths.MANIFEST_DIRS[1:]:
            if (lower / f"{name}.toml").is_file():
                atomic_write(ADMIN_PODS / f"{name}.toml", b"")  # masks it, as for units
                break
        await self._reload()

    async def _reload(self) -> None:
        await self.systemd.call(
            "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "Reload"
        )
        await self.pods.rescan()

    @implements(api.MANAGER, "PreparePod")
    async def prepare_pod(self, call: Call, name: PodName) -> None:
        with prepare.timed(f"pod {name}: its plan's path from systemd"):
            environment = await self.systemd.unit_property(
                names.pod_unit(name), SERVICE, "Environment"
            )
        plan_path = next(
            (e.split("=", 1)[1] for e in environment if e.startswith("PODMGR_PLAN=")), None
        )
        async with self._pod_lock(name):
            with prepare.timed(f"pod {name}: apps left running"):
                await jobs.stop_apps(self.systemd, name)  # left over from an earlier manifest
            # Blocking, and in this thread on purpose: prepare changes the working
            # directory for a moment (to mount the overlay), which must not race another
            # prepare.
            with prepare.timed(f"pod {name}: prepared"):
                prepare.prepare(prepare.load_plan(name, plan_path))

    @implements(api.MANAGER, "ReleasePod")
    async def release_pod(self, call: Call, name: PodName) -> None:
        # Removing what the apps wrote can take a while: in the work queue, with the pod's
        # lock held, so that a prepare of the same pod waits for it.  (release uses
        # absolute paths and directory fds only, so prepare's working directory cannot
        # mislead it.)
        async with self._pod_lock(name):
            await jobs.stop_apps(self.systemd, name)  # those a daemon-reload unbound (jobs.py)
            await self.machines.unregister(name)
            await self.dispatcher.work.run(prepare.release, name)

    @implements(api.MANAGER, "ReleaseMachine")
    async def release_machine(self, call: Call, name: PodName, app: AppName) -> None:
        # Without the pod's lock: ReleasePod holds it while it waits for the apps to stop,
        # and the leader's stop waits for this call (machined.py).
        await self.machines.release(name, app)

    def _pod_lock(self, name: PodName) -> asyncio.Lock:
        return self._pod_locks.setdefault(name, asyncio.Lock())

    @implements(api.MANAGER, "ListNetworks")
    async def list_networks(self, call: Call) -> list[list[object]]:
        from podmgr.network import definitions  # noqa: PLC0415 -- network calls only

        return [
            [n.name, str(n.subnet), n.bridge, n.masquerade, n.isolate, joining.pods_on(n.name)]
            for n in sorted(definitions.load_all().values(), key=lambda n: n.name)
        ]

    @implements(api.MANAGER, "RemoveNetwork")
    async def remove_network(self, call: Call, name: NetworkName) -> None:
        await self.dispatcher.work.run(joining.remove_network, name)


SERVED = ((api.MANAGER, Manager), (api.POD, PodObject), (api.TRANSFER, Transfer))


async def serve() -> int:
    # Before anything else: a table entry without its code (or code for none) stops the
    # service here, not at some caller's first call of it.
    binding.check(SERVED)
    with prepare.timed("service start: connected to the bus"):
        bus = await Bus().connect()
    dispatcher = Dispatcher(bus)
    systemd = Systemd(bus)
    pod_objects = Pods(dispatcher, systemd)
    transfers = Transfers(dispatcher)
    machines = Machines(bus, systemd)
    pod_objects.on_app_active = lambda pod: dispatcher.spawn(machines.register(pod))
    dispatcher.export(
        api.MANAGER_PATH,
        api.MANAGER,
        Manager(dispatcher, systemd, pod_objects, transfers, machines),
    )
    with prepare.timed("service start: pods and unit states read"):
        await pod_objects.start()
    with prepare.timed("service start: bus name taken"):
        reply = await bus.request_name(api.BUS_NAME, NameFlag.DO_NOT_QUEUE)
    if reply is not RequestNameReply.PRIMARY_OWNER:
        log.error("%s is taken (%s): another podmgr1 runs", api.BUS_NAME, reply.name)
        return 1
    # Pods that started while no service ran (or this one was killed) are registered now.
    active = [p for p, state in pod_objects.unit_states.items() if state == "active"]
    dispatcher.spawn(
        machines.start(
            pod for unit in active if (pod := pod_of_unit(unit)) and unit == names.pod_unit(pod)
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def busy() -> bool:
        return dispatcher.in_flight > 0 or bool(transfers.active)

    # Read at the first check, a second after the start: the configuration's parser and
    # key tables would otherwise load before the call that started the service is served.
    idle_timeout: float | None = None
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1)
        if idle_timeout is None:
            from podmgr import config  # noqa: PLC0415 -- see above

            idle_timeout = config.load().service.idle_timeout / 10**6
        if not busy() and loop.time() - dispatcher.last_activity > idle_timeout:
            break
    # Calls already routed to us still get answers; from now on D-Bus starts a new us.
    await bus.release_name(api.BUS_NAME)
    await asyncio.sleep(0.2)
    while busy():
        await asyncio.sleep(0.05)
    pod_objects.watch.close()
    bus.disconnect()  # type: ignore[no-untyped-call, unused-ignore]
    await dispatcher.close()
    return 0


# SYSTEMD_LOG_LEVEL's names (systemd(1)); a number 0-7 means the same in that order.
LOG_LEVELS = {
    "emerg": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "crit": logging.CRITICAL,
    "err": logging.ERROR,
    "warning": logging.WARNING,
    "notice": logging.INFO,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


def log_level(setting: str | None) -> int:
    """The level SYSTEMD_LOG_LEVEL asks for, as systemd's own tools read it (a name or
    a number); INFO when unset or not understood."""
    if setting and setting.isdigit() and int(setting) < len(LOG_LEVELS):
        return list(LOG_LEVELS.values())[int(setting)]
    return LOG_LEVELS.get(setting or "", logging.INFO)


def main() -> int:
    level = log_level(os.environ.get("SYSTEMD_LOG_LEVEL"))
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    try:
        return asyncio.run(serve())
    except (OSError, PodmgrError) as error:
        log.error("podmgr1: %s", error)
        return 1
    except binding.BindingError as error:  # a broken build: say what, not where
        log.error("podmgr1: the API table and its code disagree: %s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
