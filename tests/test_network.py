# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pod networks in a bed, with real traffic: names, published ports, isolation, cleanup.

Every address contacted is the bed's own loopback or inside namespaces the pods get.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest
from bed import Bed
from test_pods import CHECKOUT, ROOTFS, install, main_pid, reload, show, wait_for

pytestmark = pytest.mark.integration

PAGE = (
    "mkdir -p /www; echo hello from $(cat /etc/hostname) > /www/index.html; "
    "exec httpd -f -p 80 -h /www"
)

WEB = f"""
    [network]
    mode = "bridge"
    ports = ["8080:80/tcp", "127.0.0.1:5353:53/udp"]

    [app.web]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sh", "-c", "{PAGE}"]

    [app.dns]
    rootfs = "{ROOTFS}"
    exec = ["/bin/udp-echo", "53"]
"""

HTTP_GET = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode(), end="")
"""

# A UDP client on the bed's host side: one datagram, the answer or "timeout".
UDP_ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
try:
    print(s.recvfrom(100)[0].decode())
except TimeoutError:
    print("timeout")
"""


def pod_with(network: str, command: str = "exec sleep infinity") -> str:
    return f"""
        [network]
        {network}

        [app.main]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sh", "-c", "{command}"]
    """


@pytest.fixture(scope="module")
def net_bed(bed: Bed) -> Bed:
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run("gcc", "-static", "-O2", "-o", f"{ROOTFS}/bin/udp-echo", f"{CHECKOUT}/tests/udp-echo.c")
    # busybox-static cannot look names up (its static glibc has no NSS): resolve with
    # glibc's getent, copied in with the libraries it links.
    bed.run(
        "sh",
        "-c",
        "for f in /usr/bin/getent $(ldd /usr/bin/getent | grep -o '/[^ ]*'); "
        f"do mkdir -p {ROOTFS}$(dirname $f) && cp -L $f {ROOTFS}$f; done",
    )
    return bed


def app_pid(bed: Bed, pod: str) -> int:
    """The pod's first app, once in its root: systemctl start returns as soon as the
    app's process is forked, before systemd has set up its mounts and root in it."""
    pid = main_pid(bed, pod, "web" if pod == "web" else "main")
    inode = ["stat", "-L", "-c", "%d:%i"]
    pods_file = bed.run(*inode, f"/run/podmgr/pods/{pod}/etc/hosts").stdout
    wait_for(
        lambda: bed.run(*inode, f"/proc/{pid}/root/etc/hosts").stdout == pods_file,
        what=f"{pod}'s app to see the pod's /etc/hosts",
    )
    return pid


@pytest.fixture(autouse=True)
def clean(net_bed: Bed) -> Iterator[None]:
    """Each test starts from no pods and no network files, even after one that failed."""
    yield
    net_bed.run("systemctl", "stop", "pod@*.service")
    net_bed.run("systemctl", "reset-failed")
    net_bed.run("rm", "-rf", "/etc/podmgr/pods", "/etc/podmgr/networks")
    reload(net_bed)


