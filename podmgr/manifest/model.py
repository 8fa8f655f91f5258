# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pod manifests: TOML in, frozen dataclasses out.

Parsing is driven by the key table in ``schema.py``; the dataclasses here have one field
per key.  Every problem found is collected, so ``podmgr validate`` can list them all:
first the problems of single values (types, sizes, unknown keys), then — once every value
is sound — the problems between values (references, cycles, keys that do not apply).
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from podmgr import names, tables
from podmgr.errors import ManifestError, Problem
from podmgr.manifest import isolation, schema, sockets
from podmgr.manifest.healthkeys import OnFailure
from podmgr.manifest.listen import Listen
from podmgr.manifest.schema import (
    AutoUpdate,
    Isolation,
    NetworkMode,
    Ready,
    Restart,
    VolumeType,
)
from podmgr.manifest.socketkeys import SocketNamespace, SocketType
from podmgr.values import BadValue, Executable, Port, toml_key


@dataclass(frozen=True)
class Resources:
    """[pod.resources] and [app.NAME.resources]: cgroup limits."""

    memory_max: int | None
    memory_high: int | None
    cpu_weight: int | None
    cpu_quota: int | None
    tasks_max: int | None
    io_weight: int | None


@dataclass(frozen=True)
class PodSettings:
    """[pod]: settings of the pod as a whole."""

    hostname: str | None
    annotations: dict[str, str]
    restart: Restart
    stop_timeout: int
    resources: Resources
    isolation: Isolation = Isolation.CONTAINER  # a default: code that builds one needs none


@dataclass(frozen=True)
class Network:
    """[network]: how the pod is connected."""

    mode: NetworkMode | str  # a str: the name of the network a bridged pod joins first
    networks: tuple[str, ...]
    ports: tuple[Port, ...]
    dns: tuple[str, ...]
    dns_search: tuple[str, ...]
    hosts: dict[str, str]

    @property
    def kind(self) -> NetworkMode:
        return self.mode if isinstance(self.mode, NetworkMode) else NetworkMode.BRIDGE

    @property
    def joined(self) -> tuple[str, ...]:
        """The networks the pod is on: none unless bridged; "podmgr" by default."""
        if self.kind is not NetworkMode.BRIDGE:
            return ()
        named = () if isinstance(self.mode, NetworkMode) else (self.mode,)
        joined = named + tuple(n for n in self.networks if n not in named)
        return joined or (names.DEFAULT_NETWORK,)


@dataclass(frozen=True)
class Install:
    """[install]: the targets that pull the pod in."""

    wanted_by: tuple[str, ...]
    required_by: tuple[str, ...]


@dataclass(frozen=True)
class Volume:
    """[volume.NAME]: storage the apps of the pod can mount."""

    name: str
    type: VolumeType
    source: str | None
    read_only: bool
    mode: int | None
    uid: int | None
    gid: int | None
    size: int | None


@dataclass(frozen=True)
class Mount:
    """[[app.NAME.mount]]: a volume mounted into an app."""

    volume: str
    path: str
    read_only: bool


@dataclass(frozen=True)
class Socket:
    """[[app.NAME.socket]]: a socket systemd listens on for an app."""

    listen: Listen
    type: SocketType
    namespace: SocketNamespace
    activate: bool
    fd_name: str | None  # None: the app's name


@dataclass(frozen=True)
class Health:
    """[app.NAME.health]: an app's health check."""

    exec: tuple[str, ...]
    interval: int  # microseconds, as every duration
    timeout: int
    retries: int
    start_period: int
    on_failure: OnFailure


@dataclass(frozen=True)
class App:
    """[app.NAME]: one app of the pod."""

    name: str
    rootfs: str | None
    image: str | None
    exec: tuple[str, ...] | None
    environment: dict[str, str]
    environment_files: tuple[str, ...]
    working_directory: str | None
    user: str | int | None
    group: str | int | None
    restart: Restart | None
    ready: Ready
    after: tuple[str, ...]
    capabilities_retain: tuple[str, ...] | None
    capabilities_remove: tuple[str, ...]
    no_new_privileges: bool
    read_only: bool
    system_call_filter: tuple[str, ...]
    private_users: bool
    resources: Resources
    mounts: tuple[Mount, ...]
    sockets: tuple[Socket, ...]
    health: Health | None = None  # [app.NAME.health]: None without one
    # podmgr auto-update (image/autoupdate.py): None when the app's image is left alone.
    auto_update: AutoUpdate | None = None


