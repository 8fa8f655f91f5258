# SPDX-License-Identifier: LGPL-2.1-or-later
"""``python3 -m podmgr``: the podmgr command, for running from a checkout."""

import sys

from podmgr.cli.command import main

sys.exit(main())
