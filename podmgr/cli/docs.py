# SPDX-License-Identifier: LGPL-2.1-or-later
"""Render podmgr.toml(5), podmgr(1) and the annotated example manifest.

The key table (schema.py) and the command line (command.parser()) are the sources; the
rendered files are committed, and a test fails when they are stale.  Regenerate with
``make docs`` (``python3 -m podmgr.cli.docs DOCS_DIR EXAMPLES_DIR``).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

from podmgr import config, errors, names
from podmgr.bus import api
from podmgr.cli import command
from podmgr.manifest import schema
from podmgr.network import definitions
from podmgr.tables import Key, Section
from podmgr.version import __version__


def _roff(text: str) -> str:
    """Escape text for a roff line: backslashes, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
            if value
            else "{}"
        )
    raise TypeError(value)


def _sections(section: Section, parent: str = "") -> Iterator[tuple[str, Section]]:
    """Every section with its header as written in TOML, depth first."""
    path = section.name if not parent else f"{parent}.{section.name}"
    if section.named:
        path += ".NAME"
    header = f"[[{path}]]" if section.array else f"[{path}]"
    yield header, section
    for sub in section.subsections:
        yield from _sections(sub, path)


def _all_sections() -> Iterator[tuple[str, Section]]:
    yield "(top level)", schema.MANIFEST
    for sub in schema.MANIFEST.subsections:
        yield from _sections(sub)


def _key_facts(key: Key) -> str:
    facts = [key.type.doc]
    if key.required:
        facts.append("required")
    elif key.default is not None and key.default not in ([], {}):
        facts.append(f"default {_toml(key.default)}")
    if key.only_for:
        facts.append("type " + " or ".join(f'"{t}"' for t in key.only_for))
    return "; ".join(facts)


MANIFEST_INTRO = f"""\
A pod is a group of apps that share a network and IPC namespace, a slice and a
lifecycle. Each pod is declared in one TOML file named after it, NAME.toml, where NAME
matches {names.NAME_PATTERN.pattern}. podmgr reads manifests from /etc/podmgr/pods/ (the
administrator's), /run/podmgr/pods/ (runtime) and /usr/lib/podmgr/pods/ (vendor). A file
in an earlier directory masks one of the same name in a later one; an empty file or a
symlink to /dev/null masks the pod altogether, as for unit files.

On systemctl daemon-reload, podmgr-generator turns each valid manifest into units; an
invalid one is logged to the kernel log and skipped, and "podmgr validate FILE" shows
every problem of it. Unknown keys are errors. Apps are declared as [app.NAME] tables and
volumes as [volume.NAME] tables; each app lists the volumes it mounts as [[app.NAME.mount]]
tables."""

UNITS_TEXT = """\
For pod POD with app APP the generator writes a drop-in for pod@POD.service (from the
template pod@.service), the slice pod-POD.slice under pod.slice (POD escaped as
systemd-escape does, so that pod "a-b" never nests under pod "a"), and one service per
app named podapp@POD:APP.service; a colon cannot occur in pod or app names, so the
name is never ambiguous. An app with [app.APP.health] also gets its check,
podhealth@POD:APP.service, run by podhealth@POD:APP.timer, and the units that keep its
state, podhealth-passed@, podhealth-failed@, podhealth-reset@ and (with ready =
"healthy") podhealth-ready@POD:APP.service. [install] becomes .wants/ and .requires/
links. Every line an
app writes reaches the journal with SYSLOG_IDENTIFIER=APP, PODMGR_POD=POD and
PODMGR_APP=APP.

Starting pod@POD.service prepares the pod as the generator planned it (podmgr-plan.json
beside the drop-in): each app's rootfs becomes an overlay of its source under a volatile
upper layer in /run/podmgr/pods/POD/, the pod's namespaces are created, tmpfs and empty
volumes are set up, and /etc/hosts, /etc/hostname and /etc/resolv.conf are provided. The
apps start after the pod and stop before it; stopping the pod releases every mount and
namespace. An app binds to its pod (BindsTo=), so it stops and restarts with it, while the
pod only wants its apps, so one failing app leaves the others running.

A running pod is registered with systemd-machined (class container) under its name,
led by the main process of its first active app, whose unit becomes the machine's: so
machinectl list and status show it and ps -o machine names that app's processes, and
machinectl terminate POD stops pod@POD.service. A transient unit without a process,
podmachine@POD:APP.service, stops before the leading app's unit and has the pod
registered anew with another app whenever that app stops, restarts or dies. A pod name
that is no host name (with '_', or a part between dots beginning or ending with '-') is
not registered; podmgr validate warns of it.

Every app runs with PrivateDevices=, ProtectKernelTunables=, ProtectKernelModules=,
ProtectControlGroups= and, unless capabilities_retain says otherwise, the capability
bounding set an OCI runtime gives a container. User and group names are looked up in the
rootfs when the units are generated; an id the host does not know is made known to it
with a user or group record podmgr-ID in /run/userdb/ (which needs nss-systemd), because
systemd refuses to run a service as a uid its host cannot resolve. With ready = "notify",
the app's main process must send READY=1 to $NOTIFY_SOCKET, as sd_notify(3) does."""


