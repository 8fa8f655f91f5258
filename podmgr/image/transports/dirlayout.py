# SPDX-License-Identifier: LGPL-2.1-or-later
"""dir:PATH, the directory layout of containers/image (what `skopeo copy ... dir:` writes):
manifest.json, each blob in a file named by its hex digest, and simple-signing
signatures in signature-1, signature-2, ...  Of a manifest list (`skopeo copy --all`),
each instance's manifest is HEX.manifest.json and its signatures HEX.signature-1, ...
(directory/directory_transport.go: manifestPath and signaturePath).  All of PATH is the
path, colons included, as containers/image has it."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from podmgr.image.digest import Digest
from podmgr.image.oci import Descriptor
from podmgr.image.transports.base import ImageSource, SourceContext, SourceError, local_path
from podmgr.image.transports.files import DirFiles, read

MAX_SIGNATURES = 64


class DirSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.files = DirFiles(path)
        if not self.files.exists("manifest.json"):
            self.files.close()
            raise SourceError(
                f"dir:{path}: no manifest.json (is it a dir: layout written by skopeo copy?)"
            )

    rereadable = True  # local files: read once to verify, again to unpack

    def describe(self) -> str:
        return f"dir:{self.path}"

    def manifest(self, digest: Digest | None = None) -> tuple[bytes, str]:
        if digest is None:
            return read(self.files, "manifest.json"), ""
        # Instances of a manifest list, as skopeo copy --all writes them.
        return read(self.files, f"{digest.hex}.manifest.json"), ""

    def blob(self, descriptor: Descriptor) -> BinaryIO:
        return self.files.open(descriptor.digest.hex)

    def signatures(self, manifest_digest: Digest) -> list[bytes]:
        top = Digest.of(read(self.files, "manifest.json"), manifest_digest.algorithm)
        prefix = "" if manifest_digest == top else f"{manifest_digest.hex}."
        found = []
        for number in range(1, MAX_SIGNATURES + 1):
            name = f"{prefix}signature-{number}"
            if not self.files.exists(name):
                break
            found.append(read(self.files, name))
        return found

    def detached_signature(self) -> tuple[str, bytes] | None:
        return None

    def default_name(self) -> str | None:
        return None

    def close(self) -> None:
        self.files.close()


def open_dir(spec: str, context: SourceContext) -> ImageSource:
    return DirSource(Path(local_path("dir", spec)))
