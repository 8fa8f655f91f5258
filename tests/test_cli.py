# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr validate: problems refuse, warnings only tell."""

from __future__ import annotations

from pathlib import Path

import pytest

from podmgr.bus import client
from podmgr.cli import command
from podmgr.network import definitions

APP = '[app.main]\nrootfs = "/srv/rootfs"\nexec = ["/bin/true"]\n'


@pytest.fixture(autouse=True)
def network_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "networks"
    directory.mkdir()
    (directory / "backend.toml").write_text('subnet = "10.88.0.0/24"\n')
    monkeypatch.setattr(definitions, "NETWORKS_DIR", directory)
    return directory


def validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    path = tmp_path / "web.toml"
    path.write_text(text)
    code = command.main(["validate", str(path)])
    out, err = capsys.readouterr()
    return code, out, err.replace(str(path), "web.toml")


def test_an_undefined_network_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = validate(tmp_path, '[network]\nmode = "frontend"\n' + APP, capsys)
    assert code == 0
    assert out.endswith(": ok\n")
    assert err == (
        f"web.toml: warning: network: network frontend is not defined (create "
        f"{tmp_path}/networks/frontend.toml with at least subnet = "
        '"10.88.0.0/16")\n'
    )


@pytest.mark.parametrize(
    "network", ['mode = "backend"', 'mode = "bridge"', 'mode = "bridge"\nnetworks = ["backend"]']
)
def test_defined_networks_pass_silently(
    tmp_path: Path, network: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert validate(tmp_path, f"[network]\n{network}\n" + APP, capsys)[::2] == (0, "")


def test_ports_on_the_hosts_network_are_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = validate(tmp_path, '[network]\nmode = "host"\nports = ["80:80"]\n' + APP, capsys)
    assert code == 0
    assert err.startswith('web.toml: warning: network.ports: ignored with mode = "host"')


def test_a_problem_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = validate(tmp_path, '[network]\nmode = "Bridge"\n' + APP, capsys)
    assert (code, out) == (1, "")
    assert err.startswith("web.toml: network.mode: 'Bridge' is not valid")


BAD_ARGUMENTS = [
    ["status", "../x"],
    ["start", ""],
    ["stop", "a" * 64],
    ["restart", "pöd"],
    ["logs", "web", "--app", "../x"],
    ["logs", "../../etc"],
    ["image", "inspect", "a" * 100_000],
    ["image", "rm", "ok", "../../x"],
    ["image", "pull", "ftp://x"],
    ["image", "pull", "busybox", "--name", "../X"],
    ["image", "import", "oci:/x", "--name", "Bad Name"],
    ["image", "import", "x" * 5000],
    ["network", "rm", "../../../var/tmp/x"],
    ["network", "rm", "ok", "nét"],
    ["trust", "rm", "xyz"],
    ["trust", "rm", "0" * 40, "--prefix", "../.."],
    ["trust", "add", "--prefix", "a/../b", "key.asc"],
]


@pytest.mark.parametrize("argv", BAD_ARGUMENTS, ids=lambda argv: " ".join(argv)[:40])
def test_bad_names_are_usage_errors_before_the_bus(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def no_bus(self: object) -> None:
        raise AssertionError("the bus was called")

    monkeypatch.setattr(client.Client, "__aenter__", no_bus)
    assert command.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("podmgr: ")
    assert err.count("\n") == 1
    assert len(err) < 300
