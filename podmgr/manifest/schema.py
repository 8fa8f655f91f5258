# SPDX-License-Identifier: LGPL-2.1-or-later
"""The table of manifest keys (schema version 1).

This table is the single source of truth: ``model.py`` parses with it, ``podmgr
validate`` reports against it, and ``cli/docs.py`` renders podmgr.toml(5) and the
annotated example from it.  To add a key: add it here, add the field of the same name to
the dataclass in ``model.py``, and use it in ``generator/units.py`` or
``runtime/prepare.py``.  The tables of an app's sockets and health check, each with its
own value types, are in ``socketkeys.py`` and ``healthkeys.py``.
"""

from __future__ import annotations

import enum

from podmgr import names
from podmgr.errors import PodmgrError
from podmgr.manifest.healthkeys import HEALTH
from podmgr.manifest.socketkeys import SOCKET
from podmgr.quantities import Duration, Percent, Size
from podmgr.tables import Key, Section
from podmgr.values import (
    AbsolutePath,
    Address,
    BadValue,
    Boolean,
    Capability,
    Choice,
    ChoiceOr,
    Integer,
    ListOf,
    MapOf,
    Mode,
    PortSpec,
    String,
    SyscallFilter,
    UserRef,
    ValueType,
)

SCHEMA_VERSION = 1


class ImageName(ValueType[str]):
    """An image reference, normalized (busybox -> docker.io/library/busybox:latest)."""

    doc = "image name"

    def parse(self, raw: object) -> str:
        self.expect(raw, str, '"registry.example.org/app:1.0"')
        assert isinstance(raw, str)
        # Deferred: the image code is loaded only for a manifest with an app from an image.
        from podmgr.image import reference  # noqa: PLC0415

        try:
            return str(reference.parse(raw))
        except PodmgrError as error:
            raise BadValue(str(error)) from None


class NetworkMode(enum.StrEnum):
    PRIVATE = "private"
    HOST = "host"
    BRIDGE = "bridge"


class Restart(enum.StrEnum):
    """systemd's Restart= values."""

    NO = "no"
    ON_SUCCESS = "on-success"
    ON_FAILURE = "on-failure"
    ON_ABNORMAL = "on-abnormal"
    ON_WATCHDOG = "on-watchdog"
    ON_ABORT = "on-abort"
    ALWAYS = "always"


class Ready(enum.StrEnum):
    STARTED = "started"
    NOTIFY = "notify"
    HEALTHY = "healthy"


class Isolation(enum.StrEnum):
    """How far a pod's apps are kept from the host: rkt's stage1 flavours, as levels.  The
    generator (units.py) and prepare (prepare.py) each dispatch on it in one place, so a
    further level (a virtual machine per pod, say) is one more branch there."""

    CONTAINER = "container"
    FLY = "fly"


# Auto-update (podmgr auto-update, podmgr-auto-update.timer): a block of its own.
class AutoUpdate(enum.StrEnum):
    """Where podmgr auto-update looks for a newer image of an app's tag: "registry"
    asks the registry the tag came from, as podman's AutoUpdate=registry does (a later
    "local" would compare with another image of the store)."""

    REGISTRY = "registry"


AUTO_UPDATE_KEYS = (
    Key(
        "auto_update",
        Choice(AutoUpdate),
        "Let podmgr auto-update (and podmgr-auto-update.timer) update the app's image: "
        '"registry" pulls its tag again from its registry, verified as podmgr image pull '
        "verifies it, and restarts the pod on a new image; if the pod is not active "
        "within [auto_update] timeout (podmgr.toml), the previous image is restored and "
        "the pod restarted on it. Only for image (by tag, not by digest).",
        example='"registry"',
    ),
)


class VolumeType(enum.StrEnum):
    HOST = "host"
    EMPTY = "empty"
    TMPFS = "tmpfs"


ENV_NAME = String(r"[A-Za-z_][A-Za-z0-9_]*", "use letters, digits and '_'", "variable name")
# A unit name as systemd's unit_name_is_valid() takes one: at most 255 characters of its
# set, one "@" at most and not first (a template, or an instance of one).
_UNIT_NAME = String(
    r"(?=.{1,255}$)[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?"
    r"\.(target|service|socket|timer|path)",
    'use a unit name like "multi-user.target"',
    "unit name",
)

