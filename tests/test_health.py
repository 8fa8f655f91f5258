# SPDX-License-Identifier: LGPL-2.1-or-later
"""Health checks in a bed: real checks of real apps in the busybox rootfs, their verdict in
podmgr status, podmgr list and the Pod object, and what on_failure and ready = "healthy"
make systemd do."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from bed import Bed
from test_pods import (
    ROOTFS,
    install,
    journal,
    main_pid,
    reload,
    show,
    wait_for,
    with_busybox,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def health_bed(bed: Bed) -> Bed:
    return with_busybox(bed)


def pod_property(bed: Bed, pod: str, name: str) -> object:
    out = bed.run(
        "busctl",
        "--json=short",
        "get-property",
        "org.podmgr1",
        f"/org/podmgr1/pod/{pod}",
        "org.podmgr1.Pod",
        name,
    ).stdout
    return json.loads(out)["data"]


def health(bed: Bed, pod: str) -> str:
    value = pod_property(bed, pod, "Health")
    assert isinstance(value, str)
    return value


def app_health(bed: Bed, pod: str) -> dict[str, str]:
    value = pod_property(bed, pod, "AppHealth")
    assert isinstance(value, list)
    return dict(value)


def wait_health(bed: Bed, pod: str, expected: str, timeout: float = 20) -> None:
    wait_for(lambda: health(bed, pod) == expected, timeout, f"pod {pod} {expected}")


# An app that is healthy while /tmp/ok exists in its root, which it makes at each start.
def marked(pod: str, on_failure: str, retries: int = 2) -> str:
    return f"""
        [app.main]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sh", "-c", "touch /tmp/ok; exec sleep infinity"]

        [app.main.health]
        exec = ["/bin/test", "-e", "/tmp/ok"]
        interval = "1s"
        timeout = "5s"
        retries = {retries}
        on_failure = "{on_failure}"

        [app.plain]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
    """


def start(bed: Bed, pod: str, text: str) -> None:
    install(bed, pod, text)
    bed.run("podmgr", "validate", f"/etc/podmgr/pods/{pod}.toml")
    reload(bed)
    bed.run("podmgr", "start", pod)


def test_a_passing_check_makes_the_app_and_the_pod_healthy(health_bed: Bed) -> None:
    bed = health_bed
    start(bed, "fine", marked("fine", "none"))
    wait_health(bed, "fine", "healthy")
    assert app_health(bed, "fine") == {"main": "healthy"}  # plain has no check

    status = bed.run("podmgr", "status", "fine").stdout
    assert "     Health: healthy\n" in status
    assert "podapp@fine:main.service   active (healthy)" in status
    assert "podapp@fine:plain.service  active\n" in status
    listing = bed.run("podmgr", "list").stdout
    assert any(line.split()[:3] == ["fine", "active", "healthy"] for line in listing.splitlines())
    listed = {p["name"]: p for p in json.loads(bed.run("podmgr", "list", "--json").stdout)}
    assert listed["fine"]["health"] == "healthy"

    # The timer runs the check again and again; no check left a process of podmgr's.
    runs = show(bed, "podhealth@fine:main.service", "InvocationID")
    wait_for(
        lambda: show(bed, "podhealth@fine:main.service", "InvocationID") != runs,
        what="the next check",
    )
    assert show(bed, "podhealth-failed@fine:main.service", "InvocationID") == ""

    bed.run("podmgr", "stop", "fine")
    assert health(bed, "fine") == ""
    assert show(bed, "podhealth@fine:main.timer", "ActiveState") == "inactive"


def test_an_app_is_starting_until_its_first_check_and_after_each_start(
    health_bed: Bed,
) -> None:
    bed = health_bed
    start(bed, "slow", marked("slow", "none").replace('interval = "1s"', 'interval = "1h"'))
    assert health(bed, "slow") == "starting"  # the first check comes an hour later
    assert app_health(bed, "slow") == {"main": "starting"}
    assert "active (starting)" in bed.run("podmgr", "status", "slow").stdout
    # What a start finds is cleared before the app runs.
    failures = "/run/podmgr/pods/slow/apps/main/health-failures"
    unhealthy = {"failures": 9, "check": "x", "unhealthy": True}
    bed.run("sh", "-c", f"cat > {failures}", input=json.dumps(unhealthy))
    assert health(bed, "slow") == "unhealthy"
    bed.run("systemctl", "restart", "podapp@slow:main.service")
    assert health(bed, "slow") == "starting"
    bed.run("podmgr", "stop", "slow")


def test_the_check_runs_in_the_apps_confinement(health_bed: Bed) -> None:
    bed = health_bed
    probe = (
        "grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status > /shared/{0}; "
        "id >> /shared/{0}; readlink /proc/self/ns/net /proc/self/ns/ipc /proc/self/root "
        ">> /shared/{0}; sed 's|/[^/]*$||' /proc/self/cgroup >> /shared/{0}"
    )
    start(
        bed,
        "jail",
        f"""
        [volume.shared]
        type = "tmpfs"
        mode = "1777"

        [app.main]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sh", "-c", "{probe.format("app")}; exec sleep infinity"]
        user = "podtest"
        no_new_privileges = true
        capabilities_retain = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
        system_call_filter = ["@system-service"]

        [[app.main.mount]]
        volume = "shared"
        path = "/shared"

        [app.main.health]
        exec = ["/bin/sh", "-c", "{probe.format("check")}"]
        interval = "1s"
        """,
    )
    wait_health(bed, "jail", "healthy")
    shared = "/run/podmgr/pods/jail/volumes/shared"
    app = bed.run("cat", f"{shared}/app").stdout
    check = bed.run("cat", f"{shared}/check").stdout
    assert "NoNewPrivs:\t1" in app
    assert "Seccomp:\t2" in app
    assert "uid=4242" in app
    assert check == app
    # Its cgroups are its own unit's, in the pod's slice (the probe cut the unit off).
    assert ":/pod.slice/pod-jail.slice\n" in check
    bed.run("podmgr", "stop", "jail")


def test_an_unhealthy_app_is_restarted(health_bed: Bed) -> None:
    bed = health_bed
    start(bed, "again", marked("again", "restart"))
    wait_health(bed, "again", "healthy")
    before = main_pid(bed, "again", "main")
    invocation = show(bed, "podapp@again:main.service", "InvocationID")
    plain = main_pid(bed, "again", "plain")
    bed.run("rm", f"/proc/{before}/root/tmp/ok")
    # Two failures in a row (retries = 2), then a restart: a new process, which makes
    # /tmp/ok again, so the app comes back healthy.
    wait_for(lambda: main_pid(bed, "again", "main") not in (before, 0), 20, "a restart")
    assert show(bed, "podapp@again:main.service", "InvocationID") != invocation
    wait_health(bed, "again", "healthy")
    assert main_pid(bed, "again", "plain") == plain  # the other app is left alone
    said = [
        str(e.get("MESSAGE"))
        for e in journal(bed, "_SYSTEMD_UNIT=podhealth-failed@again:main.service")
    ]
    assert any("unhealthy: its health check failed 2 times in a row; restarting" in s for s in said)
    bed.run("podmgr", "stop", "again")


def test_an_unhealthy_app_is_stopped(health_bed: Bed) -> None:
    bed = health_bed
    start(bed, "halt", marked("halt", "stop"))
    wait_health(bed, "halt", "healthy")
    bed.run("rm", f"/proc/{main_pid(bed, 'halt', 'main')}/root/tmp/ok")
    wait_for(
        lambda: show(bed, "podapp@halt:main.service", "ActiveState") == "inactive",
        20,
        "the app's stop",
    )
    # It stays reported unhealthy, which is why it stopped; the pod runs on.
    assert app_health(bed, "halt") == {"main": "unhealthy"}
    assert health(bed, "halt") == "unhealthy"
    assert show(bed, "pod@halt.service", "ActiveState") == "active"
    assert show(bed, "podapp@halt:plain.service", "ActiveState") == "active"
    assert show(bed, "podhealth@halt:main.timer", "ActiveState") == "inactive"
    # A new start begins afresh, and passes.
    bed.run("systemctl", "start", "podapp@halt:main.service")
    wait_health(bed, "halt", "healthy")
    bed.run("podmgr", "stop", "halt")


def test_an_unhealthy_app_is_left_running_with_none(health_bed: Bed) -> None:
    bed = health_bed
    start(bed, "keep", marked("keep", "none", retries=3))
    wait_health(bed, "keep", "healthy")
    pid = main_pid(bed, "keep", "main")
    bed.run("rm", f"/proc/{pid}/root/tmp/ok")
    # Fewer failures than retries leave it healthy (one pass would have reset them).
    wait_for(
        lambda: (
            '"failures": 1'
            in bed.run("cat", "/run/podmgr/pods/keep/apps/main/health-failures", check=False).stdout
        ),
        what="a first counted failure",
    )
    assert health(bed, "keep") == "healthy"
    wait_health(bed, "keep", "unhealthy")
    assert "active (unhealthy)" in bed.run("podmgr", "status", "keep").stdout
    time.sleep(2)
    assert main_pid(bed, "keep", "main") == pid
    # A pass makes it healthy again.
    bed.run("touch", f"/proc/{pid}/root/tmp/ok")
    wait_health(bed, "keep", "healthy")
    bed.run("podmgr", "stop", "keep")


def test_health_changes_are_signalled(health_bed: Bed) -> None:
    bed = health_bed
    start(bed, "loud", marked("loud", "none", retries=1))
    wait_health(bed, "loud", "healthy")
    monitor = subprocess.Popen(
        bed.command(
            "timeout",
            "12",
            "busctl",
            "--json=short",
            "monitor",
            "--match=type='signal',sender='org.podmgr1',member='PropertiesChanged',"
            "path='/org/podmgr1/pod/loud'",
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)
        pid = main_pid(bed, "loud", "main")
        bed.run("rm", f"/proc/{pid}/root/tmp/ok")
        wait_health(bed, "loud", "unhealthy")
        bed.run("touch", f"/proc/{pid}/root/tmp/ok")
        wait_health(bed, "loud", "healthy")
    finally:
        out, _ = monitor.communicate(timeout=30)
    changes = [
        json.loads(line)["payload"]["data"][1]
        for line in out.splitlines()
        if line.startswith("{") and '"PropertiesChanged"' in line
    ]
    seen = [c["Health"]["data"] for c in changes if "Health" in c]
    assert seen == ["unhealthy", "healthy"], seen
    assert [c["AppHealth"]["data"] for c in changes if "AppHealth" in c] == [
        [["main", "unhealthy"]],
        [["main", "healthy"]],
    ]
    bed.run("podmgr", "stop", "loud")


WAITED = f"""
    [volume.shared]
    type = "tmpfs"

    # Ready 3 s after its start: the file its check looks for appears then.
    [app.web]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sh", "-c", "sleep 3; touch /tmp/ready; exec sleep infinity"]
    ready = "healthy"

    [[app.web.mount]]
    volume = "shared"
    path = "/shared"

    [app.web.health]
    exec = ["/bin/sh", "-c", "test -e /tmp/ready && echo passed >> /shared/checks"]
    interval = "1s"
    # Its checks fail for 3 s: without a start period, retries = 3 of them would end its
    # start as unhealthy (as test_a_first_check_that_never_passes_fails_the_start shows).
    start_period = "10s"

    # What it saw of web's checks when it started.
    [app.db]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sh", "-c", "cat /shared/checks > /shared/db-saw; exec sleep infinity"]
    after = ["web"]

    [[app.db.mount]]
    volume = "shared"
    path = "/shared"
