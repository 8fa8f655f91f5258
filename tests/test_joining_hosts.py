# SPDX-License-Identifier: LGPL-2.1-or-later
"""The /etc/hosts of prepared pods, rewritten from the leases when a pod joins or leaves
(network/joining.py), without a bed: plans, leases and hosts files under tmp_path."""

from __future__ import annotations

import ipaddress
import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from podmgr import paths
from podmgr.network import etcfiles, ipam, joining

NETWORKS = ("podmgr", "back", "side")


def prepare_pod(
    runtime: Path,
    leases: Path,
    pod: str,
    networks: list[str],
    mode: str = "bridge",
    hostname: str = "",
    extra: dict[str, str] | None = None,
) -> None:
    """What prepare leaves of a pod that joined ``networks``: its plan, an /etc/hosts
    to rewrite, a lease on each network."""
    pod_runtime = paths.PodRuntime(pod, runtime)
    pod_runtime.etc.mkdir(parents=True)
    (pod_runtime.etc / "hosts").write_text("as prepare wrote it\n")
    plan = {
        "pod": pod,
        "hostname": hostname or pod,
        "network": {"mode": mode, "networks": networks, "hosts": extra or {}},
    }
    pod_runtime.plan.write_text(json.dumps(plan))
    for network in networks if mode == "bridge" else []:
        subnet = ipaddress.IPv4Network("10.87.0.0/24")
        ipam.lease(network, subnet, subnet[1], pod, lambda _: True, leases)


def hosts_of(runtime: Path, pod: str) -> str:
    return (paths.PodRuntime(pod, runtime).etc / "hosts").read_text()


def test_each_pod_names_the_pods_it_shares_a_network_with(tmp_path: Path) -> None:
    runtime, leases = tmp_path / "run", tmp_path / "leases"
    prepare_pod(runtime, leases, "web", ["podmgr"], extra={"db.example": "192.0.2.7"})
    prepare_pod(runtime, leases, "db", ["podmgr", "back"], hostname="database")
    prepare_pod(runtime, leases, "queue", ["back"])
    prepare_pod(runtime, leases, "alone", [], mode="private")
    joining.refresh_hosts(runtime=runtime, leases=leases)
    local = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    assert hosts_of(runtime, "web") == (
        local + "10.87.0.2\tweb\n10.87.0.3\tdb\n192.0.2.7\tdb.example\n"
    )
    # Its own address on its first network; a peer by its address on the first network
    # they share.
    assert (
        hosts_of(runtime, "db") == local + "10.87.0.3\tdatabase\n10.87.0.2\tweb\n10.87.0.3\tqueue\n"
    )
    assert hosts_of(runtime, "queue") == local + "10.87.0.3\tqueue\n10.87.0.2\tdb\n"
    assert hosts_of(runtime, "alone") == "as prepare wrote it\n"  # not bridged: its own


def test_a_leaving_pod_is_named_by_nobody_and_its_file_is_left(tmp_path: Path) -> None:
    runtime, leases = tmp_path / "run", tmp_path / "leases"
    for pod in ("web", "db", "cache"):
        prepare_pod(runtime, leases, pod, ["podmgr"])
    joining.refresh_hosts(runtime=runtime, leases=leases)
    before = hosts_of(runtime, "cache")
    joining.refresh_hosts({"podmgr"}, without="cache", runtime=runtime, leases=leases)
    assert "cache" not in hosts_of(runtime, "web")
    assert "cache" not in hosts_of(runtime, "db")
    assert hosts_of(runtime, "cache") == before


def test_only_pods_on_the_changed_networks_are_rewritten(tmp_path: Path) -> None:
    runtime, leases = tmp_path / "run", tmp_path / "leases"
    prepare_pod(runtime, leases, "web", ["podmgr"])
    prepare_pod(runtime, leases, "queue", ["back"])
    joining.refresh_hosts({"podmgr"}, runtime=runtime, leases=leases)
    assert "\tweb\n" in hosts_of(runtime, "web")
    assert hosts_of(runtime, "queue") == "as prepare wrote it\n"


def test_a_pod_prepared_again_is_read_again(tmp_path: Path) -> None:
    """Plans are kept between refreshes: one of a pod that was released and prepared
    again (a new plan file) must not be the old one."""
    runtime, leases = tmp_path / "run", tmp_path / "leases"
    prepare_pod(runtime, leases, "web", ["podmgr"], hostname="old")
    joining.refresh_hosts(runtime=runtime, leases=leases)
    assert "\told\n" in hosts_of(runtime, "web")
    shutil.rmtree(paths.PodRuntime("web", runtime).dir)
    prepare_pod(runtime, leases, "web", ["podmgr"], hostname="new")
    joining.refresh_hosts(runtime=runtime, leases=leases)
    assert "\tnew\n" in hosts_of(runtime, "web")
    assert "old" not in hosts_of(runtime, "web")


PODS = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True),
    st.lists(st.sampled_from(NETWORKS), unique=True, max_size=3),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(pods=PODS, leaving=st.integers(min_value=0, max_value=12))
def test_every_file_is_what_its_pod_alone_would_get(
    pods: dict[str, list[str]], leaving: int
) -> None:
    """The lines shared by pods on the same networks are made once; each file must still
    be what etcfiles.hosts makes of that pod's own peers."""
    with tempfile.TemporaryDirectory() as tmp:
        runtime, leases = Path(tmp, "run"), Path(tmp, "leases")
        for pod, networks in pods.items():
            prepare_pod(runtime, leases, pod, networks)
        without = sorted(pods)[leaving] if leaving < len(pods) else ""
        joining.refresh_hosts(without=without, runtime=runtime, leases=leases)
        members = {n: ipam.leases(n, leases) for n in NETWORKS}
        for pod, networks in pods.items():
            if pod == without:
                continue
            peers: dict[str, str] = {}
            for network in reversed(networks):
                peers |= {p: str(a) for a, p in members[network].items()}
            own = peers.pop(pod, None)
            peers.pop(without, None)
            expected = etcfiles.hosts(pod, own, ((a, p) for p, a in peers.items()), {})
            assert hosts_of(runtime, pod) == expected
