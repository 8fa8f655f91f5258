# SPDX-License-Identifier: LGPL-2.1-or-later
"""Prepare a pod before its apps start, and release it after they stop.

pod@NAME.service asks org.podmgr1 to PreparePod as its start and to ReleasePod after it
stops (also after a failed start); the service runs prepare() and release() here.
``podmgr-pod prepare|release NAME`` (main() below) does the same without the service:
pod@.service releases through it when the service cannot be reached.  Prepare follows
the plan the generator wrote (generator/plan.py); everything it makes lives under
/run/podmgr/pods/NAME/:

    ns/net, ns/ipc            the pod's namespaces, pinned (net unless network.mode = host;
                              neither for isolation = "fly", whose apps use the host's)
    etc/hosts, hostname, resolv.conf   bind-mounted read-only into every app (not "fly")
    apps/APP/rootfs           overlay: the app's source, read-only, under a volatile upper
                              (an app's rootfs directory: the one checked, no symlinks)
    apps/APP/upper, work      the overlay's writable layer, gone at release
    apps/APP/environment/N    the app's environment files as read at start (no symlinks)
    volumes/VOL               tmpfs volumes, shared by the apps that mount them, and
                              host volumes' sources, checked and bound (no symlinks)
    userdb-ids.json           app users and groups made known to the host (userdb.py)
    plan.json                 the plan it followed: `podmgr gc` keeps the layers it names

A bridged pod also joins its networks (network/joining.py): leases, veths, published ports.
Release unmounts everything below that directory — whatever prepare got to, even after
a crash or a kill -9 — and removes it; releasing a released pod does nothing.

Every pod start goes through here, so it imports only what it needs: nothing of the
manifest parser, the image machinery or D-Bus (tests/test_layout.py checks it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from podmgr import hostpaths, names, paths
from podmgr.errors import PodmgrError, PrepareError
from podmgr.network import etcfiles, joining
from podmgr.runtime import mounts, namespaces, userdb

if TYPE_CHECKING:
    from podmgr.generator.plan import AppPlan, Plan, VolumePlan

log = logging.getLogger(__name__)

# An environment file is a few VAR=value lines; anything larger is not one.
ENVIRONMENT_FILE_MAX = 1 << 20


def prepare(
    plan: Plan, runtime_base: Path = paths.RUNTIME_PODS_DIR, store: Path = paths.STATE_DIR
) -> None:
    """Set up everything the pod's app units need; on failure, undo it and raise."""
    name = plan["pod"]
    runtime = paths.PodRuntime(name, runtime_base)
    with timed(f"pod {name}: release of leftovers"):
        release(name, runtime_base)  # leftovers of a crash would break the mounts below
    try:
        runtime.dir.mkdir(mode=0o700, parents=True)
        runtime.plan.write_text(json.dumps(plan))
        # The one place prepare dispatches on the isolation level (schema.Isolation).
        if plan.get("isolation", "container") == "container":
            with timed(f"pod {name}: namespaces, /etc files and networks"):
                _prepare_namespaces(plan, runtime)
        # "fly": the apps live in the host's namespaces and see its /etc files (units.py).
        for volume in plan["volumes"]:
            with timed(f"pod {name}: volume {volume['name']}"):
                _prepare_volume(name, volume, runtime)
        for app in plan["apps"]:
            with timed(f"pod {name}: app {app['name']}: root file system, environment files"):
                _prepare_rootfs(name, app, runtime, store)
                _copy_environment_files(name, app, runtime)
        with timed(f"pod {name}: users and groups"):
            userdb.register(
                runtime.dir,
                {(userdb.USER, uid) for uid in plan["uids"]}
                | {(userdb.GROUP, gid) for gid in plan["gids"]},
            )
    except BaseException as error:
        with contextlib.suppress(Exception):
            release(name, runtime_base)
        if isinstance(error, OSError):
            raise PrepareError(f"pod {name}: {error}") from error
        raise


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    """Log at debug how long ``what`` took: with SYSTEMD_LOG_LEVEL=debug in the service's
    environment, the journal shows where a pod start spends its time."""
    if not log.isEnabledFor(logging.DEBUG):
        yield
        return
    begin = time.perf_counter()
    try:
        yield
    finally:
        log.debug("%s: %.1f ms", what, (time.perf_counter() - begin) * 1000)


