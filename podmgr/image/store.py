# SPDX-License-Identifier: LGPL-2.1-or-later
"""The image store under /var/lib/podmgr/.

    blobs/sha256/HEX        manifests and configs, content-addressed
    layers/sha256/HEX/      each layer unpacked once, named by its diff_id (the digest of
                            the uncompressed tar), shared by every image and pod using it
    images/NAME.json        image records: name -> manifest digest, layers, who signed it
    removed/NAME@HEX.json   records of images removed or replaced (a pull or an update of
                            their tag), with when: gc keeps their layers and blobs for
                            [gc] grace, so an image can be restored, as rkt gc kept them
    pins/NAME@HEX.json.*    records pinned while a process holds a lock on the file (an
                            auto-update keeps the image it may roll back to): gc keeps
                            them whatever the grace, and removes pins nobody holds
    tmp/                    work in progress; anything there is garbage after a crash
    lock                    flock: shared while pulling or reading, exclusive for gc/rm

Only root can traverse the store: its directories are 0700, and a store made with
looser modes is tightened the next time it is locked.  The layers hold the images'
setuid binaries and file capabilities as the images made them, and a local user who
could reach them would run them (CVE-2021-41091); the kernel reads an overlay's lower
layers as whoever mounted it, root, so pods need no access for others.  (A layer's own
root directory keeps 0755: it is the root directory its pods see.)

Every write is atomic (write a temporary in the same directory, fsync, rename), and a
layer appears under its final name only once it is completely unpacked, so a kill -9 at
any moment leaves the store consistent and the next pull completes.  Each layer also has
a lock file, so two pulls sharing a layer unpack it once.
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import fcntl
import json
import os
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from podmgr import locks, paths
from podmgr.errors import PodmgrError
from podmgr.image import dirtree
from podmgr.image.digest import Digest, DigestMismatch


class NoSuchImage(PodmgrError):
    code = "NoSuchImage"


@dataclass(frozen=True)
class ImageRecord:
    name: str  # normalized reference, e.g. registry.example.org/shop/api:1.4
    manifest: Digest
    config: Digest
    layers: tuple[Digest, ...]  # diff_ids, bottom-most first
    size: int  # bytes of the layers as transferred
    source: str  # where it came from, e.g. docker://registry.example.org/shop/api:1.4
    signed_by: tuple[str, ...]  # primary key fingerprints of valid signatures
    identity: str  # the reference the signature names; "" when unsigned
    insecure: bool  # stored without a trusted signature, as podmgr.toml allowed
    stored: str  # ISO 8601 UTC

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ImageRecord:
        data = json.loads(text)
        return cls(
            data["name"],
            Digest(data["manifest"]),
            Digest(data["config"]),
            tuple(Digest(d) for d in data["layers"]),
            int(data["size"]),
            data["source"],
            tuple(data["signed_by"]),
            data["identity"],
            bool(data["insecure"]),
            data["stored"],
        )


class StoreFailed(PodmgrError):
    """The store's file system refused to hold something (full, read-only, overlayfs)."""

    code = "StoreFailed"


