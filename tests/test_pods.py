# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pods started by a real systemd in a throwaway bed (tests/bed.py), checked from outside."""

from __future__ import annotations

import json
import re
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bed import Bed

pytestmark = pytest.mark.integration

ROOTFS = "/var/lib/machines/podmgr-busybox"
CHECKOUT = str(Path(__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def pods_bed(bed: Bed) -> Bed:
    """The module's bed, with podmgr installed and the busybox rootfs built."""
    return with_busybox(bed)


def with_busybox(bed: Bed) -> Bed:
    """``bed`` with the busybox rootfs built at ROOTFS."""
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    # A user only the rootfs knows, to prove names are looked up there.
    bed.run(
        "sh",
        "-c",
        "echo 'podtest:x:4242:4343::/home/podtest:/bin/sh' "
        f">> {ROOTFS}/etc/passwd && echo 'podtest:x:4343:' >> {ROOTFS}/etc/group",
    )
    return bed


def install(bed: Bed, name: str, text: str, directory: str = "/etc/podmgr/pods") -> None:
    bed.run("mkdir", "-p", directory)
    bed.run("sh", "-c", f"cat > {directory}/{name}.toml", input=textwrap.dedent(text))


def reload(bed: Bed) -> None:
    bed.run("systemctl", "daemon-reload")


def show(bed: Bed, unit: str, prop: str) -> str:
    return bed.run("systemctl", "show", "--value", "-p", prop, unit).stdout.strip()


def main_pid(bed: Bed, pod: str, app: str) -> int:
    return int(show(bed, f"podapp@{pod}:{app}.service", "MainPID"))


def wait_for(check: Callable[[], object], timeout: float = 15, what: str = "condition") -> None:
    """Poll ``check`` every 0.1 s until it returns something true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def journal(bed: Bed, *matches: str) -> list[dict[str, str]]:
    out = bed.run("journalctl", "--no-pager", "-o", "json", *matches).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def mounts_of(bed: Bed, pod: str) -> list[str]:
    lines = bed.run("cat", "/proc/1/mountinfo").stdout.splitlines()
    return [
        line
        for line in lines
        if f"/run/podmgr/pods/{pod}/" in line or line.split()[4] == f"/run/podmgr/pods/{pod}"
    ]


SHOP = f"""
    [pod]
    hostname = "shop-host"

    [pod.resources]
    tasks_max = 50
    memory_max = "256M"

    [volume.shared]
    type = "tmpfs"
    size = "1M"

    [volume.kept]
    type = "empty"
    uid = 4242

    [app.web]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sh", "-c", "echo web says hello; id -u; exec httpd -f -p 127.0.0.1:8080 -h /srv"]
    user = "podtest"

    [[app.web.mount]]
    volume = "shared"
    path = "/srv"

    [[app.web.mount]]
    volume = "kept"
    path = "/kept"

    [app.writer]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sh", "-c", '''
        echo writer says hello; echo page > /shared/index.html; exec sleep infinity''']

    [[app.writer.mount]]
    volume = "shared"
    path = "/shared"

    [app.reader]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sh", "-c", "echo reader says hello; exec sleep infinity"]
    after = ["writer"]
"""


def test_pod_lifecycle(pods_bed: Bed) -> None:
    bed = pods_bed
    install(bed, "shop", SHOP)
    bed.run("podmgr", "validate", "/etc/podmgr/pods/shop.toml")
    reload(bed)
    bed.run("podmgr", "start", "shop")
    apps = ("web", "writer", "reader")

    # The pod and each app are active units in the pod's slice, which has its limits.
    assert show(bed, "pod@shop.service", "ActiveState") == "active"
    assert show(bed, "pod-shop.slice", "TasksMax") == "50"
    assert show(bed, "pod-shop.slice", "MemoryMax") == str(256 << 20)
    for app in apps:
        unit = f"podapp@shop:{app}.service"
        assert show(bed, unit, "ActiveState") == "active", unit
        assert show(bed, unit, "ControlGroup") == f"/pod.slice/pod-shop.slice/{unit}"

    # They share one network and one IPC namespace, neither of them the host's.
    pids = [main_pid(bed, "shop", app) for app in apps]
    for kind in ("net", "ipc"):
        inodes = {bed.run("readlink", f"/proc/{pid}/ns/{kind}").stdout.strip() for pid in pids}
        assert len(inodes) == 1, inodes
        assert inodes != {bed.run("readlink", f"/proc/1/ns/{kind}").stdout.strip()}

    # A tmpfs volume is shared: what writer wrote, web serves to reader over loopback.
    wait_for(
        lambda: (
            bed.run("test", "-e", f"/proc/{pids[1]}/root/shared/index.html", check=False).returncode
            == 0
        ),
        what="writer's page",
    )
    page = bed.run(
        "nsenter",
        "-t",
        str(pids[2]),
        "-n",
        "-m",
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1:8080/index.html",
    ).stdout
    assert page == "page\n"

    # The user name was looked up in the rootfs, not on the host.
    assert bed.run("stat", "-c", "%u", f"/proc/{pids[0]}").stdout.strip() == "4242"
    # /etc/hostname is the pod's.
    assert bed.run("cat", f"/proc/{pids[0]}/root/etc/hostname").stdout == "shop-host\n"

    # Every app's output is in the journal under PODMGR_POD=, each line with PODMGR_APP=.
    def all_said_hello() -> bool:
        said = {
            e.get("PODMGR_APP")
            for e in journal(bed, "PODMGR_POD=shop")
            if "says hello" in str(e.get("MESSAGE", ""))
        }
        return said == set(apps)

    wait_for(all_said_hello, what="hello from every app in the journal")
    for entry in journal(bed, "PODMGR_POD=shop", "_TRANSPORT=stdout"):
        assert entry["PODMGR_APP"] in apps
        assert entry["SYSLOG_IDENTIFIER"] == entry["PODMGR_APP"]

    assert mounts_of(bed, "shop"), "a prepared pod has mounts"
    bed.run("podmgr", "stop", "shop")
    for app in apps:
        assert show(bed, f"podapp@shop:{app}.service", "ActiveState") == "inactive"
    assert mounts_of(bed, "shop") == []
    assert bed.run("test", "-e", "/run/podmgr/pods/shop", check=False).returncode == 1
    # The empty volume is kept, owned as the manifest says.
    assert bed.run("stat", "-c", "%u", "/var/lib/podmgr/volumes/shop/kept").stdout.strip() == "4242"


def test_restart_starts_from_a_clean_rootfs(pods_bed: Bed) -> None:
    bed = pods_bed
    install(
        bed,
        "clean",
        f"""
        [volume.data]
        type = "empty"

        [app.main]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sh", "-c", "touch /scratch /data/kept; exec sleep infinity"]

        [[app.main.mount]]
        volume = "data"
        path = "/data"
    """,
    )
    reload(bed)
    bed.run("podmgr", "start", "clean")
    pid = main_pid(bed, "clean", "main")
    wait_for(
        lambda: bed.run("test", "-e", f"/proc/{pid}/root/scratch", check=False).returncode == 0,
        what="scratch file",
    )
    bed.run("podmgr", "restart", "clean")
    pid = main_pid(bed, "clean", "main")
    root = f"/proc/{pid}/root"
    assert bed.run("test", "-e", f"{root}/data/kept", check=False).returncode == 0
    # The volatile upper layer is new after a restart; the rootfs source is untouched.
    assert bed.run("test", "-e", f"{ROOTFS}/scratch", check=False).returncode == 1
    bed.run("podmgr", "stop", "clean")


def test_memory_limit_kills_only_the_offender(pods_bed: Bed) -> None:
    bed = pods_bed
    install(
        bed,
        "hungry",
        f"""
        [app.glutton]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sh", "-c", '''
            dd if=/dev/zero of=/dev/null bs=256M count=1; echo dd: $?; exec sleep infinity''']

        [app.glutton.resources]
        memory_max = "32M"

        [app.sibling]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
    """,
    )
    reload(bed)
    bed.run("podmgr", "start", "hungry")
    # dd is killed with SIGKILL (exit 137); the shell that started it lives on, so the
    # app's cgroup stays to be asked who killed it.
    wait_for(
        lambda: any(
            e.get("MESSAGE") == "dd: 137"
            for e in journal(bed, "PODMGR_POD=hungry", "PODMGR_APP=glutton")
        ),
        what="dd to be killed",
    )
    cgroup = show(bed, "podapp@hungry:glutton.service", "ControlGroup")
    # Hybrid hierarchy (the bed, this host): v1 memory controller; pure cgroup2: memory.events.
    events = bed.run(
        "sh",
        "-c",
        f"cat /sys/fs/cgroup/memory{cgroup}/memory.oom_control "
        f"|| cat /sys/fs/cgroup{cgroup}/memory.events",
    ).stdout
    assert re.search(r"^oom_kill [1-9]", events, re.MULTILINE), events
    assert show(bed, "podapp@hungry:sibling.service", "ActiveState") == "active"
    assert show(bed, "pod@hungry.service", "ActiveState") == "active"
    bed.run("podmgr", "stop", "hungry")


def test_release_after_kill_9(pods_bed: Bed) -> None:
    bed = pods_bed
    install(
        bed,
        "crash",
        f"""
        [volume.tmp]
        type = "tmpfs"

        [app.victim]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]

        [[app.victim.mount]]
        volume = "tmp"
        path = "/tmp/vol"

        [app.other]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
    """,
    )
    reload(bed)
    bed.run("podmgr", "start", "crash")
    bed.run("kill", "-9", str(main_pid(bed, "crash", "victim")))
    wait_for(
        lambda: show(bed, "podapp@crash:victim.service", "ActiveState") == "failed",
        what="the killed app to fail",
    )
    # One app failing leaves the others running.
    assert show(bed, "podapp@crash:other.service", "ActiveState") == "active"
    bed.run("systemctl", "stop", "pod@crash.service")
    assert mounts_of(bed, "crash") == []
    assert bed.run("test", "-e", "/run/podmgr/pods/crash", check=False).returncode == 1
    # Releasing a released pod is harmless.
    bed.run("/usr/lib/podmgr/podmgr-pod", "release", "crash")


def test_isolation_and_network_modes(pods_bed: Bed) -> None:
    bed = pods_bed
    install(
        bed,
        "iso",
        f"""
        [app.locked]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
        read_only = true
        capabilities_retain = ["CAP_NET_BIND_SERVICE"]
        no_new_privileges = true
    """,
    )
    install(
        bed,
        "hostnet",
        f"""
        [network]
        mode = "host"

        [app.main]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
    """,
    )
    reload(bed)
    bed.run("podmgr", "start", "iso")
    bed.run("podmgr", "start", "hostnet")
    pid = str(main_pid(bed, "iso", "locked"))

    def inside(*argv: str) -> int:
        return bed.run("nsenter", "-t", pid, "-m", "-n", "-r", "-w", *argv, check=False).returncode

    assert inside("touch", "/etc/forbidden") != 0, "the rootfs is read-only"
    assert inside("touch", "/tmp/allowed") == 0, "/tmp is a tmpfs"
    status = bed.run("cat", f"/proc/{pid}/status").stdout
    bounding = int(re.search(r"CapBnd:\s*([0-9a-f]+)", status)[1], 16)  # type: ignore[index]
    assert bounding == 1 << 10, "only CAP_NET_BIND_SERVICE (bit 10) is retained"
    assert re.search(r"NoNewPrivs:\s*1", status)
    # A private network has loopback, up, and nothing else.
    links = bed.run("nsenter", "-t", pid, "-n", "ip", "-o", "link").stdout.splitlines()
    assert len(links) == 1
    assert "lo:" in links[0]
    assert "UP" in links[0]
    host_pid = str(main_pid(bed, "hostnet", "main"))
    assert (
        bed.run("readlink", f"/proc/{host_pid}/ns/net").stdout
        == bed.run("readlink", "/proc/1/ns/net").stdout
    )
    bed.run("podmgr", "stop", "iso")
    bed.run("podmgr", "stop", "hostnet")


def test_generator_skips_only_the_bad_manifest(pods_bed: Bed) -> None:
    bed = pods_bed
    install(
        bed,
        "good",
        f"""
        [app.main]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
    """,
    )
    install(
        bed,
        "broken",
        """
        [app.main]
        exec = "not a list"
    """,
    )
    # A vendor manifest masked by an empty admin file.
    install(
        bed,
        "masked",
        f"""
        [app.main]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
    """,
        directory="/usr/lib/podmgr/pods",
    )
    bed.run("touch", "/etc/podmgr/pods/masked.toml")
    reload(bed)
    assert show(bed, "podapp@good:main.service", "LoadState") == "loaded"
    assert show(bed, "podapp@broken:main.service", "LoadState") == "not-found"
    assert show(bed, "podapp@masked:main.service", "LoadState") == "not-found"
    result = bed.run("podmgr", "validate", "/etc/podmgr/pods/broken.toml", check=False)
    assert result.returncode == 1
    assert "/etc/podmgr/pods/broken.toml: app.main.exec: expected an array" in result.stderr
    # Starting a pod without a loaded manifest says what to do.
    failed = bed.run("podmgr", "start", "broken", check=False)
    assert failed.returncode == 1
    bed.run(
        "rm",
        "/etc/podmgr/pods/broken.toml",
        "/etc/podmgr/pods/masked.toml",
        "/usr/lib/podmgr/pods/masked.toml",
    )
    reload(bed)


def test_generated_units_pass_systemd_analyze_verify(pods_bed: Bed) -> None:
    bed = pods_bed
    # Both use /bin/sh, which exists on the host too: verify checks ExecStart= paths on
    # the host, not in RootDirectory=.
    bed.run("cp", f"{CHECKOUT}/examples/demo.toml", "/etc/podmgr/pods/ex-demo.toml")
    bed.run("cp", f"{CHECKOUT}/tests/golden/edge-cases.toml", "/etc/podmgr/pods/ex-edge.toml")
    reload(bed)
    apps = [
        "podapp@ex-demo:web.service",
        "podapp@ex-demo:client.service",
        "podapp@ex-edge:a.b_c-d.service",
    ]
    # verify reads "FILE:NAME" as "verify FILE as if it were NAME", so a unit whose name
    # has a colon is passed that way; the pods' drop-ins sit beside a link to the template.
    script = """
        set -e
        rm -rf /tmp/verify && mkdir -p /tmp/verify/alias && cd /run/systemd/generator
        cp -r pod@ex-*.service.d pod-ex*.slice podapp@ex-* /tmp/verify/
        for pod in ex-demo ex-edge; do
            ln -s /usr/lib/systemd/system/pod@.service /tmp/verify/pod@$pod.service
        done
        n=0
        for app in "$@"; do
            n=$((n + 1)); cp "$app" /tmp/verify/alias/$n.service
            set -- "$@" "/tmp/verify/alias/$n.service:$app"; shift
        done
        exec systemd-analyze verify --man=no "$@" /tmp/verify/pod@ex-demo.service \\
            /tmp/verify/pod@ex-edge.service /tmp/verify/pod-ex*.slice
    """
    result = bed.run("sh", "-c", textwrap.dedent(script), "verify", *apps, check=False)
    assert (result.returncode, result.stderr) == (0, "")
    # [install] wanted_by: pulled in like an enabled unit.
    assert "pod@ex-edge.service" in show(bed, "multi-user.target", "Wants")
    bed.run("rm", "/etc/podmgr/pods/ex-demo.toml", "/etc/podmgr/pods/ex-edge.toml")
    reload(bed)


def test_cli_list_status_logs(pods_bed: Bed) -> None:
    bed = pods_bed
    install(
        bed,
        "cli",
        f"""
        [pod]
        annotations = {{ "org.example.team" = "ops" }}

        [app.talker]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sh", "-c", "echo talking; exec sleep infinity"]
    """,
    )
    reload(bed)
    listing = json.loads(bed.run("podmgr", "list", "--json").stdout)
    assert {
        "name": "cli",
        "state": "inactive",
        "unit": "pod@cli.service",
        "object": "/org/podmgr1/pod/cli",
        "health": "",
        "problems": [],
    } in listing
    bed.run("podmgr", "start", "cli")
    status = json.loads(bed.run("podmgr", "status", "--json", "cli").stdout)
    assert status["State"] == "active"
    assert status["ManifestPath"] == "/etc/podmgr/pods/cli.toml"
    assert status["Annotations"] == {"org.example.team": "ops"}
    assert status["Apps"] == [["talker", "podapp@cli:talker.service", "active"]]
    wait_for(
        lambda: "talking" in bed.run("podmgr", "logs", "cli", "--app", "talker").stdout,
        what="the app's line via podmgr logs",
    )
    missing = bed.run("podmgr", "status", "nosuchpod", check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("podmgr: no pod 'nosuchpod'")
    bed.run("podmgr", "stop", "cli")
    assert json.loads(bed.run("podmgr", "status", "--json", "cli").stdout)["State"] == "inactive"


def test_app_settings_reach_the_process(pods_bed: Bed) -> None:
    bed = pods_bed
    bed.run(
        "gcc",
        "-static",
        "-O2",
        "-o",
        f"{ROOTFS}/bin/notify-ready",
        f"{CHECKOUT}/tests/notify-ready.c",
    )
    bed.run(
        "sh",
        "-c",
        "mkdir -p /srv/feat-conf && echo configured > /srv/feat-conf/file && "
        "echo FROM_FILE=yes > /etc/feat.env",
    )
    install(
        bed,
        "feat",
        f"""
        [volume.conf]
        type = "host"
        source = "/srv/feat-conf"
        read_only = true

        [app.env]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
        environment = {{ GREETING = "hello world", PERCENT = "100%" }}
        environment_files = ["/etc/feat.env"]
        working_directory = "/var/www"

        [[app.env.mount]]
        volume = "conf"
        path = "/conf"

        [app.notify]
        rootfs = "{ROOTFS}"
        exec = ["/bin/notify-ready", "2", "/bin/sleep", "infinity"]
        ready = "notify"
        after = ["env"]

        [app.filtered]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sh", "-c", '''
            date -s 2000-01-01 >/dev/null 2>&1; echo date: $?; exec sleep infinity''']
        system_call_filter = ["~@clock"]
        private_users = true
    """,
    )
    reload(bed)
    bed.run("podmgr", "start", "feat")

    pid = main_pid(bed, "feat", "env")
    environ = bed.run("cat", f"/proc/{pid}/environ").stdout.split("\0")
    for variable in (
        "GREETING=hello world",
        "PERCENT=100%",
        "FROM_FILE=yes",
        "HOME=/root",
        "USER=root",
    ):
        assert variable in environ
    inside = ["nsenter", "-t", str(pid), "-m", "-r", "-w"]
    assert bed.run(*inside, "/bin/pwd").stdout == "/var/www\n"
    assert bed.run(*inside, "/bin/cat", "/conf/file").stdout == "configured\n"
    assert bed.run(*inside, "/bin/touch", "/conf/new", check=False).returncode != 0

    # A notify app is active only once it said READY=1, two seconds after it started.
    unit = "podapp@feat:notify.service"
    started = int(show(bed, unit, "ExecMainStartTimestampMonotonic"))
    active = int(show(bed, unit, "ActiveEnterTimestampMonotonic"))
    assert active - started >= 2 * 10**6
    # ...and it started after the app it is ordered after was up.
    assert started >= int(show(bed, "podapp@feat:env.service", "ActiveEnterTimestampMonotonic"))

    # The denied system call kills the process (SIGSYS: 128 + 31) instead of failing.
    wait_for(
        lambda: any(
            e.get("MESSAGE") == "date: 159"
            for e in journal(bed, "PODMGR_POD=feat", "PODMGR_APP=filtered")
        ),
        what="date to be killed by seccomp",
    )
    uid_map = bed.run("cat", f"/proc/{main_pid(bed, 'feat', 'filtered')}/uid_map").stdout
    assert [line.split()[2] for line in uid_map.splitlines()] == ["1"]
    bed.run("podmgr", "stop", "feat")


def test_a_failed_start_says_why(pods_bed: Bed) -> None:
    bed = pods_bed
    install(
        bed,
        "norootfs",
        """
        [app.main]
        rootfs = "/srv/no-such-rootfs"
        exec = ["/bin/sleep", "infinity"]
    """,
    )
    unread = bed.run("podmgr", "start", "norootfs", check=False)
    assert unread.returncode == 1
    assert (
        "systemd has not read /etc/podmgr/pods/norootfs.toml yet (run systemctl "
        "daemon-reload)" in unread.stderr
    )
    reload(bed)
    failed = bed.run("podmgr", "start", "norootfs", check=False)
    assert failed.returncode == 1
    # One line: the job's result, the unit's Result=, prepare's own words, where to look.
    assert failed.stderr.startswith(
        "podmgr: pod@norootfs.service: start failed with result "
        "'exit-code': app main: rootfs /srv/no-such-rootfs is not "
        "a directory"
    )
    assert failed.stderr.endswith(
        "(see podmgr status norootfs and journalctl -u pod@norootfs.service)\n"
    )
    assert failed.stderr.count("\n") == 1
    assert mounts_of(bed, "norootfs") == []
    bed.run("systemctl", "reset-failed", "pod@norootfs.service")