def _prepare_namespaces(plan: Plan, runtime: paths.PodRuntime) -> None:
    """A contained pod's own namespaces, its /etc files and its networks."""
    _write_etc(plan, runtime)
    pins = {"ipc": runtime.ipcns}
    if plan["network"]["mode"] != "host":
        pins["net"] = runtime.netns
    namespaces.create(pins)
    joining.join(plan, runtime.netns)


def release(
    name: str, runtime_base: Path = paths.RUNTIME_PODS_DIR, cgroup_root: Path | None = None
) -> None:
    """Unmount and remove everything prepare made; harmless when there is nothing.

    Refused while an app of the pod still has processes: unmounting its root file system
    and volumes under it would leave it running on what is gone (the service stops such
    apps first, pods.stop_apps; this holds for every other caller too)."""
    runtime = paths.PodRuntime(name, runtime_base)
    if not runtime.dir.exists():
        # Prepare makes this directory before anything else and release removes it
        # last, so nothing is left: every prepare releases first, and with many pods
        # the leases and the mount table are long to read for nothing.  (Leases a
        # reboot left behind are stale, and taken back by a lease or by gc.)
        return
    if running := running_apps(name, cgroup_root):
        raise PrepareError(
            f"pod {name}: {running[0]} still runs, so its root file system "
            f"stays mounted (stop the pod: systemctl stop {names.pod_unit(name)})"
        )
    joining.leave(name)
    for point in mounts.mount_points_under(runtime.dir):
        try:
            mounts.umount(point)
        except OSError as error:
            if error.errno != errno.EINVAL:  # EINVAL: already gone with its parent
                raise PrepareError(f"pod {name}: {error}") from error
    if left := mounts.mount_points_under(runtime.dir):
        # Removing files below a mount would delete what it shows: refuse.
        raise PrepareError(
            f"pod {name}: {left[0]} is still mounted (unmount it, then run "
            f"podmgr-pod release {name} again)"
        )
    if runtime.dir.exists():
        import shutil  # noqa: PLC0415 -- only needed here; costly on every start

        userdb.unregister(runtime.dir)
        shutil.rmtree(runtime.dir)


def _cgroup_root() -> Path:
    """Where systemd keeps its units' processes: the unified hierarchy, or on a hybrid or
    legacy host its own named hierarchy (name=systemd)."""
    unified = Path("/sys/fs/cgroup")
    return unified if (unified / "cgroup.controllers").exists() else unified / "systemd"


def running_apps(name: str, cgroup_root: Path | None = None) -> list[str]:
    """The app units of pod ``name`` that have processes, whichever manifest made them.

    Read from the cgroup tree, which is what systemd itself knows of them: every app runs
    in the pod's slice, in a cgroup named after its unit (names.py)."""
    slice_dir = (cgroup_root or _cgroup_root()) / names.PARENT_SLICE / names.pod_slice(name)
    running = []
    for unit_dir in sorted(slice_dir.glob(names.app_unit(name, "*"))):
        for directory, _subdirs, files in os.walk(unit_dir):
            try:
                procs = (
                    Path(directory, "cgroup.procs").read_text() if "cgroup.procs" in files else ""
                )
            except FileNotFoundError:  # the cgroup went with its last process
                procs = ""
            if procs.strip():
                running.append(unit_dir.name)
                break
    return running


def layers_in_use(runtime: Path = paths.RUNTIME_PODS_DIR) -> set[str]:
    """Names of the layer directories prepared pods run on: gc keeps them."""
    used: set[str] = set()
    for pod in paths.prepared_pods(runtime):
        for app in pod.read_plan()["apps"]:
            used.update(Path(lower).name for lower in app["lowerdirs"])
    return used


