# SPDX-License-Identifier: LGPL-2.1-or-later
"""What every transport implements, and what it may ask of the configuration."""

from __future__ import annotations

import os
from typing import BinaryIO, Protocol

from podmgr.errors import PodmgrError
from podmgr.image.digest import Digest
from podmgr.image.oci import Descriptor


class SourceError(PodmgrError):
    code = "SourceError"


# Transports that name a file or directory, and whether a ":REF" may follow the path.
# containers/image splits at the first colon (a path with a colon cannot be named), so
# oci:DIR:example.test/app:2 is DIR and the reference example.test/app:2; dir: takes all.
LOCAL = {"oci": True, "oci-archive": True, "docker-archive": True, "dir": False}


def split_local(kind: str, spec: str) -> tuple[str, str | None]:
    """PATH[:REF] of a local transport -> (PATH, REF or None)."""
    if not LOCAL[kind]:
        return spec, None
    path, colon, ref = spec.partition(":")
    return path, (ref if colon else None)


def local_path(kind: str, path: str) -> str:
    """The path of a local source, which must be absolute: the service runs in /, so a
    relative path would name another file than the one the caller means."""
    if not path:
        raise SourceError(f"{kind}:: no path (write {kind}:/path/to/image)")
    if not os.path.isabs(path):
        raise SourceError(
            f"{kind}:{path}: a relative path (give an absolute one: the service "
            "does not run in your working directory; podmgr image import makes "
            "paths absolute)"
        )
    return path


def check_absolute(source: str) -> None:
    """Refuse a local source with a relative path at once, before a transfer starts."""
    kind, colon, spec = source.partition(":")
    if colon and kind in LOCAL:
        local_path(kind, split_local(kind, spec)[0])


def absolute(source: str, cwd: str) -> str:
    """``source`` with a local transport's relative path made absolute against ``cwd``, for
    clients to send (docker:// and unknown transports are left as they are)."""
    kind, colon, spec = source.partition(":")
    if not colon or kind not in LOCAL:
        return source
    path, ref = split_local(kind, spec)
    if path and not os.path.isabs(path):
        path = os.path.normpath(os.path.join(cwd, path))
    return f"{kind}:{path}" + (f":{ref}" if ref is not None else "")


class ImageSource(Protocol):
    """An image opened where a pull or import reads it (containers/image's name for it):
    its raw manifests, blobs and signatures, none of them trusted.  An app's image in the
    store is a rootfs.StoredImageSource."""

    rereadable: bool  # blobs can be read twice cheaply (local files)

    def describe(self) -> str:
        """The source as the user wrote it, for messages and records."""
        ...

    def manifest(self, digest: Digest | None = None) -> tuple[bytes, str]:
        """The top-level manifest or index (digest None), or the manifest ``digest`` of an
        index; with the media type the transport gives it ("" if none)."""
        ...

    def blob(self, descriptor: Descriptor) -> BinaryIO:
        """A stream of the blob as stored; the caller verifies it."""
        ...

    def signatures(self, manifest_digest: Digest) -> list[bytes]:
        """Simple-signing signatures of the manifest, as stored beside it."""
        ...

    def detached_signature(self) -> tuple[str, bytes] | None:
        """(archive path, signature) when a FILE.asc or FILE.sig signs the whole archive."""
        ...

    def default_name(self) -> str | None:
        """The name the source gives the image (a tag in the archive), if any."""
        ...

    def close(self) -> None: ...


class SourceContext(Protocol):
    """What sources need from the configuration (config.py implements it)."""

    def registry_insecure(self, host: str) -> bool: ...

    def registry_lookaside(self, host: str) -> str | None: ...

    def registry_credentials(self, host: str) -> tuple[str, str] | None: ...