# The kernel refuses a pids.max above PID_MAX_LIMIT (2**22 on 64-bit machines); systemd would
# load a larger TasksMax= and leave the app without a limit, saying so only in the journal.
TASKS_MAX = 2**22

RESOURCES = Section(
    "resources",
    "resources",
    "Resource limits, as systemd's resource control settings (systemd.resource-control(5)).",
    (
        Key(
            "memory_max",
            Size(),
            "Hard memory limit (MemoryMax=); the kernel OOM-kills above it.",
            example='"512M"',
        ),
        Key("memory_high", Size(), "Memory throttling threshold (MemoryHigh=).", example='"400M"'),
        Key(
            "cpu_weight",
            Integer(1, 10000, "weight"),
            "Relative CPU share (CPUWeight=, 1..10000).",
            example="100",
        ),
        Key(
            "cpu_quota",
            Percent(),
            'CPU time limit (CPUQuota=); "200%" is two CPUs.',
            example='"50%"',
        ),
        Key(
            "tasks_max",
            Integer(1, TASKS_MAX, "count"),
            "Limit of processes and threads (TasksMax=), at most 4194304 (the kernel's).",
            example="256",
        ),
        Key(
            "io_weight",
            Integer(1, 10000, "weight"),
            "Relative block I/O share (IOWeight=).",
            example="100",
        ),
    ),
)

POD = Section(
    "pod",
    "pod",
    "Settings of the pod as a whole. The pod's name is the manifest's file name without .toml.",
    (
        Key(
            "hostname",
            String(
                r"[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})", "use letters, digits, '.', '-'", "host name"
            ),
            "Host name written to /etc/hostname and /etc/hosts in every app; defaults to the pod's "
            "name. The kernel host name (uname -n) is the host's: systemd 252 cannot give a unit "
            "its own.",
            example='"shop"',
        ),
        Key(
            "annotations",
            MapOf(
                String(
                    r"[A-Za-z0-9][A-Za-z0-9_./-]{0,252}",
                    "use letters, digits, '_', '.', '/', '-'",
                    "annotation name",
                ),
                "table of strings",
            ),
            "Free-form key/value metadata, shown by podmgr status.",
            default={},
            example='{ "org.example.owner" = "shop-team" }',
        ),
        Key(
            "restart",
            Choice(Restart),
            "Default Restart= of apps that do not set their own.",
            default="no",
        ),
        Key(
            "stop_timeout",
            Duration(),
            "Time an app gets to stop before it is killed (TimeoutStopSec=).",
            default="90s",
        ),
        Key(
            "isolation",
            Choice(Isolation),
            '"container": every app runs from its root file system in the pod\'s own network '
            "and IPC namespaces, with the OCI runtime's default capability bounding set, a "
            'minimal /dev and read-only kernel tunables; "fly": every app runs from its root '
            "file system (an overlay, as with container) but in the host's namespaces, with "
            "every capability, the host's /dev and no system call filter, and sees the host's "
            "/etc/hosts, /etc/resolv.conf and /etc/hostname: for privileged host tools, as "
            "rkt's fly stage1 ran the kubelet. It gives up isolation, so podmgr validate "
            'warns of it; the [network] keys (except mode = "host"), pod.hostname and the apps\' '
            "capabilities_retain, capabilities_remove, no_new_privileges, private_users and "
            "system_call_filter are refused with it, as they mean nothing there.",
            default="container",
        ),
    ),
    subsections=(RESOURCES,),
)

_NETWORK_NAME = String(names.NAME_PATTERN.pattern, names.NAME_HINT, "network name")
_HOST_NAME = String(
    r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", "use letters, digits, '.', '-'", "host name"
)

