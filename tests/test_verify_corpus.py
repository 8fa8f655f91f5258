# SPDX-License-Identifier: LGPL-2.1-or-later
"""What podmgr validate accepts, systemd loads: units rendered from a generated corpus of
valid manifests (every key, values across their whole range) pass systemd-analyze verify
without a word.

systemd-analyze verify runs without a booted systemd, so this needs no bed.  It checks that
each program exists, so the units are verified in a root of their own (--root) that has an
empty executable at each app's program path, and stubs of the units they depend on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomlwrite
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from test_fuzz_manifest import RAW, check, check_units
from test_units import CASES, Rootfs

from podmgr import names
from podmgr.generator import generator, resolve, units
from podmgr.limits import DURATION_MAX, PERCENT_MAX, SIZE_MAX, is_text
from podmgr.manifest import model
from podmgr.manifest.healthkeys import OnFailure
from podmgr.manifest.schema import TASKS_MAX, Ready, Restart
from podmgr.quantities import format_duration, format_size
from podmgr.syscalls import SYSCALL_NAMES
from podmgr.values import CAPABILITIES, SYSCALL_GROUPS

ROOT = Path(__file__).resolve().parent.parent
ANALYZE = shutil.which("systemd-analyze")
# Skipped without systemd-analyze, except in CI, which must run these.
pytestmark = pytest.mark.skipif(
    ANALYZE is None and os.environ.get("CI") != "true", reason="needs systemd-analyze"
)

NAME = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True)
# Path names as AbsolutePath takes them: no white space, quotes, ":", ",", "\" or controls.
PATH_CHARS = st.characters(
    blacklist_categories=["Cs", "Cc", "Zs", "Zl", "Zp"], blacklist_characters=":,\\\"'/\u0085"
)
PATH_NAME = st.text(PATH_CHARS, min_size=1, max_size=12).filter(
    lambda n: n not in (".", "..") and is_text(n)
)
PATH = st.lists(PATH_NAME, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
# A program as systemd takes one: white space allowed, no quote or backslash.
PROGRAM = st.lists(
    st.text(
        st.characters(
            blacklist_categories=["Cs", "Cc", "Zl", "Zp"], blacklist_characters="\\\"'/$\u0085"
        ),
        min_size=1,
        max_size=12,
    ).filter(lambda n: is_text(n) and n not in (".", "..")),  # a program is no directory
    min_size=1,
    max_size=3,
).map(lambda parts: "/" + "/".join(parts))
TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=20
).filter(is_text)
ENV_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
SIZE = (
    st.integers(1, SIZE_MAX)
    .map(lambda n: st.sampled_from([n, format_size(n)]))
    .flatmap(lambda s: s)
)
DURATION = st.one_of(
    st.integers(0, DURATION_MAX // 10**6),
    st.integers(0, DURATION_MAX).map(lambda us: f"{us}us"),
    st.integers(0, DURATION_MAX).map(format_duration),
)
ID = st.integers(0, 2**32 - 2).filter(lambda n: n != 65535)
FLY_REFUSED_APP_KEYS = (
    "capabilities_retain",
    "capabilities_remove",
    "no_new_privileges",
    "private_users",
    "system_call_filter",
)


def resources() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "memory_max": SIZE,
            "memory_high": SIZE,
            "cpu_weight": st.integers(1, 10000),
            "cpu_quota": st.integers(1, PERCENT_MAX).map(lambda n: f"{n}%"),
            "tasks_max": st.integers(1, TASKS_MAX),
            "io_weight": st.integers(1, 10000),
        },
    )


def health(program: str) -> st.SearchStrategy[dict[str, Any]]:
    """An [app.NAME.health] table: every key across its range."""
    return st.fixed_dictionaries(
        {"exec": st.lists(TEXT, max_size=3).map(lambda args: [program, *args])},
        optional={
            "interval": st.integers(1, DURATION_MAX // 10**6),
            "timeout": st.integers(1000, DURATION_MAX).map(format_duration),
            "retries": st.integers(1, 1000),
            "start_period": DURATION,
            "on_failure": st.sampled_from([f.value for f in OnFailure]),
        },
    )


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    volumes = draw(
        st.dictionaries(
            NAME,
            st.one_of(
                st.fixed_dictionaries(
                    {"type": st.just("host"), "source": PATH}, optional={"read_only": st.booleans()}
                ),
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["empty", "tmpfs"])},
                    optional={
                        "mode": st.sampled_from(["0755", "1777", "700"]),
                        "uid": ID,
                        "gid": ID,
                    },
                ),
            ),
            max_size=2,
        )
    )
    mode = draw(st.sampled_from(["private", "host", "bridge"]))
    # Ports of the pod's sockets, none twice and none the published 8080.
    ports = iter(draw(st.lists(st.integers(1, 65535).filter(lambda p: p != 8080), unique=True)))
    app_names = draw(st.lists(NAME, min_size=1, max_size=3, unique=True))
    apps: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(app_names):
        mount_paths = draw(st.lists(PATH, max_size=len(volumes), unique=True))
        # Under a directory of each app's own, so that no program is another's directory.
        program = f"/opt/app{index}" + draw(PROGRAM)
        required: dict[str, st.SearchStrategy[Any]] = {
            "rootfs": PATH,
            "exec": st.just([program, *draw(st.lists(TEXT, max_size=4))]),
        }
        apps[name] = draw(
            st.fixed_dictionaries(
                required,
                optional={
                    "environment": st.dictionaries(ENV_NAME, TEXT, max_size=3),
                    "environment_files": st.lists(PATH, max_size=2, unique=True),
                    "working_directory": PATH,
                    "user": st.one_of(ID, st.just("www-data")),
                    "group": st.one_of(ID, st.just("www-data")),
                    "restart": st.sampled_from([r.value for r in Restart]),
                    "ready": st.sampled_from([r.value for r in Ready]),
                    "after": st.lists(
                        st.sampled_from(app_names[:index] or [""]), max_size=2, unique=True
                    ).map(lambda a: [x for x in a if x]),
                    "capabilities_retain": st.lists(
                        st.sampled_from(sorted(CAPABILITIES)), unique=True, max_size=3
                    ),
                    "capabilities_remove": st.lists(
                        st.sampled_from(sorted(CAPABILITIES)), unique=True, max_size=3
                    ),
                    "no_new_privileges": st.booleans(),
                    "read_only": st.booleans(),
                    "system_call_filter": st.lists(
                        st.sampled_from(sorted(SYSCALL_GROUPS)).map(lambda g: "@" + g)
                        | st.sampled_from(sorted(SYSCALL_NAMES))
                        | st.sampled_from(sorted(SYSCALL_NAMES)).map(lambda n: "~" + n),
                        unique=True,
                        max_size=3,
                    ),
                    "private_users": st.booleans(),
                    "resources": resources(),
                    "health": health(f"/opt/app{index}/health" + draw(PROGRAM)),
                },
            )
        )
        if apps[name].get("ready") == "healthy" and "health" not in apps[name]:
            apps[name]["health"] = {"exec": [f"/opt/app{index}/check"]}
        apps[name]["mount"] = [
            {"volume": volume, "path": path}
            for volume, path in zip(volumes, mount_paths, strict=False)
        ]
        apps[name]["socket"] = [
            draw(socket(mode, port, index)) for index, port in zip(range(3), ports, strict=False)
        ]
    if fly := draw(st.booleans()):  # isolation = "fly": without the keys it refuses
        mode = "host"
        for app in apps.values():
            for key in FLY_REFUSED_APP_KEYS:
                app.pop(key, None)
            for table in app["socket"]:  # a fly pod has no namespace of its own
                table.pop("namespace", None)
    pod: dict[str, Any] = {
        "pod": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "hostname": st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True),
                    "annotations": st.dictionaries(
                        st.from_regex(r"[a-z][a-z0-9./]{0,10}", fullmatch=True), TEXT, max_size=2
                    ),
                    "restart": st.sampled_from([r.value for r in Restart]),
                    "stop_timeout": DURATION,
                    "resources": resources(),
                },
            )
        ),
        "network": {"mode": mode} | ({"ports": ["8080:80/tcp"]} if mode == "bridge" else {}),
        "install": {
            "wanted_by": draw(
                st.lists(st.sampled_from(["multi-user.target", "graphical.target"]), unique=True)
            )
        },
        "volume": volumes,
        "app": apps,
    }
    if fly:
        pod["pod"].pop("hostname", None)
        pod["pod"]["isolation"] = "fly"
    return pod


@st.composite
def socket(draw: st.DrawFn, mode: str, port: int, index: int) -> dict[str, Any]:
    """A [[app.NAME.socket]] table of a socket unit of its own, on ``port`` or a path."""
    listen = draw(
        st.sampled_from(
            [
                port,
                str(port),
                f"127.0.0.1:{port}",
                f"[::1]:{port}",
                f"0.0.0.0:{port}",
                f"/run/s{port}-{draw(PATH_NAME)}",
            ]
        )
    )
    table: dict[str, Any] = {"listen": listen, "fd_name": f"s{index}"}
    table |= draw(
        st.fixed_dictionaries({}, optional={"type": st.sampled_from(["stream", "datagram"])})
    )
    if mode != "host" and not str(listen).startswith("/") and draw(st.booleans()):
        table["namespace"] = "pod"
    else:
        table |= draw(st.fixed_dictionaries({}, optional={"activate": st.booleans()}))
    return table


# Long pod names full of '-' make the longest slice names systemd still takes.
POD = st.one_of(NAME, st.from_regex(r"[a-z][a-z-]{55,61}[a-z]", fullmatch=True)).filter(
    names.is_valid_pod_name
)


# What the units name beside the pod's own: the default dependencies of a service and a
# slice, and the programs of the pod unit.  Each is a stub in the root verify reads.
STUB_UNITS = (
    "sysinit.target",
    "basic.target",
    "shutdown.target",
    "slices.target",
    "-.slice",
    "multi-user.target",
    "graphical.target",
    "sockets.target",
)
STUB_PROGRAMS = (
    "/usr/bin/busctl",
    "/bin/sh",
    "/bin/rm",
    "/bin/touch",
    "/usr/lib/podmgr/podmgr-pod",
)


def check_programs(parsed: model.Manifest) -> tuple[str, ...]:
    return tuple(app.health.exec[0] for app in parsed.apps.values() if app.health)


def verify(
    tmp_path: Path,
    outputs: list[units.Output],
    pod: str,
    apps: dict[str, resolve.ResolvedApp],
    checks: tuple[str, ...] = (),
) -> None:
    """systemd-analyze verify the pod unit (template plus drop-ins), its slice and apps, in
    a root that has each app's program (verify checks that it exists there)."""
    root = tmp_path / "root"
    shutil.rmtree(root, ignore_errors=True)
    here = root / "etc/systemd/system"
    (here / "alias").mkdir(parents=True)
    generator.write(outputs, here)
    for shipped in ("pod@.service", "pod.slice"):
        shutil.copy(ROOT / "units" / shipped, here)
    for stub in STUB_UNITS:
        (here / stub).write_text("[Unit]\nDefaultDependencies=no\n")
    os.symlink("pod@.service", here / names.pod_unit(pod))
    args = [str(here / names.pod_unit(pod)), str(here / names.pod_slice(pod))]
    programs = list(STUB_PROGRAMS)
    named = [o for o in outputs if o.path.startswith(("podapp@", "podsocket@", "podhealth"))]
    for index, output in enumerate(named):
        assert isinstance(output, units.GeneratedFile)
        alias = here / "alias" / f"{index}{Path(output.path).suffix}"
        alias.write_text(output.text)
        # "FILE:NAME" verifies FILE as the unit NAME, whose ":" a file name cannot carry here.
        args.append(f"{alias}:{output.path}")
    programs += [app.exec[0] for app in apps.values()]
    programs += checks  # the health checks' programs
    for program in programs:
        path = root / program.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        path.chmod(0o755)
    result = subprocess.run(
        [ANALYZE or "", "verify", "--man=no", f"--root={root}", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stderr == "", result.stderr
    assert result.returncode == 0


@settings(
    max_examples=30,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(manifests(), POD)
def test_systemd_loads_what_validate_accepts(
    tmp_path: Path, table: dict[str, Any], pod: str
) -> None:
    text = tomlwrite.document(table)
    parsed = model.parse(text, Path(f"/etc/podmgr/pods/{pod}.toml"))
    apps = {
        app.name: resolve.resolve_app(app, Rootfs(app.rootfs or "")) for app in parsed.apps.values()
    }
    outputs = units.render(parsed, apps)
    check_units(parsed)
    verify(tmp_path, outputs, pod, apps, check_programs(parsed))


@pytest.mark.parametrize("pod", CASES)
def test_systemd_loads_the_golden_units(tmp_path: Path, pod: str) -> None:
    parsed = model.parse(CASES[pod].read_text(), Path(f"/etc/podmgr/pods/{pod}.toml"))
    apps = {
        app.name: resolve.resolve_app(app, Rootfs(app.rootfs or "")) for app in parsed.apps.values()
    }
    verify(tmp_path, units.render(parsed, apps), pod, apps, check_programs(parsed))


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("User=65535", "Invalid user/group name or numeric ID"),
        ("MemoryMax=99999999T", "Invalid memory limit"),
        ("WorkingDirectory=/" + "a" * 3000, "path has invalid length"),
        ('ExecStartPre="/bin/a\\\\b"', "Executable name contains special characters"),
    ],
)
def test_the_harness_sees_what_systemd_refuses(
    tmp_path: Path, setting: str, complaint: str
) -> None:
    # The verify above would catch each finding: systemd-analyze says so, on stderr.
    parsed = model.parse(CASES["demo"].read_text(), Path("/etc/podmgr/pods/demo.toml"))
    apps = {
        app.name: resolve.resolve_app(app, Rootfs(app.rootfs or "")) for app in parsed.apps.values()
    }
    outputs = [
        units.GeneratedFile(o.path, o.text + f"[Service]\n{setting}\n")
        if isinstance(o, units.GeneratedFile) and o.path.startswith("podapp@")
        else o
        for o in units.render(parsed, apps)
    ]
    with pytest.raises(AssertionError, match=complaint):
        verify(tmp_path, outputs, "demo", apps)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the names are amd64's")
def test_systemd_takes_every_system_call_name_podmgr_takes(tmp_path: Path) -> None:
    names_ = " ".join(sorted(SYSCALL_NAMES))
    unit = tmp_path / "calls.service"
    unit.write_text(
        f"[Service]\nExecStart=/bin/true\nSystemCallFilter={names_}\nSystemCallFilter=~{names_}\n"
    )
    result = subprocess.run(
        [ANALYZE or "", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stderr == ""


def _slots(table: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every value slot of a table: the path to each leaf, list element and key."""
    if isinstance(table, dict):
        return [path] * bool(path) + [
            slot for key, value in table.items() for slot in _slots(value, (*path, key))
        ]
    if isinstance(table, list):
        return [path] + [
            slot for index, value in enumerate(table) for slot in _slots(value, (*path, index))
        ]
    return [path]


@st.composite
def one_hostile_value(draw: st.DrawFn) -> dict[str, Any]:
    """A valid manifest with one value slot replaced by a raw value of any kind."""
    table = draw(manifests())
    *parents, last = draw(st.sampled_from(_slots(table)))
    holder = table
    for step in parents:
        holder = holder[step]
    holder[last] = draw(RAW)
    return table


@settings(
    max_examples=100,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(one_hostile_value())
def test_a_hostile_value_in_any_slot_is_refused_or_loads(
    tmp_path: Path, table: dict[str, Any]
) -> None:
    parsed = check(tomlwrite.document(table))
    if parsed is None:
        return
    try:
        apps = {
            app.name: resolve.resolve_app(app, Rootfs(app.rootfs or ""))
            for app in parsed.apps.values()
            if app.rootfs is not None
        }
    except resolve.AppProblem:
        return  # refused as the generator refuses it (a user the rootfs does not have)
    if len(apps) < len(parsed.apps):
        return  # an image app: no image store here
    event("accepted")
    check_units(parsed)
    verify(tmp_path, units.render(parsed, apps), parsed.name, apps, check_programs(parsed))
