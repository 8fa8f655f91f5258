# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the commands print: JSON for --json, one shape for all of them."""

from __future__ import annotations

import json
import sys


def print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
