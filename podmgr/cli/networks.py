# SPDX-License-Identifier: LGPL-2.1-or-later
"""The network commands of podmgr: network list, network rm."""

from __future__ import annotations

import argparse

from podmgr.bus.client import Client
from podmgr.cli import output


async def cmd_list(args: argparse.Namespace) -> int:
    async with Client() as client:
        found = await client.call("ListNetworks")
    if args.json:
        output.print_json(
            [
                {
                    "name": name,
                    "subnet": subnet,
                    "bridge": bridge,
                    "masquerade": masquerade,
                    "isolate": isolate,
                    "pods": pods,
                }
                for name, subnet, bridge, masquerade, isolate, pods in found
            ]
        )
        return 0
    width = max(len(row[0]) for row in found)
    print(f"{'NETWORK':<{width}}  {'SUBNET':<18}  {'BRIDGE':<15}  FLAGS            PODS")
    for name, subnet, bridge, masquerade, isolate, pods in found:
        flags = ",".join(f for f, on in (("masquerade", masquerade), ("isolate", isolate)) if on)
        print(
            f"{name:<{width}}  {subnet:<18}  {bridge:<15}  {flags or '-':<16} "
            f"{' '.join(pods) or '-'}"
        )
    return 0


async def cmd_rm(args: argparse.Namespace) -> int:
    async with Client() as client:
        for name in args.names:
            await client.call("RemoveNetwork", name)
            print(f"network {name}: removed")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    network = sub.add_parser(
        "network",
        help="list and remove pod networks",
        description="Pod networks, defined in /etc/podmgr/networks/NAME.toml (see podmgr.toml(5)).",
    )
    commands = network.add_subparsers(dest="network_command", required=True, metavar="COMMAND")
    listing = commands.add_parser(
        "list",
        help="list networks and the pods on them",
        description="List networks and the pods on them.",
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_list)
    remove = commands.add_parser(
        "rm",
        help="remove a network no pod is on: its bridge, rules and definition",
        description="Remove networks.",
    )
    remove.add_argument("names", nargs="+", metavar="NETWORK", help="network name")
    remove.set_defaults(handler=cmd_rm, checks={"names": "network"})
