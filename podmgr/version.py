# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr: pods declared in TOML manifests, run by systemd."""

__version__ = "0.1.0"
