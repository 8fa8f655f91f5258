# SPDX-License-Identifier: LGPL-2.1-or-later
"""Address leases of pod networks, kept on disk so that they outlive crashes.

/var/lib/podmgr/networks/NETWORK/ADDRESS is a lease: a file whose content is the name of
the pod that holds the address.  A lease is written whole (a temporary file linked into
place, which fails if the address is taken) under the network's lock, so two pods never
get one address, whichever process leases it.

A lease outlives its pod when the pod's release never ran (kill -9, power loss, reboot:
/run is empty again).  Such a lease is *stale*: its pod is not prepared.  Leasing
reclaims stale leases it meets, and ``podmgr gc`` all of them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from podmgr import locks, paths
from podmgr.errors import PrepareError

LEASES_DIR = paths.STATE_DIR / "networks"
LOCK = ".lock"

Prepared = Callable[[str], bool]  # is this pod prepared (its release has not run)?


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with locks.flocked(directory / LOCK):
        yield


def leases(network: str, base: Path = LEASES_DIR) -> dict[ipaddress.IPv4Address, str]:
    """The network's leases: address -> pod."""
    found = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(base / network):
            if entry.name.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError, ValueError):
                found[ipaddress.IPv4Address(entry.name)] = Path(entry.path).read_text()
    return found


def networks_with_leases(base: Path = LEASES_DIR) -> list[str]:
    with contextlib.suppress(FileNotFoundError):
        return sorted(e.name for e in os.scandir(base) if e.is_dir())
    return []


def held_by(pod: str, base: Path = LEASES_DIR) -> dict[str, ipaddress.IPv4Address]:
    """The pod's leases: network -> address."""
    return {
        network: address
        for network in networks_with_leases(base)
        for address, owner in leases(network, base).items()
        if owner == pod
    }


def lease(
    network: str,
    subnet: ipaddress.IPv4Network,
    gateway: ipaddress.IPv4Address,
    pod: str,
    prepared: Prepared,
    base: Path = LEASES_DIR,
) -> ipaddress.IPv4Address:
    """Lease an address of ``subnet`` to ``pod``: the one it holds already, else the
    lowest one that is free or whose lease is stale."""
    directory = base / network
    with _locked(directory):
        taken = leases(network, base)
        for address, owner in taken.items():
            if owner == pod:
                if address in subnet:
                    return address
                # Left by a crash before the network got another subnet.
                (directory / str(address)).unlink()
        for address in subnet.hosts():
            if address == gateway:
                continue
            holder = taken.get(address)
            if holder is not None:
                if prepared(holder):
                    continue
                (directory / str(address)).unlink()  # stale: its pod is gone
            _write_lease(directory, address, pod)
            return address
    raise PrepareError(
        f"network {network}: every address of {subnet} is leased (stop a pod "
        "on it, or give the network a larger subnet)"
    )


def _write_lease(directory: Path, address: ipaddress.IPv4Address, pod: str) -> None:
    temporary = directory / f".{address}.{os.getpid()}"
    temporary.write_text(pod)
    try:
        os.link(temporary, directory / str(address))  # never replaces a lease
    finally:
        temporary.unlink()


def release(pod: str, base: Path = LEASES_DIR) -> None:
    """Give back every address the pod holds."""
    for network, address in held_by(pod, base).items():
        with _locked(base / network), contextlib.suppress(FileNotFoundError):
            lease_file = base / network / str(address)
            if lease_file.read_text() == pod:
                lease_file.unlink()


def reclaim(prepared: Prepared, base: Path = LEASES_DIR) -> list[tuple[str, str]]:
    """Remove stale leases; returns (network, pod) of each."""
    removed = []
    for network in networks_with_leases(base):
        with _locked(base / network):
            for address, owner in leases(network, base).items():
                if not prepared(owner):
                    (base / network / str(address)).unlink()
                    removed.append((network, owner))
    return removed


def forget(network: str, base: Path = LEASES_DIR) -> None:
    """Remove a network's lease directory; it must hold no leases.  Its lock goes, and
    temporary files of leases that a crash interrupted."""
    directory = base / network
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if entry.name.startswith("."):
                os.unlink(entry.path)
        directory.rmdir()
