# SPDX-License-Identifier: LGPL-2.1-or-later
"""A layer blob, decompressed and unpacked: in this process, or confined (sandbox.py).

``unpack_blob_confined`` is what imports use: the blob is fed to a confined process that
decompresses and unpacks it into the layer directory, the only place it can write; it
reports the diff_id it found, and the directories overlayfs must see as opaque, whose
trusted.* xattr needs a capability the confined process does not have, so they are
marked here afterwards.  The diff_id is computed there too: a process subverted by the
layer could lie about it, but it could already write whatever it liked into the layer,
and nothing else.

Decompression runs in a thread of its own with bounded output per call, so neither a
gzip bomb nor a long stream holds more than a few MiB in memory at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
import zlib
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, cast

from podmgr.image import dirtree, oci, unpack
from podmgr.image.digest import Readable
from podmgr.image.tarentry import BadLayer, shown

if TYPE_CHECKING:  # the confined process never imports the parent's side
    from podmgr.image import confine, sandbox

_CHUNK = 1 << 20
_INPUT = 1 << 16
# Opaque directories one layer may report (their paths are held until the end).
_MAX_OPAQUE_BYTES = 16 << 20


def _inflater() -> zlib._Decompress:
    return zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)


class _Gunzip:
    """Streaming gzip decompression at zlib's speed (gzip.GzipFile is slower), never
    making more than asked for from one call (a megabyte of zeros inflates to a
    gigabyte)."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.inflate = _inflater()
        self.pending = b""  # input zlib has not taken yet

    def read(self, n: int = -1) -> bytes:
        limit = n if n > 0 else _CHUNK
        parts: list[bytes] = []
        size = 0
        while size < limit:
            if self.inflate.eof:  # concatenated members
                rest = self.inflate.unused_data or self.stream.read(_INPUT)
                if not rest:
                    break
                self.inflate = _inflater()
                self.pending = rest
            if not self.pending:
                self.pending = self.stream.read(_INPUT)
                if not self.pending:
                    parts.append(self.inflate.flush())
                    break
            data = self.inflate.decompress(self.pending, limit - size)
            self.pending = self.inflate.unconsumed_tail
            parts.append(data)
            size += len(data)
        return b"".join(parts)


_END = object()  # what the decompressing thread puts last


class Decompressing:
    """The uncompressed tar of a layer, decompressed in a thread of its own, as tar
    leaves decompression to gzip or zstd in a process of its own: zlib, zstandard and
    hashlib release the GIL, so on two cores unpacking takes about as long as the slower
    of the two halves, not their sum.  That thread also hashes each chunk (for the
    diff_id), once, as it makes it.  A read returns at most one chunk (fewer bytes than
    asked for, not only at the end).  Malformed compressed data raises BadLayer."""

    def __init__(self, stream: Readable, media_type: str, what: str) -> None:
        self.hash = hashlib.sha256()
        self.chunks: queue.Queue[bytes | object] = queue.Queue(maxsize=16)
        self.current = b""
        self.offset = 0
        self.finished = False
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.what = what
        self.thread = threading.Thread(
            target=self._produce, args=(stream, media_type), name="podmgr-decompress", daemon=True
        )
        self.thread.start()

    def _produce(self, stream: Readable, media_type: str) -> None:
        try:
            source = _decompressed(stream, media_type)
            while not self.stopping.is_set() and (chunk := source.read(_CHUNK)):
                self.hash.update(chunk)
                self.chunks.put(chunk)
        except (zlib.error, EOFError, ValueError, OSError) as error:
            self.error = BadLayer(
                f"{self.what}: not valid {oci.LAYERS[media_type]} data ({shown(str(error), 120)})"
            )
        except BaseException as error:  # handed to the reader: read() raises it
            if type(error).__name__ == "ZstdError":
                error = BadLayer(f"{self.what}: not valid zstd data ({shown(str(error), 120)})")
            self.error = error
        finally:
            self.chunks.put(_END)

    def read(self, n: int = -1) -> bytes:
        if self.offset == len(self.current) and not self.finished:
            item = self.chunks.get()
            if item is _END:
                self.finished = True
                self.thread.join()
                self.current, self.offset = b"", 0
            else:
                assert isinstance(item, bytes)
                self.current, self.offset = item, 0
        if self.error is not None:
            raise self.error
        take = len(self.current) - self.offset if n < 0 else n
        if self.offset == 0 and take >= len(self.current):  # the whole chunk: no copy
            self.offset = len(self.current)
            return self.current
        part = self.current[self.offset : self.offset + take]
        self.offset += len(part)
        return part

    def drain(self) -> str:
        """Read what is left (tar's padding); the diff_id of all of it."""
        while self.read(_CHUNK):
            pass
        return f"sha256:{self.hash.hexdigest()}"

    def stop(self) -> None:
        """Let the thread end early, after a failed unpack."""
        self.stopping.set()
        while self.thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self.chunks.get(timeout=0.1)