@dataclass(frozen=True)
class Manifest:
    """A pod manifest, parsed and checked."""

    name: str
    path: str
    version: int
    pod: PodSettings
    network: Network
    install: Install
    volumes: dict[str, Volume]
    apps: dict[str, App]

    @property
    def hostname(self) -> str:
        return self.pod.hostname or self.name

    def restart_of(self, app: App) -> Restart:
        return app.restart or self.pod.restart


# The dataclass each section of the schema builds, by the section's field name.
_CLASSES: dict[str, type] = {
    "pod": PodSettings,
    "resources": Resources,
    "network": Network,
    "install": Install,
    "volumes": Volume,
    "mounts": Mount,
    "sockets": Socket,
    "apps": App,
    "health": Health,
}


def pod_name_of(path: Path) -> str:
    return path.name.removesuffix(".toml")


def load(path: Path) -> Manifest:
    """Read and parse the manifest at ``path``; raise ``ManifestError`` listing every problem."""
    try:
        text = path.read_bytes().decode()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ManifestError(str(path), [Problem("", f"cannot read: {reason}")]) from None
    return parse(text, path)


def parse(text: str, path: Path) -> Manifest:
    problems: list[Problem] = []
    name = pod_name_of(path)
    if not path.name.endswith(".toml"):  # (".toml" itself: its name is invalid, below)
        problems.append(Problem("", "a manifest's name must end in .toml (rename the file)"))
    if not names.is_valid_name(name):
        problems.append(
            Problem("", f"{name!r} is not a valid pod name (rename the file; {names.NAME_HINT})")
        )
    elif not names.is_valid_pod_name(name):
        problems.append(
            Problem(
                "",
                f"the pod's slice would be {names.pod_slice(name)}, longer "
                f"than the {names.UNIT_NAME_MAX} characters systemd allows a "
                "unit's name (rename the file: each '-' takes four)",
            )
        )
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        problems.append(tables.syntax_problem(error))
        raise ManifestError(str(path), problems) from None
    except RecursionError:
        # tomllib reads nested arrays and inline tables recursively.
        problems.append(
            Problem(
                "",
                "arrays or tables are nested too deeply to read (no key "
                "of a manifest nests more than two levels)",
            )
        )
        raise ManifestError(str(path), problems) from None
    except ValueError as error:
        # int() refuses more than sys.get_int_max_str_digits() digits (4300 by default).
        reason = (
            "a number has too many digits to read (no key takes a number of more than 20 digits)"
            if "digits" in str(error)
            else f"cannot read it: {error}"
        )
        problems.append(Problem("", reason))
        raise ManifestError(str(path), problems) from None
    values = tables.Parser(_CLASSES, problems).section(schema.MANIFEST, raw, "")
    if problems:
        raise ManifestError(str(path), problems)
    manifest = Manifest(name=name, path=str(path), **values)
    problems.extend(_check(manifest))
    problems.extend(isolation.check(manifest, raw))
    if problems:
        raise ManifestError(str(path), problems)
    return isolation.applied(manifest)


def _check(manifest: Manifest) -> list[Problem]:
    """Problems between values: references, cycles, keys that do not apply."""
    problems: list[Problem] = []
    if not manifest.apps:
        problems.append(Problem("app", "the pod has no apps (add an [app.NAME] table)"))
    for volume in manifest.volumes.values():
        problems.extend(_check_volume(volume))
    for app in manifest.apps.values():
        problems.extend(_check_app(manifest, app))
    problems.extend(_check_cycles(manifest))
    if manifest.pod.isolation is not Isolation.FLY:  # its network keys: isolation.check
        problems.extend(_check_network(manifest.network))
    problems.extend(sockets.check(manifest))
    return problems