NETWORK = Section(
    "network",
    "network",
    "The pod's network. Every app joins the same network namespace.",
    (
        Key(
            "mode",
            ChoiceOr(NetworkMode, _NETWORK_NAME),
            '"private": the pod gets its own '
            'network namespace with only loopback; "bridge": that, plus an address on each of '
            "its networks (a veth to a bridge), NAT to the outside and published ports; "
            '"host": the apps use the host\'s network; the name of a network: bridged, on that '
            "network first.",
            default="private",
        ),
        Key(
            "networks",
            ListOf(_NETWORK_NAME),
            'With mode = "bridge": the networks to join, each '
            "defined in /etc/podmgr/networks/NAME.toml; the first gives the default route. "
            'Empty: the default network "podmgr".',
            default=[],
            example='["backend"]',
        ),
        Key(
            "ports",
            ListOf(PortSpec()),
            "Ports to publish on the host, [HOST_IP:]HOST_PORT:"
            "POD_PORT[/tcp|/udp]; they answer on the host's own addresses and on localhost.",
            default=[],
            example='["8080:80/tcp", "127.0.0.1:5353:53/udp"]',
        ),
        Key(
            "dns",
            ListOf(Address("name server")),
            "Name servers for the pod's /etc/resolv.conf; empty: the host's resolv.conf.",
            default=[],
            example='["9.9.9.9"]',
        ),
        Key(
            "dns_search",
            ListOf(_HOST_NAME),
            "Search domains for /etc/resolv.conf.",
            default=[],
            example='["example.org"]',
        ),
        Key(
            "hosts",
            MapOf(_HOST_NAME, "table of addresses"),
            "Extra /etc/hosts entries, name = address.",
            default={},
            example='{ "db.example.org" = "10.0.0.5" }',
        ),
    ),
)

INSTALL = Section(
    "install",
    "install",
    "Start the pod at boot: the generator links "
    "pod@NAME.service into these targets, as [Install] does for enabled units.",
    (
        Key(
            "wanted_by",
            ListOf(_UNIT_NAME),
            "Units that want the pod (WantedBy=).",
            default=[],
            example='["multi-user.target"]',
        ),
        Key(
            "required_by",
            ListOf(_UNIT_NAME),
            "Units that require the pod (RequiredBy=).",
            default=[],
        ),
    ),
)

VOLUME = Section(
    "volume",
    "volumes",
    "Storage that apps mount. A volume is shared by every app that mounts it.",
    (
        Key(
            "type",
            Choice(VolumeType),
            '"host": a directory of the host; "empty": a directory '
            'kept under /var/lib/podmgr/volumes/POD/NAME across restarts; "tmpfs": memory, '
            "empty at every start.",
            required=True,
            example='"empty"',
        ),
        Key(
            "source",
            AbsolutePath(),
            'The host directory (type = "host"). It must exist, and '
            "no component of the path may be a symbolic link: podmgr does not follow links here.",
            only_for=(VolumeType.HOST,),
            example='"/srv/shop/config"',
        ),
        Key("read_only", Boolean(), "Mount the volume read-only in every app.", default=False),
        Key(
            "mode",
            Mode(),
            "Access mode of the volume's directory when it is created.",
            only_for=(VolumeType.EMPTY, VolumeType.TMPFS),
            example='"0755"',
        ),
        Key(
            "uid",
            Integer(0, 2**32 - 2, "uid"),
            "Owner of the directory when it is created.",
            only_for=(VolumeType.EMPTY, VolumeType.TMPFS),
            example="0",
        ),
        Key(
            "gid",
            Integer(0, 2**32 - 2, "gid"),
            "Group of the directory when it is created.",
            only_for=(VolumeType.EMPTY, VolumeType.TMPFS),
            example="0",
        ),
        Key(
            "size",
            Size(),
            "Size limit of a tmpfs volume.",
            only_for=(VolumeType.TMPFS,),
            example='"64M"',
        ),
    ),
    named=True,
    name_type=String(names.NAME_PATTERN.pattern, names.NAME_HINT, "volume name"),
)

MOUNT = Section(
    "mount",
    "mounts",
    "Where the app sees a volume; repeat the table for each volume.",
    (
        Key(
            "volume",
            String(names.NAME_PATTERN.pattern, names.NAME_HINT, "volume name"),
            "Name of a [volume.NAME] table.",
            required=True,
            example='"data"',
        ),
        Key(
            "path",
            AbsolutePath(),
            "Mount point inside the app.",
            required=True,
            example='"/var/lib/data"',
        ),
        Key("read_only", Boolean(), "Mount it read-only in this app.", default=False),
    ),
    array=True,
)

