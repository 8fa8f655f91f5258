# SPDX-License-Identifier: LGPL-2.1-or-later
"""org.podmgr1.Manager.AutoUpdate: pull newer images of auto-updated apps, restart their
pods on them, and roll a pod back to its previous images when it does not come up.

A run, one at a time:
1. for each image (tag) of an app with auto_update = "registry", ask its registry for the
   manifest digest the tag names now (image/autoupdate.py); a dry run stops here;
2. pull each image whose digest changed through pull.fetch, exactly as PullImage does
   (signatures before anything is unpacked).  The image each tag pointed at stays in the
   store, pinned (Store.pinned), so that no gc can free it during the run;
3. reload systemd once (the generator writes units for the new images), then restart
   each running pod with a changed image once, however many of its apps changed, and
   wait until it is up (came_up());
4. when a pod does not come up, each changed image of it gets its previous record back
   (one atomic rename: a tag always points at a complete image), systemd reloads, and
   every pod restarted on such an image is restarted on the old one.
Each pod's outcome is a journal entry with PODMGR_POD= and PODMGR_IMAGE= fields; the
reply has a row per app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING

from podmgr import config, names, paths
from podmgr.bus import api, jobs
from podmgr.bus.binding import implements
from podmgr.bus.dispatch import Call
from podmgr.bus.systemd import MANAGER, MANAGER_PATH, Systemd
from podmgr.errors import ManifestError, PodmgrError
from podmgr.image import pull
from podmgr.image.autoupdate import Outcome, Result, Target, by_pod, registry_digest
from podmgr.image.store import ImageRecord, NoSuchImage, Store
from podmgr.image.trust import TrustStore
from podmgr.manifest import lookup, model
from podmgr.manifest.schema import AutoUpdate
from podmgr.runtime import health

if TYPE_CHECKING:
    from podmgr.bus.service import Manager

log = logging.getLogger(__name__)

# An app must stay active this long after the restart to count as up: one whose command
# exits at once is active for a moment first (Type=exec).
SETTLE = 3.0
POLL = 0.25
_RUNNING = ("active", "activating", "reloading", "refreshing")
JOURNAL_SOCKET = "/run/systemd/journal/socket"


async def came_up(systemd: Systemd, pod: str, timeout: float) -> str | None:
    """None once pod@POD.service and each of its app units have been active, and each app
    with a health check healthy, for SETTLE seconds; else, at ``timeout`` or as soon as a
    unit failed or an app turned unhealthy, why not.

    An app with ready = "healthy" is active only after its first passing check; one
    without waits here for its first check to pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    up_since: float | None = None
    while True:
        apps = _apps(pod)
        units = [names.pod_unit(pod), *(names.app_unit(pod, app) for app in apps)]
        down = [(u, s) for u in units if (s := await _active_state(systemd, u)) != "active"]
        down += await _not_healthy(systemd, pod, apps)
        now = loop.time()
        if not down:
            up_since = now if up_since is None else up_since
            if now - up_since >= min(SETTLE, timeout):
                return None
        else:
            up_since = None
            unit, state = down[0]
            if state in ("failed", "inactive"):  # nothing will start it again
                return f"{unit} is {state} (see journalctl -u {unit})"
            if state == health.Status.UNHEALTHY:
                check = unit.replace("podapp@", "podhealth@", 1)
                return f"{unit} is unhealthy (see journalctl -u {check})"
        if now >= deadline:
            what = f"{down[0][0]} is still {down[0][1]}" if down else "it did not settle"
            return f"{what} after {timeout:g}s"
        await asyncio.sleep(POLL)


async def _not_healthy(systemd: Systemd, pod: str, apps: list[str]) -> list[tuple[str, str]]:
    """(app unit, health) of each app whose health check runs and has not passed last.
    A check runs while its timer is active (generator/health.py)."""
    runtime = paths.PodRuntime(pod)
    found = []
    for app in apps:
        if await _active_state(systemd, names.health_timer(pod, app)) != "active":
            continue  # the app has no health check
        if (status := health.status(runtime, app)) is not health.Status.HEALTHY:
            found.append((names.app_unit(pod, app), status.value))
    return found