def in_pod(bed: Bed, pod: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command as the pod's first app sees the world: its root, its network."""
    pid = app_pid(bed, pod)
    return bed.run(
        "nsenter", "-t", str(pid), "-m", "-n", "-u", "-r", "-w", "--", *argv, check=check
    )


def in_pod_net(bed: Bed, pod: str, *argv: str) -> str:
    """Run one of the bed's commands (ip) in the pod's network namespace only."""
    return bed.run("nsenter", "-t", str(app_pid(bed, pod)), "-n", "--", *argv).stdout


def get(bed: Bed, url: str) -> str:
    """From the bed's host side."""
    result = bed.run("python3", "-c", HTTP_GET, url, check=False)
    return result.stdout if result.returncode == 0 else f"failed: {result.stderr}"


def resolve(bed: Bed, pod: str, name: str) -> str:
    """The address ``name`` has in the pod, as glibc's resolver sees it."""
    result = in_pod(bed, pod, "getent", "hosts", name, check=False)
    return result.stdout.split()[0] if result.returncode == 0 else "unknown"


def fetch(bed: Bed, pod: str, url: str) -> str:
    """An HTTP GET from the pod's network namespace."""
    result = bed.run(
        "nsenter",
        "-t",
        str(app_pid(bed, pod)),
        "-n",
        "--",
        "python3",
        "-c",
        HTTP_GET,
        url,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else f"failed: {result.stderr}"


def leases(bed: Bed, network: str = "podmgr") -> dict[str, str]:
    found = bed.run(
        "sh",
        "-c",
        f"cd /var/lib/podmgr/networks/{network} 2>/dev/null && "
        'for f in *; do [ -f "$f" ] && echo "$f $(cat "$f")"; done; true',
    )
    return dict(line.split() for line in found.stdout.splitlines())


def veths(bed: Bed) -> list[str]:
    links = json.loads(bed.run("ip", "-j", "link").stdout)
    return [link["ifname"] for link in links if link["ifname"].startswith("vp")]


def pod_rules(bed: Bed) -> list[str]:
    listing = bed.run("nft", "list", "table", "inet", "podmgr", check=False).stdout
    return [line.strip() for line in listing.splitlines() if 'comment "pod ' in line]


def start(bed: Bed, *pods: str) -> None:
    bed.run("systemctl", "start", *(f"pod@{pod}" for pod in pods))


def stop(bed: Bed, *pods: str) -> None:
    bed.run("systemctl", "stop", *(f"pod@{pod}" for pod in pods))


def assert_nothing_left(bed: Bed, *pods: str) -> None:
    assert veths(bed) == []
    assert pod_rules(bed) == []
    assert not set(pods) & set(leases(bed).values())
    for pod in pods:
        assert bed.run("test", "-e", f"/run/podmgr/pods/{pod}", check=False).returncode == 1


def test_pods_talk_by_name_and_publish_ports(net_bed: Bed) -> None:
    bed = net_bed
    install(bed, "web", WEB)
    install(bed, "db", pod_with('mode = "bridge"'))
    reload(bed)
    start(bed, "web", "db")
    addresses = {pod: address for address, pod in leases(bed).items()}
    assert set(addresses) == {"web", "db"}
    assert addresses["web"] != addresses["db"]

    status = bed.run("podmgr", "status", "web").stdout
    assert re.search(rf"Addresses: {re.escape(addresses['web'])}\n", status), status

    # Published ports, from the host's localhost and from the bridge's address.
    wait_for(
        lambda: not get(bed, "http://127.0.0.1:8080/").startswith("failed"), what="web to serve"
    )
    assert get(bed, "http://127.0.0.1:8080/") == "hello from web\n"
    assert get(bed, "http://10.87.0.1:8080/") == "hello from web\n"
    assert bed.run("python3", "-c", UDP_ASK, "127.0.0.1", "5353").stdout == "echo ping\n"
    # Published on 127.0.0.1 only: the bridge's address does not answer on it.
    assert bed.run("python3", "-c", UDP_ASK, "10.87.0.1", "5353").stdout == "timeout\n"

    # Pod to pod by name, through the generated /etc/hosts, both ways.
    assert resolve(bed, "db", "web") == addresses["web"]
    assert resolve(bed, "web", "db") == addresses["db"]
    assert fetch(bed, "db", f"http://{addresses['web']}/") == "hello from web"
    # A pod reaches another's published port on the host's address (hairpin NAT).
    assert fetch(bed, "db", "http://10.87.0.1:8080/") == "hello from web"
    # The pod's default route leads out through the bridge.
    route = in_pod_net(bed, "db", "ip", "route", "show", "default")
    assert "via 10.87.0.1 dev eth0" in route

    # /etc/hosts follows pods starting and stopping, in the same file the apps see.
    install(bed, "cache", pod_with('mode = "bridge"'))
    reload(bed)
    start(bed, "cache")
    cache = next(address for address, pod in leases(bed).items() if pod == "cache")
    assert resolve(bed, "db", "cache") == cache
    stop(bed, "cache")
    assert resolve(bed, "db", "cache") == "unknown"

    stop(bed, "web", "db")
    assert_nothing_left(bed, "web", "db", "cache")
    assert get(bed, "http://127.0.0.1:8080/").startswith("failed")


# Serves in the "outside" namespace, telling each client who it seems to be.
WHO_CONNECTS = """
import socket
server = socket.create_server(("192.0.2.2", 9000))
while True:
    connection, (peer, _) = server.accept()
    connection.sendall(peer.encode())
    connection.close()
"""
WHO_AM_I = """
import socket
print(socket.create_connection(("192.0.2.2", 9000), timeout=2).recv(64).decode())
"""


def test_another_host_reaches_published_ports_and_pods_reach_out(net_bed: Bed) -> None:
    """ "Another host": a network namespace joined to the bed by a veth, 192.0.2.0/24."""
    bed = net_bed
    outside = ["ip", "netns", "exec", "outside"]
    bed.run("ip", "netns", "add", "outside")
    try:
        bed.run(
            "ip",
            "link",
            "add",
            "to-outside",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            "outside",
        )
        bed.run("ip", "addr", "add", "192.0.2.1/24", "dev", "to-outside")
        bed.run("ip", "link", "set", "to-outside", "up")
        bed.run(*outside, "ip", "addr", "add", "192.0.2.2/24", "dev", "eth0")
        bed.run(*outside, "ip", "link", "set", "eth0", "up")
        install(bed, "web", WEB)
        install(bed, "db", pod_with('mode = "bridge"'))
        reload(bed)
        start(bed, "web", "db")

        # In through the host's address, DNAT in prerouting, forwarded to the pod.
        wait_for(
            lambda: not get(bed, "http://127.0.0.1:8080/").startswith("failed"), what="web to serve"
        )
        page = bed.run(*outside, "python3", "-c", HTTP_GET, "http://192.0.2.1:8080/")
        assert page.stdout == "hello from web\n"
        # The pod's own address is not reachable from there: it has no route to it.
        web = next(address for address, pod in leases(bed).items() if pod == "web")
        assert (
            bed.run(*outside, "python3", "-c", HTTP_GET, f"http://{web}/", check=False).returncode
            != 0
        )

        # Out from a pod, masqueraded: the other host sees the host's address.
        bed.run("systemd-run", "--unit=outside-server", *outside, "python3", "-c", WHO_CONNECTS)

        def answer() -> str:
            result = bed.run(
                "nsenter",
                "-t",
                str(app_pid(bed, "db")),
                "-n",
                "--",
                "python3",
                "-c",
                WHO_AM_I,
                check=False,
            )
            return result.stdout.strip()

        wait_for(lambda: answer() == "192.0.2.1", what="the outside server to see the host")
    finally:
        bed.run("systemctl", "stop", "outside-server.service", check=False)
        bed.run("ip", "netns", "del", "outside")


def test_a_port_taken_is_refused_naming_its_pod(net_bed: Bed) -> None:
    bed = net_bed
    install(bed, "web", WEB)
    install(bed, "clash", pod_with('mode = "bridge"\nports = ["8080:8080"]'))
    reload(bed)
    start(bed, "web")
    failed = bed.run("systemctl", "start", "pod@clash", check=False)
    assert failed.returncode != 0
    log = bed.run("journalctl", "--no-pager", "-o", "cat", "-u", "pod@clash.service").stdout
    assert "8080/tcp is already published by pod web" in log
    assert show(bed, "pod@clash.service", "ActiveState") == "failed"
    assert "clash" not in leases(bed).values()
    assert all("pod clash" not in rule for rule in pod_rules(bed))
    # web still serves.
    assert get(bed, "http://127.0.0.1:8080/") == "hello from web\n"
    stop(bed, "web")
    bed.run("systemctl", "reset-failed", "pod@clash.service")
    assert_nothing_left(bed, "web", "clash")

    # A port a program of the host listens on is refused too, rather than taken from it.
    bed.run(
        "systemd-run",
        "--unit=listener",
        "python3",
        "-c",
        "import socket, time; s = socket.create_server(('127.0.0.1', 8080)); time.sleep(600)",
    )
    wait_for(lambda: ":8080 " in bed.run("ss", "-ltnH").stdout, what="the listener")
    try:
        assert bed.run("systemctl", "start", "pod@web", check=False).returncode != 0
        log = bed.run("journalctl", "--no-pager", "-o", "cat", "-u", "pod@web.service").stdout
        assert "network.ports: 8080/tcp is in use on the host (Address already in use" in log
        assert_nothing_left(bed, "web")
    finally:
        bed.run("systemctl", "stop", "listener.service")


NETWORKS = {
    "front": 'subnet = "10.88.0.0/24"\nisolate = true\n',
    "back": 'subnet = "10.89.0.0/24"\n',
}


def test_named_networks_isolation_and_removal(net_bed: Bed) -> None:
    bed = net_bed
    for name, text in NETWORKS.items():
        bed.run("mkdir", "-p", "/etc/podmgr/networks")
        bed.run("sh", "-c", f"cat > /etc/podmgr/networks/{name}.toml", input=text)
    install(bed, "a", pod_with('mode = "front"', PAGE))  # a network's name as mode
    install(bed, "b", pod_with('mode = "bridge"\nnetworks = ["back"]', PAGE))
    install(bed, "both", pod_with('mode = "bridge"\nnetworks = ["front", "back"]', PAGE))
    reload(bed)
    start(bed, "a", "b", "both")
    front = {pod: address for address, pod in leases(bed, "front").items()}
    back = {pod: address for address, pod in leases(bed, "back").items()}
    assert set(front) == {"a", "both"}
    assert set(back) == {"b", "both"}

    for pod, address in (("a", front["a"]), ("b", back["b"])):

        def serves(url: str = f"http://{address}/", page: str = f"hello from {pod}") -> bool:
            return fetch(bed, "both", url) == page

        wait_for(serves, what=f"{pod} to serve")

    # A pod on both networks reaches either side, by name and address.
    links = in_pod_net(bed, "both", "ip", "-br", "addr")
    assert re.search(r"eth0\S*\s+UP\s+10\.88\.0\.\d+/24", links), links
    assert re.search(r"eth1\S*\s+UP\s+10\.89\.0\.\d+/24", links), links
    status = json.loads(bed.run("podmgr", "status", "--json", "both").stdout)
    assert status["Addresses"] == [front["both"], back["both"], "127.0.0.1", "::1"]
    assert (resolve(bed, "both", "a"), resolve(bed, "both", "b")) == (front["a"], back["b"])
    assert resolve(bed, "a", "both") == front["both"]
    assert resolve(bed, "b", "both") == back["both"]
    assert fetch(bed, "a", f"http://{front['both']}/") == "hello from both"
    assert fetch(bed, "b", f"http://{back['both']}/") == "hello from both"
    # front is isolated: nothing passes between it and back, either way.
    assert fetch(bed, "a", f"http://{back['b']}/").startswith("failed")
    assert fetch(bed, "b", f"http://{front['a']}/").startswith("failed")
    # Names are those of pods on a shared network only.
    assert resolve(bed, "a", "b") == "unknown"

    listing = json.loads(bed.run("podmgr", "network", "list", "--json").stdout)
    by_name = {n["name"]: n for n in listing}
    assert by_name["front"]["pods"] == ["a", "both"]
    assert by_name["front"]["isolate"]
    assert by_name["back"]["bridge"] == "pm-back"

    refused = bed.run("podmgr", "network", "rm", "back", check=False)
    assert refused.returncode == 1
    assert "network back is in use by pod b, both (stop them first)" in refused.stderr
    assert bed.run("test", "-f", "/etc/podmgr/networks/back.toml", check=False).returncode == 0

    builtin = bed.run("podmgr", "network", "rm", "podmgr", check=False)
    assert builtin.returncode == 1
    assert "network podmgr is built in and cannot be removed" in builtin.stderr

    stop(bed, "a", "b", "both")
    assert_nothing_left(bed, "a", "b", "both")
    bed.run("podmgr", "network", "rm", "back", "front")
    links_left = [link["ifname"] for link in json.loads(bed.run("ip", "-j", "link").stdout)]
    assert "pm-back" not in links_left
    assert "pm-front" not in links_left
    assert bed.run("ls", "/etc/podmgr/networks").stdout == ""
    assert "network back" not in bed.run("nft", "list", "table", "inet", "podmgr").stdout


def test_a_bridge_name_of_another_interface_is_neither_used_nor_removed(net_bed: Bed) -> None:
    bed = net_bed
    bed.run("ip", "link", "add", "br-admin", "type", "bridge")
    try:
        bed.run("mkdir", "-p", "/etc/podmgr/networks")
        bed.run(
            "sh",
            "-c",
            'printf \'subnet = "10.90.0.0/24"\nbridge = "br-admin"\n\' '
            "> /etc/podmgr/networks/lan.toml",
        )
        install(bed, "x", pod_with('mode = "lan"'))
        reload(bed)
        assert bed.run("systemctl", "start", "pod@x", check=False).returncode != 0
        log = bed.run("journalctl", "--no-pager", "-o", "cat", "-u", "pod@x.service").stdout
        assert (
            "/etc/podmgr/networks/lan.toml: bridge br-admin is an interface podmgr did "
            "not make for this network"
        ) in log
        assert bed.run("ip", "-br", "addr", "show", "br-admin").stdout.split()[2:] == []
        assert_nothing_left(bed, "x")
        bed.run("podmgr", "network", "rm", "lan")
        assert bed.run("ip", "link", "show", "br-admin", check=False).returncode == 0
    finally:
        bed.run("ip", "link", "del", "br-admin", check=False)


def test_leftovers_of_a_crash_are_reclaimed(net_bed: Bed) -> None:
    bed = net_bed
    install(bed, "web", WEB)
    reload(bed)
    start(bed, "web")
    address = next(a for a, pod in leases(bed).items() if pod == "web")
    # A crash: every process of the pod is killed, and its runtime state under /run is
    # gone without a release (as after a reboot), while its lease, rules and veth stay.
    bed.run(
        "systemctl", "kill", "--signal=KILL", "podapp@web:web.service", "podapp@web:dns.service"
    )
    # Lazily, as the apps restart (Restart=on-failure) and their mount namespaces, copies
    # of the host's, keep the namespace pins busy.
    bed.run(
        "sh",
        "-c",
        "findmnt -rn -o TARGET | grep ^/run/podmgr/pods/web/ | sort -r | "
        "xargs -r -n1 umount -l && rm -rf /run/podmgr/pods/web",
    )
    assert pod_rules(bed)
    assert leases(bed)[address] == "web"

    gc = bed.run("podmgr", "gc").stdout
    assert "removed published ports of pod web, left by a pod that is gone" in gc
    assert "removed lease of pod web on network podmgr, left by a pod that is gone" in gc
    assert pod_rules(bed) == []
    assert leases(bed) == {}
    wait_for(lambda: veths(bed) == [], what="the crashed pod's veth to go")
    bed.run("systemctl", "stop", "pod@web")

    # A lease whose pod is gone is taken over by the next pod that needs an address.
    bed.run(
        "sh",
        "-c",
        "mkdir -p /var/lib/podmgr/networks/podmgr && "
        f"echo -n ghost > /var/lib/podmgr/networks/podmgr/{address}",
    )
    install(bed, "db", pod_with('mode = "bridge"'))
    reload(bed)
    start(bed, "db")
    assert leases(bed) == {address: "db"}
    stop(bed, "db")

    # A start that fails after joining the network leaves nothing behind either.
    install(bed, "broken", WEB.replace(ROOTFS, "/nonexistent", 1))
    reload(bed)
    assert bed.run("systemctl", "start", "pod@broken", check=False).returncode != 0
    bed.run("systemctl", "reset-failed", "pod@broken.service")
    assert_nothing_left(bed, "web", "db", "broken")


def test_the_service_killed_while_joining_networks_leaves_nothing(net_bed: Bed) -> None:
    """kill -9 of org.podmgr1 after the pod got its first network, while it waits for the
    second's lease lock (held here): pod@.service fails, and its release, by a new
    service, removes what the killed one made."""
    bed = net_bed
    bed.run("mkdir", "-p", "/etc/podmgr/networks", "/var/lib/podmgr/networks/second")
    bed.run("sh", "-c", "echo 'subnet = \"10.89.0.0/24\"' > /etc/podmgr/networks/second.toml")
    install(bed, "multi", pod_with('mode = "bridge"\nnetworks = ["podmgr", "second"]'))
    reload(bed)
    bed.run(
        "systemd-run",
        "--unit=holder",
        "flock",
        "/var/lib/podmgr/networks/second/.lock",
        "sleep",
        "600",
    )
    try:
        bed.run("systemctl", "start", "--no-block", "pod@multi")
        wait_for(
            lambda: "multi" in leases(bed).values() and veths(bed) != [],
            what="multi to join its first network",
        )
        assert show(bed, "pod@multi.service", "ActiveState") == "activating"
        bed.run("systemctl", "kill", "--signal=KILL", "podmgr1.service")
    finally:
        bed.run("systemctl", "stop", "holder.service")
    wait_for(
        lambda: show(bed, "pod@multi.service", "ActiveState") == "failed", what="pod@multi to fail"
    )
    assert_nothing_left(bed, "multi")
    assert leases(bed, "second") == {}
    start(bed, "multi")  # and it starts again as if nothing had happened
    stop(bed, "multi")


def test_the_service_killed_at_any_point_of_a_start_leaves_nothing(net_bed: Bed) -> None:
    """kill -9 of org.podmgr1 at moments spread over a pod's start."""
    bed = net_bed
    install(bed, "web", WEB)
    reload(bed)
    # In one shell, so that the delays are the script's own.
    crash = (
        "podmgr list >/dev/null; systemctl start --no-block pod@web; sleep $0; "
        "systemctl kill --signal=KILL podmgr1.service"
    )
    for delay_ms in range(0, 150, 10):
        bed.run("sh", "-c", crash, str(delay_ms / 1000))
        wait_for(
            lambda: (
                show(bed, "pod@web.service", "ActiveState") not in ("activating", "deactivating")
            ),
            what="pod@web to settle",
        )
        stop(bed, "web")
        bed.run("systemctl", "reset-failed")
        assert_nothing_left(bed, "web")
    start(bed, "web")
    stop(bed, "web")


def test_twenty_pods_started_at_once_get_distinct_addresses(net_bed: Bed) -> None:
    bed = net_bed
    pods = [f"p{n}" for n in range(20)]
    for pod in pods:
        install(bed, pod, pod_with('mode = "bridge"'))
    reload(bed)
    start(bed, *pods)
    held = leases(bed)
    assert sorted(held.values()) == sorted(pods)  # twenty leases, no address twice
    hosts = in_pod(bed, "p7", "cat", "/etc/hosts").stdout
    assert all(f"\t{pod}\n" in hosts for pod in pods)
    stop(bed, *pods)
    assert_nothing_left(bed, *pods)


def test_private_and_host_modes(net_bed: Bed) -> None:
    bed = net_bed
    install(bed, "alone", pod_with('mode = "private"'))
    install(bed, "onhost", pod_with('mode = "host"\nports = ["9090:90"]'))
    reload(bed)
    start(bed, "alone", "onhost")
    status = bed.run("podmgr", "status", "--json", "alone").stdout
    assert json.loads(status)["Addresses"] == ["127.0.0.1", "::1"]
    assert in_pod_net(bed, "alone", "ip", "-br", "link").split()[0] == "lo"
    assert len(in_pod_net(bed, "alone", "ip", "-br", "link").splitlines()) == 1
    assert json.loads(bed.run("podmgr", "status", "--json", "onhost").stdout)["Addresses"] == []
    log = bed.run("journalctl", "--no-pager", "-o", "cat", "-u", "podmgr1.service").stdout
    assert "pod onhost: network.ports ignored" in log
    assert pod_rules(bed) == []
    assert veths(bed) == []
    stop(bed, "alone", "onhost")


def test_release_without_the_service_cleans_up(net_bed: Bed) -> None:
    """pod@.service's fallback: release in a process of its own, as late in a shutdown."""
    bed = net_bed
    install(bed, "web", WEB)
    reload(bed)
    start(bed, "web")
    bed.run(
        "systemctl", "kill", "--signal=KILL", "podapp@web:web.service", "podapp@web:dns.service"
    )
    bed.run("/usr/lib/podmgr/podmgr-pod", "release", "web")
    assert_nothing_left(bed, "web")
    bed.run("systemctl", "stop", "pod@web")
