# SPDX-License-Identifier: LGPL-2.1-or-later
"""make install: where a distribution puts things, for /usr/bin/python3, under DESTDIR."""

from __future__ import annotations

import os
import subprocess
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_make_install_honours_destdir(tmp_path: Path) -> None:
    subprocess.run(
        ["make", "-C", str(ROOT), "--no-print-directory", "install", f"DESTDIR={tmp_path}"],
        check=True,
        capture_output=True,
    )
    # As the Makefile asks: Debian's scheme for distribution packages where there is one.
    if "deb_system" in sysconfig.get_scheme_names():
        site = sysconfig.get_path("purelib", "deb_system", vars={"base": "/usr"})
    else:
        site = sysconfig.get_path("purelib", vars={"base": "/usr"})
    entry_points = [
        "usr/bin/podmgr",
        "usr/lib/systemd/system-generators/podmgr-generator",
        "usr/lib/podmgr/podmgr-pod",
    ]
    for path in entry_points:
        script = tmp_path / path
        assert script.read_text().startswith("#!/usr/bin/python3\n"), path
        assert os.access(script, os.X_OK), path
    for path in [
        "usr/lib/systemd/system/pod@.service",
        "usr/lib/systemd/system/pod.slice",
        "usr/lib/systemd/system/podmgr-auto-update.service",
        "usr/lib/systemd/system/podmgr-auto-update.timer",
        "usr/lib/systemd/system/podmgr-gc.service",
        "usr/lib/systemd/system/podmgr-gc.timer",
        "usr/share/man/man1/podmgr.1",
        "usr/share/man/man5/podmgr.toml.5",
        "usr/share/polkit-1/rules.d/50-podmgr.rules",
        "usr/lib/sysusers.d/podmgr.conf",
        "usr/lib/tmpfiles.d/podmgr.conf",
        "usr/share/doc/podmgr/examples/busybox-rootfs.sh",
        "usr/share/bash-completion/completions/podmgr",
        "usr/share/zsh/vendor-completions/_podmgr",
        "etc/podmgr/pods",
        "usr/lib/podmgr/pods",
        f"{site.lstrip('/')}/podmgr/cli/command.py",
        f"{site.lstrip('/')}/podmgr/image/transports/registry.py",
    ]:
        assert (tmp_path / path).exists(), path
    installed = subprocess.run(
        [str(tmp_path / "usr/bin/podmgr"), "validate", str(ROOT / "examples/annotated.toml")],
        env={"PYTHONPATH": str(tmp_path / site.lstrip("/")), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.stdout.endswith("annotated.toml: ok\n")