def _write_etc(plan: Plan, runtime: paths.PodRuntime) -> None:
    runtime.etc.mkdir(parents=True)
    network = plan["network"]
    # /etc/hosts names the pod's peers once it has joined its networks (network/joining.py).
    hosts = etcfiles.hosts(plan["hostname"], None, (), network["hosts"])
    resolv = etcfiles.resolv_conf(
        network["dns"], network["dns_search"], network["mode"] == "bridge"
    )
    for name, text in (
        ("hosts", hosts),
        ("hostname", plan["hostname"] + "\n"),
        ("resolv.conf", resolv),
    ):
        (runtime.etc / name).write_text(text)
        (runtime.etc / name).chmod(0o644)


def _prepare_volume(pod: str, volume: VolumePlan, runtime: paths.PodRuntime) -> None:
    name = volume["name"]
    if volume["type"] == "host":
        _bind_host_volume(pod, volume, runtime)
        return
    if volume["type"] == "empty":
        directory = paths.empty_volume(pod, name)
        directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    else:
        directory = runtime.volume(name)
    # Kept volumes get their mode and owner when created; later the data's owner decides.
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700, parents=True)
        os.chown(directory, volume["uid"], volume["gid"])
        os.chmod(directory, volume["mode"])
    if volume["type"] == "tmpfs":
        options = [f"mode={volume['mode']:o}", f"uid={volume['uid']}", f"gid={volume['gid']}"]
        if volume["size"] is not None:
            options.append(f"size={volume['size']}")
        mounts.mount(
            "tmpfs", directory, "tmpfs", mounts.MS_NOSUID | mounts.MS_NODEV, ",".join(options)
        )


def _open_literally(source: str, where: str, what: str, missing: str) -> int:
    """The directory ``source``, opened without following a symbolic link in any
    component (hostpaths.open_directory_literally); ``where`` names the manifest key and
    ``what`` the kind of path in the refusal, ``missing`` is the error when it is no
    directory."""
    try:
        return hostpaths.open_directory_literally(source)
    except hostpaths.LinkInPath as error:
        inner = "" if error.link == source else f": {error.link}"
        raise PrepareError(
            f"{where}{inner} is a symbolic link, which podmgr does not follow "
            f"in {what} (name the directory itself)"
        ) from None
    except (FileNotFoundError, NotADirectoryError):
        raise PrepareError(missing) from None


def _bind_host_volume(pod: str, volume: VolumePlan, runtime: paths.PodRuntime) -> None:
    """Bind a host volume's source into the pod's runtime dir, for the apps' BindPaths=.

    The source is opened without following a symbolic link in any component: whoever can
    write a parent of it could otherwise point the volume anywhere, / included, at the
    next start.  The checked descriptor is what gets mounted, and systemd binds that
    mount (which nobody else can write under) into the apps, so no later swap of the path
    reaches them; BindPaths= itself would follow links when it mounts.
    """
    name, source = volume["name"], volume["source"]
    where = f"pod {pod}: volume.{name}.source: {source}"
    assert source is not None, "the manifest requires a source for host volumes"
    fd = _open_literally(
        source,
        where,
        "a host volume's source",
        f"{where} is not a directory (create it or fix the manifest)",
    )
    try:
        target = runtime.volume(name)
        target.mkdir(mode=0o700, parents=True)
        # Recursive, as BindPaths= binds; then a slave, so that unmounting what lies below
        # at release never propagates back to the host's own mounts under the source.
        mounts.mount(f"/proc/self/fd/{fd}", target, None, mounts.MS_BIND | mounts.MS_REC)
        mounts.mount("none", target, None, mounts.MS_REC | mounts.MS_SLAVE)
    finally:
        os.close(fd)


