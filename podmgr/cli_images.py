# SPDX-License-Identifier: LGPL-2.1-or-later
"""The image and trust commands of podmgr: pull, import, list, inspect, rm, gc, trust."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from podmgr import config, images, oci, output, paths, reference
from podmgr.errors import PodmgrError
from podmgr.store import ImageRecord, Store
from podmgr.trust import ROOT, TrustStore, inspect_key


def _bar(done: int, total: int) -> None:
    """A one-line progress bar on a terminal; silence elsewhere, as journald wants."""
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] "
                     f"{done / 1e6:8.1f} / {total / 1e6:.1f} MB")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _fetch(source: str, name: str | None) -> int:
    record = images.fetch(source, name, Store(), config.load(), TrustStore(), _bar)
    signer = ", ".join(record.signed_by) or \
        "nobody: INSECURE, stored unsigned as podmgr.toml allows"
    print(f"{record.name}: stored {record.manifest}, signed by {signer}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    source = args.reference if "://" in args.reference else f"docker://{args.reference}"
    if not source.startswith("docker://"):
        raise PodmgrError(f"{args.reference!r}: pull fetches from registries (docker://); use "
                          "podmgr image import for archives and layouts")
    return _fetch(source, args.name)


def cmd_import(args: argparse.Namespace) -> int:
    return _fetch(args.source, args.name)


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def _trust_text(record: ImageRecord) -> str:
    if record.insecure:
        return "INSECURE (unsigned)"
    return ", ".join(f[-16:] for f in record.signed_by)


def cmd_list(args: argparse.Namespace) -> int:
    records = Store().all_images()
    if args.json:
        output.print_json([asdict(r) for r in records])
        return 0
    if not records:
        print("No images. Pull one with: podmgr image pull docker://REGISTRY/NAME:TAG")
        return 0
    width = max(len(r.name) for r in records)
    print(f"{'NAME':<{width}}  {'DIGEST':<12}  {'SIZE':>9}  {'SIGNED BY':<19}  STORED")
    for r in records:
        print(f"{r.name:<{width}}  {_short(r.manifest):<12}  {r.size / 1e6:7.1f}MB  "
              f"{_trust_text(r):<19}  {r.stored}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    store = Store()
    record = store.image(str(reference.parse(args.name)))
    manifest = oci.parse_manifest(store.read_blob(record.manifest))
    image_config = oci.parse_config(store.read_blob(record.config))
    trust = TrustStore()
    signers = [{"fingerprint": f, "trusted_as": [k.scope for k in trust.all_keys()
                                                if k.fingerprint == f]}
               for f in record.signed_by]
    output.print_json({
        **asdict(record), "signers": signers,
        "config": {"platform": str(image_config.platform), "user": image_config.user,
                   "entrypoint": image_config.entrypoint, "cmd": image_config.cmd,
                   "env": image_config.env, "working_dir": image_config.working_dir},
        "layers": [{"digest": layer.digest, "media_type": layer.media_type,
                    "size": layer.size, "diff_id": diff_id,
                    "path": str(store.layer_path(diff_id))}
                   for layer, diff_id in zip(manifest.layers, record.layers, strict=True)],
    })
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    for name in args.names:
        images.remove(Store(), name)
        print(f"{reference.parse(name)}: removed (podmgr gc frees its layers)")
    return 0


def layers_in_use(runtime: Path = paths.RUNTIME_PODS_DIR) -> set[str]:
    """Layer directories named by the plans of prepared pods: gc keeps them."""
    used: set[str] = set()
    for plan_file in runtime.glob("*/plan.json"):
        for app in json.loads(plan_file.read_text())["apps"]:
            used.update(Path(lower).name for lower in app["lowerdirs"])
    return used


def cmd_gc(args: argparse.Namespace) -> int:
    store = Store()
    with store.locked(exclusive=True):
        layers, blobs = store.collect(layers_in_use())
    print(f"removed {layers} layers and {blobs} blobs no image or running pod uses")
    return 0


def cmd_trust_add(args: argparse.Namespace) -> int:
    prefix = ROOT if args.root else args.prefix
    if prefix is None:
        raise PodmgrError("say which images the key may sign: --prefix registry.example.org/"
                          "shop, or --root for all")
    armored = Path(args.file).read_bytes()
    info = inspect_key(armored)
    scope = prefix or "every image (root)"
    print(f"Key {info.fingerprint}")
    for user_id in info.user_ids:
        print(f"    {user_id}")
    print(f"would be trusted to sign {scope}.")
    if not args.yes:
        if not sys.stdin.isatty():
            raise PodmgrError("not on a terminal: check the fingerprint, then run again with "
                              "--yes")
        if input("Trust it? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Not trusted.")
            return 1
    TrustStore().add(prefix, armored)
    print(f"Trusted {info.fingerprint} for {scope}.")
    return 0


def cmd_trust_list(args: argparse.Namespace) -> int:
    keys = TrustStore().all_keys()
    if args.json:
        output.print_json([{"fingerprint": k.fingerprint, "prefix": k.prefix,
                            "path": str(k.path)} for k in keys])
        return 0
    if not keys:
        print("No trusted keys. Add one with: podmgr trust add --prefix PREFIX KEY.asc")
    for key in keys:
        print(f"{key.fingerprint}  {key.scope}  ({key.path})")
    return 0


def cmd_trust_rm(args: argparse.Namespace) -> int:
    for key in TrustStore().remove(args.fingerprint, args.prefix):
        print(f"{key.fingerprint} is no longer trusted for {key.scope}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = sub.add_parser("image", help="pull, import, list, inspect and remove images",
                           description="Images in the store under /var/lib/podmgr.")
    commands = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND")
    pull = commands.add_parser("pull", help="fetch an image from a registry; verified before "
                               "it is stored", description="Fetch an image from a registry.")
    pull.add_argument("reference", metavar="REF", help="docker://REGISTRY/NAME:TAG (or "
                      "REGISTRY/NAME:TAG)")
    pull.add_argument("--name", metavar="REF", help="store it under this name")
    pull.set_defaults(handler=cmd_pull)
    imp = commands.add_parser("import", help="store an image from an archive or layout",
                              description="Store an image from an archive or layout.")
    imp.add_argument("source", metavar="SOURCE", help="oci-archive:FILE, docker-archive:FILE, "
                     "oci:DIR[:TAG] or dir:DIR")
    imp.add_argument("--name", metavar="REF", help="store it under this name (default: the "
                     "archive's tag, or the identity its signature names)")
    imp.set_defaults(handler=cmd_import)
    listing = commands.add_parser("list", help="list stored images",
                                  description="List stored images.")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_list)
    inspect = commands.add_parser("inspect", help="show an image's config, layers and signers",
                                  description="Show an image's config, layers and signers.")
    inspect.add_argument("name", metavar="NAME", help="image name")
    inspect.set_defaults(handler=cmd_inspect)
    remove = commands.add_parser("rm", help="remove images (podmgr gc frees their layers)",
                                 description="Remove images from the store.")
    remove.add_argument("names", nargs="+", metavar="NAME", help="image name")
    remove.set_defaults(handler=cmd_rm)

    gc = sub.add_parser("gc", help="free layers and blobs no image or prepared pod uses",
                        description="Free layers and blobs no image or prepared pod uses.")
    gc.set_defaults(handler=cmd_gc)

    trust = sub.add_parser("trust", help="manage the keys trusted to sign images",
                           description="Keys trusted to sign images, by name prefix.")
    trust_commands = trust.add_subparsers(dest="trust_command", required=True,
                                          metavar="COMMAND")
    add = trust_commands.add_parser("add", help="trust a public key for a name prefix",
                                    description="Trust an ASCII-armored public key.")
    add.add_argument("file", metavar="KEY.asc", help="the public key (gpg --armor --export)")
    scope = add.add_mutually_exclusive_group()
    scope.add_argument("--prefix", metavar="PREFIX", help="image names it may sign, e.g. "
                       "registry.example.org/shop")
    scope.add_argument("--root", action="store_true", help="trust it for every image")
    add.add_argument("--yes", action="store_true", help="do not ask")
    add.set_defaults(handler=cmd_trust_add)
    trust_list = trust_commands.add_parser("list", help="list trusted keys",
                                           description="List trusted keys.")
    trust_list.add_argument("--json", action="store_true", help="print JSON")
    trust_list.set_defaults(handler=cmd_trust_list)
    rm = trust_commands.add_parser("rm", help="distrust a key (a vendor key is masked)",
                                   description="Distrust a key.")
    rm.add_argument("fingerprint", metavar="FINGERPRINT", help="primary key fingerprint")
    rm.add_argument("--prefix", metavar="PREFIX", help="only for this prefix")
    rm.set_defaults(handler=cmd_trust_rm)
