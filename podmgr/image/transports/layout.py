# SPDX-License-Identifier: LGPL-2.1-or-later
"""oci:PATH[:REF] and oci-archive:FILE[:REF]: OCI image layouts (image-layout.md).

As containers/image reads them: the path ends at the first colon, REF picks the index
entry whose org.opencontainers.image.ref.name annotation is REF (what skopeo and podman
write there, often a whole name: oci:DIR:example.test/app:2), ":@N" the N-th entry
(from 0); without either, the layout must hold a single image.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import BinaryIO

from podmgr.image import oci
from podmgr.image.digest import Digest
from podmgr.image.oci import Descriptor
from podmgr.image.transports.base import (
    ImageSource,
    SourceContext,
    SourceError,
    local_path,
    split_local,
)
from podmgr.image.transports.files import DirFiles, Files, TarFiles, read

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"  # full name, as docker save >= 25 writes it


# An annotation's reference name, as containers/image validates it (oci/internal).
_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")


def parse_selector(kind: str, spec: str) -> tuple[str, str | None, int | None]:
    """PATH[:REF|:@N] -> (absolute PATH, REF, N)."""
    path, ref = split_local(kind, spec)
    path = local_path(kind, path)
    if ref is None or ref == "":
        return path, None, None
    if ref.startswith("@"):
        if not ref[1:].isascii() or not ref[1:].isdigit():
            raise SourceError(f"{kind}:{spec}: {ref!r} is not an index (write @0, @1, ...)")
        return path, None, int(ref[1:])
    if not _REF_NAME.fullmatch(ref):
        raise SourceError(f"{kind}:{spec}: {ref!r} is not an image reference name")
    return path, ref, None


class LayoutSource:
    def __init__(
        self, files: Files, description: str, tag: str | None, number: int | None = None
    ) -> None:
        self.files = files
        self.description = description
        self.tag = tag
        self.number = number
        self._entry: Descriptor | None = None
        try:
            layout = json.loads(read(files, "oci-layout"))
        except (SourceError, ValueError) as error:
            files.close()
            raise SourceError(
                f"{description}: not an OCI image layout (no valid oci-layout file: {error})"
            ) from None
        if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
            files.close()
            raise SourceError(f"{description}: oci-layout has no imageLayoutVersion")

    rereadable = True  # local files: read once to verify, again to unpack

    def describe(self) -> str:
        return self.description

    def _index(self) -> oci.ImageIndex:
        return oci.parse_index(read(self.files, "index.json"), oci.OCI_INDEX)

    def entry(self) -> Descriptor:
        """The index entry this source names."""
        if self._entry is None:
            entries = self._index().manifests
            if self.number is not None:
                if self.number >= len(entries):
                    raise SourceError(
                        f"{self.description}: has {len(entries)} images, so no "
                        f"@{self.number} (they are @0 to @{len(entries) - 1})"
                    )
                entries = (entries[self.number],)
            if self.tag is not None:
                found = [e for e in entries if e.annotation(REF_NAME) == self.tag]
                if not found:
                    tags = (
                        ", ".join(sorted(filter(None, (e.annotation(REF_NAME) for e in entries))))
                        or "none"
                    )
                    raise SourceError(
                        f"{self.description}: no image tagged {self.tag!r} (it has: {tags})"
                    )
                entries = tuple(found)
            if len(entries) != 1:
                tags = (
                    ", ".join(sorted(filter(None, (e.annotation(REF_NAME) for e in entries))))
                    or "none"
                )
                raise SourceError(
                    f"{self.description}: holds {len(entries)} images; name "
                    f"one with :REF or :@N (names: {tags})"
                )
            self._entry = entries[0]
        return self._entry

    def manifest(self, digest: Digest | None = None) -> tuple[bytes, str]:
        if digest is None:
            entry = self.entry()
            digest, kind = entry.digest, entry.media_type
        else:
            kind = ""
        return read(self.files, f"blobs/{digest.algorithm}/{digest.hex}"), kind

    def blob(self, descriptor: Descriptor) -> BinaryIO:
        digest = descriptor.digest
        return self.files.open(f"blobs/{digest.algorithm}/{digest.hex}")

    def signatures(self, manifest_digest: Digest) -> list[bytes]:
        return []

    def detached_signature(self) -> tuple[str, bytes] | None:
        return None

    def default_name(self) -> str | None:
        entry = self.entry()
        return entry.annotation(CONTAINERD_NAME) or entry.annotation(REF_NAME)

    def close(self) -> None:
        self.files.close()


class LayoutArchiveSource(LayoutSource):
    def __init__(
        self, path: Path, description: str, tag: str | None, number: int | None = None
    ) -> None:
        super().__init__(TarFiles(path), description, tag, number)
        self.path = path

    def detached_signature(self) -> tuple[str, bytes] | None:
        return archive_signature(self.path)


def archive_signature(path: Path) -> tuple[str, bytes] | None:
    """FILE.asc or FILE.sig beside an archive: a detached signature over all of it."""
    for suffix in (".asc", ".sig"):
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return str(path), candidate.read_bytes()
    return None


def open_layout(spec: str, context: SourceContext) -> ImageSource:
    path, tag, number = parse_selector("oci", spec)
    return LayoutSource(DirFiles(Path(path)), f"oci:{spec}", tag, number)


def open_archive(spec: str, context: SourceContext) -> ImageSource:
    path, tag, number = parse_selector("oci-archive", spec)
    return LayoutArchiveSource(Path(path), f"oci-archive:{spec}", tag, number)