def warnings(manifest: Manifest) -> list[Problem]:
    """What a valid manifest says that will not happen: shown, not refused."""
    found = []
    if manifest.pod.isolation is Isolation.FLY:
        found.append(
            Problem(
                "pod.isolation",
                '"fly" gives up isolation: the apps run in the host\'s namespaces with every '
                'capability, as root can (use "container" unless the apps must manage the host)',
            )
        )
    if manifest.network.kind is NetworkMode.HOST and manifest.network.ports:
        found.append(
            Problem(
                "network.ports",
                'ignored with mode = "host": the apps listen on '
                "the host's addresses themselves (remove it, or set mode = "
                '"bridge")',
            )
        )
    if not names.is_valid_machine_name(manifest.name):
        found.append(
            Problem(
                "",
                f"the pod {manifest.name!r} will run, but not be registered with "
                "systemd-machined (machinectl, ps -o machine), which takes host names "
                "only: use letters, digits, '-' and '.' in its name, with no '-' at either "
                "end of a part between dots",
            )
        )
    from podmgr.hostpaths import first_link  # noqa: PLC0415 -- the one look at the host here

    for key, path, what in _host_paths(manifest):
        if link := first_link(path):
            found.append(
                Problem(
                    key,
                    f"{link} is a symbolic link: the pod will not start, as "
                    f"podmgr does not follow links in {what}",
                )
            )
    return found


def _host_paths(manifest: Manifest) -> Iterator[tuple[str, str, str]]:
    """The paths resolved on the host as root, which prepare takes literally: each key,
    path and what it is."""
    for volume in manifest.volumes.values():
        if volume.type is VolumeType.HOST and volume.source:
            yield (
                f"volume.{volume.name}.source",
                volume.source,
                "a host volume's source (name the directory itself)",
            )
    for app in manifest.apps.values():
        if app.rootfs:
            yield (
                f"app.{app.name}.rootfs",
                app.rootfs,
                "an app's rootfs (name the directory itself)",
            )
        for index, file in enumerate(app.environment_files):
            yield (
                f"app.{app.name}.environment_files[{index}]",
                file,
                "an app's environment files (name the file itself)",
            )


def _check_network(network: Network) -> list[Problem]:
    problems = []
    bridged = network.kind is NetworkMode.BRIDGE
    if network.networks and not bridged:
        problems.append(
            Problem("network.networks", 'only a bridged pod joins networks (set mode = "bridge")')
        )
    if network.ports and network.kind is NetworkMode.PRIVATE:
        problems.append(
            Problem(
                "network.ports",
                'a private network cannot be reached from the host (set mode = "bridge")',
            )
        )
    seen: set[tuple[str, int, str]] = set()
    for index, port in enumerate(network.ports):
        key = (port.host_ip, port.host_port, port.protocol)
        if key in seen:
            problems.append(
                Problem(
                    f"network.ports[{index}]",
                    f"{port.host_port}/{port.protocol} is published twice (publish it once)",
                )
            )
        seen.add(key)
    for name, address in network.hosts.items():
        try:
            ipaddress.ip_address(address)
        except ValueError:
            problems.append(
                Problem(
                    f"network.hosts.{name}",
                    f'{address!r} is not an IP address (write it like "10.0.0.5")',
                )
            )
    return problems


def _check_volume(volume: Volume) -> list[Problem]:
    problems = []
    where = f"volume.{toml_key(volume.name)}"
    if volume.type is VolumeType.HOST and volume.source is None:
        problems.append(Problem(f"{where}.source", 'missing (add: source = "/srv/data")'))
    for spec in schema.VOLUME.keys:
        if (
            spec.only_for
            and getattr(volume, spec.name) is not None
            and volume.type not in spec.only_for
        ):
            types = " or ".join(f'"{t}"' for t in spec.only_for)
            problems.append(
                Problem(f"{where}.{spec.name}", f"only applies to type = {types} (remove it)")
            )
    return problems


