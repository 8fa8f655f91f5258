# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pod networks: /etc/podmgr/networks/NAME.toml, one bridge and subnet each.

    subnet = "10.88.0.0/16"   # required, except for the built-in default network
    gateway = "10.88.0.1"     # the bridge's address and the pods' default route;
                              # default: the subnet's first address
    bridge = "pm-backend"     # default: pm-NAME ("podmgr0" for the default network)
    masquerade = true         # NAT the pods' traffic to the outside
    isolate = false           # true: no traffic between it and other pod networks

The default network "podmgr" exists without a file (10.87.0.0/16 on podmgr0); a file of
that name replaces it.  Parsed with the same key tables as manifests (tables.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import tomllib
from dataclasses import dataclass
from pathlib import Path

from podmgr import names, tables
from podmgr.errors import ManifestError, PodmgrError, Problem
from podmgr.tables import Key, Section
from podmgr.values import Address, Boolean, String, Subnet

NETWORKS_DIR = Path("/etc/podmgr/networks")
DEFAULT_SUBNET = "10.87.0.0/16"
DEFAULT_BRIDGE = "podmgr0"
IFNAMSIZ = 15  # the longest interface name Linux accepts

NETWORK = Section(
    "",
    "",
    "A pod network: a bridge on the host, with pods' veths on it.",
    (
        Key(
            "subnet",
            Subnet(),
            "The pods' addresses come from this IPv4 subnet.",
            required=True,
            example='"10.88.0.0/16"',
        ),
        Key(
            "gateway",
            Address("gateway address"),
            "The bridge's address, the pods' default route. Empty: the subnet's first address.",
            example='"10.88.0.1"',
        ),
        Key(
            "bridge",
            String(
                r"[A-Za-z0-9_.-]{1,15}", "use 1-15 letters, digits, '_', '.', '-'", "interface name"
            ),
            "The bridge's interface name. Empty: pm-NAME.",
            example='"pm-backend"',
        ),
        Key(
            "masquerade",
            Boolean(),
            "NAT the pods' traffic to other networks and the outside to the host's address.",
            default=True,
        ),
        Key(
            "isolate",
            Boolean(),
            "Drop traffic between this network and other pod networks; "
            "the outside and published ports still work.",
            default=False,
        ),
    ),
)


@dataclass(frozen=True)
class Definition:
    name: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    bridge: str
    masquerade: bool
    isolate: bool
    path: Path | None  # None: the built-in default network

    @property
    def where(self) -> str:
        return str(self.path) if self.path else f"the built-in network {self.name}"


def _default_bridge(name: str) -> str:
    if name == names.DEFAULT_NETWORK:
        return DEFAULT_BRIDGE
    if len("pm-" + name) <= IFNAMSIZ:
        return "pm-" + name
    return "pm-" + hashlib.sha256(name.encode()).hexdigest()[: IFNAMSIZ - 3]


def parse(name: str, text: str, path: Path | None) -> Definition:
    """One network from its file's text; ``ManifestError`` lists every problem."""
    where = str(path) if path else name
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(where, [tables.syntax_problem(error)]) from None
    problems: list[Problem] = []
    values = tables.Parser({}, problems).section(NETWORK, raw, "")
    if problems:
        raise ManifestError(where, problems)
    subnet: ipaddress.IPv4Network = values["subnet"]
    gateway = ipaddress.ip_address(values["gateway"]) if values["gateway"] else subnet[1]
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise ManifestError(
            where,
            [
                Problem(
                    "gateway",
                    f"{gateway} is not a host address of "
                    f"{subnet} (pick one inside it, or leave it out)",
                )
            ],
        )
    assert isinstance(gateway, ipaddress.IPv4Address)
    return Definition(
        name,
        subnet,
        gateway,
        values["bridge"] or _default_bridge(name),
        values["masquerade"],
        values["isolate"],
        path,
    )


def load(name: str, directory: Path | None = None) -> Definition:
    """The network ``name``: its file, or the built-in default network."""
    path = (directory or NETWORKS_DIR) / f"{name}.toml"
    try:
        text = path.read_text()
    except FileNotFoundError:
        if name == names.DEFAULT_NETWORK:
            return parse(name, f'subnet = "{DEFAULT_SUBNET}"\n', None)
        raise PodmgrError(
            f'network {name} is not defined (create {path} with at least subnet = "10.88.0.0/16")'
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ManifestError(
            str(path), [Problem("", f"cannot read: {reason} (fix the file or remove it)")]
        ) from None
    return parse(name, text, path)


def load_all(directory: Path | None = None) -> dict[str, Definition]:
    """Every network, checked against each other: no two share a bridge or subnets."""
    directory = directory or NETWORKS_DIR
    found = (
        sorted(p.stem for p in directory.glob("*.toml") if names.is_valid_name(p.stem))
        if directory.is_dir()
        else []
    )
    every = {name: load(name, directory) for name in {names.DEFAULT_NETWORK, *found}}
    # The built-in network first: a clash with it is blamed on the file that clashes.
    ordered = sorted(every.values(), key=lambda d: (d.path is not None, d.name))
    for index, first in enumerate(ordered):
        for second in ordered[index + 1 :]:
            if first.bridge == second.bridge:
                raise PodmgrError(
                    f"{second.where}: bridge {second.bridge} is already the "
                    f"bridge of network {first.name} (give it another bridge)"
                )
            if first.subnet.overlaps(second.subnet):
                raise PodmgrError(
                    f"{second.where}: subnet {second.subnet} overlaps "
                    f"{first.subnet} of network {first.name} (pick another)"
                )
    return every
