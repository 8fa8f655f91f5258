# SPDX-License-Identifier: LGPL-2.1-or-later
"""The trust store: which OpenPGP keys may sign which images, as rkt had it.

    /etc/podmgr/trustedkeys/prefix.d/PREFIX/FINGERPRINT     keys for names under PREFIX
    /etc/podmgr/trustedkeys/root.d/FINGERPRINT              keys for every name
    /usr/lib/podmgr/trustedkeys/...                         the same, shipped by vendors

A key file holds one ASCII-armored public key and is named by its primary fingerprint.
An admin file masks the vendor file at the same path; an empty admin file masks it
without replacing it (how an administrator distrusts a vendor key).  PREFIX is an image
name prefix by whole components: keys under prefix.d/registry.example.org/shop sign
registry.example.org/shop/api but not registry.example.org/shopping.  A PREFIX is
written normalized (a short name is on docker.io: testing/x is docker.io/testing/x), and
prefixes stored otherwise are normalized as they are read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from podmgr.errors import PodmgrError
from podmgr.image import gpgsandbox, reference
from podmgr.image.store import atomic_write

log = logging.getLogger(__name__)

ADMIN_DIR = Path("/etc/podmgr/trustedkeys")
VENDOR_DIR = Path("/usr/lib/podmgr/trustedkeys")
ROOT = ""  # the prefix of keys trusted for every name
_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")


class TrustError(PodmgrError):
    code = "TrustError"


@dataclass(frozen=True)
class TrustedKey:
    fingerprint: str  # primary key fingerprint, upper-case hex
    prefix: str  # ROOT ("") for the root set
    path: Path
    armored: bytes
    vendor: bool = False  # shipped under /usr/lib, not trusted by this host's admin

    @property
    def origin(self) -> str:
        return "vendor" if self.vendor else "admin"

    @property
    def scope(self) -> str:
        return self.prefix or "(root: every name)"


@dataclass(frozen=True)
class KeyInfo:
    """What an armored key says about itself, for showing before it is trusted."""

    fingerprint: str
    user_ids: tuple[str, ...]
    expires: str  # "" for never


class TrustStore:
    def __init__(self, admin: Path = ADMIN_DIR, vendor: Path = VENDOR_DIR) -> None:
        self.admin = admin
        self.vendor = vendor

    @staticmethod
    def normalize(prefix: str) -> str:
        """The prefix as image names are written (ROOT stays ROOT): a short name is on
        docker.io, as for image names; see reference.normalize_prefix."""
        if prefix == ROOT:
            return ROOT
        try:
            return reference.normalize_prefix(prefix)
        except reference.BadReference as error:
            raise TrustError(str(error)) from None

    @staticmethod
    def _relative(prefix: str) -> Path:
        """Where keys for the normalized ``prefix`` are written."""
        return Path("root.d") if prefix == ROOT else Path("prefix.d") / prefix

    def _files(self) -> Iterator[tuple[bool, str, Path]]:
        """(is it the admin's, normalized prefix, path) of every key file, admin first.
        A directory that is no valid prefix (made by hand) is read as written: it
        matches no image name, and trust rm can still remove it."""
        for base in (self.admin, self.vendor):
            for path in sorted(base.glob("root.d/*")) + sorted(base.glob("prefix.d/**/*")):
                if not path.is_file() or not _FINGERPRINT.fullmatch(path.name):
                    continue
                relative = path.relative_to(base)
                if relative.parts[0] == "root.d":
                    prefix = ROOT
                else:
                    written = "/".join(relative.parts[1:-1])
                    try:
                        prefix = reference.normalize_prefix(written)
                    except reference.BadReference:
                        log.warning(
                            "%s: %r is not an image name prefix: the key there signs nothing",
                            path,
                            written,
                        )
                        prefix = written
                yield base == self.admin, prefix, path

    def all_keys(self) -> list[TrustedKey]:
        """Every trusted key, admin files masking vendor files for the same prefix and
        fingerprint (stored prefixes are normalized as they are read, so a key stored
        under prefix.d/testing/x serves docker.io/testing/x)."""
        found: dict[tuple[str, str], TrustedKey | None] = {}
        for admin, prefix, path in self._files():
            identity = (prefix, path.name)
            if identity in found:
                continue
            data = path.read_bytes()
            found[identity] = (
                TrustedKey(path.name, prefix, path, data, vendor=not admin)
                if data.strip()
                else None
            )  # an empty file masks
        return [key for key in found.values() if key is not None]

    def keys_for(self, name: str) -> list[TrustedKey]:
        """Keys trusted to sign image ``name`` (registry/repository)."""
        return [
            key
            for key in self.all_keys()
            if key.prefix == ROOT or reference.matches_prefix(name, key.prefix)
        ]

    def add(self, prefix: str, armored: bytes) -> KeyInfo:
        prefix = self.normalize(prefix)
        info = inspect_key(armored)
        path = self.admin / self._relative(prefix) / info.fingerprint
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        atomic_write(path, armored, 0o644)
        return info

    def remove(self, fingerprint: str, prefix: str | None = None) -> list[TrustedKey]:
        """Distrust ``fingerprint`` for ``prefix`` only (ROOT: the root set), or for every
        prefix (None): remove the admin files, and mask vendor files with an empty admin
        file."""
        fingerprint = fingerprint.replace(" ", "").upper()
        wanted = None if prefix is None else self.normalize(prefix)
        matches = [
            k
            for k in self.all_keys()
            if k.fingerprint == fingerprint and (wanted is None or k.prefix == wanted)
        ]
        if not matches:
            where = "" if wanted is None else f" for {wanted or 'the root set'}"
            raise TrustError(f"no trusted key {fingerprint}{where} (see podmgr trust list)")
        prefixes = {key.prefix for key in matches}
        for admin, key_prefix, path in list(self._files()):
            if path.name != fingerprint or key_prefix not in prefixes:
                continue
            if admin:
                path.unlink()
            else:
                mask = self.admin / self._relative(key_prefix) / fingerprint
                mask.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                atomic_write(mask, b"", 0o644)
        return matches


def inspect_key(armored: bytes) -> KeyInfo:
    """Check that ``armored`` is one usable public key and say what it is (gpg reads it
    in its sandbox: it is untrusted input until the administrator says otherwise)."""
    try:
        reply = gpgsandbox.run([armored], [], list_keys=True)
    except gpgsandbox.SandboxError as error:
        raise TrustError(f"cannot read the key: {error}") from None
    if reply.imported != 1 or len(reply.keys) != 1:
        raise TrustError(
            f"expected one OpenPGP public key, found {reply.imported} (export "
            "the key with gpg --armor --export FINGERPRINT)"
        )
    [key] = reply.keys
    if key.validity in ("r", "e"):
        state = "revoked" if key.validity == "r" else "expired"
        raise TrustError(f"key {key.fingerprint} is {state} (ask the signer for a current key)")
    return KeyInfo(key.fingerprint, key.user_ids, key.expires)
