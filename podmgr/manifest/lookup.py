# SPDX-License-Identifier: LGPL-2.1-or-later
"""Finding pods: their manifests in the manifest directories, with systemd's rules.

Kept apart from the parser, so that what only needs to know which pods exist (the
service's start, podmgr logs) does not load it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from podmgr import names, paths
from podmgr.errors import NoSuchPod


def find_manifests(dirs: Sequence[Path] = paths.MANIFEST_DIRS) -> dict[str, Path]:
    """Pod name -> manifest path, applying systemd's rules across ``dirs`` (highest first):
    the first directory that has NAME.toml wins, and an empty file or a symlink to
    /dev/null there masks the pod altogether."""
    found: dict[str, Path] = {}
    masked: set[str] = set()
    for directory in dirs:
        try:
            # scandir: one read of the directory gives each entry's type, and the generator
            # looks at every manifest at each boot and daemon-reload.
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            name = entry.name.removesuffix(".toml")
            if name == entry.name or not name or name in found or name in masked:
                continue  # not NAME.toml (".toml" alone names no pod), or already decided
            if _is_dir(entry):
                continue
            if _is_mask(entry):
                masked.add(name)
            else:
                found[name] = Path(entry.path)
    return dict(sorted(found.items()))


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_mask(entry: os.DirEntry[str]) -> bool:
    try:
        if entry.is_symlink() and os.path.realpath(entry.path) == "/dev/null":
            return True
        return entry.stat().st_size == 0
    except OSError:
        return False  # a dangling symlink: loading it reports the problem


def find_pod(name: str) -> Path:
    """The manifest of pod ``name``, or NoSuchPod."""
    if not names.is_valid_name(name):
        raise NoSuchPod(f"{name!r} is not a valid pod name ({names.NAME_HINT})")
    if path := find_manifests().get(name):
        return path
    dirs = ", ".join(str(d) for d in paths.MANIFEST_DIRS)
    raise NoSuchPod(
        f"no pod {name!r}: there is no {name}.toml in {dirs} (create one; see podmgr.toml(5))"
    )
