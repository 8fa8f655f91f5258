# SPDX-License-Identifier: LGPL-2.1-or-later
"""Content digests ("sha256:<hex>") and reading that checks them as it goes.

Every blob podmgr reads from an image source passes through ``VerifyingReader``: its
size and digest are checked while it streams, so a tampered or truncated blob fails
before anything trusts it (OCI image spec, "Descriptors").
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

from podmgr.errors import PodmgrError

_DIGEST = re.compile(r"(sha256):([a-f0-9]{64})|(sha512):([a-f0-9]{128})")


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class DigestMismatch(PodmgrError):
    code = "DigestMismatch"


class Digest(str):
    """A validated digest string, "algorithm:hex"."""

    __slots__ = ()

    def __new__(cls, value: str) -> Digest:
        if not _DIGEST.fullmatch(value):
            raise PodmgrError(f"{value!r} is not a digest (expected sha256:<64 hex digits>)")
        return super().__new__(cls, value)

    @property
    def algorithm(self) -> str:
        return self.split(":", 1)[0]

    @property
    def hex(self) -> str:
        return self.split(":", 1)[1]

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}")


class VerifyingReader:
    """A file-like reader of a blob; ``finish()`` reads what is left and raises unless
    the size and digest match.  Reading past the size fails at once."""

    def __init__(self, stream: Readable, digest: Digest, size: int | None, what: str) -> None:
        self.stream = stream
        self.digest = digest
        self.size = size
        self.what = what
        self.count = 0
        self._hash = hashlib.new(digest.algorithm)

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.count += len(data)
        if self.size is not None and self.count > self.size:
            raise DigestMismatch(
                f"{self.what}: longer than the {self.size} bytes its "
                "descriptor says (the source is corrupt or tampered with)"
            )
        self._hash.update(data)
        return data

    def finish(self) -> None:
        while self.read(1 << 20):
            pass
        if self.size is not None and self.count != self.size:
            raise DigestMismatch(
                f"{self.what}: {self.count} bytes instead of the "
                f"{self.size} its descriptor says (the source is truncated)"
            )
        actual = f"{self.digest.algorithm}:{self._hash.hexdigest()}"
        if actual != self.digest:
            raise DigestMismatch(
                f"{self.what}: content has digest {actual}, not {self.digest} "
                "(the source is corrupt or tampered with)"
            )
