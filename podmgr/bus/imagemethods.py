# SPDX-License-Identifier: LGPL-2.1-or-later
"""The image and trust methods of org.podmgr1.Manager (service.Manager loads this module
on their first call)."""

from __future__ import annotations

import json
from dataclasses import asdict

from podmgr import images, oci, podnet, prepare, reference
from podmgr.bus import api, polkit
from podmgr.bus.dispatch import Call, Dispatcher
from podmgr.bus.transfers import Transfers
from podmgr.errors import PodmgrError
from podmgr.store import Store
from podmgr.transports.base import check_absolute
from podmgr.trust import ROOT, TrustStore


class ImageMethods:
    def __init__(self, dispatcher: Dispatcher, transfers: Transfers) -> None:
        self.dispatcher = dispatcher
        self.transfers = transfers

    async def _allow(self, call: Call, action: str, **details: str) -> None:
        await polkit.check(self.dispatcher.bus, call.sender, action, details)

    async def list_images(self, call: Call) -> list[list[object]]:
        return [[r.name, r.manifest, ",".join(r.signed_by), r.insecure, r.size, r.stored]
                for r in Store().all_images()]

    async def inspect_image(self, call: Call, name: str) -> str:
        store = Store()
        record = store.image(str(reference.parse(name)))
        parsed = oci.parse_manifest(store.read_blob(record.manifest))
        image_config = oci.parse_config(store.read_blob(record.config))
        keys = TrustStore().all_keys()
        return json.dumps({
            **asdict(record),
            # The image ID, as podman shows it: record's "config" is replaced below.
            "id": record.config,
            "signers": [{"fingerprint": f, "trusted_as": [k.scope for k in keys
                                                          if k.fingerprint == f]}
                        for f in record.signed_by],
            "config": {"digest": record.config, "platform": str(image_config.platform),
                       "user": image_config.user,
                       "entrypoint": image_config.entrypoint, "cmd": image_config.cmd,
                       "env": image_config.env, "working_dir": image_config.working_dir},
            "layers": [{"digest": layer.digest, "media_type": layer.media_type,
                        "size": layer.size, "diff_id": diff_id,
                        "path": str(store.layer_path(diff_id))}
                       for layer, diff_id in zip(parsed.layers, record.layers, strict=True)],
        })

    async def pull_image(self, call: Call, ref: str) -> tuple[int, str]:
        source = ref if "://" in ref else f"docker://{ref}"
        if not source.startswith("docker://"):
            raise PodmgrError(f"{ref!r}: PullImage fetches from registries (docker://); "
                              "ImportImage takes archives and layouts")
        await self._allow(call, api.MANAGE_IMAGES, image=ref, verb="pull")
        return self.transfers.start(source, "")

    async def import_image(self, call: Call, source: str, name: str) -> tuple[int, str]:
        check_absolute(source)  # the service runs in /: it cannot know the caller's cwd
        await self._allow(call, api.MANAGE_IMAGES, image=name or source, verb="import")
        return self.transfers.start(source, name)

    async def remove_image(self, call: Call, name: str) -> None:
        await self._allow(call, api.MANAGE_IMAGES, image=name, verb="remove")
        images.remove(Store(), name)

    async def garbage_collect(self, call: Call) -> tuple[int, int, list[str]]:
        await self._allow(call, api.MANAGE_IMAGES, verb="gc")
        repaired = podnet.collect()
        store = Store()
        with store.locked(exclusive=True):
            return (*store.collect(prepare.layers_in_use()), repaired)

    # Trust

    async def list_trusted_keys(self, call: Call) -> list[list[str]]:
        return [[k.fingerprint, k.prefix] for k in TrustStore().all_keys()]

    async def trust_key(self, call: Call, prefix: str, armored: bytes) -> str:
        await self._allow(call, api.MANAGE_TRUST, prefix=prefix or "(root)", verb="trust")
        return TrustStore().add(prefix or ROOT, bytes(armored)).fingerprint

    async def untrust_key(self, call: Call, fingerprint: str) -> None:
        await self._allow(call, api.MANAGE_TRUST, fingerprint=fingerprint, verb="untrust")
        TrustStore().remove(fingerprint)

    async def untrust_key_for_prefix(self, call: Call, prefix: str, fingerprint: str) -> None:
        await self._allow(call, api.MANAGE_TRUST, prefix=prefix or "(root)",
                          fingerprint=fingerprint, verb="untrust")
        TrustStore().remove(fingerprint, prefix)
