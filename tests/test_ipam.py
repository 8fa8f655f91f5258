# SPDX-License-Identifier: LGPL-2.1-or-later
"""Address leases on disk: lowest free address, one per pod, stale ones taken over,
and no address given twice when many processes lease at once."""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path

import pytest

from podmgr.errors import PrepareError
from podmgr.network import ipam

IP = ipaddress.IPv4Address
SUBNET = ipaddress.IPv4Network("10.88.0.0/24")
GATEWAY = IP("10.88.0.1")


def everyone(pod: str) -> bool:
    """Every pod is prepared: no lease is stale."""
    return True


def no_one(pod: str) -> bool:
    """No pod is prepared: every lease is stale."""
    return False


def only(*pods: str) -> Callable[[str], bool]:
    return lambda pod: pod in pods


def lease(
    base: Path,
    pod: str,
    prepared: Callable[[str], bool] = everyone,
    network: str = "net",
    subnet: ipaddress.IPv4Network = SUBNET,
    gateway: IP = GATEWAY,
) -> IP:
    return ipam.lease(network, subnet, gateway, pod, prepared, base)


def lease_files(base: Path, network: str = "net") -> dict[str, str]:
    """What is on disk: lease file name -> content, leaving out the lock."""
    return {
        path.name: path.read_text() for path in (base / network).iterdir() if path.name != ipam.LOCK
    }


def test_first_lease_is_the_lowest_host_address_after_the_gateway(tmp_path: Path) -> None:
    assert lease(tmp_path, "a") == IP("10.88.0.2")
    assert lease_files(tmp_path) == {"10.88.0.2": "a"}


def test_leases_count_up(tmp_path: Path) -> None:
    assert [lease(tmp_path, pod) for pod in "abc"] == [
        IP("10.88.0.2"),
        IP("10.88.0.3"),
        IP("10.88.0.4"),
    ]
    assert ipam.leases("net", tmp_path) == {
        IP("10.88.0.2"): "a",
        IP("10.88.0.3"): "b",
        IP("10.88.0.4"): "c",
    }


def test_gateway_network_and_broadcast_addresses_are_skipped(tmp_path: Path) -> None:
    subnet = ipaddress.IPv4Network("10.88.0.0/29")  # .0 network, .1 to .6 hosts, .7 broadcast
    gateway = IP("10.88.0.3")
    got = [lease(tmp_path, f"p{i}", subnet=subnet, gateway=gateway) for i in range(5)]
    assert got == [
        IP("10.88.0.1"),
        IP("10.88.0.2"),
        IP("10.88.0.4"),
        IP("10.88.0.5"),
        IP("10.88.0.6"),
    ]
    with pytest.raises(PrepareError):
        lease(tmp_path, "p5", subnet=subnet, gateway=gateway)


def test_freed_address_is_leased_again_lowest_first(tmp_path: Path) -> None:
    for pod in "abc":
        lease(tmp_path, pod)
    ipam.release("b", tmp_path)
    assert lease(tmp_path, "d") == IP("10.88.0.3")
    assert lease(tmp_path, "e") == IP("10.88.0.5")


def test_same_pod_gets_its_own_lease_back(tmp_path: Path) -> None:
    lease(tmp_path, "a")
    assert lease(tmp_path, "b") == IP("10.88.0.3")
    ipam.release("a", tmp_path)
    assert lease(tmp_path, "b") == IP("10.88.0.3")
    assert lease_files(tmp_path) == {"10.88.0.3": "b"}


def test_own_lease_outside_a_changed_subnet_is_not_returned(tmp_path: Path) -> None:
    lease(tmp_path, "a")
    moved = ipaddress.IPv4Network("10.99.0.0/24")
    assert lease(tmp_path, "a", subnet=moved, gateway=IP("10.99.0.1")) in moved


def test_stale_lease_is_taken_over(tmp_path: Path) -> None:
    lease(tmp_path, "gone")
    lease(tmp_path, "alive")
    asked: list[str] = []

    def prepared(pod: str) -> bool:
        asked.append(pod)
        return pod == "alive"

    assert lease(tmp_path, "new", prepared) == IP("10.88.0.2")
    assert "gone" in asked
    assert lease_files(tmp_path) == {"10.88.0.2": "new", "10.88.0.3": "alive"}


def test_prepared_pods_lease_is_kept(tmp_path: Path) -> None:
    lease(tmp_path, "a")
    assert lease(tmp_path, "b", only("a")) == IP("10.88.0.3")
    assert lease_files(tmp_path) == {"10.88.0.2": "a", "10.88.0.3": "b"}


def test_full_subnet(tmp_path: Path) -> None:
    subnet = ipaddress.IPv4Network("10.88.0.0/30")  # .1 the gateway, .2 the one pod
    assert lease(tmp_path, "a", subnet=subnet) == IP("10.88.0.2")
    with pytest.raises(PrepareError) as caught:
        lease(tmp_path, "b", subnet=subnet)
    assert str(caught.value) == (
        "network net: every address of 10.88.0.0/30 is leased (stop "
        "a pod on it, or give the network a larger subnet)"
    )
    assert lease_files(tmp_path) == {"10.88.0.2": "a"}
    assert lease(tmp_path, "b", no_one, subnet=subnet) == IP("10.88.0.2")  # a was stale


