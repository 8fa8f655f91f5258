# SPDX-License-Identifier: LGPL-2.1-or-later
"""The generator: systemd's masking rules across the manifest directories, and a bad
manifest costs only its own pod."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from podmgr import generator, lookup, units
from podmgr.errors import ManifestError, Problem

APP = '[app.main]\nrootfs = "/srv"\nexec = ["/bin/true"]\n'


@pytest.fixture
def dirs(tmp_path: Path) -> list[Path]:
    """Admin, runtime and vendor manifest directories, highest priority first."""
    found = [tmp_path / name for name in ("etc", "run", "lib")]
    for directory in found:
        directory.mkdir()
    return found


def test_earlier_directories_win(dirs: list[Path]) -> None:
    etc, run, lib = dirs
    (lib / "web.toml").write_text(APP)
    (run / "web.toml").write_text(APP)
    (lib / "db.toml").write_text(APP)
    (etc / "db.toml").write_text(APP)
    (lib / "cache.toml").write_text(APP)
    assert lookup.find_manifests(dirs) == {
        "cache": lib / "cache.toml", "db": etc / "db.toml", "web": run / "web.toml"}


def test_masking(dirs: list[Path]) -> None:
    etc, run, lib = dirs
    for name in ("empty", "null", "kept"):
        (lib / f"{name}.toml").write_text(APP)
    (etc / "empty.toml").write_text("")
    (run / "null.toml").symlink_to("/dev/null")
    assert lookup.find_manifests(dirs) == {"kept": lib / "kept.toml"}


def test_other_files_are_ignored(dirs: list[Path]) -> None:
    etc = dirs[0]
    (etc / "notes.txt").write_text(APP)
    (etc / "dir.toml").mkdir()
    (etc / "web.toml.bak").write_text(APP)
    assert lookup.find_manifests([*dirs, dirs[0] / "missing"]) == {}


def test_generate_writes_good_pods_and_logs_bad_ones(dirs: list[Path], tmp_path: Path) -> None:
    etc = dirs[0]
    (etc / "good.toml").write_text(APP + '[install]\nwanted_by = ["multi-user.target"]\n')
    (etc / "bad.toml").write_text('[app.main]\nexec = "/bin/true"\n')
    out, log = tmp_path / "out", tmp_path / "kmsg"
    assert generator.generate(out, dirs, log) == 1
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir())
    assert written == ["multi-user.target.wants/pod@good.service", "pod-good.slice",
                       "pod@good.service.d/10-podmgr.conf",
                       "pod@good.service.d/podmgr-plan.json", "podapp@good:main.service"]
    assert os.readlink(out / "multi-user.target.wants/pod@good.service") == "../pod@.service"
    plan = json.loads((out / "pod@good.service.d/podmgr-plan.json").read_text())
    assert plan["pod"] == "good"
    drop_in = (out / "pod@good.service.d/10-podmgr.conf").read_text()
    assert f"PODMGR_PLAN={out}/pod@good.service.d/podmgr-plan.json" in drop_in
    bad = etc / "bad.toml"
    assert log.read_text().splitlines() == [
        f"<3>podmgr-generator: {bad}: app.main.exec: expected an array of strings like "
        "[...], got a string"]


def test_a_bug_in_one_pod_does_not_cost_the_others(dirs: list[Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    etc = dirs[0]
    (etc / "a.toml").write_text(APP)
    (etc / "b.toml").write_text(APP)
    real = generator.outputs_for

    def broken(path: Path, output_dir: str) -> list[units.Output]:
        if path.name == "a.toml":
            raise RuntimeError("boom")
        return real(path, output_dir)

    monkeypatch.setattr(generator, "outputs_for", broken)
    assert generator.generate(tmp_path / "out", dirs, tmp_path / "kmsg") == 1
    assert (tmp_path / "out" / "podapp@b:main.service").exists()
    assert "a.toml: internal error: RuntimeError('boom')" in (tmp_path / "kmsg").read_text()


def test_main_takes_one_or_three_directories(capsys: pytest.CaptureFixture[str]) -> None:
    assert generator.main([]) == 2
    assert generator.main(["a", "b"]) == 2
    assert "usage: podmgr-generator" in capsys.readouterr().err


def test_log_falls_back_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = ManifestError("x.toml", [Problem("k", "why")])
    generator.log_problems(error, tmp_path / "no" / "such" / "kmsg")
    assert capsys.readouterr().err == "podmgr-generator: x.toml: k: why\n"