def _decompressed(reader: Readable, media_type: str) -> Readable:
    compression = oci.LAYERS[media_type]
    if compression == "gzip":
        return _Gunzip(reader)
    if compression == "zstd":
        import zstandard  # noqa: PLC0415 -- only zstd layers need it

        # It only ever calls read(), as a file would be asked.
        decompressed: Readable = zstandard.ZstdDecompressor().stream_reader(cast(IO[bytes], reader))
        return decompressed
    return reader


def unpack_blob(
    stream: Readable,
    media_type: str,
    fd: int,
    limits: unpack.Limits,
    what: str,
    compressed: int | None = None,
    opaque: unpack.OpaqueReport | None = None,
    file_system: str = "",
) -> str:
    """Decompress and unpack a layer blob into ``fd`` in this process; returns its
    diff_id as found."""
    tar = Decompressing(stream, media_type, what)
    try:
        unpack.unpack(tar, fd, what, limits, compressed, opaque, file_system)
        return tar.drain()
    finally:
        tar.stop()


def confined(
    context: confine.Context,
    media_type: str,
    limits: dict[str, object],
    what: str,
    compressed: int | None,
) -> str:
    """``unpack_blob`` inside the sandbox (sandbox.run calls it)."""
    return unpack_blob(
        context.stream,
        media_type,
        context.target_fd,
        unpack.Limits(**limits),  # type: ignore[arg-type]
        what,
        compressed,
        lambda path: context.emit({"opaque": path}),
        context.file_system,
    )


def _require_zstandard(what: str) -> None:
    """zstandard is optional (the packages only recommend it): only zstd layers need it.
    Without it, refuse such a layer in one line that names the package."""
    try:
        import zstandard  # noqa: F401, PLC0415 -- only zstd layers need it
    except ImportError:
        raise BadLayer(
            f"{what}: is zstd-compressed, and the Python module zstandard is not installed "
            "(install python3-zstandard)"
        ) from None


def unpack_blob_confined(
    stream: sandbox.Source,
    media_type: str,
    fd: int,
    limits: unpack.Limits,
    what: str,
    compressed: int | None = None,
    group: sandbox.Group | None = None,
) -> str:
    """``unpack_blob`` in a confined process that can write only below ``fd`` (one of
    ``group``, when given); ``stream`` may be what opens it once the process has
    started (sandbox.run)."""
    if oci.LAYERS[media_type] == "zstd":
        _require_zstandard(what)  # before the unpacker starts: it would die importing it
    opaque: list[str] = []
    held = 0

    def report(event: dict[str, object]) -> None:
        nonlocal held
        path = str(event["opaque"])
        held += len(path)
        if held > _MAX_OPAQUE_BYTES:
            raise BadLayer(f"{what}: more opaque directories than podmgr holds")
        opaque.append(path)

    from podmgr.image import sandbox  # noqa: PLC0415 -- see TYPE_CHECKING above

    preload = ("zstandard",) if oci.LAYERS[media_type] == "zstd" else ()
    diff_id = sandbox.run(
        "podmgr.image.layerstream:confined",
        {
            "media_type": media_type,
            "limits": asdict(limits),
            "what": what,
            "compressed": compressed,
        },
        fd,
        stream,
        what,
        report,
        limits.devices,
        preload,
        group,
    )
    _mark_opaque(fd, opaque, what)
    return str(diff_id)


def _mark_opaque(fd: int, paths: list[str], what: str) -> None:
    """Set the opaque xattr of each directory still there (a later entry of the layer
    may have replaced it, and its marker with it)."""
    tree = dirtree.Tree(fd)
    try:
        for path in paths:
            try:
                directory = tree.directory(path, create=False)
            except (FileNotFoundError, dirtree.Blocked):
                continue
            try:
                os.setxattr(directory, unpack.OVERLAY_OPAQUE, b"y")
            except OSError as error:
                raise unpack.StoreFailed(
                    f"{what}: {shown(path)}: cannot mark the directory opaque ({error.strerror})"
                ) from None
        tree.close()
    finally:
        tree.abandon()
