# SPDX-License-Identifier: LGPL-2.1-or-later
"""What every transport implements, and what it may ask of the configuration."""

from __future__ import annotations

from typing import BinaryIO, Protocol

from podmgr.digest import Digest
from podmgr.errors import PodmgrError
from podmgr.oci import Descriptor


class SourceError(PodmgrError):
    code = "SourceError"


class ImageSource(Protocol):
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

    def close(self) -> None:
        ...


class SourceContext(Protocol):
    """What sources need from the configuration (config.py implements it)."""

    def registry_insecure(self, host: str) -> bool: ...

    def registry_lookaside(self, host: str) -> str | None: ...

    def registry_credentials(self, host: str) -> tuple[str, str] | None: ...
