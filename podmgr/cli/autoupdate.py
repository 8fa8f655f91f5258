# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr auto-update: a client of org.podmgr1's AutoUpdate, which does the work (and
which podmgr-auto-update.service runs through this command)."""

from __future__ import annotations

import argparse

from podmgr.bus.client import Client
from podmgr.cli import output

# The results AutoUpdate replies that mean something went wrong (image/autoupdate.py).
FAILURES = ("rolled-back", "failed")


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12] or "-"


async def cmd_auto_update(args: argparse.Namespace) -> int:
    async with Client() as client:
        rows = await client.call("AutoUpdate", args.dry_run)
    failed = any(result.startswith(FAILURES) for *_, result in rows)
    if args.json:
        output.print_json(
            [
                {"pod": pod, "app": app, "image": image, "old": old, "new": new, "result": result}
                for pod, app, image, old, new, result in rows
            ]
        )
        return 1 if failed else 0
    if not rows:
        print(
            'No app to update. Set auto_update = "registry" in an [app.NAME] that runs an '
            "image by tag (see podmgr.toml(5))."
        )
        return 0
    width = max(len(f"{pod}/{app}") for pod, app, *_ in rows)
    image_width = max(len(image) for _, _, image, *_ in rows)
    print(f"{'POD/APP':<{width}}  {'IMAGE':<{image_width}}  {'OLD -> NEW':<28}  RESULT")
    for pod, app, image, old, new, result in rows:
        change = f"{_short(old)} -> {_short(new)}"
        print(f"{pod + '/' + app:<{width}}  {image:<{image_width}}  {change:<28}  {result}")
    return 1 if failed else 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    update = sub.add_parser(
        "auto-update",
        help='pull newer images of apps with auto_update = "registry" and restart their '
        "pods on them, rolling back a pod that does not come up",
        description="Ask each registry for the images of the apps with auto_update = "
        '"registry"; pull those that changed (verified as podmgr image pull verifies), '
        "restart each running pod with a changed image once, and restore the previous "
        "images of a pod that is not active within [auto_update] timeout. Exit status 1 "
        "when something was rolled back or failed.",
    )
    update.add_argument(
        "--dry-run",
        action="store_true",
        help="only ask the registries for newer images: pull nothing, restart nothing",
    )
    update.add_argument("--json", action="store_true", help="print JSON")
    update.set_defaults(handler=cmd_auto_update)
