# SPDX-License-Identifier: LGPL-2.1-or-later
"""A pod's networks: joined at prepare, left at release, repaired by gc.

Joining a network takes, in this order: its bridge and rules (links.py, firewall.py),
a lease (ipam.py), the pod's veth, then the pod's published ports.  Leaving undoes them
the other way round, so that whatever a crash leaves behind is found from what is
left: a pod that holds no lease has no veth and no published port.

Network changes of all pods take one lock, /run/podmgr/network.lock, so that the
service and a release run on its own (pod@.service's fallback) never interleave.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from podmgr import locks, paths
from podmgr.errors import PodmgrError, PrepareError
from podmgr.network import etcfiles, ipam, links

if TYPE_CHECKING:
    from podmgr.generator.plan import Plan
    from podmgr.network.definitions import Definition
    from podmgr.values import Port

log = logging.getLogger(__name__)

LOCK = paths.RUN_DIR / "network.lock"


@contextlib.contextmanager
def locked() -> Iterator[None]:
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with locks.flocked(LOCK):
        yield


def prepared(pod: str) -> bool:
    """Is the pod prepared (release has not run since)?"""
    return paths.PodRuntime(pod).plan.exists()


# The plans _plans() read, by file: (what identifies the file read, its plan).
_read_plans: dict[Path, tuple[tuple[int, int, int], Plan]] = {}


def _plans(runtime: Path) -> dict[str, Plan]:
    """The plans of the pods prepared under ``runtime``.  Every join and leave needs them
    all, so with N pods each plan file would be read N times over: a plan read before is
    kept while its file is the same one (prepare writes it once, release removes it)."""
    plans = {}
    for pod in paths.prepared_pods(runtime):
        with contextlib.suppress(OSError, ValueError):
            info = pod.plan.stat()
            seen = (info.st_ino, info.st_mtime_ns, info.st_size)
            kept = _read_plans.get(pod.plan)
            if kept is None or kept[0] != seen:
                kept = _read_plans[pod.plan] = (seen, pod.read_plan())
            plans[pod.pod] = kept[1]
    for gone in [
        p for p in _read_plans if p.parent.parent == runtime and p.parent.name not in plans
    ]:
        del _read_plans[gone]
    return plans


def join(plan: Plan, netns: Path) -> None:
    """Join the pod to its networks and publish its ports."""
    from podmgr.network import definitions, firewall  # noqa: PLC0415 -- bridged pods only
    from podmgr.values import PortSpec  # noqa: PLC0415

    pod, network = plan["pod"], plan["network"]
    if network["mode"] == "host" and network["ports"]:
        log.warning(
            "pod %s: network.ports ignored: a pod on the host's network publishes "
            "nothing (its apps listen on the host's addresses)",
            pod,
        )
    if network["mode"] != "bridge":
        return
    defined = definitions.load_all()
    joined: list[tuple[Definition, str]] = []
    with locked():
        for index, name in enumerate(network["networks"]):
            if name not in defined:
                definitions.load(name)  # raises: not defined, and how to define it
            definition = defined[name]
            links.add_bridge(definition)
            firewall.add_network(definition)
            address = ipam.lease(name, definition.subnet, definition.gateway, pod, prepared)
            links.attach(pod, netns, definition, address, f"eth{index}", index == 0)
            joined.append((definition, str(address)))
        ports = [PortSpec().parse(text) for text in network["ports"]]
        if ports:
            for port in ports:
                _check_unused(pod, port)
            firewall.publish(pod, joined[0][1], ports)
            if any(not p.host_ip.startswith("127.") for p in ports):
                links.enable_forwarding()  # other hosts reach them through this one
        refresh_hosts(set(network["networks"]))


def _check_unused(pod: str, port: Port) -> None:
    """DNAT would silently take a port from a program of the host that listens on it."""
    kind = socket.SOCK_STREAM if port.protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            # Closed at once: only asks whether the port is free on those addresses.
            probe.bind((port.host_ip or "0.0.0.0", port.host_port))  # noqa: S104
        except OSError as error:
            raise PrepareError(
                f"pod {pod}: network.ports: {port.host_port}/{port.protocol} is "
                f"in use on the host ({error.strerror}; ss -lnp 'sport = "
                f"{port.host_port}' shows by whom; publish another host "
                "port)"
            ) from None


def leave(pod: str) -> None:
    """Undo ``join``, whatever part of it was done; nothing when there is nothing."""
    held = ipam.held_by(pod)
    if not held:
        return
    from podmgr.network import firewall  # noqa: PLC0415

    with locked():
        firewall.withdraw(pod)
        # Deleting the host's end of a veth takes the pod's end with it.
        links.delete_links([links.veth_name(pod, network) for network in held])
        ipam.release(pod)
        refresh_hosts(set(held), without=pod)


def refresh_hosts(
    changed: set[str] | None = None,
    without: str = "",
    runtime: Path = paths.RUNTIME_PODS_DIR,
    leases: Path = ipam.LEASES_DIR,
) -> None:
    """Rewrite /etc/hosts of the prepared pods on the ``changed`` networks (None: all)
    from the leases; ``without``: a pod that is leaving, named by nobody.

    Pods that join the same networks name the same peers, so their lines are made once
    per set of networks, not once per pod: each of N pods starting rewrites the files of
    all N, and making each file's lines afresh would cost N x N per start."""
    members: dict[str, dict[str, str]] = {}  # network -> pod -> address
    for network in ipam.networks_with_leases(leases):
        held = ipam.leases(network, leases)
        members[network] = {pod: str(address) for address, pod in held.items()}
    peer_lines: dict[tuple[str, ...], list[tuple[str, str]]] = {}  # networks -> (pod, line)
    for pod, plan in _plans(runtime).items():
        net = plan["network"]
        if pod == without or net["mode"] != "bridge":
            continue
        if changed is not None and not changed.intersection(net["networks"]):
            continue
        joined = tuple(net["networks"])
        if joined not in peer_lines:
            peers: dict[str, str] = {}  # pod -> address on the first network shared
            for network in reversed(joined):
                peers |= members.get(network, {})
            peers.pop(without, None)
            peer_lines[joined] = etcfiles.peer_lines(peers)
        own = next((members[n][pod] for n in joined if pod in members.get(n, {})), None)
        text = etcfiles.hosts_text(
            plan["hostname"],
            own,
            [line for peer, line in peer_lines[joined] if peer != pod],
            net["hosts"],
        )
        hosts_file = paths.PodRuntime(pod, runtime).etc / "hosts"
        with contextlib.suppress(FileNotFoundError), hosts_file.open("r+") as file:
            file.write(text)  # in place: the apps' bind mounts show this inode
            file.truncate()


