# SPDX-License-Identifier: LGPL-2.1-or-later
"""The man pages and the annotated example are rendered from the key table and the
command line; they must match what is committed (run `make docs` after a change)."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path

import pytest

from podmgr import errors
from podmgr.cli import docs

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    ("path", "render"),
    [
        ("docs/podmgr.toml.5", docs.manifest_page),
        ("docs/podmgr.1", docs.command_page),
        ("docs/org.podmgr1.5", docs.api_page),
        ("examples/annotated.toml", docs.example),
    ],
    ids=["podmgr.toml.5", "podmgr.1", "org.podmgr1.5", "annotated.toml"],
)
def test_rendered_files_are_current(path: str, render: object) -> None:
    assert callable(render)
    assert (ROOT / path).read_text() == render(), f"{path} is stale: run make docs"


@pytest.mark.skipif(not shutil.which("man"), reason="man-db is not installed")
@pytest.mark.parametrize("page", ["podmgr.toml.5", "podmgr.1", "org.podmgr1.5"])
def test_man_pages_render_without_warnings(page: str) -> None:
    result = subprocess.run(
        ["man", "--warnings", "-l", str(ROOT / "docs" / page)],
        capture_output=True,
        text=True,
        check=True,
        env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"},
    )
    assert "PODMGR" in result.stdout
    assert result.stderr == ""


def test_every_key_is_documented() -> None:
    page = docs.manifest_page()
    for _header, section in docs._all_sections():
        for key in section.keys:
            assert f"\\fB{docs._roff(key.name)}\\fR" in page


def _error_classes() -> list[type[errors.PodmgrError]]:
    """Every error class of the package, with every module imported."""
    for path in sorted((ROOT / "podmgr").rglob("*.py")):
        if path.name != "__main__.py":
            importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    found, todo = [], [errors.PodmgrError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def test_every_error_code_is_in_the_registry_and_the_man_page() -> None:
    """org.podmgr1(5) lists the codes from errors.CODES; each code there is one an error
    carries, and a code of no class would be a promise kept by nothing."""
    carried = {cls.code for cls in _error_classes()}
    assert carried == set(errors.CODES)
    page = docs.api_page()
    for code in errors.CODES:
        assert f"\\fBorg.podmgr1.Error.{code}\\fR" in page


def test_an_error_with_an_unregistered_code_fails_as_it_is_defined() -> None:
    with pytest.raises(TypeError, match=r"'Unheard' is not in podmgr\.errors\.CODES"):
        type("Strange", (errors.PodmgrError,), {"code": "Unheard"})