IMAGES_TEXT = """\
An app names an image instead of a rootfs with image = "NAME". Images are stored under
/var/lib/podmgr by podmgr image pull (from a registry) and podmgr image import (from
oci-archive:, docker-archive:, oci: and dir: sources); each layer is unpacked once and
shared by every image and pod that uses it. The generator reads the image's record from
the store, so an image must be stored before systemctl daemon-reload; starting the pod
checks that it is still there, unchanged.

Nothing unverified is stored. An image must carry a signature by a key the trust store
trusts for its name: keys in /etc/podmgr/trustedkeys/prefix.d/PREFIX/ sign names under
PREFIX, keys in root.d/ sign every name, vendors ship keys in /usr/lib/podmgr/trustedkeys/,
and an empty file in /etc masks the vendor file of the same path (podmgr trust add, list,
rm). Signatures are containers simple signatures (signature-N files of a dir: layout, or
the lookaside of the registry) or a detached FILE.asc or FILE.sig beside an archive. An
unsigned, badly signed, expired-key, revoked-key, wrong-identity or tampered image is
refused before any layer is unpacked, unless its name lies under a prefix listed in
[images] insecure.

Layers are unpacked without following symlinks and relative to the layer directory, by a
process confined to it (new namespaces, a read-only root, no capabilities but those of
file ownership, no new privileges, a system call filter). Refused, failing the image:
absolute names, ".." components, entries through a symlink or a non-directory, hard
links to a name outside the layer, not yet unpacked from it or to itself, whiteouts of
"." or "..", device nodes unless allow_devices is set, names with a NUL or a component
over 255 bytes, ids over 4294967294, times that are not times, extended headers over 1
MiB, and more entries or bytes than max_layer_entries, max_layer_size (sparse files
count their full size, and are written as holes) and max_layer_ratio times the layer's
compressed size. Dropped: the entry "." itself, extended attributes other than
security.capability and user.*, and, with strip_setuid, setuid and setgid bits: they are
kept by default, as images need them, since only root can traverse /var/lib/podmgr
(0700). OCI whiteouts become overlayfs whiteouts and opaque directories, so
/var/lib/podmgr cannot be on overlayfs."""

