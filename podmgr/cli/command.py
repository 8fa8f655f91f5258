# SPDX-License-Identifier: LGPL-2.1-or-later
"""The podmgr command.

``validate`` and ``render`` work offline on manifest files; the other commands ask
systemd, which owns the pods' lifecycle.  Errors are one line on stderr and exit code 1;
usage errors exit 2; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from podmgr import names, process
from podmgr.bus import api, arguments
from podmgr.bus.client import Client
from podmgr.cli import autoupdate, enter, images, networks, output
from podmgr.errors import ManifestError, PodmgrError
from podmgr.generator import generator, units
from podmgr.manifest import lookup, model
from podmgr.network import definitions
from podmgr.values import Port
from podmgr.version import __version__

log = logging.getLogger("podmgr")


def cmd_validate(args: argparse.Namespace) -> int:
    failed = 0
    for file in args.files:
        try:
            pod = model.load(Path(file))
            generator.outputs_of(pod)
        except ManifestError as error:
            print(error, file=sys.stderr)
            failed += 1
        else:
            for warning in _warnings(pod):
                print(f"{file}: warning: {warning}", file=sys.stderr)
            print(f"{file}: ok")
    return 1 if failed else 0


def _warnings(pod: model.Manifest) -> list[str]:
    """What would fail or be ignored at start, though the manifest is valid."""
    found = [str(problem) for problem in model.warnings(pod)]
    for name in pod.network.joined:
        try:
            definitions.load(name)
        except PodmgrError as error:
            found.append(f"network: {error}")
    return found


def format_outputs(outputs: list[units.Output]) -> str:
    """The generator's files as `podmgr render` shows them: each under a "# PATH" line."""
    parts = []
    for generated in outputs:
        if isinstance(generated, units.Symlink):
            parts.append(f"# {generated.path} -> {generated.target}\n")
        else:
            parts.append(f"# {generated.path}\n{generated.text}")
    return "\n".join(parts)


def cmd_render(args: argparse.Namespace) -> int:
    sys.stdout.write(format_outputs(generator.outputs_for(Path(args.file))))
    return 0


def problem_lines(manifest_path: str, problems: list[list[str]]) -> list[str]:
    """A pod's problems as podmgr validate prints them: FILE: KEY: message."""
    return [
        f"{manifest_path}: {where + ': ' if where else ''}{message}" for where, message in problems
    ]


async def cmd_list(args: argparse.Namespace) -> int:
    async with Client() as client:
        found = await client.call("ListPods")
        # Why each invalid pod is: a manifest that silently vanishes helps nobody.
        invalid = {
            name: await client.properties(path, api.POD)
            for name, state, path in found
            if state == "invalid"
        }
        health = await _health(client, found)
    if args.json:
        output.print_json(
            [
                {
                    "name": name,
                    "state": state,
                    "unit": names.pod_unit(name),
                    "object": path,
                    "health": health.get(name, ""),
                    "problems": [
                        {"key": where, "message": message}
                        for where, message in invalid.get(name, {}).get("Problems", [])
                    ],
                }
                for name, state, path in found
            ]
        )
        return 0
    if not found:
        print("No pods. Add a manifest to /etc/podmgr/pods/ (see podmgr.toml(5)).")
        return 0
    width = max(len(name) for name, _, _ in found)
    print(f"{'POD':<{width}}  {'STATE':<12}  {'HEALTH':<9}  UNIT")
    for name, state, _ in found:
        shown = health.get(name) or "-"
        print(f"{name:<{width}}  {state:<12}  {shown:<9}  {names.pod_unit(name)}")
        if name in invalid:
            for line in problem_lines(invalid[name]["ManifestPath"], invalid[name]["Problems"]):
                print(f"{'':<{width}}  {line}")
    return 0


async def _health(client: Client, found: list[tuple[str, str, str]]) -> dict[str, str]:
    """The Health of each pod that runs (a stopped pod has none): one read each, all
    sent at once, so that a hundred pods cost about one round trip, not a hundred."""
    running = [
        (name, path)
        for name, state, path in found
        if state in ("active", "activating", "deactivating", "reloading")
    ]
    read = await asyncio.gather(*(client.property(path, api.POD, "Health") for _, path in running))
    return {name: health for (name, _), health in zip(running, read, strict=True)}


async def cmd_status(args: argparse.Namespace) -> int:
    async with Client() as client:
        path = await client.call("GetPod", args.pod)
        status = await client.properties(path, api.POD)
    if args.json:
        output.print_json({"object": path, **status})
        return 0
    print(f"pod {status['Name']}: {status['State']}")
    app_health = dict(status["AppHealth"])
    rows = [
        ("Manifest", status["ManifestPath"]),
        ("Unit", status["Unit"]),
        ("Slice", names.pod_slice(args.pod)),
    ]
    rows += [
        ("Addresses" if i == 0 else "", address) for i, address in enumerate(status["Addresses"])
    ]
    rows += [("Health", status["Health"])] if status["Health"] else []
    rows += [("Images" if i == 0 else "", image) for i, image in enumerate(status["Images"])]
    rows += [
        ("Ports" if i == 0 else "", str(Port(*port))) for i, port in enumerate(status["Ports"])
    ]
    rows += [
        ("Annotations" if i == 0 else "", f"{key}={value}")
        for i, (key, value) in enumerate(sorted(status["Annotations"].items()))
    ]
    problems = problem_lines(status["ManifestPath"], status["Problems"])
    rows += [("Problems" if i == 0 else "", line) for i, line in enumerate(problems)]
    apps = status["Apps"]
    name_width = max((len(name) for name, _, _ in apps), default=0)
    unit_width = max((len(unit) for _, unit, _ in apps), default=0)
    rows += [
        (
            "Apps" if i == 0 else "",
            f"{name:<{name_width}}  {unit:<{unit_width}}  {state}"
            + (f" ({app_health[name]})" if app_health.get(name) else ""),
        )
        for i, (name, unit, state) in enumerate(apps)
    ]
    for label, value in rows:
        print(f"{label + ':' if label else '':>12} {value}")
    return 0


