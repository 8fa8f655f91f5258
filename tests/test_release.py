# SPDX-License-Identifier: LGPL-2.1-or-later
"""Which app units of a pod still run, read from a cgroup tree as systemd lays it out."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podmgr import names
from podmgr.errors import PrepareError
from podmgr.runtime import prepare

NAMES = st.from_regex(names.NAME_PATTERN, fullmatch=True)


def make_unit(root: Path, pod: str, unit: str, procs: str, nested: bool = False) -> None:
    directory = root / names.PARENT_SLICE / names.pod_slice(pod) / unit
    if nested:  # a unit's processes may sit in a sub-cgroup of its own (Delegate=)
        directory = directory / "payload"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cgroup.procs").write_text(procs)


@given(
    pod=NAMES,
    apps=st.dictionaries(NAMES, st.tuples(st.booleans(), st.booleans()), max_size=5),
    neighbour_app=NAMES,
)
def test_running_apps_are_those_with_processes(
    pod: str, apps: dict[str, tuple[bool, bool]], neighbour_app: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for app, (running, nested) in apps.items():
            make_unit(root, pod, names.app_unit(pod, app), "42\n" if running else "", nested)
        # The pod's own unit, and pods whose names extend this one's, never count.
        make_unit(root, pod, names.pod_unit(pod), "7\n")
        for other in (f"{pod}-x"[:63], f"{pod}x"[:63]):
            if other != pod:
                make_unit(root, other, names.app_unit(other, neighbour_app), "9\n")
        expected = sorted(names.app_unit(pod, app) for app, (running, _) in apps.items() if running)
        assert prepare.running_apps(pod, root) == expected


def test_release_refuses_while_an_app_runs(tmp_path: Path) -> None:
    cgroups = tmp_path / "cgroup"
    make_unit(cgroups, "web", names.app_unit("web", "gone"), "42\n")
    runtime = tmp_path / "run"
    (runtime / "web").mkdir(parents=True)
    with pytest.raises(
        PrepareError,
        match=r"^pod web: podapp@web:gone.service still runs, so "
        r"its root file system stays mounted \(stop the pod: systemctl stop "
        r"pod@web.service\)$",
    ):
        prepare.release("web", runtime, cgroups)
    assert (runtime / "web").is_dir(), "nothing was removed"


def test_release_of_a_pod_never_prepared_reads_nothing(tmp_path: Path) -> None:
    """Without its runtime directory a pod has nothing to release, and release returns
    before reading the cgroups (or the leases, or the mount table): a unit of that name
    with processes in it does not make it refuse."""
    cgroups = tmp_path / "cgroup"
    make_unit(cgroups, "web", names.app_unit("web", "other"), "42\n")
    prepare.release("web", tmp_path / "run", cgroups)
    assert not (tmp_path / "run").exists()
