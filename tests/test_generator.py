# SPDX-License-Identifier: LGPL-2.1-or-later
"""The generator: systemd's priority and masking rules across the manifest directories,
and a bad manifest costs only its own pod."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from podmgr.errors import ManifestError, Problem
from podmgr.generator import generator, units
from podmgr.manifest import lookup


@pytest.fixture
def dirs(tmp_path: Path) -> list[Path]:
    """Admin, runtime and vendor manifest directories, highest priority first."""
    found = [tmp_path / name for name in ("etc", "run", "lib")]
    for directory in found:
        directory.mkdir()
    return found


@pytest.fixture
def app(tmp_path: Path) -> str:
    """A valid [app] table whose rootfs (empty) lies under tmp_path, not on the host."""
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    return f'[app.main]\nrootfs = "{rootfs}"\nexec = ["/bin/true"]\n'


def write(directory: Path, text: str, name: str) -> Path:
    """Write the manifest NAME.toml under ``directory`` and return its path."""
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if not p.is_dir())


def test_earlier_directories_win(dirs: list[Path]) -> None:
    etc, run, lib = dirs
    for directory, name in (
        (lib, "web"),
        (run, "web"),
        (lib, "db"),
        (etc, "db"),
        (run, "cache"),
        (lib, "only-vendor"),
    ):
        write(directory, "x = 1\n", name)
    assert lookup.find_manifests(dirs) == {
        "cache": run / "cache.toml",
        "db": etc / "db.toml",
        "only-vendor": lib / "only-vendor.toml",
        "web": run / "web.toml",
    }


@pytest.mark.parametrize("mask_dir", [0, 1], ids=["in-etc", "in-run"])
@pytest.mark.parametrize("kind", ["empty-file", "dev-null-symlink"])
def test_a_mask_in_a_higher_directory_hides_the_pod(
    dirs: list[Path], mask_dir: int, kind: str
) -> None:
    lib = dirs[2]
    write(lib, "x = 1\n", "web")
    write(lib, "x = 1\n", "kept")
    mask = dirs[mask_dir] / "web.toml"
    if kind == "empty-file":
        mask.write_text("")
    else:
        mask.symlink_to("/dev/null")
    assert lookup.find_manifests(dirs) == {"kept": lib / "kept.toml"}


def test_a_mask_in_a_lower_directory_hides_nothing(dirs: list[Path]) -> None:
    etc, run, lib = dirs
    write(etc, "x = 1\n", "web")
    write(lib, "", "web")
    (run / "web.toml").symlink_to("/dev/null")
    assert lookup.find_manifests(dirs) == {"web": etc / "web.toml"}


def test_other_files_and_directories_are_ignored(dirs: list[Path]) -> None:
    etc, run, _ = dirs
    (etc / "notes.txt").write_text("x = 1\n")
    (etc / "web.toml.bak").write_text("x = 1\n")
    (etc / "dir.toml").mkdir()
    (run / "linked.toml").symlink_to(run)
    assert lookup.find_manifests([*dirs, dirs[0] / "missing", dirs[0] / "notes.txt"]) == {}


def test_generate_writes_the_units_of_a_pod(dirs: list[Path], tmp_path: Path, app: str) -> None:
    write(
        dirs[0],
        app + '[install]\nwanted_by = ["multi-user.target"]\nrequired_by = ["pods.target"]\n',
        "good",
    )
    out, log = tmp_path / "out", tmp_path / "kmsg"
    assert generator.generate(out, dirs, log) == 0
    assert files_under(out) == [
        "multi-user.target.wants/pod@good.service",
        "pod-good.slice",
        "pod@good.service.d/10-podmgr.conf",
        "pod@good.service.d/podmgr-plan.json",
        "podapp@good:main.service",
        "pods.target.requires/pod@good.service",
    ]
    for link in ("multi-user.target.wants", "pods.target.requires"):
        assert os.readlink(out / link / "pod@good.service") == "../pod@.service"
    plan = json.loads((out / "pod@good.service.d/podmgr-plan.json").read_text())
    assert plan["pod"] == "good"
    drop_in = (out / "pod@good.service.d/10-podmgr.conf").read_text()
    assert f"Environment=PODMGR_PLAN={out}/pod@good.service.d/podmgr-plan.json\n" in drop_in
    assert "Wants=podapp@good:main.service\n" in drop_in
    assert "ExecStart=/bin/true\n" in (out / "podapp@good:main.service").read_text()
    assert not log.exists()


def test_generate_skips_a_bad_pod_and_writes_the_others(
    dirs: list[Path], tmp_path: Path, app: str
) -> None:
    etc, _, lib = dirs
    write(etc, app, "good")
    write(lib, app.replace("main", "other"), "also-good")
    bad = write(etc, '[app.main]\nexec = "/bin/true"\n[pod]\nhostnme = "x"\n', "bad")
    out, log = tmp_path / "out", tmp_path / "kmsg"
    assert generator.generate(out, dirs, log) == 1
    written = files_under(out)
    assert "podapp@good:main.service" in written
    assert "podapp@also-good:other.service" in written
    assert not [name for name in written if "bad" in name]
    assert log.read_text().splitlines() == [
        f"<3>podmgr-generator: {bad}: app.main.exec: expected an array of strings like [...], "
        "got a string",
        f"<3>podmgr-generator: {bad}: pod.hostnme: unknown key (did you mean hostname?)",
    ]


def test_every_bad_pod_is_logged(dirs: list[Path], tmp_path: Path) -> None:
    first = write(dirs[0], "x = \n", "first")
    second = write(dirs[0], "y = \n", "second")
    log = tmp_path / "kmsg"
    assert generator.generate(tmp_path / "out", dirs, log) == 2
    logged = log.read_text()
    assert f"{first}: line 1, column 5" in logged
    assert f"{second}: line 1, column 5" in logged


def test_a_bug_in_one_pod_does_not_cost_the_others(
    dirs: list[Path], tmp_path: Path, app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = write(dirs[0], app, "a")
    write(dirs[0], app, "b")
    real = generator.outputs_for

    def broken(path: Path, output_dir: str) -> list[units.Output]:
        if path == a:
            raise RuntimeError("boom")
        return real(path, output_dir)

    monkeypatch.setattr(generator, "outputs_for", broken)
    assert generator.generate(tmp_path / "out", dirs, tmp_path / "kmsg") == 1
    assert (tmp_path / "out" / "podapp@b:main.service").exists()
    assert (
        tmp_path / "kmsg"
    ).read_text() == f"<3>podmgr-generator: {a}: internal error: RuntimeError('boom')\n"


@pytest.mark.parametrize(
    "argv", [[], ["a", "b"], ["a", "b", "c", "d"]], ids=["none", "two", "four"]
)
def test_main_wants_one_or_three_directories(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert generator.main(argv) == 2
    assert capsys.readouterr().err == "usage: podmgr-generator NORMAL_DIR [EARLY_DIR LATE_DIR]\n"


def test_the_log_falls_back_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = ManifestError("x.toml", [Problem("k", "why"), Problem("", "bad name")])
    generator.log_problems(error, tmp_path / "no" / "such" / "kmsg")
    assert (
        capsys.readouterr().err
        == "podmgr-generator: x.toml: k: why\npodmgr-generator: x.toml: bad name\n"
    )
