# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fuzzing the manifest parser: any text, and any TOML shaped like a manifest, gives a
Manifest or a ManifestError of one-line problems, never another exception; and every
manifest it accepts renders to units that read back as written.

Bounded example counts keep this to seconds in the default test run.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import systemd_syntax
import tomlwrite
from hypothesis import given, settings
from hypothesis import strategies as st
from test_units import Rootfs

from podmgr.errors import ManifestError
from podmgr.generator import resolve, units
from podmgr.generator.resolve import AppProblem
from podmgr.limits import CONTROL_CHARACTERS
from podmgr.manifest import model, schema, socketkeys, sockets
from podmgr.tables import Section

PATH = Path("/etc/podmgr/pods/fuzz.toml")

# Strings that poke at each value type: separators, escapes, numbers of many digits.
NASTY = st.sampled_from(
    [
        "",
        "/",
        "//",
        "/..",
        "/a/../b",
        "..",
        "-",
        "~",
        "%",
        "%i",
        "$HOME",
        ";",
        "\\",
        '"',
        "'",
        "\n",
        "\r",
        "\0",
        "\x85",
        "\u2028",
        "\x7f",
        "\u00b2",
        "\u0663",
        "1" * 400,
        "9" * 5000,
        "99999999T",
        "1.5G",
        "0.0001K",
        "1e3",
        "-1",
        "65535",
        "4294967295",
        "4294967294",
        "0x10",
        "1_000",
        "30s",
        "1h 30min",
        "9" * 40 + "min",
        "21474837%",
        "50%",
        "0%",
        "/bin/sh",
        '/bin/"sh',
        "/" + "a" * 300,
        "/" + "a/" * 2100,
        "CAP_SYS_ADMIN",
        "@mount",
        "~@privileged",
        "8080:80/tcp",
        "99999:1",
        "10.0.0.1",
        "::1",
        "multi-user.target",
        "www-data",
        "root",
        "busybox",
        "registry.example.org/x:1",
        "x@sha256:" + "0" * 64,
        "host",
        "bridge",
        "private",
        "tmpfs",
        "empty",
        "notify",
        "always",
        "0755",
        "1777",
        "fly",
        "container",
        # socket addresses, types and namespaces
        "127.0.0.1:8080",
        "[::1]:8080",
        "[::]:80",
        "0.0.0.0:80",
        "[fe80::1%eth0]:80",
        "127.0.0.1:0",
        "/run/web.sock",
        "/run/%i.sock",
        "/run/" + "s" * 102,
        "@abstract",
        "vsock:2:80",
        "stream",
        "datagram",
        "pod",
    ]
)
TEXT = st.one_of(NASTY, st.text(max_size=8), st.lists(NASTY, max_size=3).map("".join))
SCALAR = st.one_of(
    TEXT, st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.dates()
)
RAW: st.SearchStrategy[Any] = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=12,
)


def table_of(section: Section) -> st.SearchStrategy[dict[str, Any]]:
    """A table with some of ``section``'s keys (raw values of any kind) and maybe a stray."""
    keys = {key.name: RAW for key in section.keys}
    subsections = {sub.name: _subsection(sub) for sub in section.subsections}
    return st.fixed_dictionaries({}, optional={**keys, **subsections, "stray": RAW})


def _subsection(section: Section) -> st.SearchStrategy[Any]:
    table = st.deferred(lambda: table_of(section))
    if section.named:
        names = st.one_of(st.sampled_from(["main", "db", "a.b_c-d", "x" * 63]), TEXT)
        return st.one_of(st.dictionaries(names, table, max_size=2), RAW)
    if section.array:
        return st.one_of(st.lists(table, max_size=2), RAW)
    return st.one_of(table, RAW)


STRUCTURED = table_of(schema.MANIFEST)
TOMLISH = st.text(alphabet=string.printable + "[]{}=\"'#\\\u00e9\0\x85\u2028", max_size=300)


def check(text: str) -> model.Manifest | None:
    """Parse ``text``: a Manifest, or None after checking that every problem is one line."""
    try:
        return model.parse(text, PATH)
    except ManifestError as error:
        problems = error.problems
    assert problems
    for problem in problems:
        assert not CONTROL_CHARACTERS.search(str(problem)), problem
        assert str(problem).strip() == str(problem)
        assert str(problem)
    return None


@settings(max_examples=300, deadline=None)
@given(TOMLISH)
def test_any_text_is_a_manifest_or_one_line_problems(text: str) -> None:
    check(text)


@settings(max_examples=300, deadline=None)
@given(STRUCTURED)
def test_any_toml_shaped_like_a_manifest_is_a_manifest_or_one_line_problems(
    table: dict[str, Any],
) -> None:
    parsed = check(tomlwrite.document(table))
    if parsed is not None:
        check_units(parsed)


