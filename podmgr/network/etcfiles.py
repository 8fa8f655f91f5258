# SPDX-License-Identifier: LGPL-2.1-or-later
"""The pod's /etc/hosts and /etc/resolv.conf, as text.

Every app sees the pod's files read-only (bind mounts of /run/podmgr/pods/POD/etc/*).
/etc/hosts names the pods on the same networks; when one starts or stops, the files of
the others are rewritten in place, since a bind mount shows the file it was made of and
would never see a replacement.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

HOST_RESOLV = Path("/etc/resolv.conf")
# systemd-resolved's list of the real name servers, for pods that cannot reach its stub
# on the host's 127.0.0.53.
RESOLVED_UPLINKS = Path("/run/systemd/resolve/resolv.conf")


def hosts(
    hostname: str, address: str | None, peers: Iterable[tuple[str, str]], extra: dict[str, str]
) -> str:
    """``address``: the pod's own on its first network (None: loopback only);
    ``peers``: (address, pod) of the pods it shares a network with."""
    lines = peer_lines({pod: peer_address for peer_address, pod in peers})
    return hosts_text(hostname, address, [line for _, line in lines], extra)


def peer_lines(peers: dict[str, str]) -> list[tuple[str, str]]:
    """(pod, its line) of each of ``peers`` (pod -> address), in the order of addresses:
    the part of /etc/hosts that pods on the same networks share."""
    ordered = sorted(peers.items(), key=lambda peer: ipaddress.ip_address(peer[1]))
    return [(pod, f"{peer_address}\t{pod}") for pod, peer_address in ordered]


def hosts_text(hostname: str, address: str | None, peers: list[str], extra: dict[str, str]) -> str:
    """/etc/hosts with the lines of ``peers`` (from peer_lines); otherwise as hosts()."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{address or '127.0.1.1'}\t{hostname}",
        *peers,
    ]
    lines += [f"{extra_address}\t{name}" for name, extra_address in extra.items()]
    return "\n".join(lines) + "\n"


def _nameservers(text: str) -> list[str]:
    return [
        line.split()[1]
        for line in text.splitlines()
        if line.startswith("nameserver") and len(line.split()) > 1
    ]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""  # no DNS on the host: none in the pod either


def resolv_conf(dns: list[str], search: list[str], bridged: bool) -> str:
    """The manifest's name servers and search domains, or else the host's resolv.conf.
    A bridged pod cannot reach name servers on the host's loopback
    (systemd-resolved's stub): it gets resolved's upstream servers instead."""
    text = _read(HOST_RESOLV)
    if bridged and all(s.startswith("127.") or s == "::1" for s in _nameservers(text)):
        text = _read(RESOLVED_UPLINKS) or text
    if not dns and not search:
        return text
    lines = [f"search {' '.join(search)}"] if search else []
    lines += [f"nameserver {server}" for server in dns or _nameservers(text)]
    return "\n".join(lines) + "\n"
