# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hostile image configs against a real systemd (in a bed): an injection in WorkingDir is
refused by validate and the generator and nothing runs; control characters an app may
legitimately get (its arguments, its environment) reach its process byte for byte."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
from bed import Bed

pytestmark = pytest.mark.integration

CHECKOUT = Path(__file__).resolve().parent.parent
ROOTFS = "/tmp/rootfs"
# An injected command says so on its standard output, which the journal keeps.
INJECTED = "injected-and-ran-as-root"
INJECTION = f"/\r[Service]\rExecStartPre=+/bin/echo {INJECTED}"
# What the app must get, byte for byte: C0, DEL, C1, a line separator, quotes, $ and %.
ARGUMENT = "a\rb\x1b[0m\x7f\x85\u2028 \"q\" 'q' $HOME %h \\ ;"
VALUE = "hi\r\nthere\x01\u2029$USER%i"
# The app prints both in hex, one byte a word, so the journal's line holds no control byte.
SCRIPT = (
    'printf "%s" "$1" | od -An -v -tx1 | tr -s " \\n" " "; echo; '
    'printf "%s" "$GREETING" | od -An -v -tx1 | tr -s " \\n" " "; echo; exec sleep infinity'
)

BUILD = f"""
import sys
sys.path.insert(0, "{CHECKOUT}/tests")
from pathlib import Path
import imagebuild as ib
base = ib.tar(ib.tree(Path("{ROOTFS}")))
ib.write_layout(Path("/tmp/layout"), {{
    "hostile": ib.Image([base], "gzip", {{"Cmd": ["/bin/sleep", "infinity"],
                                         "WorkingDir": {INJECTION!r}}}),
    "escaped": ib.Image([base], "gzip", {{"Entrypoint": ["/bin/sh", "-c", {SCRIPT!r}, "sh",
                                                        {ARGUMENT!r}],
                                         "Env": [{"GREETING=" + VALUE!r}]}}),
}})
"""


def hex_words(text: str) -> str:
    return " ".join(f"{byte:02x}" for byte in text.encode())


def test_hostile_image_configs(bed: Bed) -> None:
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run("/usr/bin/python3", "-c", BUILD)
    bed.run(
        "sh",
        "-c",
        "mkdir -p /etc/podmgr/pods && cat > /etc/podmgr/podmgr.toml",
        input='[images]\ninsecure = ["example.test"]\n',
    )
    for tag in ("hostile", "escaped"):
        bed.run(
            "podmgr",
            "image",
            "import",
            f"oci:/tmp/layout:{tag}",
            "--name",
            f"example.test/{tag}:1",
            timeout=120,
        )
        bed.run(
            "sh",
            "-c",
            f"cat > /etc/podmgr/pods/{tag}.toml",
            input=textwrap.dedent(f"""\
                    [app.web]
                    image = "example.test/{tag}:1"
                    """),
        )
    bed.run("systemctl", "daemon-reload")

    # The injection: validate names the image's field, and the generator wrote no unit.
    refused = bed.run("podmgr", "validate", "/etc/podmgr/pods/hostile.toml", check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "/etc/podmgr/pods/hostile.toml: app.web.image: image example.test/hostile:1 config "
        "WorkingDir '/\\r[Service]\\rExecStartPre=+/...-root' contains white space, a control "
        "character"
    )
    assert len(refused.stderr.splitlines()) == 1
    assert (
        bed.run(
            "systemctl", "show", "--value", "-p", "LoadState", "podapp@hostile:web.service"
        ).stdout.strip()
        == "not-found"
    )
    bed.run("systemctl", "start", "pod@hostile.service", check=False)
    time.sleep(2)  # the pod's apps start after it, when they exist
    assert (
        INJECTED not in bed.run("journalctl", "--no-pager", "-o", "cat", "_TRANSPORT=stdout").stdout
    )
    bed.run("systemctl", "stop", "pod@hostile.service", check=False)

    # What an app may get is escaped, and systemd gives it back exactly.
    bed.run("systemctl", "start", "pod@escaped.service")
    expected = [hex_words(ARGUMENT), hex_words(VALUE)]
    deadline = time.monotonic() + 15
    while True:
        lines = [
            line.strip()
            for line in bed.run(
                "journalctl", "--no-pager", "-o", "cat", "_TRANSPORT=stdout", "PODMGR_POD=escaped"
            ).stdout.splitlines()
            if line.strip()
        ]
        if len(lines) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert lines[:2] == expected
    bed.run("systemctl", "stop", "pod@escaped.service")
