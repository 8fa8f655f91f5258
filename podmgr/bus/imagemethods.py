# SPDX-License-Identifier: LGPL-2.1-or-later
"""The image and trust methods of org.podmgr1.Manager, loaded on their first call
(service.IMAGES defers them to ImageMethods here).  The dispatcher has checked each
argument (a Reference, a Fingerprint) and the caller's polkit action before a method here
runs; store and gpg work runs in its work queue."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from podmgr import config
from podmgr.bus import api
from podmgr.bus.arguments import Fingerprint
from podmgr.bus.binding import implements
from podmgr.bus.dispatch import Call
from podmgr.image import oci, pull
from podmgr.image.reference import Reference
from podmgr.image.store import Store
from podmgr.image.transports.base import check_absolute
from podmgr.image.trust import ROOT, TrustStore
from podmgr.network import joining
from podmgr.runtime import prepare

if TYPE_CHECKING:
    from podmgr.bus.service import Manager


class ImageMethods:
    def __init__(self, manager: Manager) -> None:
        self.dispatcher = manager.dispatcher
        self.transfers = manager.transfers

    @implements(api.MANAGER, "ListImages")
    async def list_images(self, call: Call) -> list[list[object]]:
        return await self.dispatcher.work.run(self._list_images)

    @staticmethod
    def _list_images() -> list[list[object]]:
        return [
            [r.name, r.manifest, ",".join(r.signed_by), r.insecure, r.size, r.stored]
            for r in Store().all_images()
        ]

    @implements(api.MANAGER, "InspectImage")
    async def inspect_image(self, call: Call, name: Reference) -> str:
        return await self.dispatcher.work.run(self._inspect, name)

    @staticmethod
    def _inspect(name: Reference) -> str:
        store = Store()
        record = store.image(str(name))
        parsed = oci.parse_manifest(store.read_blob(record.manifest))
        image_config = oci.parse_config(store.read_blob(record.config))
        keys = TrustStore().all_keys()
        return json.dumps(
            {
                **asdict(record),
                # The image ID, as podman shows it: record's "config" is replaced below.
                "id": record.config,
                "signers": [
                    {"fingerprint": f, "trusted_as": [k.scope for k in keys if k.fingerprint == f]}
                    for f in record.signed_by
                ],
                "config": {
                    "digest": record.config,
                    "platform": str(image_config.platform),
                    "user": image_config.user,
                    "entrypoint": image_config.entrypoint,
                    "cmd": image_config.cmd,
                    "env": image_config.env,
                    "working_dir": image_config.working_dir,
                },
                "layers": [
                    {
                        "digest": layer.digest,
                        "media_type": layer.media_type,
                        "size": layer.size,
                        "diff_id": diff_id,
                        "path": str(store.layer_path(diff_id)),
                    }
                    for layer, diff_id in zip(parsed.layers, record.layers, strict=True)
                ],
            }
        )

    @implements(api.MANAGER, "PullImage")
    async def pull_image(self, call: Call, ref: Reference) -> tuple[int, str]:
        return self.transfers.start(f"docker://{ref}", "")

    @implements(api.MANAGER, "ImportImage")
    async def import_image(
        self, call: Call, source: str, name: Reference | None
    ) -> tuple[int, str]:
        check_absolute(source)  # the service runs in /: it cannot know the caller's cwd
        return self.transfers.start(source, str(name) if name else "")

    @implements(api.MANAGER, "RemoveImage")
    async def remove_image(self, call: Call, name: Reference) -> None:
        await self.dispatcher.work.run(pull.remove, Store(), str(name))

    @implements(api.MANAGER, "GarbageCollect")
    async def garbage_collect(self, call: Call) -> tuple[int, int, list[str]]:
        return await self.dispatcher.work.run(self._collect, None)

    @implements(api.MANAGER, "GarbageCollectWithGrace")
    async def garbage_collect_with_grace(
        self, call: Call, grace: int
    ) -> tuple[int, int, list[str]]:
        return await self.dispatcher.work.run(self._collect, grace)

    @staticmethod
    def _collect(grace: int | None) -> tuple[int, int, list[str]]:
        """gc, keeping images removed less than ``grace`` µs ago (None: podmgr.toml's)."""
        if grace is None:
            grace = config.load().gc.grace
        repaired = joining.collect()
        store = Store()
        with store.locked(exclusive=True):
            return (*store.collect(prepare.layers_in_use(), grace), repaired)

    # Trust

    @implements(api.MANAGER, "ListTrustedKeys")
    async def list_trusted_keys(self, call: Call) -> list[list[str]]:
        return [[k.fingerprint, k.prefix, k.origin] for k in TrustStore().all_keys()]

    @implements(api.MANAGER, "TrustKey")
    async def trust_key(self, call: Call, prefix: str, armored: bytes) -> str:
        info = await self.dispatcher.work.run(TrustStore().add, prefix or ROOT, armored)
        return info.fingerprint

    @implements(api.MANAGER, "UntrustKey")
    async def untrust_key(self, call: Call, fingerprint: Fingerprint) -> None:
        await self.dispatcher.work.run(TrustStore().remove, fingerprint)

    @implements(api.MANAGER, "UntrustKeyForPrefix")
    async def untrust_key_for_prefix(
        self, call: Call, prefix: str, fingerprint: Fingerprint
    ) -> None:
        await self.dispatcher.work.run(TrustStore().remove, fingerprint, prefix)
