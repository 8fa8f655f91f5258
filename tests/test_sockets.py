# SPDX-License-Identifier: LGPL-2.1-or-later
"""Socket activation in a bed: [[app.NAME.socket]] units pass their listening sockets to
the app, and a connection to an activated socket starts the pod and is served.

The app is tests/listen-serve.c, built static into the busybox rootfs: it serves only on
the fds systemd passed (it has no socket of its own) and says in each reply which socket
it answered on and what LISTEN_FDS and LISTEN_FDNAMES it got.  Every address contacted
is the bed's loopback or inside the pod's own network namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from bed import Bed
from test_pods import CHECKOUT, ROOTFS, install, main_pid, reload, show, wait_for

pytestmark = pytest.mark.integration

# One request from the bed (or, through nsenter, from a namespace): the reply, "refused"
# when nothing listens, "timeout" when nothing answers.
ASK = """
import socket, sys
kind, address = sys.argv[1], sys.argv[2]
family = socket.AF_UNIX if kind == "unix" else socket.AF_INET
if kind == "unix":
    target = address
else:
    host, port = address.rsplit(":", 1)
    target = (host, int(port))
s = socket.socket(family, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
s.settimeout(60)
try:
    if kind == "udp":
        s.sendto(b"ping", target)
        print(s.recvfrom(2048)[0].decode())
    else:
        s.connect(target)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        print(data.decode(), end="")
except (ConnectionRefusedError, FileNotFoundError):
    print("refused", end="")
except ConnectionResetError:
    print("reset", end="")
except TimeoutError:
    print("timeout", end="")
"""

# Sandboxed as tightly as an app can be: the fds must survive RootDirectory=, another
# user, a user namespace, no capabilities, NoNewPrivileges= and a system call filter.
SANDBOX = """
    user = "www-data"
    private_users = true
    no_new_privileges = true
    read_only = true
    capabilities_retain = []
    system_call_filter = ["@system-service"]
"""

WEB = f"""
    [app.web]
    rootfs = "{ROOTFS}"
    exec = ["/bin/listen-serve", "hello"]
    {SANDBOX}

    [[app.web.socket]]
    listen = "127.0.0.1:8081"
    activate = true

    [app.side]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sleep", "infinity"]
"""

SOCKET = "podsocket@web:web:web.socket"


@pytest.fixture(scope="module")
def socket_bed(bed: Bed) -> Bed:
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run(
        "gcc",
        "-static",
        "-O2",
        "-o",
        f"{ROOTFS}/bin/listen-serve",
        f"{CHECKOUT}/tests/listen-serve.c",
    )
    return bed


@pytest.fixture(autouse=True)
def clean(socket_bed: Bed) -> Iterator[None]:
    """Each test starts from no pods and no sockets, even after one that failed."""
    yield
    socket_bed.run("systemctl", "stop", "podsocket@*.socket", "pod@*.service")
    socket_bed.run("systemctl", "reset-failed")
    socket_bed.run("rm", "-rf", "/etc/podmgr/pods")
    reload(socket_bed)


def ask(bed: Bed, kind: str, address: str, netns: str = "") -> str:
    enter = ["nsenter", f"--net={netns}", "--"] if netns else []
    return bed.run(*enter, "python3", "-c", ASK, kind, address, timeout=90).stdout


def state(bed: Bed, unit: str) -> str:
    return show(bed, unit, "ActiveState")


def listening(bed: Bed) -> None:
    """As at boot: sockets.target starts the activated sockets (daemon-reload does not)."""
    bed.run("systemctl", "start", "sockets.target")


def test_the_first_connection_starts_the_pod_and_is_served(socket_bed: Bed) -> None:
    bed = socket_bed
    install(bed, "web", WEB)
    reload(bed)
    assert SOCKET in show(bed, "sockets.target", "Wants").split()
    listening(bed)
    assert state(bed, SOCKET) == "active"
    assert state(bed, "pod@web.service") == "inactive"
    assert bed.run("test", "-e", "/run/podmgr/pods/web/plan.json", check=False).returncode == 1

    # Served, not dropped: the connection waits in the listen queue while the pod prepares.
    assert ask(bed, "tcp", "127.0.0.1:8081") == "hello web 1 web\n"
    # The whole pod started, prepared first: its other app too.
    assert state(bed, "pod@web.service") == "active"
    assert state(bed, "podapp@web:side.service") == "active"
    assert state(bed, "podapp@web:web.service") == "active"
    bed.run("test", "-e", "/run/podmgr/pods/web/plan.json")
    # The app that got the socket runs in its sandbox, from its own root.
    pid = main_pid(bed, "web", "web")
    root = f"/proc/{pid}/root"
    bed.run("test", "-x", f"{root}/bin/listen-serve")
    assert bed.run("test", "-e", f"{root}/usr/bin/python3", check=False).returncode == 1
    status = bed.run("cat", f"/proc/{pid}/status").stdout
    assert "NoNewPrivs:\t1" in status
    assert "CapBnd:\t0000000000000000" in status
    assert ask(bed, "tcp", "127.0.0.1:8081") == "hello web 1 web\n"
    assert main_pid(bed, "web", "web") == pid


def test_a_stopped_pod_starts_again_on_the_next_connection(socket_bed: Bed) -> None:
    bed = socket_bed
    install(bed, "web", WEB)
    reload(bed)
    listening(bed)
    assert ask(bed, "tcp", "127.0.0.1:8081") == "hello web 1 web\n"
    first = main_pid(bed, "web", "web")

    # As for any socket-activated service, stopping the pod leaves its socket listening.
    bed.run("systemctl", "stop", "pod@web.service")
    assert state(bed, "pod@web.service") == "inactive"
    assert state(bed, "podapp@web:web.service") == "inactive"
    assert bed.run("test", "-e", "/run/podmgr/pods/web", check=False).returncode == 1
    assert state(bed, SOCKET) == "active"
    assert ask(bed, "tcp", "127.0.0.1:8081") == "hello web 1 web\n"
    assert state(bed, "pod@web.service") == "active"
    assert main_pid(bed, "web", "web") != first

    # Stopping the socket stops its app (Requires=); then nothing listens.
    bed.run("systemctl", "stop", SOCKET)
    assert state(bed, "podapp@web:web.service") == "inactive"
    assert ask(bed, "tcp", "127.0.0.1:8081") == "refused"


def test_unix_and_datagram_sockets_by_name(socket_bed: Bed) -> None:
    bed = socket_bed
    install(
        bed,
        "web",
        f"""
        [app.web]
        rootfs = "{ROOTFS}"
        exec = ["/bin/listen-serve", "hi"]

        [[app.web.socket]]
        listen = "/run/sockets-test/web.sock"
        fd_name = "local"
        activate = true

        [[app.web.socket]]
        listen = "127.0.0.1:5300"
        type = "datagram"
        fd_name = "dgram"
        activate = true
        """,
    )
    reload(bed)
    listening(bed)
    assert state(bed, "pod@web.service") == "inactive"
    # A datagram starts the pod as a connection does, and is answered, not lost.
    assert ask(bed, "udp", "127.0.0.1:5300") == "hi dgram ping\n"
    reply = ask(bed, "unix", "/run/sockets-test/web.sock").split()
    # The fds of two socket units come in no fixed order: the names say which is which.
    assert reply[:3] == ["hi", "local", "2"]
    assert sorted(reply[3].split(":")) == ["dgram", "local"]
    environ = bed.run("cat", f"/proc/{main_pid(bed, 'web', 'web')}/environ").stdout.split("\0")
    assert "LISTEN_FDS=2" in environ

    # The socket's file goes with its unit.
    bed.run("systemctl", "stop", "podsocket@web:web:local.socket")
    assert bed.run("test", "-e", "/run/sockets-test/web.sock", check=False).returncode == 1


def test_sockets_in_the_pods_namespace_and_with_the_pod(socket_bed: Bed) -> None:
    bed = socket_bed
    install(
        bed,
        "inner",
        f"""
        [app.web]
        rootfs = "{ROOTFS}"
        exec = ["/bin/listen-serve", "inside"]

        [[app.web.socket]]
        listen = "80"
        namespace = "pod"
        fd_name = "pod"

        [[app.web.socket]]
        listen = "127.0.0.1:8090"
        fd_name = "host"
        """,
    )
    reload(bed)
    assert show(bed, "sockets.target", "Wants").count("podsocket@inner") == 0
    # activate = false: nothing listens before the pod starts, and the pod starts as usual.
    assert ask(bed, "tcp", "127.0.0.1:8090") == "refused"
    bed.run("systemctl", "start", "pod@inner.service")
    wait_for(lambda: state(bed, "podapp@inner:web.service") == "active", what="the app")
    netns = "/run/podmgr/pods/inner/ns/net"
    # Port 80 is in the pod's namespace only: reached from there, not from the host's.
    assert ask(bed, "tcp", "127.0.0.1:80", netns).split()[:3] == ["inside", "pod", "2"]
    assert ask(bed, "tcp", "127.0.0.1:80") == "refused"
    assert ask(bed, "tcp", "127.0.0.1:8090").split()[:2] == ["inside", "host"]
    assert ask(bed, "tcp", "127.0.0.1:8090", netns) == "refused"
    assert show(bed, "podsocket@inner:web:pod.socket", "NetworkNamespacePath") == netns

    # Both stop with the pod, and a connection then starts nothing.
    bed.run("systemctl", "stop", "pod@inner.service")
    for name in ("pod", "host"):
        assert state(bed, f"podsocket@inner:web:{name}.socket") == "inactive"
    assert ask(bed, "tcp", "127.0.0.1:8090") == "refused"
    assert state(bed, "pod@inner.service") == "inactive"


def test_a_socket_that_cannot_listen_fails_the_app_not_the_pod(socket_bed: Bed) -> None:
    bed = socket_bed
    # Something of the host's holds the port already.
    bed.run(
        "systemd-run",
        "--unit=holder",
        "python3",
        "-c",
        "import socket; s = socket.socket(); s.bind(('127.0.0.1', 8095)); s.listen()\n"
        "while True: s.accept()[0].close()",
    )
    wait_for(lambda: ask(bed, "tcp", "127.0.0.1:8095") != "refused", what="the holder")
    install(
        bed,
        "busy",
        f"""
        [app.web]
        rootfs = "{ROOTFS}"
        exec = ["/bin/listen-serve", "never"]

        [[app.web.socket]]
        listen = "127.0.0.1:8095"

        [app.side]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
        """,
    )
    reload(bed)
    bed.run("systemctl", "start", "pod@busy.service", check=False)
    wait_for(lambda: state(bed, "podapp@busy:side.service") == "active", what="the other app")
    assert state(bed, "podsocket@busy:web:web.socket") == "failed"
    # The app never ran without its socket.
    assert state(bed, "podapp@busy:web.service") == "inactive"
    assert show(bed, "podapp@busy:web.service", "ExecMainPID") == "0"
    bed.run("systemctl", "stop", "holder.service")


def test_a_pod_that_cannot_start_fails_its_socket(socket_bed: Bed) -> None:
    bed = socket_bed
    install(
        bed,
        "broken",
        f"""
        [app.web]
        rootfs = "{ROOTFS}"
        exec = ["/bin/listen-serve", "never"]
        environment_files = ["/etc/no-such.env"]

        [[app.web.socket]]
        listen = "127.0.0.1:8096"
        activate = true
        """,
    )
    reload(bed)
    listening(bed)
    # Each try to start the pod fails its prepare, and the connection still waiting
    # triggers the socket again; systemd gives up at the socket's trigger limit
    # (TriggerLimitBurst=) instead of trying for ever, and closes the connection.
    assert ask(bed, "tcp", "127.0.0.1:8096") == "reset"
    assert state(bed, "podsocket@broken:web:web.socket") == "failed"
    assert show(bed, "podsocket@broken:web:web.socket", "Result") == "trigger-limit-hit"
    assert state(bed, "pod@broken.service") == "failed"
    assert ask(bed, "tcp", "127.0.0.1:8096") == "refused"


def test_a_published_port_reaches_a_socket_in_the_pods_namespace(socket_bed: Bed) -> None:
    bed = socket_bed
    install(
        bed,
        "pub",
        f"""
        [network]
        mode = "bridge"
        ports = ["8085:80/tcp"]

        [app.web]
        rootfs = "{ROOTFS}"
        exec = ["/bin/listen-serve", "published"]

        [[app.web.socket]]
        listen = "80"
        namespace = "pod"
        """,
    )
    reload(bed)
    bed.run("systemctl", "start", "pod@pub.service")
    wait_for(lambda: state(bed, "podapp@pub:web.service") == "active", what="the app")
    # Through the pod's address, directly and as the host's published port forwards to it.
    [address, *_] = json.loads(bed.run("podmgr", "status", "--json", "pub").stdout)["Addresses"]
    assert ask(bed, "tcp", f"{address}:80") == "published web 1 web\n"
    assert ask(bed, "tcp", "127.0.0.1:8085") == "published web 1 web\n"


def test_booting_with_a_socket_in_the_pods_namespace_has_no_ordering_cycle(
    socket_bed: Bed,
) -> None:
    # A socket is before sockets.target by default, which is before basic.target, which
    # is before the pod: a socket after the pod (its namespace) must drop that default.
    # systemd-analyze verify of multi-user.target builds the start transaction of a
    # boot, from the bed's own targets and the generated units.
    bed = socket_bed
    install(
        bed,
        "cycle",
        f"""
        [network]
        mode = "bridge"

        [install]
        wanted_by = ["multi-user.target"]

        [app.web]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sh"]

        [[app.web.socket]]
        listen = "80"
        namespace = "pod"
        fd_name = "inner"

        [[app.web.socket]]
        listen = "127.0.0.1:8097"
        activate = true

        [[app.web.socket]]
        listen = "/run/cycle.sock"
        fd_name = "local"
        """,
    )
    reload(bed)
    generated = {"SYSTEMD_UNIT_PATH": "/run/systemd/generator:"}
    boot = ["systemd-analyze", "verify", "--man=no", "multi-user.target"]
    result = bed.run(*boot, env=generated, check=False)
    assert (result.returncode, result.stderr) == (0, "")
    # The pod's units were in that transaction.
    units = bed.run(
        "systemctl", "list-dependencies", "--all", "--plain", "multi-user.target"
    ).stdout
    assert "podsocket@cycle:web:inner.socket" in units
