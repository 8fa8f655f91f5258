# SPDX-License-Identifier: LGPL-2.1-or-later
"""NAT, published ports and isolation in nftables, in podmgr's own table.

    table inet podmgr
      set bridges       the bridges of pod networks
      chain prerouting  nat hook: to a local address -> jump publish
      chain output      nat hook, for the host's own connections (localhost included)
      chain publish     DNAT of published ports              comment "pod NAME PORT"
      chain postrouting masquerade, per network              comment "network NAME"
      chain forward     isolation, per network               comment "network NAME"

Nothing outside this table is touched.  Every rule says whose it is in its comment, so
the kernel's ruleset is the one record of what is published by whom: a conflict is found
there, and a pod's rules are removed by it, even after a crash.

libnftables' own Python binding rather than the nft command: each change is one atomic
JSON transaction in this process, with structured JSON back (handles, comments), instead
of a process per change and text to parse.

Connections to localhost: DNAT turns 127.0.0.1:8080 into POD:80, but the kernel drops
packets from 127.0.0.0/8 leaving on another interface unless that interface has
route_localnet (links.py sets it on each bridge), and the pod could not answer them:
so they are masqueraded to the bridge's address.  The same goes for a pod reaching a
port published by a pod on its own bridge (hairpin).
"""

from __future__ import annotations

from typing import Any

from podmgr.errors import PrepareError
from podmgr.network.definitions import Definition
from podmgr.values import BadValue, Port, PortSpec

FAMILY = "inet"
TABLE = "podmgr"
_BRIDGES = "bridges"

Rule = dict[str, Any]


def _nft(commands: list[dict[str, Any]]) -> dict[str, Any]:
    import nftables  # type: ignore[import-untyped]  # noqa: PLC0415 -- only when networked

    nft = nftables.Nftables()
    nft.set_json_output(True)
    nft.set_handle_output(True)
    code, output, error = nft.json_cmd({"nftables": commands})
    if code != 0:
        raise PrepareError(f"nftables: {error.strip() or 'failed'}")
    return output if isinstance(output, dict) else {}


def _skeleton() -> list[dict[str, Any]]:
    """Adding what exists already changes nothing, so every transaction starts so."""
    table = {"family": FAMILY, "table": TABLE}

    def chain(name: str, kind: str = "", hook: str = "", prio: int = 0) -> dict[str, Any]:
        spec: dict[str, Any] = {**table, "name": name}
        if kind:
            spec |= {"type": kind, "hook": hook, "prio": prio, "policy": "accept"}
        return {"add": {"chain": spec}}

    return [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"add": {"set": {**table, "name": _BRIDGES, "type": "ifname"}}},
        chain("publish"),
        chain("prerouting", "nat", "prerouting", -100),
        chain("output", "nat", "output", -100),
        chain("postrouting", "nat", "postrouting", 100),
        chain("forward", "filter", "forward", 0),
    ]