def _check_auto_update(app: App, where: str) -> list[Problem]:
    """An update pulls the app's tag again: there must be a tag to pull."""
    if app.auto_update is None:
        return []
    if app.image is None:
        return [Problem(f"{where}.auto_update", "only an app with an image is updated (remove it)")]
    from podmgr.image import reference  # noqa: PLC0415 -- only for such apps

    if reference.parse(app.image).digest is not None:
        return [
            Problem(
                f"{where}.auto_update",
                f"{app.image} names its image by digest, which never changes "
                "(name it by a tag, or remove auto_update)",
            )
        ]
    return []


def _check_app(manifest: Manifest, app: App) -> list[Problem]:
    problems = []
    where = f"app.{toml_key(app.name)}"
    if (app.rootfs is None) == (app.image is None):
        problems.append(
            Problem(
                where,
                'set either rootfs = "/path" or image = '
                '"registry.example.org/app:1.0" (exactly one of them)',
            )
        )
    problems.extend(_check_exec(app, where))
    if app.ready is Ready.HEALTHY and app.health is None:
        problems.append(
            Problem(
                f"{where}.ready",
                '"healthy" needs a health check (add [app.'
                f'{toml_key(app.name)}.health] with exec = [...], or set ready = "started")',
            )
        )
    problems.extend(_check_auto_update(app, where))
    for other in app.after:
        if other == app.name:
            problems.append(Problem(f"{where}.after", "an app cannot start after itself"))
        elif other not in manifest.apps:
            problems.append(
                Problem(
                    f"{where}.after",
                    f"no app {other!r} in this pod "
                    f"(define [app.{toml_key(other)}] or fix the name)",
                )
            )
    seen: set[str] = set()
    for index, mount in enumerate(app.mounts):
        path = f"{where}.mount[{index}]"
        if mount.volume not in manifest.volumes:
            problems.append(
                Problem(
                    f"{path}.volume",
                    f"no volume {mount.volume!r} "
                    f"(define [volume.{toml_key(mount.volume)}] or fix the name)",
                )
            )
        if mount.path == "/":
            problems.append(
                Problem(
                    f"{path}.path", "cannot mount a volume over / (pick a directory such as /data)"
                )
            )
        if mount.path in seen:
            problems.append(
                Problem(
                    f"{path}.path",
                    f"{mount.path} is already a mount point of this app (use another path)",
                )
            )
        seen.add(mount.path)
    return problems


def _check_exec(app: App, where: str) -> list[Problem]:
    if app.exec is None:
        if app.rootfs is not None:
            return [
                Problem(
                    f"{where}.exec",
                    'missing (add: exec = ["/bin/httpd", "-f"]; only '
                    "an image brings its own command)",
                )
            ]
    elif not app.exec:
        return [Problem(f"{where}.exec", 'is empty (add the command, e.g. ["/bin/sh"])')]
    else:
        try:
            Executable().parse(app.exec[0])
        except BadValue as error:
            return [Problem(f"{where}.exec[0]", str(error))]
    return []


def _check_cycles(manifest: Manifest) -> list[Problem]:
    """systemd would break an ordering cycle by dropping a job at random; refuse it here.

    A depth-first search with a stack of its own: a chain of thousands of apps must not
    exhaust Python's recursion limit."""
    done: set[str] = set()
    for start in manifest.apps:
        if start in done:
            continue
        chain = [start]  # the path being visited, with an iterator over each one's after
        pending = [iter(manifest.apps[start].after)]
        while chain:
            other = next(pending[-1], None)
            if other is None:
                done.add(chain.pop())
                pending.pop()
            elif other not in manifest.apps or other == chain[-1] or other in done:
                continue  # unknown or itself: reported by _check_app
            elif other in chain:
                loop = " -> ".join([*chain[chain.index(other) :], other])
                return [
                    Problem(
                        f"app.{toml_key(other)}.after",
                        f"ordering cycle {loop} (remove one of these after entries)",
                    )
                ]
            else:
                chain.append(other)
                pending.append(iter(manifest.apps[other].after))
    return []
