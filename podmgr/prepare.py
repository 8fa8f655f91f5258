# SPDX-License-Identifier: LGPL-2.1-or-later
"""Prepare a pod before its apps start, and release it after they stop.

pod@NAME.service runs ``podmgr-pod prepare NAME`` as its start and ``podmgr-pod release
NAME`` after it stops (also after a failed start).  Everything lives under
/run/podmgr/pods/NAME/:

    ns/net, ns/ipc            the pod's namespaces, pinned (net only for network = private)
    etc/hosts, hostname, resolv.conf   bind-mounted read-only into every app
    apps/APP/rootfs           overlay: the app's source, read-only, under a volatile upper
    apps/APP/upper, work      the overlay's writable layer, gone at release
    volumes/VOL               tmpfs volumes, shared by the apps that mount them
    userdb-ids.json           app users and groups made known to the host (userdb.py)

Release unmounts everything below that directory — whatever prepare got to, even after
a crash or a kill -9 — and removes it; releasing a released pod does nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from podmgr import manifest, mounts, namespaces, paths, units, userdb, users
from podmgr.errors import ManifestError, PodmgrError, PrepareError
from podmgr.manifest import App, Manifest, Volume
from podmgr.rootfs import source_of
from podmgr.schema import NetworkMode, Ready, VolumeType

# Mount points systemd needs in an app's root for MountAPIVFS=, PrivateDevices= and the
# read-only tmpfs dirs.  They are made before a read-only rootfs becomes read-only.
API_DIRS = ("proc", "sys", "dev", "tmp", "var/tmp", "run")


def prepare(pod: Manifest, runtime_base: Path = paths.RUNTIME_PODS_DIR) -> None:
    """Set up everything the pod's app units need; on failure, undo it and raise."""
    runtime = paths.PodRuntime(pod.name, runtime_base)
    release(pod.name, runtime_base)  # leftovers of a crash would break the mounts below
    try:
        runtime.dir.mkdir(mode=0o700, parents=True)
        _write_etc(pod, runtime)
        pins = {"ipc": runtime.ipcns}
        if pod.network.mode is NetworkMode.PRIVATE:
            pins["net"] = runtime.netns
        namespaces.create(pins)
        for volume in pod.volumes.values():
            _prepare_volume(pod.name, volume, runtime)
        for app in pod.apps.values():
            _prepare_rootfs(app, runtime)
        creds = users.credentials(pod).values()
        userdb.register(runtime.dir, {(userdb.USER, c.uid) for c in creds}
                        | {(userdb.GROUP, c.gid) for c in creds})
    except BaseException as error:
        with contextlib.suppress(Exception):
            release(pod.name, runtime_base)
        if isinstance(error, OSError):
            raise PrepareError(f"pod {pod.name}: {error}") from error
        raise


def release(name: str, runtime_base: Path = paths.RUNTIME_PODS_DIR) -> None:
    """Unmount and remove everything prepare made; harmless when there is nothing."""
    runtime = paths.PodRuntime(name, runtime_base)
    for point in mounts.mount_points_under(runtime.dir):
        try:
            mounts.umount(point)
        except OSError as error:
            if error.errno != errno.EINVAL:  # EINVAL: already gone with its parent
                raise PrepareError(f"pod {name}: {error}") from error
    if left := mounts.mount_points_under(runtime.dir):
        # Removing files below a mount would delete what it shows: refuse.
        raise PrepareError(f"pod {name}: {left[0]} is still mounted (unmount it, then run "
                           f"podmgr-pod release {name} again)")
    if runtime.dir.exists():
        userdb.unregister(runtime.dir)
        shutil.rmtree(runtime.dir)


def _write_etc(pod: Manifest, runtime: paths.PodRuntime) -> None:
    runtime.etc.mkdir(parents=True)
    hosts = ("127.0.0.1\tlocalhost\n"
             "::1\tlocalhost ip6-localhost ip6-loopback\n"
             f"127.0.1.1\t{pod.hostname}\n")
    try:
        resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        resolv = ""  # no DNS on the host: none in the pod either
    for name, text in (("hosts", hosts), ("hostname", pod.hostname + "\n"),
                       ("resolv.conf", resolv)):
        (runtime.etc / name).write_text(text)
        (runtime.etc / name).chmod(0o644)


