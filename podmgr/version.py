# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr: pods declared in TOML manifests, run by systemd."""

# The one place of the version: `podmgr --version`, the man pages, the Version property
# of org.podmgr1.Manager, the release tarball (make dist) and the packages' changelogs
# take it from here.  `make dist VERSION=X` writes X here in the tarball it makes.
__version__ = "0.2.0"