def _check_image(app: AppPlan, store: Path) -> None:
    """The image the units were generated for must still be stored, unchanged."""
    name, digest = app["image"], app["image_digest"]
    if name is None or digest is None:
        return
    try:
        record = json.loads(paths.image_record(name, store).read_text())
    except FileNotFoundError:
        raise PrepareError(
            f"app {app['name']}: image {name} is no longer in the store "
            "(podmgr image pull it again)"
        ) from None
    if record["manifest"] != digest:
        raise PrepareError(
            f"app {app['name']}: image {name} is now {record['manifest']}, not "
            f"the {digest} the units were generated for (run systemctl "
            "daemon-reload)"
        )
    import hashlib  # noqa: PLC0415 -- only image apps need it

    data = paths.blob(digest, store).read_bytes()
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        raise PrepareError(
            f"app {app['name']}: the stored manifest of {name} is corrupt "
            "(podmgr image rm it and pull it again)"
        )


def _prepare_rootfs(pod: str, app: AppPlan, runtime: paths.PodRuntime, store: Path) -> None:
    name = app["name"]
    _check_image(app, store)
    app_dir = runtime.app_dir(name)
    for part in ("upper", "work", "rootfs"):
        (app_dir / part).mkdir(parents=True)
    root = runtime.rootfs(name)
    if app["image"]:
        for lower in app["lowerdirs"]:
            if not os.path.isdir(lower):
                raise PrepareError(
                    f"app {name}: layer {lower} of image {app['image']} is "
                    "missing (pull the image again)"
                )
        _mount_overlay(app["lowerdirs"], app_dir, root)
    else:
        fd = _open_rootfs_directory(pod, app)
        try:
            _mount_overlay([f"/proc/self/fd/{fd}"], app_dir, root)
        finally:
            os.close(fd)
    for directory in app["mount_dirs"]:
        _make_mount_point(root, directory, directory=True)
    for file in app["mount_files"]:
        _make_mount_point(root, file, directory=False)
    if app["read_only"]:
        mounts.mount("none", root, None, mounts.MS_REMOUNT | mounts.MS_BIND | mounts.MS_RDONLY)


def _open_rootfs_directory(pod: str, app: AppPlan) -> int:
    """An app's rootfs directory, for the overlay's lower layer: opened without following
    a symbolic link in any component, as host volumes' sources are.

    overlayfs' lowerdir= would follow links, so whoever can write a parent of the rootfs
    could otherwise give the app any root, / included, at the next start.  The overlay is
    mounted on the checked descriptor itself (lowerdir=/proc/self/fd/N, which the kernel
    resolves to the open directory, not by walking its path again) and keeps that lower,
    so no swap of the path later reaches the app, also when it restarts.  No bind mount
    of it: every mount on the host is one more that systemd goes through when it sets up
    each app's namespace, and with many pods those add up.
    """
    (source,) = app["lowerdirs"]
    where = f"pod {pod}: app.{app['name']}.rootfs: {source}"
    return _open_literally(
        source,
        where,
        "an app's rootfs",
        f"app {app['name']}: rootfs {source} is not a directory (create it or fix the manifest)",
    )


def _copy_environment_files(pod: str, app: AppPlan, runtime: paths.PodRuntime) -> None:
    """Copy the app's environment files to where its EnvironmentFile= settings point.

    systemd reads EnvironmentFile= as root, following links: whoever can write a parent
    of one could make any file's VAR=value lines (another service's secrets) the app's
    environment.  So each is opened without following a symbolic link in any component,
    must be a regular file, and is read once, here: the app gets what was checked, at
    every (re)start of it until the pod restarts.
    """
    # A plan of an older generator has none: its units name the files themselves.
    for index, source in enumerate(app.get("environment_files", [])):
        where = f"pod {pod}: app.{app['name']}.environment_files[{index}]: {source}"
        try:
            fd = hostpaths.open_literally(source, directory=False)
        except hostpaths.LinkInPath as error:
            inner = "" if error.link == source else f": {error.link}"
            raise PrepareError(
                f"{where}{inner} is a symbolic link, which podmgr does not "
                "follow in an app's environment files (name the file itself)"
            ) from None
        except (FileNotFoundError, NotADirectoryError):
            raise PrepareError(f"{where} does not exist (create it or fix the manifest)") from None
        try:
            data = _read_regular_file(fd)
        finally:
            os.close(fd)
        if data is None:
            raise PrepareError(
                f"{where} is not a regular file of at most 1M (name a file of VAR=value lines)"
            )
        copy = runtime.environment_file(app["name"], index)
        copy.parent.mkdir(mode=0o700, exist_ok=True)
        with open(
            os.open(
                copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            ),
            "wb",
        ) as out:
            out.write(data)


