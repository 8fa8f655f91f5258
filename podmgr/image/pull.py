# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pulling and importing images: nothing unverified is unpacked, nothing half-done is kept.

The order is the point:
1. read the manifest (picking this host's platform from an index);
2. check its signature against the trust store, or the policy's insecure prefixes —
   a refusal stops here, before a byte of any layer is read;
3. read the config and each layer, checking every blob's size and digest as it streams;
   each layer is unpacked into the store in a confined process of its own (layerpool.py),
   started while the layer is fetched and given it once verified, and unpacking while
   the next ones are fetched; its diff_id is checked after decompression (layers the
   store has already are not even fetched);
4. once every layer is stored, write the blobs and, last, the image record.

The layers' locks (store.new_layer) are all taken before the first layer is read, in
the order of their diff_ids, so two pulls sharing layers never wait on each other in a
circle; a layer that fails, or a cancel, fails the whole image and leaves no layer of
it half-stored.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from podmgr.config import Config
from podmgr.image import layerpool, oci, reference, signing, unpack
from podmgr.image.digest import Digest, DigestMismatch, Readable, VerifyingReader
from podmgr.image.oci import Descriptor
from podmgr.image.sources import open_source
from podmgr.image.store import ImageRecord, Store, now
from podmgr.image.transports.base import ImageSource
from podmgr.image.trust import TrustStore

log = logging.getLogger(__name__)

# Called with (bytes done, bytes in all) while layers stream in.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Verdict:
    signed_by: tuple[str, ...]
    identity: str
    insecure: bool
    name: str


class _Counting:
    """Counts what passes, for the progress bar."""

    def __init__(self, stream: Readable, report: Callable[[int], None]) -> None:
        self.stream = stream
        self.report = report

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.report(len(data))
        return data


def resolve_manifest(source: ImageSource) -> tuple[bytes, str, bytes]:
    """The image manifest for this host, following an index; checked against its digest.
    Also the top-level manifest or index, which a pinned digest may name."""
    data, kind = source.manifest()
    top = data
    kind = oci.media_type_of(data, kind)
    if kind in oci.INDEXES:
        entry = oci.choose(oci.parse_index(data, kind))
        data, kind = source.manifest(entry.digest)
        if Digest.of(data, entry.digest.algorithm) != entry.digest:
            raise DigestMismatch(
                f"{source.describe()}: the manifest for {entry.platform} does "
                f"not match its digest {entry.digest} (the source is corrupt "
                "or tampered with)"
            )
    return data, kind, top


def check_pinned(ref: reference.Reference, manifest: bytes, top: bytes) -> None:
    """A name with a digest means that content: the manifest's (or its index's) digest
    must be it, as containers/image checks a reference's digest against the manifest."""
    if ref.digest is None:
        return
    actual = Digest.of(manifest, ref.digest.algorithm)
    if ref.digest not in (actual, Digest.of(top, ref.digest.algorithm)):
        raise DigestMismatch(
            f"{ref}: the image's manifest has digest {actual}, not the "
            f"{ref.digest} the name pins (nothing stored; name it by its "
            "own digest or by a tag)"
        )


def check_signature(
    source: ImageSource,
    manifest_digest: Digest,
    name: str | None,
    trust: TrustStore,
    config: Config,
) -> Verdict:
    """Accept the image for ``name`` (or for the identity its signature names), or raise
    SignatureRejected saying, for each signature, which check failed."""
    reasons: list[str] = []
    keys = trust.all_keys()  # signing.py checks which are trusted for the name
    detached = source.detached_signature()
    if detached is not None:
        if name is None:
            raise signing.SignatureRejected(
                f"{source.describe()}: a detached signature does "
                "not name the image (give --name REF)"
            )
        try:
            verified = signing.verify_detached(detached[0], detached[1], keys, name)
            return Verdict((verified.fingerprint,), name, False, name)
        except signing.SignatureRejected as error:
            reasons.append(f"the detached signature: {error}")
    signatures = source.signatures(manifest_digest)
    if signatures:
        accepted, refused = signing.verify_simple(signatures, keys, manifest_digest, name)
        if accepted is not None:
            return Verdict(
                (accepted.fingerprint,), accepted.identity, False, name or accepted.identity
            )
        reasons += refused
    if name is None:
        raise signing.SignatureRejected(
            f"{source.describe()}: no name for the image (give "
            "--name REF)" + "".join(f"; {r}" for r in reasons)
        )
    if insecure_allowed(config, reference.parse(name).name):
        log.warning(
            "%s: stored WITHOUT a trusted signature: podmgr.toml lists it as insecure", name
        )
        return Verdict((), "", True, name)
    if reasons:
        raise signing.SignatureRejected(f"{name}: refused, " + "; ".join(reasons))
    raise signing.SignatureRejected(
        f"{name}: unsigned (no signature found; sign it with skopeo copy --sign-by, or list "
        "its prefix under [images] insecure in /etc/podmgr/podmgr.toml)"
    )


def insecure_allowed(config: Config, name: str) -> bool:
    """Whether podmgr.toml lets image ``name`` (registry/repository) be stored unsigned."""
    return any(reference.matches_prefix(name, prefix) for prefix in config.images.insecure)


def unpack_limits(config: Config) -> unpack.Limits:
    """What podmgr.toml allows a layer to unpack to."""
    policy = config.images
    return unpack.Limits(
        policy.max_layer_entries,
        policy.max_layer_size,
        policy.allow_devices,
        policy.strip_setuid,
        policy.max_layer_ratio,
    )


def fetch(
    source_ref: str,
    name: str | None,
    store: Store,
    config: Config,
    trust: TrustStore,
    progress: Progress | None = None,
) -> ImageRecord:
    """Pull or import ``source_ref`` into ``store`` as ``name`` (or the source's own name)."""
    source = open_source(source_ref, config)
    try:
        manifest_bytes, kind, top = resolve_manifest(source)
        manifest_digest = Digest.of(manifest_bytes)
        manifest = oci.parse_manifest(manifest_bytes, kind)
        if name is None and (default := source.default_name()) and "/" in default:
            name = default
        if name is not None:
            ref = reference.parse(name)
            check_pinned(ref, manifest_bytes, top)
            name = str(ref)
        verdict = check_signature(source, manifest_digest, name, trust, config)
        if name is None:  # named by its signature's identity, which may pin a digest too
            check_pinned(reference.parse(verdict.name), manifest_bytes, top)
        with store.locked():
            return _store_image(source, verdict, manifest_bytes, manifest, store, config, progress)
    finally:
        source.close()


def _store_image(
    source: ImageSource,
    verdict: Verdict,
    manifest_bytes: bytes,
    manifest: oci.ImageManifest,
    store: Store,
    config: Config,
    progress: Progress | None,
) -> ImageRecord:
    config_bytes = _read_small_blob(source, manifest.config)
    image_config = oci.parse_config(config_bytes)
    if len(image_config.diff_ids) != len(manifest.layers):
        raise oci.BadImage(
            f"{source.describe()}: the config lists {len(image_config.diff_ids)} "
            f"layers, the manifest {len(manifest.layers)}"
        )
    firsts: dict[Digest, Descriptor] = {}  # an image may hold one layer twice
    for layer, diff_id in zip(manifest.layers, image_config.diff_ids, strict=True):
        firsts.setdefault(diff_id, layer)
    # Progress: each layer's size counts once as it is fetched, once when it is unpacked.
    total = 2 * sum(layer.size for layer in firsts.values())
    fetched = 0
    with contextlib.ExitStack() as stack:
        targets = {
            diff_id: stack.enter_context(store.new_layer(diff_id)) for diff_id in sorted(firsts)
        }
        pool = stack.enter_context(layerpool.pool(unpack_limits(config)))

        def report(count: int = 0) -> None:
            nonlocal fetched
            fetched += count
            pool.check()  # a failed layer stops the fetching too
            if progress:
                progress(fetched + pool.unpacked, total)

        for diff_id, layer in firsts.items():
            fd = targets[diff_id]
            if fd is None:
                report(2 * layer.size)  # already stored: nothing to fetch
                continue
            # Its unpacker starts while it is fetched, and gets it once verified.
            blob = pool.pending()
            what = f"layer {layer.digest}"
            pool.submit(
                layerpool.Job(blob.open, layer.media_type, diff_id, fd, what, layer.size, True)
            )
            blob.ready(stack.enter_context(_verified_blob(source, layer, store, report)))
        pool.wait(report)
        report()  # all of it
    store.put_blob(manifest_bytes)
    store.put_blob(config_bytes)
    record = ImageRecord(
        name=verdict.name,
        manifest=Digest.of(manifest_bytes),
        config=manifest.config.digest,
        layers=image_config.diff_ids,
        size=sum(layer.size for layer in manifest.layers),
        source=source.describe(),
        signed_by=verdict.signed_by,
        identity=verdict.identity,
        insecure=verdict.insecure,
        stored=now(),
    )
    store.put_image(record)
    return record


def _read_small_blob(source: ImageSource, descriptor: Descriptor) -> bytes:
    if descriptor.size > oci.MAX_METADATA:
        raise oci.BadImage(
            f"{source.describe()}: config of {descriptor.size} bytes is larger "
            "than any image config"
        )
    with source.blob(descriptor) as stream:
        reader = VerifyingReader(
            stream, descriptor.digest, descriptor.size, f"config {descriptor.digest}"
        )
        data = reader.read(descriptor.size + 1)
        reader.finish()
    return data


@contextlib.contextmanager
def _verified_blob(
    source: ImageSource, layer: Descriptor, store: Store, advance: Callable[[int], None]
) -> Iterator[Callable[[], BinaryIO]]:
    """Check a layer blob's size and digest before any of it is unpacked; yields a way to
    open it again (once).  A local source is read twice; a registry's blob is kept in the
    store's tmp/ meanwhile, open but already unlinked, so its space goes with its last
    reader.  The unpacking pass needs no second digest: it checks the diff_id, which a
    changed blob could not match."""
    what = f"layer {layer.digest}"
    if source.rereadable:
        with source.blob(layer) as stream:
            VerifyingReader(_Counting(stream, advance), layer.digest, layer.size, what).finish()
        yield lambda: source.blob(layer)
        return
    temp = store.tmp / f"{layer.digest.hex}.{os.getpid()}"
    try:
        with source.blob(layer) as stream, temp.open("wb") as copy:
            reader = VerifyingReader(_Counting(stream, advance), layer.digest, layer.size, what)
            while chunk := reader.read(1 << 20):
                copy.write(chunk)
            reader.finish()
        verified = temp.open("rb")
    finally:
        temp.unlink(missing_ok=True)
    with verified:
        yield lambda: verified


def remove(store: Store, name: str) -> None:
    with store.locked(exclusive=True):
        store.remove_image(str(reference.parse(name)))
