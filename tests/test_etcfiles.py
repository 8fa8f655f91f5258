# SPDX-License-Identifier: LGPL-2.1-or-later
"""A pod's /etc/hosts and /etc/resolv.conf: the host's name servers unless the manifest
names its own, and resolved's real servers for bridged pods behind its loopback stub."""

from __future__ import annotations

from pathlib import Path

import pytest

from podmgr.network import etcfiles

LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

STUB = "# resolved's stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n"
UPLINKS = "# resolved's uplinks\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch lan\n"
PLAIN = "nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch example.com\n"


def test_hosts_of_a_pod_without_network() -> None:
    assert etcfiles.hosts("web", None, (), {}) == LOCALHOST + "127.0.1.1\tweb\n"


def test_hosts_with_own_address_peers_and_extra_entries() -> None:
    peers = [("10.87.0.4", "db"), ("10.87.0.2", "cache"), ("10.87.0.3", "queue")]
    text = etcfiles.hosts(
        "web", "10.87.0.5", peers, {"registry.lan": "192.0.2.10", "mirror": "192.0.2.11"}
    )
    assert text == LOCALHOST + (
        "10.87.0.5\tweb\n"
        "10.87.0.2\tcache\n10.87.0.3\tqueue\n10.87.0.4\tdb\n"
        "192.0.2.10\tregistry.lan\n192.0.2.11\tmirror\n"
    )


def test_hosts_does_not_depend_on_the_order_of_peers() -> None:
    """Rewritten whenever a pod comes or goes: the same peers give the same text."""
    peers = [("10.87.0.4", "db"), ("10.87.0.2", "cache"), ("10.87.0.3", "queue")]
    first = etcfiles.hosts("web", "10.87.0.5", peers, {})
    assert etcfiles.hosts("web", "10.87.0.5", iter(reversed(peers)), {}) == first


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The host's resolv.conf and resolved's uplinks file, both absent until written."""
    resolv, uplinks = tmp_path / "resolv.conf", tmp_path / "uplinks.conf"
    monkeypatch.setattr(etcfiles, "HOST_RESOLV", resolv)
    monkeypatch.setattr(etcfiles, "RESOLVED_UPLINKS", uplinks)
    return resolv, uplinks


@pytest.mark.parametrize("bridged", [False, True], ids=["host-network", "bridged"])
def test_host_text_without_dns_or_search(host: tuple[Path, Path], bridged: bool) -> None:
    resolv, uplinks = host
    resolv.write_text(PLAIN)
    uplinks.write_text(UPLINKS)  # not used: the host's servers are reachable
    assert etcfiles.resolv_conf([], [], bridged) == PLAIN


def test_dns_gives_only_those_nameservers(host: tuple[Path, Path]) -> None:
    resolv, _ = host
    resolv.write_text(PLAIN)
    assert etcfiles.resolv_conf(["9.9.9.9", "2620:fe::fe"], [], True) == (
        "nameserver 9.9.9.9\nnameserver 2620:fe::fe\n"
    )


def test_dns_and_search(host: tuple[Path, Path]) -> None:
    resolv, _ = host
    resolv.write_text(PLAIN)
    assert etcfiles.resolv_conf(["9.9.9.9"], ["a.lan", "b.lan"], False) == (
        "search a.lan b.lan\nnameserver 9.9.9.9\n"
    )


def test_search_only_keeps_the_hosts_nameservers(host: tuple[Path, Path]) -> None:
    resolv, _ = host
    resolv.write_text(PLAIN)
    assert etcfiles.resolv_conf([], ["a.lan"], False) == (
        "search a.lan\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n"
    )


def test_bridged_pod_behind_stub_gets_resolveds_uplinks(host: tuple[Path, Path]) -> None:
    resolv, uplinks = host
    resolv.write_text(STUB)
    uplinks.write_text(UPLINKS)
    assert etcfiles.resolv_conf([], [], True) == UPLINKS


def test_bridged_pod_behind_stub_with_search_gets_uplink_nameservers(
    host: tuple[Path, Path],
) -> None:
    resolv, uplinks = host
    resolv.write_text(STUB)
    uplinks.write_text(UPLINKS)
    assert etcfiles.resolv_conf([], ["a.lan"], True) == (
        "search a.lan\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"
    )


@pytest.mark.parametrize(
    "stub",
    [STUB, "nameserver ::1\n", "nameserver 127.0.0.1\n"],
    ids=["resolved", "ipv6-loopback", "ipv4-loopback"],
)
def test_bridged_pod_behind_stub_without_resolved(host: tuple[Path, Path], stub: str) -> None:
    """No uplinks file (resolved is not running): the host's text, the best there is."""
    resolv, _ = host
    resolv.write_text(stub)
    assert etcfiles.resolv_conf([], [], True) == stub


def test_pod_on_host_network_keeps_the_stub(host: tuple[Path, Path]) -> None:
    resolv, uplinks = host
    resolv.write_text(STUB)
    uplinks.write_text(UPLINKS)
    assert etcfiles.resolv_conf([], [], False) == STUB


def test_a_reachable_server_beside_the_stub_keeps_the_hosts_text(host: tuple[Path, Path]) -> None:
    resolv, uplinks = host
    resolv.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.1\n")
    uplinks.write_text(UPLINKS)
    assert etcfiles.resolv_conf([], [], True) == "nameserver 127.0.0.53\nnameserver 192.0.2.1\n"


def test_host_without_resolv_conf(host: tuple[Path, Path]) -> None:
    assert etcfiles.resolv_conf([], [], False) == ""
    assert etcfiles.resolv_conf(["9.9.9.9"], [], False) == "nameserver 9.9.9.9\n"