async def cmd_cat(args: argparse.Namespace) -> int:
    """As systemctl cat: each file under a "# PATH" line, as the service read it."""
    async with Client() as client:
        shown = []
        for pod in args.pods:
            path = await client.call("GetPod", pod)
            status = await client.properties(path, api.POD)
            if not status["ManifestDigest"]:
                raise PodmgrError(
                    f"{status['ManifestPath']}: permission denied (it is not readable by "
                    "you; run podmgr cat as its owner or as root)"
                )
            text = status["Manifest"].removesuffix("\n")  # each file ends in one newline
            shown.append(f"# {status['ManifestPath']}\n{text}\n")
    sys.stdout.write("\n".join(shown))
    return 0


async def cmd_job(args: argparse.Namespace) -> int:
    async with Client() as client:
        await client.call(
            {"start": "StartPod", "stop": "StopPod", "restart": "RestartPod"}[args.command],
            args.pod,
        )
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    lookup.find_pod(args.pod)
    argv = ["journalctl", f"PODMGR_POD={args.pod}"]
    if args.app:
        argv.append(f"PODMGR_APP={args.app}")
    if args.follow:
        argv.append("--follow")
    if args.lines is not None:
        argv.append(f"--lines={args.lines}")
    sys.stdout.flush()
    process.replace_with(argv)  # journalctl pages and follows as its users know


Handler = Callable[[argparse.Namespace], int | Coroutine[Any, Any, int]]


def parser() -> argparse.ArgumentParser:
    """The command line; docs.py renders podmgr(1) from it."""
    top = argparse.ArgumentParser(
        prog="podmgr", description="Manage pods declared in TOML manifests and run by systemd."
    )
    top.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    top.add_argument("--version", action="version", version=f"podmgr {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help, description=help)
        cmd.set_defaults(handler=handler, checks={"pod": "pod", "app": "app"})
        return cmd

    validate = command(
        "validate",
        cmd_validate,
        "check manifests and report every problem, without touching the system",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="manifest file (NAME.toml)")
    render = command(
        "render", cmd_render, "print the units the generator would write for a manifest (a dry run)"
    )
    render.add_argument("file", metavar="FILE", help="manifest file (NAME.toml)")
    listing = command("list", cmd_list, "list pods, their state and their health")
    listing.add_argument("--json", action="store_true", help="print JSON")
    status = command("status", cmd_status, "show a pod, its units, its apps' state and health")
    status.add_argument("pod", metavar="POD", help="pod name")
    status.add_argument("--json", action="store_true", help="print JSON")
    cat = command("cat", cmd_cat, "print the manifest files of pods, as systemctl cat does units")
    cat.add_argument("pods", nargs="+", metavar="POD", help="pod name")
    cat.set_defaults(checks={"pods": "pod"})
    for verb in ("start", "stop", "restart"):
        job = command(
            verb, cmd_job, f"{verb} a pod through systemd and wait until its apps are done"
        )
        job.add_argument("pod", metavar="POD", help="pod name")
    logs = command("logs", cmd_logs, "show the journal of a pod's apps")
    logs.add_argument("pod", metavar="POD", help="pod name")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--app", metavar="APP", help="only this app")
    logs.add_argument("-n", "--lines", type=int, metavar="N", help="only the last N lines")
    enter.add_command(sub)
    images.add_commands(sub)
    networks.add_commands(sub)
    autoupdate.add_commands(sub)
    return top


def check_arguments(args: argparse.Namespace) -> str | None:
    """Why an argument is not what its command takes (a pod name, an image reference, a
    fingerprint, ...), checked as the service checks it, before anything is called; None
    when all are fine.  Each command names its checked arguments in ``checks``."""
    checks: dict[str, str] = getattr(args, "checks", {})
    for dest, kind in checks.items():
        value = getattr(args, dest, None)
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            try:
                arguments.convert(kind, item)
            except PodmgrError as error:
                return str(error)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    if words[:1] == ["__complete"]:  # what the shell completion scripts call (completion.py)
        from podmgr.cli import completion  # noqa: PLC0415 -- only at a TAB

        return completion.main(parser(), words[1:])
    args = parser().parse_args(words)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="podmgr: %(message)s"
    )
    if (problem := check_arguments(args)) is not None:
        print(f"podmgr: {problem}", file=sys.stderr)
        return 2
    try:
        result = args.handler(args)
        return asyncio.run(result) if asyncio.iscoroutine(result) else int(result)
    except ManifestError as error:
        if args.debug:
            raise
        print(error, file=sys.stderr)
    except PodmgrError as error:
        if args.debug:
            raise
        print(f"podmgr: {error}", file=sys.stderr)
    except OSError as error:
        if args.debug:
            raise
        print(f"podmgr: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into head(1) and the like: not an error.
        sys.stderr.close()
        return 0
    return 1
