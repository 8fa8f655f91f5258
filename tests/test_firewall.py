# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr's nftables table, for real, but never on the host's own network: each test runs
its steps in a child process in a network namespace of its own (unshare --net), and reads
the kernel's ruleset back with ``nft -j``, not with the module under test.

Needs root, unshare, nft and python3-nftables.  Elsewhere the tests are skipped with the
reason, except in CI (CI=true), where a missing prerequisite fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from podmgr.values import Port

CHECKOUT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3"

# The child's helpers.  Steps fill ``out``, which the child prints as JSON.
PRELUDE = '''
import json, subprocess
from podmgr.network import definitions, firewall
from podmgr.errors import PrepareError
from podmgr.values import PortSpec

out = {}

def net(name, text='subnet = "10.88.0.0/16"\\n'):
    return definitions.parse(name, text, None)

def ports(*texts):
    return [PortSpec().parse(text) for text in texts]

def refused(call, *args):
    """The message of the PrepareError the call raises; None if it raises none."""
    try:
        call(*args)
    except PrepareError as error:
        return str(error)
    return None

def table():
    """The table as nft lists it, or None when there is none."""
    listed = subprocess.run(["nft", "-j", "list", "table", "inet", "podmgr"],
                            capture_output=True, text=True)
    return json.loads(listed.stdout)["nftables"] if listed.returncode == 0 else None

def published():
    return [[pod, port.host_ip, port.host_port, port.pod_port, port.protocol]
            for pod, port in firewall.published()]
'''

Item = dict[str, Any]  # one object of nft's JSON listing
Rule = dict[str, Any]


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "nftables tests need root (for a network namespace of their own)"
    for tool in ("unshare", "nft"):
        if not shutil.which(tool):
            return f"nftables tests need {tool}"
    if subprocess.run(
        [PYTHON, "-c", "import nftables"], capture_output=True, check=False
    ).returncode:
        return "nftables tests need python3-nftables"
    if subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False).returncode:
        return "nftables tests need unshare --net (no CAP_SYS_ADMIN here?)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _netns_allowed() -> None:
    """Skip without the prerequisites, but fail in CI."""
    if reason := _missing_prerequisite():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run them")
        pytest.skip(reason)


