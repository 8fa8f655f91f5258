# SPDX-License-Identifier: LGPL-2.1-or-later
"""The release tarball and the packages, built once per test session.

``tarball(factory)`` runs ``make dist``, ``debs(factory)`` ``make deb`` and
``rpms(factory)`` ``make rpm`` (each package target makes its own tarball first) into a
directory of the session's temporary directory;
each result is cached per version, so every test module of a session shares one build.
``version=`` builds a snapshot of another version from the same tree, as an upgrade
needs.

What is built is the checkout's tracked files as they are now (``git stash create``: a
commit of the working tree that touches neither it nor the index; HEAD when nothing
is changed), so the tests check the tree they run in.  Untracked files are not in a
release, so not in these builds either.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent
# The one place of the version, read as the Makefile reads it.
_written = re.search(r'^__version__ = "(.*)"$', (CHECKOUT / "podmgr/version.py").read_text(), re.M)
assert _written, "podmgr/version.py: no __version__ line"
VERSION = _written.group(1)

_built: dict[tuple[str, str], list[Path]] = {}
_logs: dict[tuple[str, str], str] = {}


def source_ref() -> str:
    """A commit of the checkout's tracked files as they are now."""
    stash = subprocess.run(
        ["git", "-C", str(CHECKOUT), "stash", "create"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return stash or "HEAD"


def _make(factory: pytest.TempPathFactory, target: str, version: str) -> list[Path]:
    """The files ``make TARGET`` printed it made, under a directory of their own."""
    key = (target, version)
    if key not in _built:
        out = factory.mktemp(f"{target}-{version}")
        done = subprocess.run(
            [
                "make",
                "-C",
                str(CHECKOUT),
                "--no-print-directory",
                target,
                f"DIST_REF={source_ref()}",
                f"DISTDIR={out}",
                f"VERSION={version}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"make {target} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
        made = [Path(line) for line in done.stdout.splitlines() if line.startswith(str(out))]
        assert made, f"make {target} named no file it made:\n{done.stdout}"
        _built[key] = made
        _logs[key] = done.stdout
    return _built[key]


def deb_log(factory: pytest.TempPathFactory, version: str = VERSION) -> str:
    """What make deb printed (dpkg-buildpackage's and lintian's output)."""
    _make(factory, "deb", version)
    return _logs[("deb", version)]


def tarball(factory: pytest.TempPathFactory, version: str = VERSION) -> Path:
    """podmgr-VERSION.tar.gz, as make dist makes it."""
    [made] = _make(factory, "dist", version)
    assert made.name == f"podmgr-{version}.tar.gz"
    return made


def debs(factory: pytest.TempPathFactory, version: str = VERSION) -> dict[str, Path]:
    """The .deb of each binary package by its name, as make deb makes them."""
    made = _make(factory, "deb", version)
    packages = {path.name.split("_")[0]: path for path in made if path.suffix == ".deb"}
    for name, path in packages.items():
        assert path.name == f"{name}_{version}_all.deb"
    return packages


def rpms(factory: pytest.TempPathFactory, version: str = VERSION) -> dict[str, Path]:
    """The .rpm of each binary package by its name, as make rpm makes them."""
    made = _make(factory, "rpm", version)
    packages = {path.name.rsplit("-", 2)[0]: path for path in made if path.suffix == ".rpm"}
    for name, path in packages.items():
        assert path.name == f"{name}-{version}-1.noarch.rpm"
    return packages
