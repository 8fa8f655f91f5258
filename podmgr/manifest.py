# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pod manifests: TOML in, frozen dataclasses out.

Parsing is driven by the key table in ``schema.py``; the dataclasses here have one field
per key.  Every problem found is collected, so ``podmgr validate`` can list them all:
first the problems of single values (types, sizes, unknown keys), then — once every value
is sound — the problems between values (references, cycles, keys that do not apply).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podmgr import names, schema
from podmgr.errors import ManifestError, Problem
from podmgr.schema import NetworkMode, Ready, Restart, Section, VolumeType
from podmgr.values import BadValue, toml_type


@dataclass(frozen=True)
class Resources:
    memory_max: int | None
    memory_high: int | None
    cpu_weight: int | None
    cpu_quota: int | None
    tasks_max: int | None
    io_weight: int | None


@dataclass(frozen=True)
class PodSettings:
    hostname: str | None
    annotations: dict[str, str]
    restart: Restart
    stop_timeout: int
    resources: Resources


@dataclass(frozen=True)
class Network:
    mode: NetworkMode


@dataclass(frozen=True)
class Install:
    wanted_by: tuple[str, ...]
    required_by: tuple[str, ...]


@dataclass(frozen=True)
class Volume:
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
    volume: str
    path: str
    read_only: bool


@dataclass(frozen=True)
class App:
    name: str
    rootfs: str
    exec: tuple[str, ...]
    environment: dict[str, str]
    environment_files: tuple[str, ...]
    working_directory: str
    user: str | int
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


@dataclass(frozen=True)
class Manifest:
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
    "pod": PodSettings, "resources": Resources, "network": Network, "install": Install,
    "volumes": Volume, "mounts": Mount, "apps": App,
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
    if path.suffix != ".toml":
        problems.append(Problem("", "a manifest's name must end in .toml (rename the file)"))
    if not names.is_valid_name(name):
        problems.append(Problem("", f"{name!r} is not a valid pod name (rename the file; "
                                f"{names.NAME_HINT})"))
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        problems.append(_syntax_problem(error))
        raise ManifestError(str(path), problems) from None
    values = _parse_section(schema.MANIFEST, raw, "", problems)
    if problems:
        raise ManifestError(str(path), problems)
    manifest = Manifest(name=name, path=str(path), **values)
    problems.extend(_check(manifest))
    if problems:
        raise ManifestError(str(path), problems)
    return manifest