def _read_regular_file(fd: int) -> bytes | None:
    """What the regular file behind O_PATH descriptor ``fd`` holds, or None when it is
    something else or larger than ENVIRONMENT_FILE_MAX."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return None
    # Reopened through the checked descriptor: the kernel does not walk the path again.
    with open(f"/proc/self/fd/{fd}", "rb") as opened:
        data = opened.read(ENVIRONMENT_FILE_MAX + 1)
    return data if len(data) <= ENVIRONMENT_FILE_MAX else None


def _mount_overlay(lowers: list[str], app_dir: Path, root: Path) -> None:
    """Mount the app's overlay.  Mount options fit in one page, which forty layers of the
    store's long names would not: so they are passed relative to their common parent,
    which is where mount(2) resolves them, from our working directory."""
    common = os.path.commonpath(lowers) if len(lowers) > 1 else ""
    relative = common not in ("", "/")
    names = [os.path.relpath(lower, common) for lower in lowers] if relative else lowers
    options = f"lowerdir={':'.join(names)},upperdir={app_dir / 'upper'},workdir={app_dir / 'work'}"
    previous = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if relative:
            os.chdir(common)
        mounts.mount("overlay", root, "overlay", 0, options)
    finally:
        os.fchdir(previous)
        os.close(previous)


def _make_mount_point(root: Path, path: str, directory: bool) -> None:
    """Create ``path`` in the app's root unless present, never following a symlink of the
    image; where one is in the way, leave it to systemd, which resolves it inside the root."""
    parts = [p for p in path.split("/") if p]
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            try:
                if last and not directory:
                    os.close(
                        os.open(
                            part,
                            os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                            0o644,
                            dir_fd=fd,
                        )
                    )
                    return
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            if last:
                return
            try:
                next_fd = os.open(
                    part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                )
            except OSError as error:
                if error.errno in (errno.ENOTDIR, errno.ELOOP):
                    return
                raise
            os.close(fd)
            fd = next_fd
    finally:
        os.close(fd)


def load_plan(name: str, path: str | None) -> Plan:
    """The plan the generator wrote at the last daemon-reload, as the drop-in names it
    (PODMGR_PLAN= in pod@NAME.service)."""
    if not path:
        raise PodmgrError(
            f"pod@{name}.service: no manifest for pod {name!r} was found at the "
            f"last daemon-reload (create /etc/podmgr/pods/{name}.toml, then run "
            "systemctl daemon-reload)"
        )
    try:
        plan: Plan = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise PodmgrError(
            f"pod@{name}.service: cannot read {path}: {error} (run systemctl daemon-reload)"
        ) from None
    if plan["pod"] != name:
        raise PodmgrError(f"pod@{name}.service: {path} is the plan of pod {plan['pod']!r}")
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    """``podmgr-pod prepare|release NAME``: what the service does, without it
    (pod@NAME.service releases through this when the service cannot be reached); and
    ``podmgr-pod health-failed|health-wait POD APP ...`` for health checks (health.py)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0].startswith("health-"):
        from podmgr.runtime import health  # noqa: PLC0415 -- needs none of prepare's imports

        return health.main(args)
    if len(args) != 2 or args[0] not in ("prepare", "release"):
        print("usage: podmgr-pod prepare|release NAME", file=sys.stderr)
        return 2
    verb, name = args
    try:
        name = names.PodName(name)  # a path like "../x" never reaches release's rmtree
    except PodmgrError as error:
        print(f"podmgr-pod: {error}", file=sys.stderr)
        return 2
    try:
        if verb == "prepare":
            prepare(load_plan(name, os.environ.get("PODMGR_PLAN")))
        else:
            release(name)
    except PodmgrError as error:
        print(error, file=sys.stderr)
        return 1
    return 0