NETWORKING_TEXT = """\
A pod gets a network namespace of its own unless network.mode = "host". With mode =
"private" it has only loopback. With mode = "bridge" it joins each network in
network.networks (the default network "podmgr" when empty); with mode = NAME, the network
NAME and then those in network.networks. It gets a veth pair per network, the
host's end (vp and a hash) on the network's bridge, the pod's end eth0, eth1 ... in the
order of network.networks, with an address leased from the network's subnet; the first
network gives the default route, through its gateway (the bridge's address).

Leases are files under /var/lib/podmgr/networks/NETWORK/, one per address, naming the
pod; they are written whole and under a lock, so two pods never get one address. A lease
whose pod is no longer prepared (after a kill -9, a failed start or a reboot) is taken
over by the next pod that needs an address, and podmgr gc removes it together with the
veths and published ports such a pod left behind.

Every pod on a network can reach the others by name: the pod's /etc/hosts names the pods
it shares a network with, and is rewritten when one starts or stops. network.dns and
network.dns_search replace the host's /etc/resolv.conf; a bridged pod whose host uses a
name server on loopback (systemd-resolved's stub) gets resolved's upstream servers from
/run/systemd/resolve/resolv.conf instead.

NAT, published ports and isolation are nftables rules in the table inet podmgr, which
podmgr alone changes; each rule's comment names its pod or network. A published port
answers on the host's addresses, localhost included (connections from 127.0.0.0/8 are
masqueraded to the bridge's address, and the bridge has route_localnet set), and to pods
reaching it through the host. Starting a pod whose port another pod publishes fails,
naming that pod. Each bridge forwards; net.ipv4.ip_forward is set when a network
masquerades or a port is published on other than 127.0.0.0/8, and never unset. Stopping
a pod removes its rules, veths and leases; bridges stay until podmgr network rm."""

NETWORKS_TEXT = """\
/etc/podmgr/networks/NAME.toml defines the network NAME. The default network "podmgr"
needs no file: it is 10.87.0.0/16 on the bridge podmgr0, masqueraded, unless
/etc/podmgr/networks/podmgr.toml says otherwise. No two networks may share a bridge or
overlapping subnets. podmgr network list shows the networks and their pods; podmgr
network rm removes a network's bridge, rules and file, and is refused while a pod is on
it."""

CONFIG_TEXT = """\
/etc/podmgr/podmgr.toml holds the image policy and settings per registry; every key
is optional. Credentials for registries are in /etc/podmgr/auth.json, in the containers
auth.json format ({"auths": {"HOST": {"auth": "BASE64(user:password)"}}}), which must be
owned by root and readable by nobody else."""


def manifest_page() -> str:
    out = [
        f'.TH PODMGR.TOML 5 "" "podmgr {__version__}" "podmgr"',
        ".SH NAME",
        "podmgr.toml \\- pod manifests and the configuration of podmgr",
        ".SH SYNOPSIS",
        "/etc/podmgr/pods/NAME.toml",
        ".br",
        "/run/podmgr/pods/NAME.toml",
        ".br",
        "/usr/lib/podmgr/pods/NAME.toml",
        ".br",
        "/etc/podmgr/networks/NAME.toml",
        ".br",
        "/etc/podmgr/podmgr.toml",
        ".SH DESCRIPTION",
    ]
    out += _paragraphs(MANIFEST_INTRO)
    for header, section in _all_sections():
        out += [".SH " + _roff(header.upper() if header.startswith("(") else header)]
        out += _paragraphs(section.help)
        out += _keys(section)
    out += [".SH UNITS", *_paragraphs(UNITS_TEXT)]
    out += [".SH IMAGES", *_paragraphs(IMAGES_TEXT)]
    out += [".SH NETWORKING", *_paragraphs(NETWORKING_TEXT)]
    out += [".SH NETWORK FILES", *_paragraphs(NETWORKS_TEXT), *_keys(definitions.NETWORK)]
    out += [".SH THE CONFIGURATION FILE", *_paragraphs(CONFIG_TEXT)]
    for sub in config.TOP.subsections:
        out += [f".SS {_roff(_header(sub))}", *_paragraphs(sub.help), *_keys(sub)]
    out += [".SH EXAMPLE", ".nf"] + [_roff(line) for line in example().splitlines()] + [".fi"]
    out += [
        ".SH SEE ALSO",
        "\\fBpodmgr\\fR(1), \\fBsystemd.service\\fR(5), "
        "\\fBsystemd.resource-control\\fR(5), \\fBsystemd.exec\\fR(5), "
        "\\fBsystemd.generator\\fR(7), \\fBnft\\fR(8)",
    ]
    return "\n".join(out) + "\n"