def _apps(pod: str) -> list[str]:
    """The apps the pod runs, as prepared (the plan of its current start)."""
    try:
        return [app["name"] for app in paths.PodRuntime(pod).read_plan()["apps"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []  # not prepared (yet): the pod unit's state tells


async def _active_state(systemd: Systemd, unit: str) -> str:
    return str((await systemd.unit_properties(unit))["ActiveState"])


def journal(message: str, priority: int, fields: list[tuple[str, str]]) -> None:
    """One structured journal entry (journald's native protocol), with ``fields`` such as
    PODMGR_POD=; logged plainly when journald is not there."""
    lines = [f"MESSAGE={message}", f"PRIORITY={priority}", "SYSLOG_IDENTIFIER=podmgr1"]
    lines += [f"{key}={value}" for key, value in fields]
    data = "".join(line.replace("\n", " ") + "\n" for line in lines).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(data, JOURNAL_SOCKET)
    except OSError:
        log.log(logging.ERROR if priority <= 3 else logging.INFO, "%s", message)


def targets_of(manifests: Iterable[model.Manifest]) -> list[Target]:
    """The apps of ``manifests`` with auto_update = "registry", pod by pod."""
    return [
        Target(manifest.name, app.name, app.image)
        for manifest in sorted(manifests, key=lambda m: m.name)
        for app in manifest.apps.values()
        if app.auto_update is AutoUpdate.REGISTRY and app.image is not None
    ]


def load_targets() -> list[Target]:
    """The targets of every pod with a valid manifest; an invalid one has no units to
    update (podmgr list shows why), so it is skipped with a warning."""
    manifests = []
    for name, path in sorted(lookup.find_manifests().items()):
        try:
            manifests.append(model.load(path))
        except ManifestError as error:
            log.warning("auto-update: pod %s skipped: %s", name, str(error).replace("\n", "; "))
    return targets_of(manifests)


def _failure(image: str, error: Exception) -> str:
    if isinstance(error, OSError) and not isinstance(error, PodmgrError):
        return f"{image}: {error.strerror or error}"
    return str(error)


class _Run:
    """One auto-update: what each image was, is now, and what became of each pod."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets
        self.old: dict[str, ImageRecord | None] = {}
        self.new: dict[str, str] = {}
        self.failed: dict[str, str] = {}  # image -> why nothing changed
        self.rolled_back: dict[str, str] = {}  # image -> why its old record is back
        self.not_running: set[str] = set()  # pods whose changed images wait for a start

    def images(self) -> list[str]:
        return list(dict.fromkeys(t.image for t in self.targets))

    def changed(self, image: str) -> bool:
        before = self.old.get(image)
        return image not in self.failed and (
            before is None or before.manifest != self.new.get(image)
        )

    def outcome(self, target: Target, dry_run: bool = False) -> Outcome:
        before = self.old.get(target.image)

        def done(result: Result, reason: str = "") -> Outcome:
            old = before.manifest if before else ""
            return Outcome(target, old, self.new.get(target.image, ""), result, reason)

        if target.image in self.failed:
            return done(Result.FAILED, self.failed[target.image])
        if not self.changed(target.image):
            return done(Result.UNCHANGED)
        if dry_run:
            return done(Result.AVAILABLE)
        if target.image in self.rolled_back:
            return done(Result.ROLLED_BACK, self.rolled_back[target.image])
        if target.pod in self.not_running:
            return done(Result.PENDING)
        return done(Result.UPDATED)

    def pods_changed(self) -> dict[str, list[Target]]:
        return {
            pod: targets
            for pod, targets in by_pod(self.targets).items()
            if any(self.changed(t.image) for t in targets)
        }


class AutoUpdater:
    def __init__(self, manager: Manager) -> None:
        self.manager = manager
        self.work = manager.dispatcher.work
        self.systemd = manager.systemd
        self._lock = asyncio.Lock()  # one run at a time

    @implements(api.MANAGER, "AutoUpdate")
    async def auto_update(self, call: Call, dry_run: bool) -> list[list[str]]:
        async with self._lock:
            run = _Run(await self.work.run(load_targets))
            cfg = await self.work.run(config.load)
            store = Store()
            await self._check(run, store, cfg)
            if not dry_run:
                with contextlib.ExitStack() as pins:
                    for record in run.old.values():  # what each tag points at now
                        if record is not None:
                            await self.work.run(pins.enter_context, store.pinned(record))
                    await self._update(run, store, cfg)
                for pod, targets in by_pod(run.targets).items():
                    _report(pod, [run.outcome(t) for t in targets])
        return [run.outcome(t, dry_run).row() for t in run.targets]

    async def _check(self, run: _Run, store: Store, cfg: config.Config) -> None:
        """What each image's tag points at in the store and in its registry."""
        for image in run.images():
            try:
                run.old[image] = await self.work.run(store.image, image)
            except NoSuchImage:
                run.old[image] = None
            try:
                run.new[image] = await self.work.run(registry_digest, image, cfg)
            except (PodmgrError, OSError) as error:
                run.failed[image] = _failure(image, error)

    async def _update(self, run: _Run, store: Store, cfg: config.Config) -> None:
        for image in [i for i in run.images() if run.changed(i)]:
            try:
                # The one verified pull, as PullImage runs it (in a thread: it blocks).
                record = await asyncio.to_thread(
                    pull.fetch, f"docker://{image}", image, store, cfg, TrustStore()
                )
                run.new[image] = record.manifest
            except (PodmgrError, OSError) as error:
                run.failed[image] = _failure(image, error)
        pods = run.pods_changed()
        if not pods:
            return
        restarted = []
        for pod in pods:
            if await _active_state(self.systemd, names.pod_unit(pod)) in _RUNNING:
                restarted.append(pod)
            else:
                run.not_running.add(pod)
        await self._reload()
        timeout = cfg.auto_update.timeout / 10**6
        # All at once, right after the reload: until a pod restarts, an app of it that
        # systemd restarts on its own would run its new unit on the old image's root.
        down = await self._restart_all(restarted, timeout)
        if down:
            await self._roll_back(run, store, pods, restarted, down, timeout)

    async def _roll_back(
        self,
        run: _Run,
        store: Store,
        pods: dict[str, list[Target]],
        restarted: list[str],
        down: dict[str, str],
        timeout: float,
    ) -> None:
        """Point the changed images of the pods that did not come up at their previous
        images again, and restart every pod that was restarted on one of them.  The pods
        that did not come up stop first: none of their apps may start from the old units
        on the new image's root, or the other way round, while the tags change."""
        for pod in down:
            with contextlib.suppress(PodmgrError):  # what did not stop, the restart stops
                await jobs.run_job(self.systemd, "stop", pod)
        for pod, why in down.items():
            for target in pods[pod]:
                if run.changed(target.image) and target.image not in run.rolled_back:
                    run.rolled_back[target.image] = f"pod {pod} did not come up on it: {why}"
        for image in run.rolled_back:
            previous = run.old[image]
            if previous is None:  # it was not stored before the run: the new one stays
                run.rolled_back[image] += " (no previous image to restore: the new one stays)"
                continue
            await self.work.run(_restore, store, previous)
        await self._reload()
        again = [p for p in restarted if any(t.image in run.rolled_back for t in pods[p])]
        for pod, still in (await self._restart_all(again, timeout)).items():
            for target in pods[pod]:
                if target.image in run.rolled_back:
                    run.rolled_back[target.image] += (
                        f"; and not on the previous image either: {still}"
                    )

    async def _restart_all(self, pods: list[str], timeout: float) -> dict[str, str]:
        """Restart ``pods`` together; those that did not come up, and why."""
        results = await asyncio.gather(*(self._restart(pod, timeout) for pod in pods))
        return {pod: why for pod, why in zip(pods, results, strict=True) if why}

    async def _restart(self, pod: str, timeout: float) -> str | None:
        """Restart ``pod`` and wait until it is up; None if it is, else why not."""
        # An app that failed on the image rolled away from may have hit its start limit;
        # its failure is reported already, and must not stop the restart on the old one.
        app_units = await self.systemd.list_units([names.app_unit(pod, "*")])
        for unit, state in app_units.items():
            if state.active_state == "failed":
                await self.systemd.call(MANAGER_PATH, MANAGER, "ResetFailedUnit", "s", [unit])
        try:
            failed = await jobs.run_job(self.systemd, "restart", pod)
        except PodmgrError as error:
            return str(error)
        finally:
            await self.manager.pods.refresh(pod)
        if failed:
            return "; ".join(failed)
        return await came_up(self.systemd, pod, timeout)

    async def _reload(self) -> None:
        """systemctl daemon-reload: the generator writes the units for the images the
        tags point at now."""
        await self.systemd.call(MANAGER_PATH, MANAGER, "Reload")
        await self.manager.pods.rescan()


def _restore(store: Store, record: ImageRecord) -> None:
    """The tag of ``record`` points at it again; the image it pointed at instead is kept
    as removed, for [gc] grace."""
    with store.locked():
        store.put_image(record)


def _report(pod: str, outcomes: list[Outcome]) -> None:
    """One journal entry for the pod: what each of its images was and is."""
    worst = next((o for o in outcomes if o.failed()), None) or next(
        (o for o in outcomes if o.result is not Result.UNCHANGED), outcomes[0]
    )
    fields = [("PODMGR_POD", pod), ("PODMGR_AUTO_UPDATE", str(worst.result))]
    seen = set()
    parts = []
    for outcome in outcomes:
        image = outcome.target.image
        if image in seen:
            continue
        seen.add(image)
        fields += [
            ("PODMGR_IMAGE", image),
            ("PODMGR_IMAGE_OLD", outcome.old),
            ("PODMGR_IMAGE_NEW", outcome.new),
        ]
        reason = f" ({outcome.reason})" if outcome.reason else ""
        parts.append(
            f"{image} {outcome.old or '-'} -> {outcome.new or '-'}: {outcome.result}{reason}"
        )
    priority = 3 if worst.failed() else 6
    journal(f"pod {pod}: auto-update {worst.result}: " + "; ".join(parts), priority, fields)