def _prepare_volume(pod: str, volume: Volume, runtime: paths.PodRuntime) -> None:
    if volume.type is VolumeType.HOST:
        assert volume.source is not None
        if not os.path.isdir(volume.source):
            raise PrepareError(f"pod {pod}: volume.{volume.name}.source: {volume.source} is "
                               "not a directory (create it or fix the manifest)")
        return
    if volume.type is VolumeType.EMPTY:
        directory = paths.empty_volume(pod, volume.name)
        directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    else:
        directory = runtime.tmpfs_volume(volume.name)
    mode = 0o755 if volume.mode is None else volume.mode
    uid, gid = volume.uid or 0, volume.gid or 0
    # Kept volumes get their mode and owner when created; later the data's owner decides.
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700, parents=True)
        os.chown(directory, uid, gid)
        os.chmod(directory, mode)
    if volume.type is VolumeType.TMPFS:
        options = [f"mode={mode:o}", f"uid={uid}", f"gid={gid}"]
        if volume.size is not None:
            options.append(f"size={volume.size}")
        mounts.mount("tmpfs", directory, "tmpfs", mounts.MS_NOSUID | mounts.MS_NODEV,
                     ",".join(options))


def _prepare_rootfs(app: App, runtime: paths.PodRuntime) -> None:
    lowers = source_of(app).lowerdirs()
    for lower in lowers:
        if not os.path.isdir(lower):
            raise PrepareError(f"app {app.name}: rootfs {lower} is not a directory "
                               "(create it or fix the manifest)")
    app_dir = runtime.app_dir(app.name)
    for part in ("upper", "work", "rootfs"):
        (app_dir / part).mkdir(parents=True)
    options = (f"lowerdir={':'.join(lowers)},upperdir={app_dir / 'upper'},"
               f"workdir={app_dir / 'work'}")
    root = runtime.rootfs(app.name)
    mounts.mount("overlay", root, "overlay", 0, options)
    for directory in API_DIRS:
        _make_mount_point(root, directory, directory=True)
    for name in units.POD_ETC_FILES:
        _make_mount_point(root, f"etc/{name}", directory=False)
    for mount in app.mounts:
        _make_mount_point(root, mount.path, directory=True)
    if app.ready is Ready.NOTIFY:
        _make_mount_point(root, "run/systemd/notify", directory=False)
    if app.read_only:
        mounts.mount("none", root, None, mounts.MS_REMOUNT | mounts.MS_BIND | mounts.MS_RDONLY)


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
                    os.close(os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, 0o644, dir_fd=fd))
                    return
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            if last:
                return
            try:
                next_fd = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                  dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ENOTDIR, errno.ELOOP):
                    return
                raise
            os.close(fd)
            fd = next_fd
    finally:
        os.close(fd)


def _load(name: str) -> Manifest:
    """The manifest the generator used, as pod@NAME.service's drop-in names it."""
    path = os.environ.get("PODMGR_MANIFEST")
    if not path:
        raise PodmgrError(f"pod@{name}.service: no manifest for pod {name!r} was found at the "
                          f"last daemon-reload (create /etc/podmgr/pods/{name}.toml, then run "
                          "systemctl daemon-reload)")
    pod = manifest.load(Path(path))
    if pod.name != name:
        raise PodmgrError(f"pod@{name}.service: {path} is the manifest of pod {pod.name!r}")
    return pod


def main(argv: Sequence[str] | None = None) -> int:
    """``podmgr-pod prepare|release NAME``, run by pod@NAME.service."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("prepare", "release"):
        print("usage: podmgr-pod prepare|release NAME", file=sys.stderr)
        return 2
    verb, name = args
    try:
        if verb == "prepare":
            prepare(_load(name))
        else:
            release(name)
    except ManifestError as error:
        for line in str(error).splitlines():
            print(line, file=sys.stderr)
        return 1
    except PodmgrError as error:
        print(error, file=sys.stderr)
        return 1
    return 0