APP = Section(
    "app",
    "apps",
    "One table per app. Each app runs as its own systemd service in "
    "the pod's slice, from its own root file system.",
    (
        Key(
            "rootfs",
            AbsolutePath(),
            "Directory holding the app's root file system (set this or "
            "image). It stays untouched: the app runs on an overlay with a volatile upper layer, "
            "so every start begins from it. No component of the path may be a symbolic link: "
            "podmgr does not follow links here.",
            example='"/var/lib/machines/busybox"',
            example_set=True,
        ),
        Key(
            "image",
            ImageName(),
            "Image to run, by name as stored with podmgr image pull or "
            "import (set this or rootfs). Its layers are the app's root file system, and its "
            "entrypoint, command, environment, user and working directory are the defaults of "
            "the keys below. The image must be in the store when the units are generated.",
            example='"registry.example.org/shop/api:1.4"',
        ),
        Key(
            "exec",
            ListOf(String(), unique=False),
            "Command line; the first element is an "
            "absolute path inside the app, without quotes, backslashes, control characters or "
            "'$' (systemd cannot run such a path as written). Required with rootfs; with image "
            "it replaces the image's entrypoint and command.",
            example='["/bin/httpd", "-f"]',
            example_set=True,
        ),
        Key(
            "environment",
            MapOf(ENV_NAME, "table of strings"),
            "Environment variables.",
            default={},
            example='{ LANG = "C.UTF-8" }',
        ),
        Key(
            "environment_files",
            ListOf(AbsolutePath()),
            "Files of VAR=value lines on the host, "
            "as systemd's EnvironmentFile= reads them. Each is read when the pod starts (a change "
            "takes effect at the pod's next start) and must be a regular file of at most 1M; no "
            "component of its path may be a symbolic link.",
            default=[],
            example='["/etc/shop/web.env"]',
        ),
        Key(
            "working_directory",
            AbsolutePath(),
            "Working directory inside the app; defaults to the image's, or /.",
            example='"/srv"',
        ),
        Key(
            "user",
            UserRef("user"),
            "User to run as: a number, or a name from the app's own "
            "/etc/passwd (never the host's); defaults to the image's user, or root.",
            example='"www-data"',
        ),
        Key(
            "group",
            UserRef("group"),
            "Group to run as: a number, or a name from the rootfs's "
            "/etc/group. Defaults to the user's group in /etc/passwd, or 0.",
            example='"www-data"',
        ),
        Key(
            "restart",
            Choice(Restart),
            "Restart= of this app; defaults to pod.restart.",
            example='"on-failure"',
        ),
        Key(
            "ready",
            Choice(Ready),
            'When systemd considers the app started: "started" once it '
            'runs (Type=exec), "notify" once it sends READY=1 (Type=notify), "healthy" once '
            "its first health check passes (needs [app.NAME.health]).",
            default="started",
        ),
        Key(
            "after",
            ListOf(String(names.NAME_PATTERN.pattern, names.NAME_HINT, "app name")),
            "Apps of this pod to start before this one (After=).",
            default=[],
            example='["db"]',
        ),
        Key(
            "capabilities_retain",
            ListOf(Capability()),
            "The capability bounding set; defaults to the OCI runtime's default set.",
            example='["CAP_NET_BIND_SERVICE"]',
        ),
        Key(
            "capabilities_remove",
            ListOf(Capability()),
            "Capabilities to remove from the bounding set.",
            default=[],
            example='["CAP_NET_RAW"]',
        ),
        Key(
            "no_new_privileges",
            Boolean(),
            "Forbid gaining privileges through execve(), e.g. setuid binaries (NoNewPrivileges=).",
            default=False,
        ),
        Key(
            "read_only",
            Boolean(),
            "Make the rootfs read-only; volumes keep their own flag, and "
            "/tmp, /var/tmp and /run get a fresh tmpfs.",
            default=False,
        ),
        Key(
            "system_call_filter",
            ListOf(SyscallFilter()),
            "SystemCallFilter= entries: @groups or "
            "system calls to allow; entries starting with ~ are denied.",
            default=[],
            example='["@system-service", "~@privileged"]',
        ),
        Key(
            "private_users",
            Boolean(),
            "Run the app in a user namespace mapping only root and its own user (PrivateUsers=).",
            default=False,
        ),
        *AUTO_UPDATE_KEYS,
    ),
    subsections=(RESOURCES, MOUNT, SOCKET, HEALTH),
    named=True,
    name_type=String(names.NAME_PATTERN.pattern, names.NAME_HINT, "app name"),
)

MANIFEST = Section(
    "",
    "",
    "A pod manifest.",
    (
        Key(
            "version",
            Integer(SCHEMA_VERSION, SCHEMA_VERSION, "schema version"),
            "Schema version of this file.",
            default=SCHEMA_VERSION,
        ),
    ),
    subsections=(POD, NETWORK, INSTALL, VOLUME, APP),
)