def _header(section: Section) -> str:
    return f"[{section.name}.NAME]" if section.named else f"[{section.name}]"


def _keys(section: Section) -> list[str]:
    out = []
    for key in section.keys:
        out += [
            ".TP",
            f"\\fB{_roff(key.name)}\\fR (\\fI{_roff(_key_facts(key))}\\fR)",
            _roff(key.help),
        ]
    return out


def _paragraphs(text: str) -> list[str]:
    out = []
    for paragraph in text.split("\n\n"):
        out += [".PP", _roff(" ".join(paragraph.split()))]
    return out


def command_page() -> str:
    top = command.parser()
    out = [
        f'.TH PODMGR 1 "" "podmgr {__version__}" "podmgr"',
        ".SH NAME",
        "podmgr \\- manage pods declared in TOML manifests and run by systemd",
        ".SH SYNOPSIS",
        "\\fBpodmgr\\fR [\\fB\\-\\-debug\\fR] \\fICOMMAND\\fR ...",
        ".SH DESCRIPTION",
    ]
    out += _paragraphs(
        "podmgr manages pods: groups of apps declared in manifests (see "
        "podmgr.toml(5)) that systemd runs as units. validate and render work "
        "offline on files; the other commands ask systemd, and start, stop "
        "and restart wait until the pod's jobs are done."
    )
    out += [".SH COMMANDS"]
    for subcommand in _commands(top):
        usage = " ".join(subcommand.format_usage().removeprefix("usage: ").split())
        out += [".TP", f"\\fB{_roff(usage)}\\fR", _roff(subcommand.description or "")]
        for action in subcommand._actions:
            if (
                action.option_strings
                and action.help != argparse.SUPPRESS
                and "-h" not in action.option_strings
            ):
                out += [
                    ".RS",
                    ".TP",
                    f"\\fB{_roff(', '.join(action.option_strings))}\\fR",
                    _roff(action.help or ""),
                    ".RE",
                ]
    out += [".SH OPTIONS", ".TP", "\\fB\\-\\-debug\\fR", "Show tracebacks and debug logs."]
    out += [".SH EXIT STATUS", "0 on success, 1 on failure, 2 on a usage error."]
    out += [".SH SEE ALSO", "\\fBpodmgr.toml\\fR(5), \\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1)"]
    return "\n".join(out) + "\n"


API_TEXT = """\
podmgr1.service owns org.podmgr1 on the system bus. D-Bus activation starts it on the
first call; it exits after [service] idle_timeout of podmgr.toml(5) without calls, jobs
or transfers, and the next call starts it again. Methods that change anything ask polkit
about the caller (the sender of the message) for the action they name:
org.podmgr1.manage-pods (pods and their networks), org.podmgr1.manage-images or
org.podmgr1.manage-trust, with the details verb, pod, network, image, source, prefix or
fingerprint for rules; the service asks before the method runs, after checking every
argument against what its method says it is. Reads need no authorization; the
properties that show a manifest file's content (Manifest, ManifestDigest, Problems) show
each caller only what it could read itself, and PropertiesChanged names them as
invalidated instead of sending their value to everyone. Errors are
org.podmgr1.Error.CODE with a one-line message; ERRORS lists the codes.

The objects are /org/podmgr1 (org.podmgr1.Manager), /org/podmgr1/pod/NAME
(org.podmgr1.Pod, NAME escaped as sd_bus_path_encode() does) and
/org/podmgr1/transfer/_N (org.podmgr1.Transfer). podmgr(1) is a client of this API, and
busctl(1) is another: busctl introspect org.podmgr1 /org/podmgr1 shows it with these
descriptions."""