def test_networks_are_separate(tmp_path: Path) -> None:
    other = ipaddress.IPv4Network("10.89.0.0/24")
    assert lease(tmp_path, "a") == IP("10.88.0.2")
    assert lease(tmp_path, "a", network="other", subnet=other, gateway=IP("10.89.0.1")) == IP(
        "10.89.0.2"
    )
    assert ipam.networks_with_leases(tmp_path) == ["net", "other"]
    assert ipam.held_by("a", tmp_path) == {"net": IP("10.88.0.2"), "other": IP("10.89.0.2")}


def test_release_removes_only_that_pods_leases_on_every_network(tmp_path: Path) -> None:
    other = ipaddress.IPv4Network("10.89.0.0/24")
    for pod in "abc":
        lease(tmp_path, pod)
        lease(tmp_path, pod, network="other", subnet=other, gateway=IP("10.89.0.1"))
    ipam.release("b", tmp_path)
    assert lease_files(tmp_path) == {"10.88.0.2": "a", "10.88.0.4": "c"}
    assert lease_files(tmp_path, "other") == {"10.89.0.2": "a", "10.89.0.4": "c"}
    assert ipam.held_by("b", tmp_path) == {}
    ipam.release("b", tmp_path)  # nothing left: nothing to do
    ipam.release("b", tmp_path / "missing")


def test_held_by(tmp_path: Path) -> None:
    assert ipam.held_by("a", tmp_path) == {}
    assert ipam.held_by("a", tmp_path / "missing") == {}
    lease(tmp_path, "a")
    lease(tmp_path, "b")
    assert ipam.held_by("b", tmp_path) == {"net": IP("10.88.0.3")}


def test_leases_ignores_what_is_not_a_lease(tmp_path: Path) -> None:
    lease(tmp_path, "a")
    (tmp_path / "net" / ".10.88.0.9.1234").write_text("half")  # a temporary file
    (tmp_path / "net" / "README").write_text("not an address")
    assert ipam.leases("net", tmp_path) == {IP("10.88.0.2"): "a"}
    assert ipam.leases("missing", tmp_path) == {}


def test_reclaim_removes_stale_leases(tmp_path: Path) -> None:
    other = ipaddress.IPv4Network("10.89.0.0/24")
    for pod in "abc":
        lease(tmp_path, pod)
    lease(tmp_path, "a", network="other", subnet=other, gateway=IP("10.89.0.1"))
    assert sorted(ipam.reclaim(only("b"), tmp_path)) == [("net", "a"), ("net", "c"), ("other", "a")]
    assert lease_files(tmp_path) == {"10.88.0.3": "b"}
    assert lease_files(tmp_path, "other") == {}
    assert ipam.reclaim(no_one, tmp_path) == [("net", "b")]
    assert ipam.reclaim(no_one, tmp_path) == []
    assert ipam.reclaim(no_one, tmp_path / "missing") == []


def test_forget(tmp_path: Path) -> None:
    lease(tmp_path, "a")
    ipam.release("a", tmp_path)
    ipam.forget("net", tmp_path)
    assert not (tmp_path / "net").exists()
    assert ipam.networks_with_leases(tmp_path) == []
    ipam.forget("net", tmp_path)  # gone already: nothing to do


def test_forget_after_a_crash_while_leasing(tmp_path: Path) -> None:
    lease(tmp_path, "a")
    ipam.release("a", tmp_path)
    (tmp_path / "net" / ".10.88.0.2.4242").write_text("a")  # killed before its unlink
    ipam.forget("net", tmp_path)
    assert not (tmp_path / "net").exists()


# Many processes at once: forked children, released together by a barrier.

PROCESSES = 20


def _lease_in_child(base: Path, pod: str, start: Barrier) -> None:
    start.wait(timeout=30)
    address = lease(base, pod)
    (base / "results" / pod).write_text(str(address))


def _read_while_leasing(base: Path, done: Event, seen: Path) -> None:
    """Read every lease file over and over until the leasing is done; write down every
    content seen."""
    contents: set[str] = set()
    directory = base / "net"
    while not done.is_set():
        names = os.listdir(directory) if directory.exists() else []
        for name in names:
            if not name.startswith("."):  # neither the lock nor a temporary file
                try:
                    contents.add((directory / name).read_text())
                except FileNotFoundError:
                    continue
    seen.write_text(json.dumps(sorted(contents)))


def test_concurrent_leases_are_distinct_and_whole(tmp_path: Path) -> None:
    fork = multiprocessing.get_context("fork")
    (tmp_path / "results").mkdir()
    pods = [f"concurrent-pod-with-a-long-name-{i:02}" for i in range(PROCESSES)]
    start = fork.Barrier(PROCESSES)
    done = fork.Event()
    seen = tmp_path / "seen"
    reader = fork.Process(target=_read_while_leasing, args=(tmp_path, done, seen))
    reader.start()
    children = [fork.Process(target=_lease_in_child, args=(tmp_path, pod, start)) for pod in pods]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=30)
    done.set()
    reader.join(timeout=30)
    assert [child.exitcode for child in children] == [0] * PROCESSES
    assert reader.exitcode == 0

    results = {pod: IP((tmp_path / "results" / pod).read_text()) for pod in pods}
    assert len(set(results.values())) == PROCESSES
    assert set(results.values()) == {SUBNET[i] for i in range(2, 2 + PROCESSES)}
    assert lease_files(tmp_path) == {str(address): pod for pod, address in results.items()}
    assert set(json.loads(seen.read_text())) <= set(pods)
