# SPDX-License-Identifier: LGPL-2.1-or-later
"""Where images come from: one module of transports/ per transport, registered by its
prefix.

    oci:PATH[:REF|:@N]             an OCI image layout directory
    oci-archive:FILE[:REF|:@N]     a tar of one
    docker-archive:FILE[:REF|:@N]  what `docker save` and `podman save` write
    dir:PATH                       containers' dir: layout (skopeo copy ... dir:PATH)
    docker://REFERENCE             a registry, over the Docker Registry HTTP API v2

Written as containers/image writes them: a path ends at the first colon (dir: takes all),
and must be absolute (clients make it so: the service does not run where they do).

A source hands out the raw manifest and blobs; pull.py checks digests, signatures
and diff_ids, so a source never has to be trusted.
"""

from __future__ import annotations

from collections.abc import Callable

from podmgr.image.transports import archive, dirlayout, layout, registry
from podmgr.image.transports.base import ImageSource, SourceContext, SourceError

TRANSPORTS: dict[str, Callable[[str, SourceContext], ImageSource]] = {
    "oci": layout.open_layout,
    "oci-archive": layout.open_archive,
    "docker-archive": archive.open_docker_archive,
    "dir": dirlayout.open_dir,
    "docker": registry.open_registry,
}


def open_source(ref: str, context: SourceContext) -> ImageSource:
    """The source for ``ref``, e.g. "oci-archive:api.tar" or "docker://busybox"."""
    kind, sep, rest = ref.partition(":")
    if not sep or kind not in TRANSPORTS:
        names = ", ".join(f"{k}:" for k in TRANSPORTS)
        raise SourceError(
            f"{ref!r}: no transport (start it with one of {names}, e.g. "
            "docker://registry.example.org/app:1.0)"
        )
    return TRANSPORTS[kind](rest, context)
