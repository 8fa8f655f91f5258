# SPDX-License-Identifier: LGPL-2.1-or-later
"""The org.podmgr1 D-Bus API as one table: interfaces, methods, properties, signals.

The table drives dispatching (dispatch.py; each entry is bound to the code implementing
it by binding.py, checked when the service starts), introspection (with doc annotations, so
`busctl introspect` documents the API), the man page org.podmgr1(5) and the client.
A method's ``action`` is the polkit action a caller needs; methods without one read.
The dispatcher enforces both the action and each argument's KIND (its grammar and size
limit, checked before anything else runs), so what this table documents is what holds.
Modelled on systemd's machine1 and import1 (org.freedesktop.machine1(5)).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BUS_NAME = "org.podmgr1"
MANAGER_PATH = "/org/podmgr1"
POD_PATH = "/org/podmgr1/pod"
TRANSFER_PATH = "/org/podmgr1/transfer"
ERROR_PREFIX = "org.podmgr1.Error."

MANAGE_PODS = "org.podmgr1.manage-pods"
MANAGE_IMAGES = "org.podmgr1.manage-images"
MANAGE_TRUST = "org.podmgr1.manage-trust"


@dataclass(frozen=True)
class Kind:
    """What an argument slot holds: checked (arguments.py) before the handler runs."""

    name: str
    limit: int  # characters for strings, bytes for byte arrays
    doc: str
    detail: str | None = None  # the polkit detail that carries it, if any

    @property
    def noun(self) -> str:
        """What messages call it: "pod name", "image reference"."""
        return NOUNS.get(self.name, self.name)


NOUNS = {
    "pod": "pod name",
    "app": "app name",
    "network": "network name",
    "image": "image reference",
    "image-or-empty": "image reference",
    "pull": "image reference",
    "source": "image source",
    "armored": "key",
    "digest": "manifest digest",
    "app-or-empty": "app name",
    "command": "command",
    "term": "terminal type",
    "fd": "file descriptor",
    "flag": "flag",
    "duration": "duration",
}


MiB = 1 << 20
COMMAND_WORDS = 4096  # as many as a shell's command line has room for
COMMAND_LIMIT = (
    128 * 1024
)  # characters: systemd's own limit for a command line is LONG_LINE_MAX (1 MiB)
KINDS = {
    kind.name: kind
    for kind in (
        Kind(
            "pod",
            63,
            "a pod name (1-63 characters of a-z, 0-9, '_', '.', '-', starting with a "
            "letter or digit)",
            "pod",
        ),
        Kind("app", 63, "an app name (the grammar of pod names)", "app"),
        Kind("network", 63, "a network name (the grammar of pod names)", "network"),
        Kind(
            "image",
            512,
            "an image reference (registry/repository:tag or @digest, at most 512 characters)",
            "image",
        ),
        Kind("image-or-empty", 512, "an image reference, or empty", "image"),
        Kind("pull", 521, "an image reference, optionally after docker://", "image"),
        Kind(
            "source",
            4200,
            "a transport and path (oci-archive:, docker-archive:, oci:, dir:; "
            "at most 4200 characters)",
            "source",
        ),
        Kind("manifest", MiB, "a manifest's TOML text (at most 1 MiB)"),
        Kind(
            "prefix",
            512,
            "an image name prefix (registry/path, at most 512 characters), or "
            "empty for every image",
            "prefix",
        ),
        Kind(
            "fingerprint",
            80,
            "a primary key fingerprint (40 or 64 hex digits; spaces are ignored)",
            "fingerprint",
        ),
        Kind("armored", MiB, "an ASCII-armored public key (at most 1 MiB)"),
        Kind("app-or-empty", 63, "an app name, or empty for the manifest's first app", "app"),
        Kind(
            "command",
            COMMAND_LIMIT,
            f"a command line as its words, passed as they are (no $VAR expansion): the "
            "first an absolute path or a name systemd looks up in the app's root as for "
            f"ExecStart= (at most {COMMAND_WORDS} words, {COMMAND_LIMIT} characters in "
            "all, none with a NUL), or empty for /bin/sh",
        ),
        Kind(
            "term",
            64,
            "a terminal type for TERM= (letters, digits, '.', '_', '+', '-', at most 64), "
            "or empty for none",
        ),
        Kind(
            "fd",
            16,
            "a file descriptor passed with the call (D-Bus type h: the index of one of at "
            "most 16 passed)",
        ),
        Kind(
            "digest",
            64,
            "the sha256 digest of a manifest file: 64 hex digits, as the pod's "
            "ManifestDigest property gives it",
        ),
        Kind("flag", 1, "true or false"),
        Kind("duration", 20, "microseconds, at most 2^63-1 as systemd counts them"),
    )
}


@dataclass(frozen=True)
class Arg:
    name: str
    signature: str
    kind: str = ""  # a key of KINDS, for in-arguments


@dataclass(frozen=True)
class Method:
    name: str
    in_args: tuple[Arg, ...]
    out_args: tuple[Arg, ...]
    doc: str
    action: str | None = None  # polkit action the caller needs; None for reads
    verb: str = ""  # the polkit detail "verb"
    also: str | None = None  # a second action the caller needs too (the doc says so)

    @property
    def in_signature(self) -> str:
        return "".join(a.signature for a in self.in_args)

    @property
    def out_signature(self) -> str:
        return "".join(a.signature for a in self.out_args)


@dataclass(frozen=True)
class Property:
    name: str
    signature: str
    doc: str
    # Its value depends on who asks (what the caller may read): its code takes the
    # caller, and PropertiesChanged names it as invalidated, without a value, since a
    # signal goes to everyone.
    per_caller: bool = False


@dataclass(frozen=True)
class Signal:
    name: str
    args: tuple[Arg, ...]
    doc: str

    @property
    def signature(self) -> str:
        return "".join(a.signature for a in self.args)


@dataclass(frozen=True)
class Interface:
    name: str
    doc: str
    methods: tuple[Method, ...] = ()
    properties: tuple[Property, ...] = ()
    signals: tuple[Signal, ...] = ()
    method_index: dict[str, Method] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method_index", {m.name: m for m in self.methods})

    def signal(self, name: str) -> Signal:
        return next(s for s in self.signals if s.name == name)


def _args(text: str) -> tuple[Arg, ...]:
    """ "s name:pod, o path" -> (Arg("name", "s", "pod"), Arg("path", "o"))."""
    args = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        signature, name = part.split(" ", 1)
        name, _, kind = name.partition(":")
        args.append(Arg(name, signature, kind))
    return tuple(args)


def _method(
    name: str,
    ins: str,
    outs: str,
    doc: str,
    action: str | None = None,
    verb: str = "",
    also: str | None = None,
) -> Method:
    in_args = _args(ins)
    # The arguments' grammar and limits belong to the documentation of every method.
    limits = " ".join(f"{a.name.upper()} is {KINDS[a.kind].doc}." for a in in_args)
    if also:
        limits = f"The caller needs polkit action {also} too. {limits}"
    verb = verb or re.sub(r"(?<!^)(?=[A-Z]).*", "", name).lower()
    return Method(name, in_args, _args(outs), f"{doc} {limits}".rstrip(), action, verb, also)


MANAGER = Interface(
    "org.podmgr1.Manager",
    "Pods, images, networks and trusted keys.",
    (
        _method(
            "ListPods",
            "",
            "a(sso) pods",
            "Every pod with a manifest: name, state (the pod "
            'unit\'s ActiveState, or "invalid"), object path.',
        ),
        _method(
            "GetPod",
            "s name:pod",
            "o pod",
            "The object of pod NAME; NoSuchPod if it has no manifest.",
        ),
        _method(
            "StartPod",
            "s name:pod",
            "",
            "Start pod@NAME.service and return when its job "
            "and its "
            "apps' jobs are done; JobFailed with the reason otherwise.",
            MANAGE_PODS,
        ),
        _method("StopPod", "s name:pod", "", "Stop the pod and wait for it.", MANAGE_PODS),
        _method("RestartPod", "s name:pod", "", "Restart the pod and wait for it.", MANAGE_PODS),
        _method(
            "EnterApp",
            "s name:pod, s app:app-or-empty, as command:command, s term:term, "
            "h stdin:fd, h stdout:fd, h stderr:fd",
            "i status",
            "Run COMMAND inside the running app APP of pod NAME, as a transient service "
            "unit in the pod's slice that gets exactly the confinement the app's loaded "
            "unit runs with (root directory, namespaces, mounts, user and group, "
            "capability bounding set, NoNewPrivileges, system call filter, environment), "
            "its standard input, output and error the file descriptors passed (a "
            "terminal's becomes its controlling terminal); return when it ends, with its "
            "exit status (128 plus the signal's number when a signal ended it, as shells "
            "say). The unit is unloaded afterwards, and stopped if the caller leaves the "
            "bus first. NoSuchPod, NoSuchApp, or NotRunning when the app is not running.",
            MANAGE_PODS,
        ),
        _method(
            "ValidateManifest",
            "s toml:manifest",
            "a(ss) problems",
            "Check a manifest without "
            "storing it: each problem's key path and message; empty when it is valid. Its "
            "images and rootfs are checked too only for a caller polkit allows "
            "org.podmgr1.manage-pods without authentication (that reads files as root); "
            "anyone else gets the manifest's own checks.",
        ),
        _method(
            "CreatePod",
            "s name:pod, s toml:manifest",
            "o pod",
            "Validate and store "
            "/etc/podmgr/pods/NAME.toml, then reload systemd; Exists if the name is taken.",
            MANAGE_PODS,
        ),
        _method(
            "UpdatePod",
            "s name:pod, s toml:manifest",
            "",
            "Validate and replace the "
            "manifest of NAME "
            "atomically, then reload systemd; a running pod keeps running on its old units "
            "until restarted.",
            MANAGE_PODS,
        ),
        _method(
            "UpdatePodIfUnchanged",
            "s name:pod, s digest:digest, s toml:manifest",
            "",
            "As UpdatePod, but only if the manifest file still has the sha256 DIGEST "
            "(the pod's ManifestDigest when the caller read it); ManifestChanged and "
            "nothing written otherwise, so an editor never overwrites a change it has "
            "not seen.",
            MANAGE_PODS,
        ),
        _method(
            "RemovePod",
            "s name:pod",
            "",
            "Stop the pod, remove /etc/podmgr/pods/NAME.toml and reload systemd.",
            MANAGE_PODS,
        ),
        _method(
            "PreparePod",
            "s name:pod",
            "",
            "Set up the pod's rootfs overlays, namespaces and "
            "volumes, as its unit generated plan says; pod@.service calls it.",
            MANAGE_PODS,
        ),
        _method(
            "ReleasePod",
            "s name:pod",
            "",
            "Unmount and remove what PreparePod made; harmless when there is nothing.",
            MANAGE_PODS,
        ),
        _method(
            "ReleaseMachine",
            "s name:pod, s app:app",
            "",
            "The pod's registration with systemd-machined (podmachine@NAME:APP.service) "
            "calls it when app APP, the machine's leader, stops or restarts: unregister the "
            "pod and register it again with another active app; when machinectl is "
            "terminating the pod, stop pod@NAME.service instead. Nothing when APP does not "
            "lead the pod's machine.",
            MANAGE_PODS,
        ),
        _method(
            "ListImages",
            "",
            "a(sssbts) images",
            "Stored images: name, manifest digest, "
            "signer fingerprints (comma-separated), insecure (stored unsigned), size, "
            "stored (ISO 8601).",
        ),
        _method(
            "InspectImage",
            "s name:image",
            "s json",
            "An image's record, config, layers and signers, as JSON.",
        ),
        _method(
            "PullImage",
            "s ref:pull",
            "u id, o transfer",
            "Start pulling docker://REF (or REF); "
            "follow the Transfer object, and TransferRemoved for the result.",
            MANAGE_IMAGES,
        ),
        _method(
            "ImportImage",
            "s source:source, s name:image-or-empty",
            "u id, o transfer",
            "Start importing an "
            "oci-archive:, docker-archive:, oci: or dir: SOURCE, stored as NAME (empty: the "
            "source's own name).",
            MANAGE_IMAGES,
        ),
        _method(
            "RemoveImage",
            "s name:image",
            "",
            "Remove an image record; GarbageCollect frees its layers.",
            MANAGE_IMAGES,
        ),
        _method(
            "GarbageCollect",
            "",
            "u layers, u blobs, as repaired",
            "Free layers and blobs "
            "that no image and no prepared pod uses, and remove what pods that are gone left "
            "behind (leases, veths, published ports): REPAIRED says what.",
            MANAGE_IMAGES,
            "gc",
        ),
        # Auto-update and gc with a grace period (podmgr auto-update, podmgr gc --grace).
        _method(
            "GarbageCollectWithGrace",
            "t grace:duration",
            "u layers, u blobs, as repaired",
            "As GarbageCollect, but keeping the layers and blobs of images removed or "
            "replaced less than GRACE microseconds ago instead of [gc] grace of "
            "podmgr.toml (which GarbageCollect keeps); 0 frees them at once.",
            MANAGE_IMAGES,
            "gc",
        ),
        _method(
            "AutoUpdate",
            "b dry_run:flag",
            "a(ssssss) updates",
            'Pull the tag of each app with auto_update = "registry" again, verified as '
            "PullImage verifies it, and restart each running pod whose images changed "
            "once; a pod that is not active within [auto_update] timeout (podmgr.toml) is "
            "restarted on its previous images, which its tags point at again. With "
            "DRY_RUN, only ask each registry for the tag's manifest digest: nothing is "
            "pulled or restarted. UPDATES: for each app, pod, app, image, the digest it "
            "runs, the registry's digest, and the result: "
            '"unchanged", "available" (DRY_RUN), "updated", "pending" (updated, the pod '
            'is not running), "rolled-back: REASON" or "failed: REASON".',
            MANAGE_PODS,
            "auto-update",
            also=MANAGE_IMAGES,
        ),
        _method(
            "ListNetworks",
            "",
            "a(sssbbas) networks",
            "Pod networks: name, subnet, bridge, masquerade, isolate, the prepared pods on it.",
        ),
        _method(
            "RemoveNetwork",
            "s name:network",
            "",
            "Remove a network's bridge, rules and "
            "/etc/podmgr/networks/NAME.toml; refused while a pod is on it.",
            MANAGE_PODS,
        ),
        _method(
            "ListTrustedKeys",
            "",
            "a(sss) keys",
            "Trusted keys: primary fingerprint, name prefix (empty for the root set), "
            'origin ("admin": under /etc/podmgr/trustedkeys; "vendor": shipped under '
            "/usr/lib/podmgr/trustedkeys).",
        ),
        _method(
            "TrustKey",
            "s prefix:prefix, ay armored:armored",
            "s fingerprint",
            "Trust an ASCII-armored public key for images under PREFIX (empty: every image).",
            MANAGE_TRUST,
        ),
        _method(
            "UntrustKey",
            "s fingerprint:fingerprint",
            "",
            "Distrust a key for every prefix it is trusted for; a vendor key is masked.",
            MANAGE_TRUST,
        ),
        _method(
            "UntrustKeyForPrefix",
            "s prefix:prefix, s fingerprint:fingerprint",
            "",
            "Distrust a key for images under PREFIX only (empty: the root set); a vendor "
            "key is masked.",
            MANAGE_TRUST,
        ),
    ),
    properties=(Property("Version", "s", "podmgr's version, as podmgr --version prints it."),),
    signals=(
        Signal("PodNew", _args("s name, o pod"), "A manifest appeared."),
        Signal("PodRemoved", _args("s name, o pod"), "A manifest went away."),
        Signal("TransferNew", _args("u id, o transfer"), "A pull or import started."),
        Signal(
            "TransferRemoved",
            _args("u id, o transfer, s result"),
            'A transfer ended: "done", "canceled" or "failed: REASON".',
        ),
    ),
)

POD = Interface(
    "org.podmgr1.Pod",
    "One pod. Properties change with its units' state and with its manifest file, "
    "which the service watches.",
    properties=(
        Property("Name", "s", "The pod's name."),
        Property(
            "State",
            "s",
            'ActiveState of pod@NAME.service ("invalid" for a manifest that does not load).',
        ),
        Property("Unit", "s", "pod@NAME.service."),
        Property("Apps", "a(sss)", "Each app: name, unit, ActiveState."),
        Property("Images", "as", "The images its apps run."),
        Property(
            "Addresses",
            "as",
            "The running pod's addresses: on each of its networks, "
            "the first network's first, then loopback; none on the host's network.",
        ),
        Property("ManifestPath", "s", "Where its manifest is."),
        Property("Annotations", "a{ss}", "The manifest's annotations."),
        Property(
            "Problems",
            "a(ss)",
            "Why the manifest file, as it is now, does not load: each problem's key path "
            '(or "line L, column C", or empty for the whole file) and message, as podmgr '
            "validate shows them after the file's name; empty when it loads. A caller who "
            "may not read the file (see Manifest) gets the key paths only, since a "
            "message can quote a value.",
            per_caller=True,
        ),
        Property(
            "Manifest",
            "s",
            "The manifest file's text, for a caller who could read the file itself: the "
            "service reads it as root, so it gives the text only to root, to a user "
            "whose uid and groups the permission bits of the file and of each directory "
            "above it allow (a file with an access ACL: only its owner), and to a caller "
            "whom polkit allows org.podmgr1.manage-pods without authentication (it may "
            "replace the file anyway); anyone else gets an empty string, so a manifest "
            "made 0600 because its environment holds secrets stays secret.",
            per_caller=True,
        ),
        Property(
            "ManifestDigest",
            "s",
            "The sha256 of the manifest file, in hex, for whom Manifest gives the text "
            "(empty for anyone else): what UpdatePodIfUnchanged compares.",
            per_caller=True,
        ),
        Property(
            "Ports",
            "a(sqqs)",
            'Published ports: host address ("" for all), host port, pod port, protocol.',
        ),
        Property(
            "Health",
            "s",
            "The pod's health: the worst of its apps' in AppHealth (\"unhealthy\", then "
            '"starting", then "healthy"); "" when no app has a health check, or none of '
            "those runs.",
        ),
        Property(
            "AppHealth",
            "a(ss)",
            'Each app with a health check: name and health, "starting" from its start to '
            'its first passing check, "healthy" since the last pass, "unhealthy" after '
            "[app.NAME.health] retries failed checks in a row (also once on_failure stopped "
            'it, until it starts again); "" while it does not run.',
        ),
    ),
)

TRANSFER = Interface(
    "org.podmgr1.Transfer",
    "A pull or import in progress.",
    (_method("Cancel", "", "", "Stop it; nothing half-done is kept.", MANAGE_IMAGES),),
    properties=(
        Property("Id", "u", "The transfer's number."),
        Property("Source", "s", "What is pulled or imported."),
        Property("Progress", "d", "Done so far, from 0.0 to 1.0."),
    ),
    signals=(Signal("Log", _args("s message"), "A line of what the transfer does."),),
)

INTERFACES = (MANAGER, POD, TRANSFER)


def path_encode(name: str) -> str:
    """An object path element for ``name``, escaped as sd_bus_path_encode() does."""
    return "".join(c if c.isascii() and c.isalnum() else f"_{ord(c):02x}" for c in name) or "_"


def pod_path(name: str) -> str:
    return f"{POD_PATH}/{path_encode(name)}"


def transfer_path(number: int) -> str:
    return f"{TRANSFER_PATH}/_{number}"
