# SPDX-License-Identifier: LGPL-2.1-or-later
"""Golden files for generated units: the rendering is byte-stable and reviewed as text.

Set PODMGR_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change, then
review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import systemd_syntax

from podmgr import names
from podmgr.cli import command
from podmgr.generator import resolve, units
from podmgr.generator.rootfs import Defaults
from podmgr.generator.unitfile import command_line, quote
from podmgr.manifest import model

ROOT = Path(__file__).parent.parent
GOLDEN = Path(__file__).parent / "golden"

# The passwd and group files examples/busybox-rootfs.sh writes.
PASSWD = (
    b"root:x:0:0:root:/root:/bin/sh\n"
    b"www-data:x:33:33:www-data:/var/www:/bin/false\n"
    b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = b"root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n"

CASES = {
    "demo": ROOT / "examples" / "demo.toml",
    "shop": ROOT / "examples" / "shop.toml",
    "edge-cases": GOLDEN / "edge-cases.toml",
    "fly": GOLDEN / "fly.toml",
    "sockets": GOLDEN / "sockets.toml",
    "health": GOLDEN / "health.toml",
}


@dataclass(frozen=True)
class Rootfs:
    """A rootfs directory that has exactly the passwd and group files above."""

    root: str

    def describe(self) -> str:
        return self.root

    def lowerdirs(self) -> list[str]:
        return [self.root]

    def read_file(self, path: str) -> bytes | None:
        return {"etc/passwd": PASSWD, "etc/group": GROUP}.get(path)

    def defaults(self) -> Defaults:
        return Defaults()


def render_text(source: Path, pod: str) -> str:
    """What `podmgr render` prints, for a manifest installed as /etc/podmgr/pods/POD.toml."""
    parsed = model.parse(source.read_text(), Path(f"/etc/podmgr/pods/{pod}.toml"))
    apps = {
        app.name: resolve.resolve_app(app, Rootfs(app.rootfs or "")) for app in parsed.apps.values()
    }
    return command.format_outputs(units.render(parsed, apps))


@pytest.mark.parametrize("pod", CASES)
def test_golden(pod: str) -> None:
    golden = GOLDEN / f"{pod}.units"
    text = render_text(CASES[pod], pod)
    if os.environ.get("PODMGR_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{golden} differs: PODMGR_UPDATE_GOLDEN=1 updates it"


def test_slice_names_never_nest() -> None:
    # Pod "a-b" must not become a child slice of pod "a".
    assert names.pod_slice("a") == "pod-a.slice"
    assert names.pod_slice("a-b") == "pod-a\\x2db.slice"
    assert names.pod_slice("a.b_c") == "pod-a.b_c.slice"


def test_app_unit_names_are_unambiguous() -> None:
    # Any split of "x-y-z" into pod and app gives a distinct unit name.
    pairs = [("x", "y-z"), ("x-y", "z"), ("x-y-z", "a")]
    assert len({names.app_unit(pod, app) for pod, app in pairs}) == len(pairs)
    assert names.app_unit("shop", "web") == "podapp@shop:web.service"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/bin/echo", "plain"], "/bin/echo plain"),
        (["/bin/echo", "two words"], '/bin/echo "two words"'),
        (["/bin/echo", "100%"], '/bin/echo "100%%"'),
        (["/bin/echo", "$HOME", "${X}"], '/bin/echo "$$HOME" "$${X}"'),
        (["/bin/echo", ";"], "/bin/echo \\;"),
        (["/bin/echo", ""], '/bin/echo ""'),
        (["/bin/echo", 'say "hi"\\'], '/bin/echo "say \\"hi\\"\\\\"'),
        (["/bin/echo", "a\nb\tc\x01"], '/bin/echo "a\\nb\\tc\\x01"'),
    ],
    ids=["plain", "space", "specifier", "variables", "separator", "empty", "quotes", "control"],
)
def test_command_line_quoting(argv: list[str], expected: str) -> None:
    assert command_line(argv) == expected


def test_environment_quoting() -> None:
    assert quote("A=b") == "A=b"
    assert quote('A=say "100%"') == '"A=say \\"100%%\\""'


# What each isolation level confines, by the keys of the app units it generates.
CONFINEMENT = {
    "NetworkNamespacePath",
    "IPCNamespacePath",
    "PrivateDevices",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectControlGroups",
    "CapabilityBoundingSet",
    "NoNewPrivileges",
    "PrivateUsers",
    "SystemCallFilter",
}


@pytest.mark.parametrize("isolation", ["container", "fly"])
def test_a_fly_app_is_confined_by_nothing_but_its_root(isolation: str) -> None:
    text = (
        f'[pod]\nisolation = "{isolation}"\n[volume.v]\ntype = "tmpfs"\n'
        '[app.main]\nrootfs = "/srv/rootfs"\nexec = ["/bin/true"]\n'
        '[[app.main.mount]]\nvolume = "v"\npath = "/v"\n'
    )
    parsed = model.parse(text, Path("/etc/podmgr/pods/p.toml"))
    outputs = units.render(parsed, {"main": resolve.resolve_app(parsed.apps["main"], Rootfs("/r"))})
    files = {o.path: o.text for o in outputs if isinstance(o, units.GeneratedFile)}
    found = systemd_syntax.settings(files["podapp@p:main.service"])
    keys = {s.key for s in found}
    binds = [s.value for s in found if s.key == "BindReadOnlyPaths"]
    plan = json.loads(files["pod@p.service.d/podmgr-plan.json"])
    assert {"RootDirectory", "MountAPIVFS", "BindPaths"} <= keys  # its root and volume
    if isolation == "fly":
        assert keys & CONFINEMENT == set()
        assert binds == [
            "-/etc/hosts:/etc/hosts -/etc/hostname:/etc/hostname -/etc/resolv.conf:/etc/resolv.conf"
        ]
        assert (plan["isolation"], plan["network"]["mode"]) == ("fly", "host")
    else:
        assert keys >= CONFINEMENT - {"NoNewPrivileges", "PrivateUsers", "SystemCallFilter"}
        assert binds == [
            " ".join(
                f"/run/podmgr/pods/p/etc/{n}:/etc/{n}" for n in ("hosts", "hostname", "resolv.conf")
            )
        ]
        assert "isolation" not in plan  # plans of container pods are as before