def _match(left: dict[str, Any], right: object, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def _rule(chain: str, comment: str, *expr: dict[str, Any]) -> dict[str, Any]:
    return {
        "add": {
            "rule": {
                "family": FAMILY,
                "table": TABLE,
                "chain": chain,
                "comment": comment,
                "expr": list(expr),
            }
        }
    }


def rules() -> list[Rule]:
    """Every rule of the table, with chain, handle and comment."""
    try:
        output = _nft([{"list": {"table": {"family": FAMILY, "name": TABLE}}}])
    except PrepareError:
        return []  # no table yet
    return [item["rule"] for item in output.get("nftables", []) if "rule" in item]


def _delete(found: list[Rule]) -> list[dict[str, Any]]:
    return [
        {
            "delete": {
                "rule": {
                    "family": FAMILY,
                    "table": TABLE,
                    "chain": r["chain"],
                    "handle": r["handle"],
                }
            }
        }
        for r in found
    ]


def _jumps() -> list[dict[str, Any]]:
    """prerouting and output send what is addressed to the host to publish."""
    local = _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
    return [
        _rule(chain, "podmgr", local, {"jump": {"target": "publish"}})
        for chain in ("prerouting", "output")
    ]


def add_network(network: Definition) -> None:
    """The network's rules, unless it has them."""
    tag = f"network {network.name}"
    present = rules()
    if any(r.get("comment") == tag for r in present):
        return
    bridge = network.bridge
    saddr = {"payload": {"protocol": "ip", "field": "saddr"}}
    commands = _skeleton()
    if not any(r.get("comment") == "podmgr" for r in present):
        commands += _jumps()
    commands += [
        {
            "add": {
                "element": {"family": FAMILY, "table": TABLE, "name": _BRIDGES, "elem": [bridge]}
            }
        },
        _rule(
            "postrouting",
            tag,
            _match(_meta("oifname"), bridge),
            _match(saddr, {"prefix": {"addr": "127.0.0.0", "len": 8}}),
            {"masquerade": None},
        ),
        _rule(
            "postrouting",
            tag,
            _match(_meta("iifname"), bridge),
            _match(_meta("oifname"), bridge),
            _match({"ct": {"key": "status"}}, "dnat", "in"),
            {"masquerade": None},
        ),
    ]
    if network.masquerade:
        subnet = {
            "prefix": {"addr": str(network.subnet.network_address), "len": network.subnet.prefixlen}
        }
        commands.append(
            _rule(
                "postrouting",
                tag,
                _match(saddr, subnet),
                _match(_meta("oifname"), bridge, "!="),
                {"masquerade": None},
            )
        )
    if network.isolate:
        for inside, outside in (("iifname", "oifname"), ("oifname", "iifname")):
            commands.append(
                _rule(
                    "forward",
                    tag,
                    _match(_meta(inside), bridge),
                    _match(_meta(outside), f"@{_BRIDGES}"),
                    _match(_meta(outside), bridge, "!="),
                    {"drop": None},
                )
            )
    _nft(commands)


def remove_network(network: Definition) -> None:
    tag = f"network {network.name}"
    commands = _delete([r for r in rules() if r.get("comment") == tag])
    if commands:
        commands.append(
            {
                "delete": {
                    "element": {
                        "family": FAMILY,
                        "table": TABLE,
                        "name": _BRIDGES,
                        "elem": [network.bridge],
                    }
                }
            }
        )
        _nft(commands)


def published(found: list[Rule] | None = None) -> list[tuple[str, Port]]:
    """(pod, port) of every published port, from the rules' comments."""
    result = []
    for rule in rules() if found is None else found:
        words = str(rule.get("comment", "")).split()
        if rule["chain"] == "publish" and len(words) == 3 and words[0] == "pod":
            try:
                result.append((words[1], PortSpec().parse(words[2])))
            except BadValue:
                continue  # not ours to read
    return result


def _clash(a: Port, b: Port) -> bool:
    return (
        a.protocol == b.protocol
        and a.host_port == b.host_port
        and (not a.host_ip or not b.host_ip or a.host_ip == b.host_ip)
    )


def publish(pod: str, address: str, ports: list[Port]) -> None:
    """DNAT the pod's published ports to ``address``; a port that another pod
    publishes is refused, naming that pod, and nothing is added."""
    for owner, taken in published():
        for port in ports:
            if owner != pod and _clash(port, taken):
                raise PrepareError(
                    f"pod {pod}: network.ports: {port.host_port}/{port.protocol} "
                    f"is already published by pod {owner} (stop {owner} or "
                    "publish another host port)"
                )
    commands = _skeleton()
    for port in ports:
        expr = [_match(_meta("nfproto"), "ipv4")]
        if port.host_ip:
            expr.append(_match({"payload": {"protocol": "ip", "field": "daddr"}}, port.host_ip))
        expr += [
            _match({"payload": {"protocol": port.protocol, "field": "dport"}}, port.host_port),
            {"dnat": {"family": "ip", "addr": address, "port": port.pod_port}},
        ]
        commands.append(_rule("publish", f"pod {pod} {port}", *expr))
    _nft(commands)


def withdraw(pod: str) -> None:
    """Remove the pod's published ports."""
    mine = [r for r in rules() if str(r.get("comment", "")).split()[:2] == ["pod", pod]]
    if mine:
        _nft(_delete(mine))


def pods_with_rules() -> set[str]:
    return {owner for owner, _ in published()}