def addresses(pod: str) -> list[tuple[str, str]]:
    """(network, address) of the pod's leases, its first network first."""
    try:
        plan: Plan = paths.PodRuntime(pod).read_plan()
        order = plan["network"]["networks"]
    except (OSError, ValueError):
        order = []
    held = ipam.held_by(pod)
    return sorted(
        ((n, str(a)) for n, a in held.items()),
        key=lambda item: order.index(item[0]) if item[0] in order else len(order),
    )


def pods_on(network: str) -> list[str]:
    """The prepared pods that hold a lease on ``network``."""
    return sorted(pod for pod in ipam.leases(network).values() if prepared(pod))


def collect() -> list[str]:
    """Remove what pods that are no longer prepared left behind: leases, veths,
    published ports.  Returns what was removed, for people."""
    from podmgr.network import firewall  # noqa: PLC0415

    removed = []
    with locked():
        for pod in sorted(firewall.pods_with_rules()):
            if not prepared(pod):
                firewall.withdraw(pod)
                removed.append(f"published ports of pod {pod}")
        for network, pod in ipam.reclaim(prepared):
            removed.append(f"lease of pod {pod} on network {network}")
        expected = {
            links.veth_name(pod, network)
            for network in ipam.networks_with_leases()
            for pod in ipam.leases(network).values()
        }
        stray = sorted(
            name
            for name in links.host_links()
            if name.startswith(links.VETH_PREFIX) and len(name) == 15 and name not in expected
        )
        links.delete_links(stray)
        removed += [f"veth {name}" for name in stray]
        if removed:
            refresh_hosts()
    return removed


def remove_network(name: str) -> None:
    """Remove a network's bridge, rules and definition; refused while a pod is on it."""
    from podmgr.network import definitions, firewall  # noqa: PLC0415

    definition = definitions.load(name)
    if definition.path is None:
        # It has no file to remove, and a bridged pod that names no network joins it:
        # removing its bridge and rules would only last until the next such pod starts.
        raise PodmgrError(
            f"network {name} is built in and cannot be removed (bridged pods that name no "
            "other network join it)"
        )
    with locked():
        users = pods_on(name)
        if users:
            raise PodmgrError(
                f"network {name} is in use by pod {', '.join(users)} (stop "
                f"{'them' if len(users) > 1 else 'it'} first)"
            )
        ipam.reclaim(prepared)
        firewall.remove_network(definition)
        links.remove_bridge(definition)
        ipam.forget(name)
        if definition.path:
            definition.path.unlink()
