# SPDX-License-Identifier: LGPL-2.1-or-later
"""A prepared pod's plan, read in one place by everything that asks what runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podmgr import paths
from podmgr.runtime import prepare


def _prepare(base: Path, pod: str, lowerdirs: list[str]) -> None:
    runtime = paths.PodRuntime(pod, base)
    runtime.dir.mkdir(parents=True)
    runtime.plan.write_text(
        json.dumps({"pod": pod, "apps": [{"name": "main", "lowerdirs": lowerdirs}]})
    )


def test_prepared_pods_are_those_with_a_plan(tmp_path: Path) -> None:
    _prepare(tmp_path, "web", ["/var/lib/podmgr/layers/sha256/aa"])
    _prepare(tmp_path, "db", ["/var/lib/podmgr/layers/sha256/bb", "/srv/db"])
    (tmp_path / "released").mkdir()  # a runtime dir release has not removed yet
    prepared = paths.prepared_pods(tmp_path)
    assert [pod.pod for pod in prepared] == ["db", "web"]
    assert prepared[1].read_plan()["apps"][0]["name"] == "main"
    assert prepare.layers_in_use(tmp_path) == {"aa", "bb", "db"}


def test_a_plan_that_is_not_json_is_an_error_not_an_empty_plan(tmp_path: Path) -> None:
    """gc must not take a plan it cannot read for a pod that uses no layers."""
    _prepare(tmp_path, "web", [])
    paths.PodRuntime("web", tmp_path).plan.write_text("{")
    with pytest.raises(json.JSONDecodeError):
        prepare.layers_in_use(tmp_path)
    with pytest.raises(FileNotFoundError):
        paths.PodRuntime("gone", tmp_path).read_plan()
