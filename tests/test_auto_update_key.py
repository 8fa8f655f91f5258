# SPDX-License-Identifier: LGPL-2.1-or-later
"""The auto_update key, the [auto_update] settings and the parts of podmgr auto-update
that need no system: which apps are updated, how a run's rows read, the command's exit
status."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podmgr import config
from podmgr.bus import api
from podmgr.bus.autoupdate import targets_of
from podmgr.cli import autoupdate as cli
from podmgr.errors import ManifestError
from podmgr.image.autoupdate import Outcome, Result, Target, by_pod
from podmgr.manifest import model


def load(tmp_path: Path, text: str, name: str = "web") -> model.Manifest:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return model.load(path)


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(ManifestError) as refused:
        load(tmp_path, text)
    return str(refused.value)


def test_auto_update_takes_registry_for_an_image_by_tag(tmp_path: Path) -> None:
    pod = load(
        tmp_path,
        '[app.a]\nimage = "example.org/a:1"\nauto_update = "registry"\n'
        '[app.b]\nimage = "example.org/b:1"\n',
    )
    assert pod.apps["a"].auto_update == "registry"
    assert pod.apps["b"].auto_update is None
    assert targets_of([pod]) == [Target("web", "a", "example.org/a:1")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[app.a]\nrootfs = "/srv"\nexec = ["/bin/true"]\nauto_update = "registry"\n',
            "app.a.auto_update: only an app with an image is updated (remove it)",
        ),
        (
            f'[app.a]\nimage = "example.org/a@sha256:{"0" * 64}"\nauto_update = "registry"\n',
            "names its image by digest, which never changes (name it by a tag, or remove "
            "auto_update)",
        ),
        (
            '[app.a]\nimage = "example.org/a:1"\nauto_update = "local"\n',
            "app.a.auto_update: 'local' is not valid (use one of \"registry\")",
        ),
        (
            '[app.a]\nimage = "example.org/a:1"\nauto_update = true\n',
            "app.a.auto_update:",
        ),
    ],
)
def test_auto_update_refuses_what_cannot_update(tmp_path: Path, text: str, message: str) -> None:
    found = problems(tmp_path, text)
    assert message in found
    assert "\n" not in found


def test_the_timeout_in_podmgr_toml(tmp_path: Path) -> None:
    path = tmp_path / "podmgr.toml"
    assert config.load(path).auto_update.timeout == 120 * 10**6
    path.write_text('[auto_update]\ntimeout = "45s"\n')
    assert config.load(path).auto_update.timeout == 45 * 10**6
    path.write_text('[auto_update]\ntimeout = "-1"\n')
    with pytest.raises(ManifestError, match=r"auto_update\.timeout"):
        config.load(path)


names = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)


@given(
    st.lists(
        st.tuples(names, names, st.sampled_from(["example.org/a:1", "example.org/b:2"])),
        max_size=12,
    )
)
def test_each_pod_is_restarted_once_for_all_its_apps(
    apps: list[tuple[str, str, str]],
) -> None:
    """by_pod groups every target under its pod once, keeping their order."""
    targets = [Target(pod, app, image) for pod, app, image in apps]
    grouped = by_pod(targets)
    assert list(grouped) == list(dict.fromkeys(t.pod for t in targets))
    assert [t for group in grouped.values() for t in group] == sorted(
        targets, key=lambda t: list(grouped).index(t.pod)
    )


@given(st.sampled_from(list(Result)), st.text(max_size=20))
def test_a_row_is_what_the_reply_documents(result: Result, reason: str) -> None:
    outcome = Outcome(Target("web", "a", "example.org/a:1"), "sha256:1", "sha256:2", result, reason)
    row = outcome.row()
    assert api.MANAGER.method_index["AutoUpdate"].out_signature == f"a({'s' * len(row)})"
    assert row[:5] == ["web", "a", "example.org/a:1", "sha256:1", "sha256:2"]
    assert row[5] == (f"{result}: {reason}" if reason else str(result))
    # What the command counts as failed is what the service marks failed.
    assert row[5].startswith(cli.FAILURES) == outcome.failed()
    assert f'"{result}' in api.MANAGER.method_index["AutoUpdate"].doc


def test_the_reply_signature() -> None:
    method = api.MANAGER.method_index["AutoUpdate"]
    assert method.in_signature == "b"
    assert method.out_signature == "a(ssssss)"
    assert (method.action, method.also) == (api.MANAGE_PODS, api.MANAGE_IMAGES)
    assert f"The caller needs polkit action {api.MANAGE_IMAGES} too." in method.doc


class Units:
    """systemd as came_up() asks it: each unit's ActiveState, from a script of states
    per poll (the last one stays); a unit the script does not name is inactive."""

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = script
        self.polls: dict[str, int] = {}

    async def unit_properties(self, unit: str) -> dict[str, str]:
        seen = self.polls[unit] = self.polls.get(unit, -1) + 1
        states = self.script.get(unit, ["inactive"])
        return {"ActiveState": states[min(seen, len(states) - 1)]}


def wait(
    script: dict[str, list[str]], timeout: float, apps: list[str], checks: Sequence[str] = ()
) -> str | None:
    """came_up() over ``script``; ``checks``: the health the app's state files give at each
    read (the last one stays)."""
    import asyncio  # noqa: PLC0415
    from typing import cast  # noqa: PLC0415

    from podmgr.bus import autoupdate  # noqa: PLC0415
    from podmgr.bus.systemd import Systemd  # noqa: PLC0415
    from podmgr.runtime import health  # noqa: PLC0415

    reads = iter([*checks[:-1], *[checks[-1]] * 10**6] if checks else [])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(autoupdate, "SETTLE", 0.05)
        patch.setattr(autoupdate, "POLL", 0.01)
        patch.setattr(autoupdate, "_apps", lambda pod: apps)
        patch.setattr(health, "status", lambda runtime, app: health.Status(next(reads)))
        return asyncio.run(autoupdate.came_up(cast(Systemd, Units(script)), "web", timeout))


POD, APP, TIMER = "pod@web.service", "podapp@web:a.service", "podhealth@web:a.timer"


def test_up_is_every_unit_active_for_a_while() -> None:
    assert wait({POD: ["activating", "active"], APP: ["activating", "active"]}, 5, ["a"]) is None


def test_an_app_that_fails_is_down_at_once() -> None:
    """An app active for a moment, then failed (a command that exits at once)."""
    why = wait({POD: ["active"], APP: ["active", "active", "failed"]}, 60, ["a"])
    assert why == f"{APP} is failed (see journalctl -u {APP})"


def test_an_app_that_never_settles_is_down_at_the_timeout() -> None:
    why = wait({POD: ["active"], APP: ["activating"]}, 0.2, ["a"])
    assert why == f"{APP} is still activating after 0.2s"
    why = wait({POD: ["active"], APP: ["active", "activating"] * 1000}, 0.2, ["a"])
    assert why is not None
    assert why.endswith("after 0.2s")


def test_a_pod_without_a_plan_is_judged_by_its_unit() -> None:
    assert wait({POD: ["inactive"]}, 5, []) == f"{POD} is inactive (see journalctl -u {POD})"


def test_an_app_with_a_check_is_up_once_healthy() -> None:
    units = {POD: ["active"], APP: ["active"], TIMER: ["active"]}
    assert wait(units, 5, ["a"], ["starting", "starting", "healthy"]) is None
    why = wait(units, 0.2, ["a"], ["starting"])
    assert why == f"{APP} is still starting after 0.2s"


def test_an_app_that_turns_unhealthy_is_down_at_once() -> None:
    units = {POD: ["active"], APP: ["active"], TIMER: ["active"]}
    why = wait(units, 60, ["a"], ["starting", "unhealthy"])
    assert why == f"{APP} is unhealthy (see journalctl -u podhealth@web:a.service)"