# What the app units may hold: no key is there that podmgr does not write.
APP_KEYS = {
    "Unit": {
        "Description",
        "Documentation",
        "SourcePath",
        "BindsTo",
        "After",
        "AssertPathIsMountPoint",
        "Requires",
        "Wants",
    },
    "Service": {
        "Sockets",
        "Type",
        "Slice",
        "ExecStart",
        "Restart",
        "TimeoutStopSec",
        "SyslogIdentifier",
        "LogExtraFields",
        "RootDirectory",
        "MountAPIVFS",
        "NetworkNamespacePath",
        "IPCNamespacePath",
        "BindReadOnlyPaths",
        "BindPaths",
        "TemporaryFileSystem",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectControlGroups",
        "CapabilityBoundingSet",
        "NoNewPrivileges",
        "PrivateUsers",
        "SystemCallFilter",
        "User",
        "Group",
        "WorkingDirectory",
        "Environment",
        "EnvironmentFile",
        "MemoryMax",
        "MemoryHigh",
        "CPUWeight",
        "CPUQuota",
        "TasksMax",
        "IOWeight",
        "ExecStartPre",
        "ExecStartPost",
        "TimeoutStartSec",
    },
}
ONCE = {"ExecStart", "User", "Group", "WorkingDirectory", "RootDirectory", "Type"}


def check_units(parsed: model.Manifest) -> None:
    """Render ``parsed`` (rootfs apps from a rootfs with a passwd; image apps cannot be in a
    store here) and read every unit back as systemd does."""
    apps = {}
    for app in parsed.apps.values():
        if app.rootfs is None:
            return
        try:
            apps[app.name] = resolve.resolve_app(app, Rootfs(app.rootfs))
        except AppProblem:
            return
    for output in units.render(parsed, apps):
        if not isinstance(output, units.GeneratedFile) or output.path.endswith(".json"):
            continue
        found = systemd_syntax.settings(output.text)
        assert all(
            s.key and s.section in ("Unit", "Service", "Slice", "Socket", "Timer") for s in found
        )
        if output.path.startswith("podsocket@"):
            check_socket_unit(parsed, output.path, found)
        if output.path.startswith("podhealth@") and output.path.endswith(".service"):
            app = parsed.apps[output.path.split(":", 1)[1].removesuffix(".service")]
            assert app.health
            [exec_start] = [s.value for s in found if s.key == "ExecStart"]
            assert systemd_syntax.command(exec_start) == list(app.health.exec)
        if output.path.startswith("podapp@"):
            resolved = apps[output.path.split(":", 1)[1].removesuffix(".service")]
            assert all(s.key in APP_KEYS[s.section] for s in found), found
            for key in ONCE:
                assert len([s for s in found if s.key == key]) == 1, key
            [exec_start] = [s.value for s in found if s.key == "ExecStart"]
            assert systemd_syntax.command(exec_start) == list(resolved.exec)
            environment = [
                systemd_syntax.unspecify(systemd_syntax.words(s.value)[0][1])
                for s in found
                if s.key == "Environment"
            ]
            assert [e for e in environment if not e.startswith(("USER=", "LOGNAME=", "HOME="))] == [
                f"{k}={v}" for k, v in resolved.environment
            ]


# What isolation = "fly" refuses, each with a valid value of its own: (table, key, value).
FLY_REFUSED: tuple[tuple[str, str, Any], ...] = (
    ("network", "mode", "bridge"),
    ("network", "ports", ["8080:80"]),
    ("network", "networks", ["backend"]),
    ("network", "dns", ["9.9.9.9"]),
    ("network", "dns_search", ["example.org"]),
    ("network", "hosts", {"db": "10.0.0.5"}),
    ("pod", "hostname", "web"),
    ("app.main", "capabilities_retain", []),
    ("app.main", "capabilities_remove", ["CAP_NET_RAW"]),
    ("app.main", "no_new_privileges", True),
    ("app.main", "private_users", True),
    ("app.main", "system_call_filter", ["~@mount"]),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(FLY_REFUSED), unique_by=lambda r: r[1]), st.booleans())
def test_fly_refuses_each_key_it_cannot_honour_and_only_those(
    refused: list[tuple[str, str, Any]], host_mode: bool
) -> None:
    table: dict[str, Any] = {
        "pod": {"isolation": "fly"},
        "network": {"mode": "host"} if host_mode else {},
        "app": {"main": {"rootfs": "/srv/rootfs", "exec": ["/bin/true"]}},
    }
    for where, key, value in refused:
        (table["app"]["main"] if where == "app.main" else table[where])[key] = value
    text = tomlwrite.document(table)
    if not refused:
        check_units(model.parse(text, PATH))
        return
    try:
        model.parse(text, PATH)
    except ManifestError as error:
        problems = error.problems
    else:
        raise AssertionError(f"accepted: {text}")
    assert sorted(p.where for p in problems) == sorted(f"{w}.{k}" for w, k, _ in refused)
    for problem in problems:
        assert 'isolation = "fly"' in problem.message
        assert problem.message.endswith(")"), problem  # with what to write instead


def check_socket_unit(
    parsed: model.Manifest, name: str, found: list[systemd_syntax.Setting]
) -> None:
    """A socket unit listens where its sockets say, as systemd reads the unit back, and
    activates its app."""
    pod, app_name, fd_name = name.removeprefix("podsocket@").removesuffix(".socket").split(":")
    app = parsed.apps[app_name]
    tables = [s for s in app.sockets if sockets.socket_name(app, s) == fd_name]
    listens = [
        (s.key, systemd_syntax.unspecify(s.value)) for s in found if s.key.startswith("Listen")
    ]
    assert listens == [
        (
            "ListenStream" if s.type is socketkeys.SocketType.STREAM else "ListenDatagram",
            str(s.listen),
        )
        for s in tables
    ]
    [service] = [s.value for s in found if s.key == "Service"]
    assert (pod, service) == (parsed.name, f"podapp@{pod}:{app_name}.service")
    assert [s.value for s in found if s.key == "FileDescriptorName"] == [fd_name]
