# SPDX-License-Identifier: LGPL-2.1-or-later
"""Links, addresses and routes of pod networks, made with pyroute2.

A network is a bridge on the host holding its gateway address.  A pod joins it with a
veth pair: the host's end (vp + a hash of pod and network, as interface names have at
most 15 characters) on the bridge, the other end eth0, eth1 ... in the pod's network
namespace, with the pod's address; the pod's first network gives its default route.

The pod's end is configured through a netlink socket opened inside its namespace: a
short-lived thread enters the namespace (setns changes only the calling thread's) and
opens the socket, which stays bound to that namespace.  No process is forked, and the
service's own threads never leave the host's namespace.

pyroute2 is imported on first use: importing it takes longer than starting a pod.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import ipaddress
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podmgr.errors import PrepareError
from podmgr.threads import in_own_thread

if TYPE_CHECKING:
    from podmgr.network.definitions import Definition

CLONE_NEWNET = 0x40000000
VETH_PREFIX = "vp"
PROC_IPV4 = Path("/proc/sys/net/ipv4")

_libc = ctypes.CDLL(None, use_errno=True)


def veth_name(pod: str, network: str) -> str:
    """The host's end of the pod's veth on ``network``."""
    return VETH_PREFIX + hashlib.sha256(f"{pod}/{network}".encode()).hexdigest()[:13]


def host_links() -> set[str]:
    """Names of the host's network interfaces, without importing pyroute2.  (Not from
    /sys/class/net: that shows the namespace sysfs was mounted in, not ours.)"""
    return {name for _, name in socket.if_nameindex()}


def _iproute() -> Any:
    from pyroute2 import IPRoute  # noqa: PLC0415

    return IPRoute()


def _iproute_in(netns: Path) -> Any:
    """A netlink socket inside the namespace pinned at ``netns``."""

    def enter() -> Any:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {netns}")
        finally:
            os.close(fd)
        return _iproute()

    return in_own_thread(enter, "netns")


def _sysctl(path: Path, value: str) -> None:
    if path.read_text().strip() != value:
        path.write_text(value)


def _index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def add_bridge(network: Definition) -> None:
    """The network's bridge with its gateway address, up; nothing if it exists."""
    with contextlib.closing(_iproute()) as ipr:
        index = _index(ipr, network.bridge)
        if index is None:
            ipr.link("add", ifname=network.bridge, kind="bridge")
            index = _index(ipr, network.bridge)
            ipr.link("set", index=index, ifalias=_alias(network))
        elif _alias_of(ipr, index) != _alias(network):
            raise PrepareError(
                f"{network.where}: bridge {network.bridge} is an interface "
                "podmgr did not make for this network (name another bridge, "
                "or remove that interface)"
            )
        gateway = str(network.gateway)
        # IPv4 only: the kernel dumps every address of the namespace (pyroute2 filters by
        # index afterwards), and each pod's veth adds an IPv6 link-local one.
        held = ipr.get_addr(family=socket.AF_INET, index=index)
        if not any(a.get_attr("IFA_ADDRESS") == gateway for a in held):
            ipr.addr("add", index=index, address=gateway, prefixlen=network.subnet.prefixlen)
        ipr.link("set", index=index, state="up")
    conf = PROC_IPV4 / "conf" / network.bridge
    # Forwarding between the pods and everything else; route_localnet lets connections to
    # a published port on 127.0.0.1 leave for the pod (firewall.py).
    _sysctl(conf / "forwarding", "1")
    _sysctl(conf / "route_localnet", "1")
    if network.masquerade:
        # Replies from the outside arrive on the host's other interfaces: they must
        # forward too.  Networks without masquerade leave the host's setting alone.
        enable_forwarding()


def enable_forwarding() -> None:
    _sysctl(PROC_IPV4 / "ip_forward", "1")


def remove_bridge(network: Definition) -> None:
    """Delete the network's bridge, if podmgr made it."""
    with contextlib.closing(_iproute()) as ipr:
        index = _index(ipr, network.bridge)
        if index is not None and _alias_of(ipr, index) == _alias(network):
            ipr.link("del", index=index)


# The bridges podmgr makes say so in their alias (ip link shows it), so that an interface
# of the host that happens to have a network's bridge name is never used nor deleted.
def _alias(network: Definition) -> str:
    return f"podmgr network {network.name}"


def _alias_of(ipr: Any, index: int) -> str | None:
    alias: str | None = ipr.get_links(index)[0].get_attr("IFLA_IFALIAS")
    return alias


def attach(
    pod: str,
    netns: Path,
    network: Definition,
    address: ipaddress.IPv4Address,
    ifname: str,
    default_route: bool,
) -> None:
    """Join the pod to the network's bridge as ``ifname`` with ``address``."""
    host_end = veth_name(pod, network.name)
    from pyroute2 import NetlinkError  # noqa: PLC0415

    try:
        with contextlib.closing(_iproute()) as ipr:
            netns_fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link(
                    "add",
                    ifname=host_end,
                    kind="veth",
                    peer={"ifname": ifname, "net_ns_fd": netns_fd},
                )
            finally:
                os.close(netns_fd)
            ipr.link(
                "set", index=_index(ipr, host_end), master=_index(ipr, network.bridge), state="up"
            )
        with contextlib.closing(_iproute_in(netns)) as pod_ipr:
            index = _index(pod_ipr, ifname)
            pod_ipr.addr(
                "add", index=index, address=str(address), prefixlen=network.subnet.prefixlen
            )
            pod_ipr.link("set", index=index, state="up")
            if default_route:
                pod_ipr.route("add", dst="0.0.0.0/0", gateway=str(network.gateway))
    except NetlinkError as error:
        raise PrepareError(
            f"pod {pod}: network {network.name}: cannot attach {host_end} to "
            f"{network.bridge}: {error.args[-1]}"
        ) from None


def delete_links(names: list[str]) -> None:
    present = [name for name in names if name in host_links()]
    if not present:
        return
    with contextlib.closing(_iproute()) as ipr:
        for name in present:
            if (index := _index(ipr, name)) is not None:
                ipr.link("del", index=index)