def in_netns(steps: str) -> dict[str, Any]:
    """Run ``steps`` after PRELUDE in a fresh network namespace; what they put in ``out``."""
    script = PRELUDE + textwrap.dedent(steps) + "\nprint(json.dumps(out))\n"
    done = subprocess.run(
        ["unshare", "--net", PYTHON, "-c", script],
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def rules(listing: list[Item] | None, chain: str = "", comment: str = "") -> list[Rule]:
    """The rules of the listing, of ``chain`` and with ``comment`` when given."""
    return [
        item["rule"]
        for item in listing or []
        if "rule" in item
        and chain in ("", item["rule"]["chain"])
        and comment in ("", item["rule"].get("comment"))
    ]


def without_handles(found: list[Rule]) -> list[Rule]:
    return [{key: value for key, value in rule.items() if key != "handle"} for rule in found]


def bridges(listing: list[Item] | None) -> list[str]:
    """The elements of the set of bridges."""
    for item in listing or []:
        if item.get("set", {}).get("name") == "bridges":
            elements: list[str] = item["set"].get("elem", [])
            return elements
    raise AssertionError("no set of bridges")


def matched(rule: Rule, left: dict[str, Any]) -> list[Any]:
    """The right-hand sides of the rule's matches on ``left``."""
    return [
        e["match"]["right"] for e in rule["expr"] if "match" in e and e["match"]["left"] == left
    ]


def interfaces(rule: Rule) -> set[tuple[str, str, str]]:
    """The rule's matches on interface names: (iifname or oifname, operator, name)."""
    return {
        (e["match"]["left"]["meta"]["key"], e["match"]["op"], e["match"]["right"])
        for e in rule["expr"]
        if "match" in e
        and e["match"]["left"] in ({"meta": {"key": "iifname"}}, {"meta": {"key": "oifname"}})
    }


def verdicts(rule: Rule) -> set[str]:
    return {
        key
        for e in rule["expr"]
        for key in e
        if key in ("masquerade", "drop", "dnat", "jump", "accept")
    }


SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
SUBNET = {"prefix": {"addr": "10.88.0.0", "len": 16}}


def test_add_network_twice_leaves_one_set_of_rules() -> None:
    out = in_netns("""
        firewall.add_network(net("a"))
        out["once"] = table()
        firewall.add_network(net("a"))
        out["twice"] = table()
        firewall.add_network(net("b", 'subnet = "10.89.0.0/16"'))
        out["other"] = table()
    """)
    once = rules(out["once"], comment="network a")
    assert len(once) == 3
    assert {r["chain"] for r in once} == {"postrouting"}
    assert without_handles(rules(out["twice"])) == without_handles(rules(out["once"]))
    assert bridges(out["twice"]) == ["pm-a"]
    jumps = rules(out["other"], comment="podmgr")
    assert sorted(r["chain"] for r in jumps) == ["output", "prerouting"]
    assert without_handles(rules(out["other"], comment="network a")) == without_handles(once)
    assert len(rules(out["other"], comment="network b")) == 3
    assert sorted(bridges(out["other"])) == ["pm-a", "pm-b"]


@pytest.mark.parametrize("masquerade", [True, False], ids=["masquerade", "no-masquerade"])
def test_masquerade(masquerade: bool) -> None:
    text = f'subnet = "10.88.0.0/16"\nmasquerade = {str(masquerade).lower()}'
    out = in_netns(f"""
        firewall.add_network(net("a", {text!r}))
        out["table"] = table()
    """)
    mine = rules(out["table"], "postrouting", "network a")
    from_subnet = [r for r in mine if SUBNET in matched(r, SADDR)]
    assert len(from_subnet) == (1 if masquerade else 0)
    for rule in from_subnet:
        assert verdicts(rule) == {"masquerade"}
        assert interfaces(rule) == {("oifname", "!=", "pm-a")}
    # Localhost to published ports and hairpin: masqueraded either way.
    assert len(mine) == len(from_subnet) + 2
    assert rules(out["table"], "forward") == []


def test_isolate_adds_two_forward_drop_rules() -> None:
    out = in_netns("""
        firewall.add_network(net("a", 'subnet = "10.88.0.0/16"\\nisolate = true'))
        out["table"] = table()
    """)
    forward = rules(out["table"], "forward")
    assert [(r["comment"], verdicts(r)) for r in forward] == [("network a", {"drop"})] * 2
    assert [interfaces(r) for r in forward] == [
        {("iifname", "==", "pm-a"), ("oifname", "==", "@bridges"), ("oifname", "!=", "pm-a")},
        {("oifname", "==", "pm-a"), ("iifname", "==", "@bridges"), ("iifname", "!=", "pm-a")},
    ]


def test_publish() -> None:
    out = in_netns("""
        firewall.add_network(net("a"))
        firewall.publish("web", "10.88.0.2", ports("8080:80/tcp", "127.0.0.1:5353:53/udp"))
        out["table"] = table()
        out["published"] = published()
    """)
    tcp, udp = rules(out["table"], "publish")
    assert tcp["comment"] == "pod web 8080:80/tcp"
    assert matched(tcp, {"payload": {"protocol": "tcp", "field": "dport"}}) == [8080]
    assert matched(tcp, {"payload": {"protocol": "ip", "field": "daddr"}}) == []
    assert {"dnat": {"family": "ip", "addr": "10.88.0.2", "port": 80}} in tcp["expr"]
    assert udp["comment"] == "pod web 127.0.0.1:5353:53/udp"
    assert matched(udp, {"payload": {"protocol": "udp", "field": "dport"}}) == [5353]
    assert matched(udp, {"payload": {"protocol": "ip", "field": "daddr"}}) == ["127.0.0.1"]
    assert {"dnat": {"family": "ip", "addr": "10.88.0.2", "port": 53}} in udp["expr"]
    assert [(pod, Port(*port)) for pod, *port in out["published"]] == [
        ("web", Port("", 8080, 80, "tcp")),
        ("web", Port("127.0.0.1", 5353, 53, "udp")),
    ]


def test_published_without_table() -> None:
    assert in_netns('out["published"] = published()') == {"published": []}


def spelled(port: str) -> str:
    """A port as rule comments spell it: with its protocol."""
    return port if "/" in port else f"{port}/tcp"


def clash(held: str, asked: list[str], message: str | None) -> pytest.ParameterSet:
    return pytest.param(held, asked, message, id=f"{held}-vs-{','.join(asked)}")


TAKEN = (
    "pod b: network.ports: 8080/{} is already published by pod a (stop a or publish "
    "another host port)"
)


@pytest.mark.parametrize(
    ("held", "asked", "message"),
    [
        clash("8080:80", ["8080:80"], TAKEN.format("tcp")),
        clash("8080:80", ["8080:81"], TAKEN.format("tcp")),
        clash("8080:80/udp", ["8080:80/udp"], TAKEN.format("udp")),
        clash("8080:80", ["9090:90", "8080:80"], TAKEN.format("tcp")),  # nothing of b added
        clash("127.0.0.1:8080:80", ["127.0.0.1:8080:80"], TAKEN.format("tcp")),
        clash("8080:80", ["127.0.0.1:8080:80"], TAKEN.format("tcp")),
        clash("127.0.0.1:8080:80", ["8080:80"], TAKEN.format("tcp")),
        clash("127.0.0.1:8080:80", ["127.0.0.2:8080:80"], None),
        clash("8080:80/tcp", ["8080:80/udp"], None),
        clash("8080:80/udp", ["8080:80/tcp"], None),
        clash("8080:80", ["8081:80"], None),
    ],
)
def test_publish_a_port_another_pod_holds(held: str, asked: list[str], message: str | None) -> None:
    out = in_netns(f"""
        firewall.add_network(net("n"))
        firewall.publish("a", "10.88.0.2", ports({held!r}))
        out["before"] = table()
        out["refused"] = refused(firewall.publish, "b", "10.88.0.3", ports(*{asked!r}))
        out["after"] = table()
    """)
    assert out["refused"] == message
    if message:
        assert without_handles(rules(out["after"])) == without_handles(rules(out["before"]))
    else:
        assert [r["comment"] for r in rules(out["after"], "publish")] == [
            f"pod a {spelled(held)}",
            *(f"pod b {spelled(port)}" for port in asked),
        ]


def test_withdraw_removes_only_that_pods_rules() -> None:
    out = in_netns("""
        firewall.add_network(net("n"))
        firewall.publish("a", "10.88.0.2", ports("8080:80", "8443:443"))
        firewall.publish("ab", "10.88.0.3", ports("9090:90"))
        before = table()
        firewall.withdraw("a")
        out["after"] = table()
        firewall.withdraw("a")  # nothing left: nothing to do
        firewall.withdraw("nobody")
        out["again"] = table()
        out["before"] = before
    """)
    assert [r["comment"] for r in rules(out["after"], "publish")] == ["pod ab 9090:90/tcp"]
    others = [r for r in rules(out["before"]) if not r["comment"].startswith("pod a ")]
    assert without_handles(rules(out["after"])) == without_handles(others)
    assert out["again"] == out["after"]


def test_remove_network() -> None:
    out = in_netns("""
        firewall.add_network(net("a", 'subnet = "10.88.0.0/16"\\nisolate = true'))
        firewall.add_network(net("b", 'subnet = "10.89.0.0/16"\\nisolate = true'))
        before = table()
        firewall.remove_network(net("a", 'subnet = "10.88.0.0/16"\\nisolate = true'))
        out["after"] = table()
        firewall.remove_network(net("a"))  # removed already: nothing to do
        out["again"] = table()
        out["before"] = before
    """)
    assert rules(out["after"], comment="network a") == []
    assert bridges(out["after"]) == ["pm-b"]
    others = [r for r in rules(out["before"]) if r["comment"] != "network a"]
    assert without_handles(rules(out["after"])) == without_handles(others)
    assert len(rules(out["after"], comment="network b")) == 5
    assert out["again"] == out["after"]