"""


def test_a_dependent_app_starts_after_the_first_passing_check(health_bed: Bed) -> None:
    bed = health_bed
    start(bed, "waited", WAITED)
    web, db = "podapp@waited:web.service", "podapp@waited:db.service"
    # podmgr start returned once the pod's jobs were done: web is active, and healthy.
    assert show(bed, web, "ActiveState") == "active"
    assert health(bed, "waited") == "healthy"
    # web was "activating" until its check passed, about 3 s after its start...
    began = int(show(bed, web, "InactiveExitTimestampMonotonic"))
    active = int(show(bed, web, "ActiveEnterTimestampMonotonic"))
    assert active - began >= 3_000_000
    # ... and db started after that, when a check had passed.
    assert int(show(bed, db, "InactiveExitTimestampMonotonic")) >= active
    assert bed.run("cat", "/run/podmgr/pods/waited/volumes/shared/db-saw").stdout.startswith(
        "passed\n"
    )
    bed.run("podmgr", "stop", "waited")


def test_a_first_check_that_never_passes_fails_the_start(health_bed: Bed) -> None:
    bed = health_bed
    install(
        bed,
        "never",
        f"""
        [app.web]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
        ready = "healthy"

        [app.web.health]
        exec = ["/bin/false"]
        interval = "1s"
        retries = 2

        [app.db]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sleep", "infinity"]
        after = ["web"]
        """,
    )
    reload(bed)
    failed = bed.run("podmgr", "start", "never", check=False)
    assert failed.returncode == 1
    web = "podapp@never:web.service"
    assert show(bed, web, "ActiveState") == "failed"
    # systemd's word for a notify service that ended without READY=1.
    assert show(bed, web, "Result") == "protocol"
    # Said about the app's unit, so that systemctl status and journalctl -u show it.
    said = [str(e.get("MESSAGE")) for e in journal(bed, "-u", web)]
    assert any(
        "app web of pod never did not become healthy: its health check failed" in s for s in said
    ), said
    # What is ordered after it (After= only orders) started once the start had failed.
    assert int(show(bed, "podapp@never:db.service", "ExecMainStartTimestampMonotonic")) >= int(
        show(bed, web, "InactiveEnterTimestampMonotonic")
    )
    bed.run("podmgr", "stop", "never")


def test_generated_health_units_pass_systemd_analyze_verify(health_bed: Bed) -> None:
    bed = health_bed
    install(bed, "checked", WAITED)
    reload(bed)
    units = [
        f"{kind}@checked:web.{suffix}"
        for kind, suffix in (
            ("podhealth", "service"),
            ("podhealth", "timer"),
            ("podhealth-passed", "service"),
            ("podhealth-failed", "service"),
            ("podhealth-reset", "service"),
            ("podhealth-ready", "service"),
            ("podapp", "service"),
        )
    ]
    # verify reads "FILE:NAME" as FILE verified as the unit NAME, whose ":" would end the
    # file's name otherwise (as test_pods.py does).
    bed.run("mkdir", "-p", "/tmp/verify-health")
    args = []
    for index, unit in enumerate(units):
        alias = f"/tmp/verify-health/{index}.{unit.rsplit('.', 1)[1]}"
        bed.run("cp", f"/run/systemd/generator/{unit}", alias)
        args.append(f"{alias}:{unit}")
    result = bed.run("systemd-analyze", "verify", "--man=no", *args, check=False)
    assert result.returncode == 0, result.stderr
    assert "podhealth" not in result.stderr, result.stderr
