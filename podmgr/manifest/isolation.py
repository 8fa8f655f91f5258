# SPDX-License-Identifier: LGPL-2.1-or-later
"""Isolation levels ([pod] isolation): what each level cannot honour, and the manifest as
the level runs it.  A further level is one more branch in each of the two functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from podmgr.errors import Problem
from podmgr.manifest.schema import Isolation, NetworkMode
from podmgr.values import toml_key

if TYPE_CHECKING:  # model imports this module
    from podmgr.manifest.model import App, Manifest

# A fly pod's apps live in the host's namespaces with full privileges:
# the keys below describe a pod's own network and an app's confinement, so with "fly" they
# could mean nothing and are refused, each with what to do instead.
_FLY_REFUSED_POD: tuple[tuple[str, Callable[[Manifest], bool]], ...] = (
    ("network.networks", lambda m: bool(m.network.networks)),
    ("network.ports", lambda m: bool(m.network.ports)),
    ("network.dns", lambda m: bool(m.network.dns)),
    ("network.dns_search", lambda m: bool(m.network.dns_search)),
    ("network.hosts", lambda m: bool(m.network.hosts)),
    ("pod.hostname", lambda m: m.pod.hostname is not None),
)
_FLY_REFUSED_APP: tuple[tuple[str, Callable[[App], bool]], ...] = (
    ("capabilities_retain", lambda a: a.capabilities_retain is not None),
    ("capabilities_remove", lambda a: bool(a.capabilities_remove)),
    ("no_new_privileges", lambda a: a.no_new_privileges),
    ("private_users", lambda a: a.private_users),
    ("system_call_filter", lambda a: bool(a.system_call_filter)),
)


def check(manifest: Manifest, raw: dict[str, object]) -> list[Problem]:
    """The keys an isolation level cannot honour.  ``raw`` (the file's TOML) tells a
    network.mode written in the file, refused with "fly" unless it is "host", from the
    default one, which a fly pod does not get either."""
    if manifest.pod.isolation is not Isolation.FLY:
        return []
    fix = 'with isolation = "fly" the apps use the host\'s'
    problems = []
    network = raw.get("network")
    if isinstance(network, dict) and "mode" in network and manifest.network.mode != "host":
        problems.append(Problem("network.mode", f'{fix} network (remove it, or set it to "host")'))
    for key, is_set in _FLY_REFUSED_POD:
        if is_set(manifest):
            what = "network and /etc files" if key.startswith("network") else "/etc/hostname"
            problems.append(
                Problem(key, f'{fix} {what} (remove it, or set isolation = "container")')
            )
    for app in manifest.apps.values():
        for key, app_is_set in _FLY_REFUSED_APP:
            if app_is_set(app):
                problems.append(
                    Problem(
                        f"app.{toml_key(app.name)}.{key}",
                        'with isolation = "fly" the apps have every privilege (remove it, '
                        'or set isolation = "container")',
                    )
                )
    return problems


def applied(manifest: Manifest) -> Manifest:
    """The manifest as its isolation level runs it: a fly pod is on the host's network."""
    if manifest.pod.isolation is Isolation.FLY:
        return replace(manifest, network=replace(manifest.network, mode=NetworkMode.HOST))
    return manifest
