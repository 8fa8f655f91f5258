# SPDX-License-Identifier: LGPL-2.1-or-later
"""The trust store: which OpenPGP keys may sign which images, as rkt had it.

    /etc/podmgr/trustedkeys/prefix.d/PREFIX/FINGERPRINT     keys for names under PREFIX
    /etc/podmgr/trustedkeys/root.d/FINGERPRINT              keys for every name
    /usr/lib/podmgr/trustedkeys/...                         the same, shipped by vendors

A key file holds one ASCII-armored public key and is named by its primary fingerprint.
An admin file masks the vendor file at the same path; an empty admin file masks it
without replacing it (how an administrator distrusts a vendor key).  PREFIX is an image
name prefix by whole components: keys under prefix.d/registry.example.org/shop sign
registry.example.org/shop/api but not registry.example.org/shopping.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gnupg

from podmgr import reference
from podmgr.errors import PodmgrError
from podmgr.store import atomic_write

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
    def _relative(prefix: str) -> Path:
        if prefix == ROOT:
            return Path("root.d")
        clean = prefix.strip("/")
        if not clean or any(part in ("", ".", "..") for part in clean.split("/")):
            raise TrustError(f"{prefix!r} is not an image name prefix (write it like "
                             "registry.example.org/shop, or use --root)")
        return Path("prefix.d") / clean

    def all_keys(self) -> list[TrustedKey]:
        """Every trusted key, admin files masking vendor files of the same path."""
        found: dict[Path, TrustedKey | None] = {}
        for base in (self.admin, self.vendor):
            for path in sorted(base.glob("root.d/*")) + sorted(base.glob("prefix.d/**/*")):
                relative = path.relative_to(base)
                if relative in found or not path.is_file() or \
                        not _FINGERPRINT.fullmatch(path.name):
                    continue
                data = path.read_bytes()
                if not data.strip():
                    found[relative] = None  # masked
                    continue
                prefix = ROOT if relative.parts[0] == "root.d" else \
                    "/".join(relative.parts[1:-1])
                found[relative] = TrustedKey(path.name, prefix, path, data)
        return [key for key in found.values() if key is not None]

    def keys_for(self, name: str) -> list[TrustedKey]:
        """Keys trusted to sign image ``name`` (registry/repository)."""
        return [key for key in self.all_keys()
                if key.prefix == ROOT or reference.matches_prefix(name, key.prefix)]

    def add(self, prefix: str, armored: bytes) -> KeyInfo:
        info = inspect_key(armored)
        path = self.admin / self._relative(prefix) / info.fingerprint
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        atomic_write(path, armored, 0o644)
        return info

    def remove(self, fingerprint: str, prefix: str | None = None) -> list[TrustedKey]:
        """Distrust ``fingerprint`` (under ``prefix`` only, if given): remove the admin file,
        and mask a vendor file with an empty admin file."""
        fingerprint = fingerprint.replace(" ", "").upper()
        matches = [k for k in self.all_keys() if k.fingerprint == fingerprint
                   and (prefix is None or k.prefix == prefix.strip("/"))]
        if not matches:
            raise TrustError(f"no trusted key {fingerprint} (see podmgr trust list)")
        for key in matches:
            relative = self._relative(key.prefix) / key.fingerprint
            if key.path.is_relative_to(self.admin):
                key.path.unlink()
            if (self.vendor / relative).is_file():
                (self.admin / relative).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                atomic_write(self.admin / relative, b"", 0o644)
        return matches


def inspect_key(armored: bytes) -> KeyInfo:
    """Check that ``armored`` is one usable public key and say what it is."""
    home = tempfile.mkdtemp(prefix="podmgr-gpg-")
    try:
        gpg = gnupg.GPG(gnupghome=home)
        result = gpg.import_keys(armored)
        if result.count != 1 or len(result.fingerprints) != 1:
            raise TrustError(f"expected one OpenPGP public key, found {result.count} (export "
                             "the key with gpg --armor --export FINGERPRINT)")
        [key] = gpg.list_keys()
        if key.get("trust") in ("r", "e"):
            state = "revoked" if key["trust"] == "r" else "expired"
            raise TrustError(f"key {key['fingerprint']} is {state} (ask the signer for a "
                             "current key)")
        return KeyInfo(key["fingerprint"], tuple(key.get("uids") or ()), key.get("expires") or "")
    finally:
        shutil.rmtree(home, ignore_errors=True)