def api_page() -> str:
    out = [
        f'.TH ORG.PODMGR1 5 "" "podmgr {__version__}" "podmgr"',
        ".SH NAME",
        "org.podmgr1 \\- the D-Bus API of podmgr",
        ".SH DESCRIPTION",
        *_paragraphs(API_TEXT),
    ]
    for interface in api.INTERFACES:
        out += [f".SH {interface.name.upper()}", *_paragraphs(interface.doc)]
        if interface.methods:
            out.append(".SS Methods")
        for method in interface.methods:
            ins = ", ".join(f"{a.signature} {a.name}" for a in method.in_args)
            outs = ", ".join(f"{a.signature} {a.name}" for a in method.out_args)
            doc = method.doc + (
                f" Needs polkit action {method.action}."
                if method.action
                else " Needs no authorization."
            )
            out += [
                ".TP",
                f"\\fB{method.name}\\fR({_roff(ins)})" + (f" \\(-> {_roff(outs)}" if outs else ""),
                _roff(doc),
            ]
        if interface.properties:
            out.append(".SS Properties")
        for prop in interface.properties:
            out += [".TP", f"\\fB{prop.name}\\fR ({_roff(prop.signature)})", _roff(prop.doc)]
        if interface.signals:
            out.append(".SS Signals")
        for signal in interface.signals:
            args = ", ".join(f"{a.signature} {a.name}" for a in signal.args)
            out += [".TP", f"\\fB{signal.name}\\fR({_roff(args)})", _roff(signal.doc)]
    out.append(".SH ERRORS")
    for code, meaning in errors.CODES.items():
        sentence = meaning[0].upper() + meaning[1:] + "."
        out += [".TP", f"\\fBorg.podmgr1.Error.{code}\\fR", _roff(sentence)]
    examples = [_roff(line) for line in API_EXAMPLES.splitlines()]
    out += [
        ".SH EXAMPLES",
        ".nf",
        *examples,
        ".fi",
        ".SH SEE ALSO",
        "\\fBpodmgr\\fR(1), \\fBbusctl\\fR(1), \\fBpolkit\\fR(8)",
    ]
    return "\n".join(out) + "\n"


API_EXAMPLES = """\
busctl introspect org.podmgr1 /org/podmgr1
busctl call org.podmgr1 /org/podmgr1 org.podmgr1.Manager ListPods
busctl call org.podmgr1 /org/podmgr1 org.podmgr1.Manager StartPod s shop
busctl get-property org.podmgr1 /org/podmgr1/pod/shop org.podmgr1.Pod State
busctl monitor org.podmgr1"""


def _commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every leaf command: "list", and "image pull" under "image"."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                nested = any(isinstance(a, argparse._SubParsersAction) for a in command._actions)
                yield from _commands(command) if nested else [command]


def example() -> str:
    """Every key, explained: required keys are set, the others commented out with their
    default or an example, so the file is itself a valid manifest to start from."""
    out = [
        "# A podmgr manifest with every key, generated from the key table.",
        "# Copy it to /etc/podmgr/pods/NAME.toml, then set or delete what you need.",
    ]
    for header, section in _all_sections():
        out.append("")
        out += _comment(section.help)
        if not header.startswith("("):
            out.append(header.replace(".NAME", ".web" if "app" in header else ".data"))
        for key in section.keys:
            value = key.example if key.example is not None else _toml(key.default)
            out += _comment(key.help)
            active = key.required or key.example_set
            out.append(f"{'' if active else '# '}{key.name} = {value}")
    return "\n".join(out) + "\n"


def _comment(text: str) -> list[str]:
    return ["# " + line for line in textwrap.wrap(" ".join(text.split()), 86)]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    docs, examples = (Path(a) for a in args)
    (docs / "podmgr.toml.5").write_text(manifest_page())
    (docs / "podmgr.1").write_text(command_page())
    (docs / "org.podmgr1.5").write_text(api_page())
    (examples / "annotated.toml").write_text(example())
    return 0


if __name__ == "__main__":
    sys.exit(main())
