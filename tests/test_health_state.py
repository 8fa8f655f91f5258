# SPDX-License-Identifier: LGPL-2.1-or-later
"""Health checks without a bed: the keys, the units' shape, and the state files' reading."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_units import GOLDEN, Rootfs

from podmgr import names, paths
from podmgr.errors import ManifestError
from podmgr.generator import health as generated
from podmgr.generator import resolve, units
from podmgr.generator.unitfile import UnitFile
from podmgr.manifest import model
from podmgr.runtime import health

APP = '[app.web]\nrootfs = "/srv/web"\nexec = ["/bin/httpd"]\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        model.parse(text, Path("/etc/podmgr/pods/web.toml"))
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("exec = []", 'app.web.health.exec: is empty (add the command, e.g. ["/bin/true"])'),
        ('exec = "/bin/true"', "app.web.health.exec: expected an array"),
        ('exec = ["true"]', "app.web.health.exec[0]: 'true' is not an absolute path"),
        ('exec = ["/bin/true", 1]', "app.web.health.exec[1]: expected a string"),
        ('exec = ["/a"]\ninterval = "500ms"', "app.web.health.interval: '500ms' is too short"),
        ('exec = ["/a"]\ntimeout = 0', "app.web.health.timeout: 0 is too short"),
        ('exec = ["/a"]\nretries = 0', "app.web.health.retries: 0 is out of range (use 1..1000)"),
        ('exec = ["/a"]\nstart_period = "-1s"', "app.web.health.start_period: '-1s' is not a"),
        ('exec = ["/a"]\non_failure = "kill"', "app.web.health.on_failure: 'kill' is not valid"),
        ('interval = "1s"', "app.web.health.exec: missing (add: exec = ["),
        ('exec = ["/a"]\nretry = 3', "app.web.health.retry: unknown key (did you mean retries?)"),
    ],
)
def test_bad_health_keys_are_one_line_problems(table: str, expected: str) -> None:
    [problem] = problems(APP + "[app.web.health]\n" + table + "\n")
    assert problem.startswith(expected), problem


def test_ready_healthy_needs_a_health_check() -> None:
    assert problems(APP + 'ready = "healthy"\n') == [
        'app.web.ready: "healthy" needs a health check (add [app.web.health] with '
        'exec = [...], or set ready = "started")'
    ]


def test_a_health_key_outside_its_table_is_pointed_there() -> None:
    [problem] = problems(APP + "retries = 3\n")
    assert problem == "app.web.retries: unknown key (did you mean retries in [app.web.health]?)"


def test_no_health_table_no_check_units() -> None:
    parsed = model.parse(APP, Path("/etc/podmgr/pods/web.toml"))
    assert parsed.apps["web"].health is None
    apps = {"web": resolve.resolve_app(parsed.apps["web"], Rootfs("/srv/web"))}
    assert not [o for o in units.render(parsed, apps) if "podhealth" in o.path]


def test_the_check_has_exactly_the_apps_confinement() -> None:
    """Every [Service] setting of the app's unit that units.confine writes is the check's,
    with the same value (the golden case shows the whole units)."""
    parsed = model.parse((GOLDEN / "health.toml").read_text(), Path("/etc/podmgr/pods/h.toml"))
    app = parsed.apps["web"]
    resolved = resolve.resolve_app(app, Rootfs(app.rootfs or ""))
    confined = UnitFile()
    units.confine(confined, parsed, app, resolved, paths.PodRuntime("h"))
    outputs = {o.path: o for o in units.render(parsed, {"web": resolved, "worker": resolved})}
    for unit in (names.app_unit("h", "web"), names.health_check_unit("h", "web")):
        output = outputs[unit]
        assert isinstance(output, units.GeneratedFile)
        lines = output.text.splitlines()
        assert all(f"{key}={value}" in lines for key, value in confined.sections["Service"])


STATUSES = st.lists(st.sampled_from(["", "starting", "healthy", "unhealthy"]), max_size=6)


@given(STATUSES)
def test_a_pod_is_as_healthy_as_its_least_healthy_app(statuses: list[str]) -> None:
    pod = health.worst(statuses)
    rank = ["unhealthy", "starting", "healthy", ""]
    assert pod == min(statuses, key=rank.index, default="")


def test_state_files(tmp_path: Path) -> None:
    runtime = paths.PodRuntime("web", tmp_path)
    runtime.app_dir("main").mkdir(parents=True)
    assert health.status(runtime, "main") is health.Status.STARTING
    health.Failures(2, "abc", False).write(runtime.health_failures("main"))
    assert health.status(runtime, "main") is health.Status.STARTING
    assert health.Failures.read(runtime.health_failures("main")) == health.Failures(2, "abc", False)
    health.Failures(3, "abd", True).write(runtime.health_failures("main"))
    assert health.status(runtime, "main") is health.Status.UNHEALTHY
    health.record_pass(runtime, "main")
    assert health.status(runtime, "main") is health.Status.HEALTHY
    assert not runtime.health_failures("main").exists()


@pytest.mark.parametrize("text", ["", "{", "[]", '{"failures": "x"}', '{"check": 1}', "null"])
def test_a_damaged_failures_file_reads_as_none(tmp_path: Path, text: str) -> None:
    path = tmp_path / "health-failures"
    path.write_text(text)
    assert health.Failures.read(path) == health.Failures(0, "", False)


def test_helper_arguments_round_trip() -> None:
    """What the generator writes on podmgr-pod's command line is what it parses."""
    parsed = model.parse((GOLDEN / "health.toml").read_text(), Path("/etc/podmgr/pods/h.toml"))
    check = parsed.apps["web"].health
    assert check
    line = generated.helper("health-failed", "h", "web", check).split()
    args = health._parser().parse_args(line[1:])
    assert (args.pod, args.app, args.retries, args.on_failure) == ("h", "web", 2, check.on_failure)
    assert (args.interval, args.start_period) == (check.interval, check.start_period)
