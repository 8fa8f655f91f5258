# SPDX-License-Identifier: LGPL-2.1-or-later
"""Running other programs: the one place podmgr starts a process.

Always an argv list (never a shell), with a minimal environment and LANG=C.UTF-8 so
output is parseable whatever the caller's locale; `--debug` logs each command.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Sequence
from typing import NoReturn

log = logging.getLogger(__name__)

ENVIRONMENT = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}


def run(argv: Sequence[str]) -> str:
    """Run ``argv`` and return its output; raise CalledProcessError if it fails."""
    log.debug("+ %s", shlex.join(argv))
    return subprocess.run(argv, env=ENVIRONMENT, capture_output=True, text=True, check=True).stdout


def replace_with(argv: Sequence[str]) -> NoReturn:
    """Become ``argv`` (for pagers and followers such as journalctl -f), keeping the
    caller's environment so its terminal settings apply."""
    log.debug("+ exec %s", shlex.join(argv))
    os.execvp(argv[0], list(argv))  # noqa: S606 -- argv list, no shell