def store_failure(what: str, error: OSError) -> StoreFailed:
    """``error`` of writing ``what`` into the store, as one line saying what to do."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFailed(
            f"{what}: no space left on the store's file system (free some, "
            "e.g. with podmgr gc, or give /var/lib/podmgr more)"
        )
    if error.errno == errno.EROFS:
        return StoreFailed(f"{what}: the store's file system is read-only")
    return StoreFailed(f"{what}: {error.strerror or error} in the store")


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` so that it holds either its old or its new content, never a part."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            temp.unlink()  # a full disk leaves no temporary behind
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    def __init__(self, root: Path = paths.STATE_DIR) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.layers = root / "layers" / "sha256"
        self.images = root / "images"
        self.removed = root / "removed"
        self.pins = root / "pins"
        self.tmp = root / "tmp"

    def _setup(self) -> None:
        for directory in (self.blobs, self.layers, self.images, self.removed, self.pins, self.tmp):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.repair_modes()

    def repair_modes(self) -> None:
        """Make the store's directories root's alone again (older podmgr made them 0711)."""
        for directory in (
            self.root,
            self.blobs.parent,
            self.blobs,
            self.layers.parent,
            self.layers,
            self.images,
            self.removed,
            self.pins,
            self.tmp,
        ):
            with contextlib.suppress(FileNotFoundError):
                info = directory.lstat()
                if info.st_uid != os.geteuid():
                    os.chown(directory, os.geteuid(), os.getegid(), follow_symlinks=False)
                if info.st_mode & 0o077:
                    directory.chmod(0o700)

    @contextlib.contextmanager
    def locked(self, exclusive: bool = False) -> Iterator[Store]:
        """Hold the store lock: shared to add or read, exclusive to remove."""
        self._setup()
        with locks.flocked(self.root / "lock", exclusive):
            yield self

    # Blobs: small metadata (manifests, configs), verified on every read.

    def blob_path(self, digest: Digest) -> Path:
        return self.blobs / digest.hex

    def put_blob(self, data: bytes) -> Digest:
        digest = Digest.of(data)
        if not self.blob_path(digest).exists():
            try:
                atomic_write(self.blob_path(digest), data)
            except OSError as error:
                raise store_failure(f"blob {digest}", error) from None
        return digest

    def read_blob(self, digest: Digest) -> bytes:
        try:
            data = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise NoSuchImage(f"blob {digest} is not in the store (pull the image again)") from None
        if Digest.of(data, digest.algorithm) != digest:
            raise DigestMismatch(
                f"blob {digest} in the store is corrupt (remove the image and pull it again)"
            )
        return data

    # Layers.

    def layer_path(self, diff_id: Digest) -> Path:
        return self.layers / diff_id.hex

    @contextlib.contextmanager
    def new_layer(self, diff_id: Digest) -> Iterator[int | None]:
        """Yield the fd of an empty directory to unpack ``diff_id`` into, or None when the
        layer is already stored.  It takes the layer's final name only if the body
        finishes without an exception."""
        final = self.layer_path(diff_id)
        with locks.flocked(self.layers / f".{diff_id.hex}.lock"):
            if final.is_dir():
                yield None
                return
            temp = self.layers / f".{diff_id.hex}.partial"
            what = f"layer {diff_id}"
            try:
                if temp.exists():  # left by a crashed unpack; we hold the lock
                    _remove_tree(temp)
                temp.mkdir(mode=0o755)  # the pods' root directory; the store above is 0700
                fd = os.open(temp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as error:
                raise store_failure(what, error) from None
            try:
                yield fd
                os.fsync(fd)
            except BaseException as failure:
                os.close(fd)
                _remove_tree(temp)
                if isinstance(failure, OSError):
                    raise store_failure(what, failure) from None
                raise
            os.close(fd)
            try:
                os.rename(temp, final)
                _fsync_dir(self.layers)
            except OSError as error:
                _remove_tree(temp)
                raise store_failure(what, error) from None

    # Image records.

    def record_path(self, name: str) -> Path:
        return paths.image_record(name, self.root)

    def put_image(self, record: ImageRecord) -> None:
        """Store ``record`` under its name; an image it replaces is kept as removed (hold
        the lock).  The name points at the old image or the new one, never at neither."""
        with contextlib.suppress(NoSuchImage):
            if (old := self.image(record.name)).manifest != record.manifest:
                self.retire(old)
        try:
            atomic_write(self.record_path(record.name), record.to_json().encode(), 0o644)
        except OSError as error:
            raise store_failure(f"image {record.name}", error) from None

    def image(self, name: str) -> ImageRecord:
        try:
            return ImageRecord.from_json(self.record_path(name).read_text())
        except FileNotFoundError:
            raise NoSuchImage(
                f"no image {name!r} in the store (see podmgr image list, or podmgr image pull)"
            ) from None

    def all_images(self) -> list[ImageRecord]:
        if not self.images.is_dir():
            return []
        return sorted(
            (ImageRecord.from_json(p.read_text()) for p in self.images.glob("*.json")),
            key=lambda r: r.name,
        )

    def remove_image(self, name: str) -> None:
        path = self.record_path(name)
        if not path.exists():
            raise NoSuchImage(f"no image {name!r} in the store (see podmgr image list)")
        self.retire(self.image(name))  # first: a crash between keeps it for the grace
        path.unlink()
        _fsync_dir(self.images)

    # Removed and pinned images: what gc keeps although no name points at it.

    def _entry_name(self, record: ImageRecord) -> str:
        return f"{urllib.parse.quote(record.name, safe='')}@{record.manifest.hex}.json"

    def retire(self, record: ImageRecord, when: float | None = None) -> None:
        """Record that ``record`` was removed or replaced at ``when`` (now by default)."""
        removal = RemovedImage(record, _iso(time.time() if when is None else when))
        try:
            atomic_write(self.removed / self._entry_name(record), removal.to_json().encode(), 0o600)
        except OSError as error:
            raise store_failure(f"image {record.name}", error) from None

    def removed_images(self) -> list[RemovedImage]:
        if not self.removed.is_dir():
            return []
        return [
            RemovedImage.from_json(path.read_text()) for path in sorted(self.removed.glob("*.json"))
        ]

    @contextlib.contextmanager
    def pinned(self, record: ImageRecord) -> Iterator[None]:
        """Keep ``record``'s layers and blobs from gc, whatever the grace, for a with block.
        The pin is a lock held on a file: a process that dies releases it."""
        path = self.pins / f"{self._entry_name(record)}.{os.getpid()}.{id(record)}"
        with self.locked():  # gc, holding the lock exclusively, never sees a pin half-made
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                os.write(fd, record.to_json().encode())
            except OSError as error:
                os.close(fd)
                path.unlink(missing_ok=True)
                raise store_failure(f"image {record.name}", error) from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            os.close(fd)

    def _held_pins(self) -> list[ImageRecord]:
        """Records pinned by a live process; pins nobody holds are removed (hold the lock
        exclusively)."""
        held = []
        for path in self.pins.iterdir():
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    held.append(ImageRecord.from_json(os.read(fd, 1 << 20).decode()))
                    continue
                path.unlink()
            finally:
                os.close(fd)
        return held

    # Garbage.

    def collect(
        self, layers_in_use: set[str], grace: int = 0, now: float | None = None
    ) -> tuple[int, int]:
        """Remove layers and blobs no image record names, no prepared pod uses, no pin
        holds and no image removed less than ``grace`` microseconds ago (hold the lock
        exclusively).  Returns how many layers and blobs went."""
        now = time.time() if now is None else now
        records = self.all_images() + self._held_pins()
        for removal in self.removed_images():
            if (now - removal.when) * 10**6 < grace:
                records.append(removal.record)
            else:
                (self.removed / self._entry_name(removal.record)).unlink(missing_ok=True)
        keep_layers = {d.hex for r in records for d in r.layers} | layers_in_use
        keep_blobs = {d.hex for r in records for d in (r.manifest, r.config)}
        removed_layers = removed_blobs = 0
        for entry in self.layers.iterdir():
            name = entry.name
            hex_name = name.removeprefix(".").split(".", 1)[0]
            if hex_name in keep_layers and not name.endswith(".partial"):
                continue
            if name.endswith(".lock"):
                if not (self.layers / hex_name).exists():
                    entry.unlink(missing_ok=True)
                continue
            _remove_tree(entry)
            removed_layers += 0 if name.startswith(".") else 1
        for entry in self.blobs.iterdir():
            if entry.name not in keep_blobs:
                entry.unlink()
                removed_blobs += 1
        for entry in self.tmp.iterdir():
            _remove_tree(entry)
        return removed_layers, removed_blobs


@dataclass(frozen=True)
class RemovedImage:
    record: ImageRecord
    removed: str  # ISO 8601 UTC, as ImageRecord.stored

    @property
    def when(self) -> float:
        """The removal time in seconds since the epoch."""
        return calendar.timegm(time.strptime(self.removed, "%Y-%m-%dT%H:%M:%SZ"))

    def to_json(self) -> str:
        return json.dumps({"removed": self.removed, "record": asdict(self.record)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RemovedImage:
        data = json.loads(text)
        return cls(ImageRecord.from_json(json.dumps(data["record"])), data["removed"])


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _remove_tree(path: Path) -> None:
    # Iterative, with a bounded number of fds: a layer may nest thousands of directories.
    dirtree.remove_path(str(path))


def now() -> str:
    return _iso(time.time())