def _syntax_problem(error: tomllib.TOMLDecodeError) -> Problem:
    message = str(error)
    where = ""
    if match := re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message):
        message, where = match[1], f"line {match[2]}, column {match[3]}"
    elif match := re.fullmatch(r"(.*) \(at end of document\)", message):
        message, where = match[1], "end of file"
    if match := re.fullmatch(r"Cannot declare \((.*)\) twice", message):
        table = ".".join(part.strip(" '\"") for part in match[1].split(","))
        return Problem(where, f"[{table}] is declared twice (names of apps and volumes "
                       "must be unique: rename or merge one)")
    if message == "Cannot overwrite a value":
        return Problem(where, "this key is already set (set each key once)")
    return Problem(where, f"{message} (fix the TOML syntax here; see podmgr.toml(5))")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _parse_section(section: Section, raw: dict[str, Any], where: str,
                   problems: list[Problem]) -> dict[str, Any]:
    """Turn one TOML table into keyword arguments for its dataclass."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        path = _join(where, key)
        if spec := section.key_index.get(key):
            try:
                values[key] = spec.type.parse(value)
            except BadValue as error:
                problems.append(Problem(path + error.subpath, str(error)))
        elif sub := section.subsection(key):
            values[sub.attribute] = _parse_subsection(sub, value, path, problems)
        else:
            problems.append(Problem(path, _unknown_key(section, key, where)))
    for spec in section.keys:
        if spec.name in raw:
            continue
        if spec.required:
            problems.append(Problem(_join(where, spec.name),
                                    f"missing (add: {spec.name} = {spec.example})"))
        else:
            values[spec.name] = None if spec.default is None else spec.type.parse(spec.default)
    for sub in section.subsections:
        if sub.attribute not in values:
            values[sub.attribute] = _parse_subsection(sub, {} if not sub.array else [],
                                                  _join(where, sub.name), problems)
    return values


def _parse_subsection(section: Section, raw: object, where: str,
                      problems: list[Problem]) -> Any:
    cls = _CLASSES[section.attribute]
    if section.named:
        if not _is_table(raw, where, f"[{where}.NAME] tables", problems):
            return {}
        assert isinstance(raw, dict)
        built = {}
        for name, table in raw.items():
            path = f"{where}.{name}"
            if not names.is_valid_name(name):
                problems.append(Problem(path, f"{name!r} is not a valid {section.name} name "
                                        f"({names.NAME_HINT})"))
            elif _is_table(table, path, f"a [{path}] table", problems):
                built[name] = _build(cls, section, table, path, problems, name=name)
        return built
    if section.array:
        if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
            problems.append(Problem(where, f"expected [[{where}]] tables, got {toml_type(raw)}"))
            return ()
        return tuple(_build(cls, section, table, f"{where}[{index}]", problems)
                     for index, table in enumerate(raw))
    if not _is_table(raw, where, f"a [{where}] table", problems):
        raw = {}
    assert isinstance(raw, dict)
    return _build(cls, section, raw, where, problems)


def _build(cls: type, section: Section, raw: dict[str, Any], where: str,
           problems: list[Problem], **extra: str) -> Any:
    """The dataclass for one table, or None when its values had problems (already listed)."""
    before = len(problems)
    values = _parse_section(section, raw, where, problems)
    return cls(**extra, **values) if len(problems) == before else None


def _is_table(raw: object, where: str, expected: str, problems: list[Problem]) -> bool:
    if isinstance(raw, dict):
        return True
    problems.append(Problem(where, f"expected {expected}, got {toml_type(raw)}"))
    return False


def _unknown_key(section: Section, key: str, where: str) -> str:
    known = [k.name for k in section.keys] + [s.name for s in section.subsections]
    for sub in section.subsections:
        if key in sub.key_index and not sub.named and not sub.array:
            return f"unknown key (did you mean {key} in [{_join(where, sub.name)}]?)"
    if close := difflib.get_close_matches(key, known, n=1):
        return f"unknown key (did you mean {close[0]}?)"
    return "unknown key (see podmgr.toml(5) for the keys of this table)"


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
    return problems


def _check_volume(volume: Volume) -> list[Problem]:
    problems = []
    where = f"volume.{volume.name}"
    if volume.type is VolumeType.HOST and volume.source is None:
        problems.append(Problem(f"{where}.source", 'missing (add: source = "/srv/data")'))
    for spec in schema.VOLUME.keys:
        if spec.only_for and getattr(volume, spec.name) is not None \
                and volume.type not in spec.only_for:
            types = " or ".join(f'"{t}"' for t in spec.only_for)
            problems.append(Problem(f"{where}.{spec.name}",
                                    f"only applies to type = {types} (remove it)"))
    return problems


def _check_app(manifest: Manifest, app: App) -> list[Problem]:
    problems = []
    where = f"app.{app.name}"
    if not app.exec:
        problems.append(Problem(f"{where}.exec", 'is empty (add the command, e.g. ["/bin/sh"])'))
    elif not app.exec[0].startswith("/"):
        problems.append(Problem(f"{where}.exec[0]", f"{app.exec[0]!r} is not an absolute path "
                                "(give the program's full path inside the rootfs)"))
    for other in app.after:
        if other == app.name:
            problems.append(Problem(f"{where}.after", "an app cannot start after itself"))
        elif other not in manifest.apps:
            problems.append(Problem(f"{where}.after", f"no app {other!r} in this pod "
                                    f"(define [app.{other}] or fix the name)"))
    seen: set[str] = set()
    for index, mount in enumerate(app.mounts):
        path = f"{where}.mount[{index}]"
        if mount.volume not in manifest.volumes:
            problems.append(Problem(f"{path}.volume", f"no volume {mount.volume!r} "
                                    f"(define [volume.{mount.volume}] or fix the name)"))
        if mount.path == "/":
            problems.append(Problem(f"{path}.path", "cannot mount a volume over / "
                                    "(pick a directory such as /data)"))
        if mount.path in seen:
            problems.append(Problem(f"{path}.path", f"{mount.path} is already a mount point "
                                    "of this app (use another path)"))
        seen.add(mount.path)
    return problems


def _check_cycles(manifest: Manifest) -> list[Problem]:
    """systemd would break an ordering cycle by dropping a job at random; refuse it here."""
    state: dict[str, str] = {}

    def visit(name: str, chain: list[str]) -> list[str] | None:
        state[name] = "visiting"
        for other in manifest.apps[name].after:
            if other not in manifest.apps or other == name:
                continue  # reported by _check_app
            if state.get(other) == "visiting":
                return [*chain, name, other]
            if other not in state and (cycle := visit(other, [*chain, name])):
                return cycle
        state[name] = "done"
        return None

    for name in manifest.apps:
        if name not in state and (cycle := visit(name, [])):
            start = cycle.index(cycle[-1])
            loop = " -> ".join(cycle[start:])
            return [Problem(f"app.{cycle[start]}.after",
                            f"ordering cycle {loop} (remove one of these after entries)")]
    return []
