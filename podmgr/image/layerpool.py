# SPDX-License-Identifier: LGPL-2.1-or-later
"""An image's layers unpacked side by side, each in a confined process of its own.

Layers are independent until an overlay stacks them, so each unpacks on a core of its
own (at most ``os.cpu_count()`` at once; the rest wait their turn).  The processes form
one sandbox.Group: the first layer that fails (or a cancel, raised by ``poll``) kills
every other, so an image is stored whole or not at all; the caller's store.new_layer
removes what the killed ones had written.  The stacking order is the image config's
diff_id order, whichever layer finishes first: nothing here decides it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from podmgr.image import layerstream, sandbox, unpack
from podmgr.image.digest import Digest, DigestMismatch

# How often ``wait`` calls its poll (a cancel takes effect within this).
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Job:
    """One layer to unpack: its verified blob, opened when its turn comes.  When
    ``waits``, opening it waits until the blob is fetched and verified (Pending), and
    the confined process starts meanwhile: its start costs the unpacking nothing."""

    blob: Callable[[], BinaryIO]
    media_type: str
    diff_id: Digest
    target_fd: int
    what: str
    compressed: int | None = None
    waits: bool = False


class Pending:
    """A blob still being fetched: ``open`` waits until ``ready`` hands over what opens
    it once verified, or until the group is killed (the image failed meanwhile)."""

    def __init__(self, group: sandbox.Group) -> None:
        self.group = group
        self._ready = threading.Event()
        self._blob: Callable[[], BinaryIO] | None = None

    def ready(self, blob: Callable[[], BinaryIO]) -> None:
        self._blob = blob
        self._ready.set()

    def open(self) -> BinaryIO:
        while not self._ready.wait(POLL_SECONDS):
            if self.group.killed:
                raise sandbox.SandboxFailed("the image failed before this layer was fetched")
        assert self._blob is not None
        return self._blob()


class Pool:
    """Layers being unpacked; made by ``pool``."""

    def __init__(self, limits: unpack.Limits, workers: int | None = None) -> None:
        self.limits = limits
        self.group = sandbox.Group()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 1, thread_name_prefix="podmgr-layer"
        )
        self._jobs: dict[concurrent.futures.Future[None], Job] = {}
        self._lock = threading.Lock()
        self._failure: BaseException | None = None

    def pending(self) -> Pending:
        return Pending(self.group)

    def submit(self, job: Job) -> None:
        self.check()
        self._jobs[self._executor.submit(self._run, job)] = job

    def _run(self, job: Job) -> None:
        if self.group.killed:  # another layer failed before this one's turn came
            return
        try:
            self._unpack(job)
        except BaseException as error:
            with self._lock:
                # The first to fail is the cause; the layers its kill ends fail after it.
                if self._failure is None:
                    self._failure = error
            self.group.kill()  # the others' work is lost anyway: end it now
            raise

    def _unpack(self, job: Job) -> None:
        def confined(stream: sandbox.Source) -> str:
            return layerstream.unpack_blob_confined(
                stream,
                job.media_type,
                job.target_fd,
                self.limits,
                job.what,
                job.compressed,
                self.group,
            )

        if job.waits:  # opened (and closed) once the process runs
            actual = confined(job.blob)
        else:
            with job.blob() as stream:
                actual = confined(stream)
        if actual != job.diff_id:
            raise DigestMismatch(
                f"{job.what}: uncompressed content has digest {actual}, not the "
                f"diff_id {job.diff_id} the config names (the image is corrupt or "
                "tampered with)"
            )

    @property
    def unpacked(self) -> int:
        """Compressed bytes of the layers unpacked so far (for progress)."""
        return sum(
            job.compressed or 0
            for future, job in list(self._jobs.items())
            if future.done() and not future.cancelled() and future.exception() is None
        )

    def check(self) -> None:
        """Raise the failure of a layer, once every process has ended, if one failed."""
        with self._lock:
            failure = self._failure
        if failure is not None:
            concurrent.futures.wait(self._jobs)
            raise failure

    def wait(self, poll: Callable[[], None] = lambda: None) -> None:
        """Wait until every layer is unpacked, calling ``poll`` every POLL_SECONDS (it
        may raise, to cancel); raise the first failure."""
        pending = set(self._jobs)
        while pending:
            poll()
            _, pending = concurrent.futures.wait(
                pending, POLL_SECONDS, concurrent.futures.FIRST_EXCEPTION
            )
            self.check()

    def end(self, failed: bool) -> None:
        """Wait until every process has ended; after a failure, kill them first."""
        if failed:
            self.group.kill()
            for future in self._jobs:
                future.cancel()
        self._executor.shutdown(wait=True)


@contextlib.contextmanager
def pool(limits: unpack.Limits, workers: int | None = None) -> Iterator[Pool]:
    """A Pool for a with block: leaving it by an exception kills what still runs, and
    leaving it at all waits until every process has ended."""
    layers = Pool(limits, workers)
    try:
        yield layers
    except BaseException:
        layers.end(failed=True)
        raise
    layers.end(failed=False)
