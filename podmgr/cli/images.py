# SPDX-License-Identifier: LGPL-2.1-or-later
"""The image and trust commands of podmgr: pull, import, list, inspect, rm, gc, trust."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from podmgr.bus.client import Client
from podmgr.cli import output
from podmgr.errors import PodmgrError
from podmgr.image import reference
from podmgr.image.trust import ROOT, TrustStore, inspect_key


def _bar(fraction: float) -> None:
    """A one-line progress bar on a terminal; silence elsewhere, as journald wants."""
    if not sys.stderr.isatty():
        return
    width = 30
    filled = int(width * fraction)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}%")
    if fraction >= 1.0:
        sys.stderr.write("\n")
    sys.stderr.flush()


async def _transfer(member: str, *args: str) -> int:
    lines: list[str] = []
    async with Client() as client:
        result = await client.transfer(member, *args, progress=_bar, log=lines.append)
    if result != "done":
        raise PodmgrError(result.removeprefix("failed: "))
    for line in lines[:-1]:  # the last one is the result again
        print(line)
    return 0


async def cmd_pull(args: argparse.Namespace) -> int:
    source = args.reference if "://" in args.reference else f"docker://{args.reference}"
    if not source.startswith("docker://"):
        raise PodmgrError(
            f"{args.reference!r}: pull fetches from registries (docker://); use "
            "podmgr image import for archives and layouts"
        )
    if args.name:
        return await _transfer("ImportImage", source, args.name)
    return await _transfer("PullImage", args.reference)


async def cmd_import(args: argparse.Namespace) -> int:
    from podmgr.image.transports.base import absolute  # noqa: PLC0415 -- import only

    # The service runs in /: a path relative to here would name another file there.
    return await _transfer("ImportImage", absolute(args.source, os.getcwd()), args.name or "")


async def cmd_list(args: argparse.Namespace) -> int:
    async with Client() as client:
        found = await client.call("ListImages")
    if args.json:
        output.print_json(
            [
                {
                    "name": name,
                    "manifest": digest,
                    "signed_by": signed.split(",") if signed else [],
                    "insecure": insecure,
                    "size": size,
                    "stored": stored,
                }
                for name, digest, signed, insecure, size, stored in found
            ]
        )
        return 0
    if not found:
        print("No images. Pull one with: podmgr image pull docker://REGISTRY/NAME:TAG")
        return 0
    width = max(len(row[0]) for row in found)
    print(f"{'NAME':<{width}}  {'DIGEST':<12}  {'SIZE':>9}  {'SIGNED BY':<19}  STORED")
    for name, digest, signed, insecure, size, stored in found:
        signers = (
            "INSECURE (unsigned)"
            if insecure
            else ", ".join(fingerprint[-16:] for fingerprint in signed.split(","))
        )
        print(
            f"{name:<{width}}  {digest.split(':')[1][:12]:<12}  {size / 1e6:7.1f}MB  "
            f"{signers:<19}  {stored}"
        )
    return 0


async def cmd_inspect(args: argparse.Namespace) -> int:
    async with Client() as client:
        print(await client.call("InspectImage", args.name))
    return 0


async def cmd_rm(args: argparse.Namespace) -> int:
    async with Client() as client:
        for name in args.names:
            await client.call("RemoveImage", name)
            print(
                f"{reference.parse(name)}: removed (podmgr gc frees its layers after "
                "[gc] grace, podmgr gc --grace 0 now)"
            )
    return 0


async def cmd_gc(args: argparse.Namespace) -> int:
    async with Client() as client:
        if args.grace is None:  # podmgr.toml's [gc] grace, as the service reads it
            layers, blobs, repaired = await client.call("GarbageCollect")
        else:
            layers, blobs, repaired = await client.call("GarbageCollectWithGrace", args.grace)
    for what in repaired:
        print(f"removed {what}, left by a pod that is gone")
    print(f"removed {layers} layers and {blobs} blobs no image or running pod uses")
    return 0


def _duration(text: str) -> int:
    """A duration as systemd writes them ("24h", "30min", "0"), in microseconds."""
    from podmgr.quantities import Duration  # noqa: PLC0415 -- gc only
    from podmgr.values import BadValue  # noqa: PLC0415

    try:
        return Duration().parse(text)
    except BadValue as error:
        raise argparse.ArgumentTypeError(str(error)) from None


async def cmd_trust_add(args: argparse.Namespace) -> int:
    prefix = ROOT if args.root else args.prefix
    if prefix is None:
        raise PodmgrError(
            "say which images the key may sign: --prefix registry.example.org/"
            "shop, or --root for all"
        )
    prefix = TrustStore.normalize(prefix)  # what the service stores; refused here already
    armored = Path(args.file).read_bytes()
    info = inspect_key(armored)  # shown before anything is stored
    scope = prefix or "every image (root)"
    print(f"Key {info.fingerprint}")
    for user_id in info.user_ids:
        print(f"    {user_id}")
    print(f"would be trusted to sign {scope}.")
    if not args.yes:
        if not sys.stdin.isatty():
            raise PodmgrError("not on a terminal: check the fingerprint, then run again with --yes")
        if input("Trust it? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Not trusted.")
            return 1
    async with Client() as client:
        fingerprint = await client.call("TrustKey", prefix, armored)
    print(f"Trusted {fingerprint} for {scope}.")
    return 0


async def cmd_trust_list(args: argparse.Namespace) -> int:
    async with Client() as client:
        keys = await client.call("ListTrustedKeys")
    if args.json:
        output.print_json([{"fingerprint": f, "prefix": p, "origin": o} for f, p, o in keys])
        return 0
    if not keys:
        print("No trusted keys. Add one with: podmgr trust add --prefix PREFIX KEY.asc")
    for fingerprint, prefix, origin in keys:
        print(f"{fingerprint}  {origin:6}  {prefix or '(root: every name)'}")
    return 0


async def cmd_trust_rm(args: argparse.Namespace) -> int:
    prefix = ROOT if args.root else args.prefix
    async with Client() as client:
        if prefix is None:
            await client.call("UntrustKey", args.fingerprint)
            print(f"{args.fingerprint} is no longer trusted")
            return 0
        prefix = TrustStore.normalize(prefix)
        await client.call("UntrustKeyForPrefix", prefix, args.fingerprint)
    print(f"{args.fingerprint} is no longer trusted for {prefix or 'every image (root)'}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = sub.add_parser(
        "image",
        help="pull, import, list, inspect and remove images",
        description="Images in the store under /var/lib/podmgr.",
    )
    commands = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND")
    pull = commands.add_parser(
        "pull",
        help="fetch an image from a registry; verified before it is stored",
        description="Fetch an image from a registry.",
    )
    pull.add_argument(
        "reference", metavar="REF", help="docker://REGISTRY/NAME:TAG (or REGISTRY/NAME:TAG)"
    )
    pull.add_argument("--name", metavar="REF", help="store it under this name")
    pull.set_defaults(handler=cmd_pull, checks={"reference": "pull", "name": "image"})
    imp = commands.add_parser(
        "import",
        help="store an image from an archive or layout",
        description="Store an image from an archive or layout.",
    )
    imp.add_argument(
        "source",
        metavar="SOURCE",
        help="oci-archive:FILE[:REF], "
        "docker-archive:FILE[:NAME:TAG|:@N], oci:DIR[:REF|:@N] or dir:DIR",
    )
    imp.add_argument(
        "--name",
        metavar="REF",
        help="store it under this name (default: the "
        "archive's tag, or the identity its signature names)",
    )
    imp.set_defaults(handler=cmd_import, checks={"source": "source", "name": "image"})
    listing = commands.add_parser(
        "list", help="list stored images", description="List stored images."
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_list)
    inspect = commands.add_parser(
        "inspect",
        help="show an image's config, layers and signers",
        description="Show an image's config, layers and signers.",
    )
    inspect.add_argument("name", metavar="IMAGE", help="image name")
    inspect.set_defaults(handler=cmd_inspect, checks={"name": "image"})
    remove = commands.add_parser(
        "rm",
        help="remove images (podmgr gc frees their layers after [gc] grace)",
        description="Remove images from the store.",
    )
    remove.add_argument("names", nargs="+", metavar="IMAGE", help="image name")
    remove.set_defaults(handler=cmd_rm, checks={"names": "image"})

    gc = sub.add_parser(
        "gc",
        help="free layers and blobs no image or prepared pod uses, and "
        "remove leases, veths and ports of pods that are gone",
        description="Free layers and blobs no image or prepared pod uses; "
        "remove leases, veths and published ports of pods that are gone. Images removed "
        "or replaced within [gc] grace of podmgr.toml (24h) keep theirs.",
    )
    gc.add_argument(
        "--grace",
        type=_duration,
        metavar="DURATION",
        help="keep what images removed less than DURATION ago use, instead of [gc] grace "
        "(0: free it now)",
    )
    gc.set_defaults(handler=cmd_gc)

    trust = sub.add_parser(
        "trust",
        help="manage the keys trusted to sign images",
        description="Keys trusted to sign images, by name prefix.",
    )
    trust_commands = trust.add_subparsers(dest="trust_command", required=True, metavar="COMMAND")
    add = trust_commands.add_parser(
        "add",
        help="trust a public key for a name prefix",
        description="Trust an ASCII-armored public key.",
    )
    add.add_argument("file", metavar="KEY.asc", help="the public key (gpg --armor --export)")
    scope = add.add_mutually_exclusive_group()
    scope.add_argument(
        "--prefix", metavar="PREFIX", help="image names it may sign, e.g. registry.example.org/shop"
    )
    scope.add_argument("--root", action="store_true", help="trust it for every image")
    add.add_argument("--yes", action="store_true", help="do not ask")
    add.set_defaults(handler=cmd_trust_add, checks={"prefix": "prefix"})
    trust_list = trust_commands.add_parser(
        "list", help="list trusted keys", description="List trusted keys."
    )
    trust_list.add_argument("--json", action="store_true", help="print JSON")
    trust_list.set_defaults(handler=cmd_trust_list)
    rm = trust_commands.add_parser(
        "rm", help="distrust a key (a vendor key is masked)", description="Distrust a key."
    )
    rm.add_argument("fingerprint", metavar="KEY", help="primary key fingerprint")
    rm_scope = rm.add_mutually_exclusive_group()
    rm_scope.add_argument(
        "--prefix",
        metavar="PREFIX",
        help="only for this prefix (default: for every prefix it is trusted for)",
    )
    rm_scope.add_argument("--root", action="store_true", help="only from the root set")
    rm.set_defaults(handler=cmd_trust_rm, checks={"fingerprint": "fingerprint", "prefix": "prefix"})
