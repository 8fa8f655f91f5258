# SPDX-License-Identifier: LGPL-2.1-or-later
"""/etc/podmgr/podmgr.toml: image policy, unpack limits and registries.

    [images]
    insecure = ["localhost:5000/scratch"]   # name prefixes stored without a signature
    max_layer_entries = 1000000
    max_layer_size = "64G"
    max_layer_ratio = 2000
    allow_devices = false
    strip_setuid = false

    [registry."registry.example.org"]
    insecure = false                         # true: plain HTTP
    lookaside = "https://sigs.example.org/"  # where its images' signatures are

    [service]
    idle_timeout = "30s"                     # then org.podmgr1 exits until needed

    [gc]
    grace = "24h"                            # removed images keep their layers this long

    [auto_update]
    timeout = "2min"                         # an updated pod must be active by then

Credentials for registries are in /etc/podmgr/auth.json (the containers auth.json format,
{"auths": {"HOST": {"auth": base64("user:password")}}}), which must be readable by root
only.  Parsed with the same key tables as manifests (tables.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from podmgr import tables
from podmgr.errors import ManifestError, PodmgrError, Problem
from podmgr.quantities import Duration, Size
from podmgr.tables import Key, Section
from podmgr.values import Boolean, Integer, ListOf, String

CONFIG = Path("/etc/podmgr/podmgr.toml")
AUTH = Path("/etc/podmgr/auth.json")

_PREFIX = String(
    r"[a-z0-9.:\[\]_-]+(/[a-z0-9._-]+)*",
    "write it like registry.example.org/shop",
    "image name prefix",
)
_HOST = String(
    r"[A-Za-z0-9.-]+(:[0-9]+)?|\[[0-9a-fA-F:]+\](:[0-9]+)?",
    "write it like registry.example.org or localhost:5000",
    "registry host",
)

IMAGES = Section(
    "images",
    "images",
    "Image policy and unpack limits.",
    (
        Key(
            "insecure",
            ListOf(_PREFIX),
            "Image name prefixes that may be stored without a "
            "trusted signature. podmgr image list marks such images INSECURE.",
            default=[],
            example='["localhost:5000/scratch"]',
        ),
        Key(
            "max_layer_entries",
            Integer(1, 2**31, "count"),
            "Most entries a layer may have.",
            default=1_000_000,
        ),
        Key(
            "max_layer_size",
            Size(),
            "Most bytes of files a layer may unpack to (sparse files count their full size).",
            default="64G",
        ),
        Key(
            "max_layer_ratio",
            Integer(1, 10**6, "ratio"),
            "Most a layer may unpack to, as a "
            "multiple of its compressed size (at least 1M): both its tar stream and its files' "
            "apparent sizes count, so a small layer of sparse files or long zero runs cannot fill "
            "the disk. gzip does not compress by more than about 1000:1; zstd layers of long zero "
            "runs may need more.",
            default=2000,
        ),
        Key("allow_devices", Boolean(), "Let layers create device nodes.", default=False),
        Key(
            "strip_setuid", Boolean(), "Drop setuid and setgid bits while unpacking.", default=False
        ),
    ),
)

REGISTRY = Section(
    "registry",
    "registries",
    "Per registry host.",
    (
        Key(
            "insecure",
            Boolean(),
            "Talk plain HTTP to this registry instead of HTTPS.",
            default=False,
        ),
        Key(
            "lookaside",
            String(r"(https?|file)://\S+", "use an http(s):// or file:// URL", "URL"),
            "Where signatures of this registry's images are: URL/REPO@sha256=HEX/signature-N.",
            example='"https://sigs.example.org/"',
        ),
    ),
    named=True,
    name_type=_HOST,
)

SERVICE = Section(
    "service",
    "service",
    "The org.podmgr1 service, started on demand.",
    (
        Key(
            "idle_timeout",
            Duration(),
            "How long the service stays after its last call, "
            "job or transfer before it exits (the next call starts it again).",
            default="30s",
        ),
    ),
)

GC = Section(
    "gc",
    "gc",
    "Garbage collection (podmgr gc, podmgr-gc.timer).",
    (
        Key(
            "grace",
            Duration(),
            "How long the layers and blobs of an image removed (podmgr image rm) or "
            "replaced (a pull or an auto-update of its tag) stay in the store before "
            "podmgr gc frees them, as rkt gc --grace-period kept them; podmgr gc "
            "--grace overrides it, 0 frees them at once.",
            default="24h",
        ),
    ),
)

AUTO_UPDATE = Section(
    "auto_update",
    "auto_update",
    "podmgr auto-update (podmgr-auto-update.timer).",
    (
        Key(
            "timeout",
            Duration(),
            "How long a pod restarted on updated images has to become active (pod@NAME"
            ".service and every app unit) before the previous images are restored and the "
            "pod is restarted on them.",
            default="2min",
        ),
    ),
)

TOP = Section(
    "",
    "",
    "podmgr's configuration.",
    (),
    subsections=(IMAGES, REGISTRY, SERVICE, GC, AUTO_UPDATE),
)


@dataclass(frozen=True)
class ImagePolicy:
    insecure: tuple[str, ...]
    max_layer_entries: int
    max_layer_size: int
    allow_devices: bool
    strip_setuid: bool
    max_layer_ratio: int = 2000


@dataclass(frozen=True)
class Registry:
    name: str
    insecure: bool
    lookaside: str | None


@dataclass(frozen=True)
class Service:
    idle_timeout: int  # microseconds


@dataclass(frozen=True)
class GarbageCollection:
    grace: int  # microseconds


@dataclass(frozen=True)
class AutoUpdatePolicy:
    timeout: int  # microseconds


@dataclass(frozen=True)
class Config:
    images: ImagePolicy
    registries: dict[str, Registry]
    service: Service = Service(30 * 10**6)
    gc: GarbageCollection = GarbageCollection(24 * 3600 * 10**6)
    auto_update: AutoUpdatePolicy = AutoUpdatePolicy(120 * 10**6)
    auth_file: Path = AUTH

    # transports.base.SourceContext

    def registry_insecure(self, host: str) -> bool:
        registry = self.registries.get(host)
        return registry is not None and registry.insecure

    def registry_lookaside(self, host: str) -> str | None:
        registry = self.registries.get(host)
        return registry.lookaside if registry else None

    def registry_credentials(self, host: str) -> tuple[str, str] | None:
        return read_credentials(self.auth_file, host)


def load(path: Path = CONFIG) -> Config:
    """The configuration; defaults where the file or a key is absent."""
    problems: list[Problem] = []
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raw = {}
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(str(path), [tables.syntax_problem(error)]) from None
    values = tables.Parser(
        {
            "images": ImagePolicy,
            "registries": Registry,
            "service": Service,
            "gc": GarbageCollection,
            "auto_update": AutoUpdatePolicy,
        },
        problems,
    ).section(TOP, raw, "")
    if problems:
        raise ManifestError(str(path), problems)
    return Config(**values)


def read_credentials(path: Path, host: str) -> tuple[str, str] | None:
    """(user, password) for ``host`` from the auth file, which must be root's alone."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if info.st_uid != 0 or info.st_mode & 0o077:
        raise PodmgrError(
            f"{path}: readable by others than root, so it is not used (chown "
            f"root {path} && chmod 600 {path})"
        )
    try:
        entry = json.loads(path.read_text()).get("auths", {}).get(host)
        if not entry:
            return None
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (ValueError, KeyError, AttributeError, TypeError, binascii.Error):
        raise PodmgrError(
            f'{path}: not in the auth.json format ({{"auths": {{"HOST": '
            '{"auth": "BASE64(user:password)"}}}})'
        ) from None
    return user, password
