# SPDX-License-Identifier: LGPL-2.1-or-later
"""OpenPGP keys for tests: made with gpg in a GNUPGHOME of their own, never the user's."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

KEY_SPEC = """\
%no-protection
Key-Type: RSA
Key-Length: 2048
Key-Usage: sign
Name-Real: {name}
Name-Email: {email}
Expire-Date: {expire}
%commit
"""


@dataclass(frozen=True)
class Key:
    name: str
    fingerprint: str
    armored: bytes


class Keyring:
    """A GNUPGHOME with secret keys that sign test images (for gpg, skopeo)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.env = {**os.environ, "GNUPGHOME": str(home)}

    def gpg(self, *args: str, input: bytes | None = None) -> bytes:
        return subprocess.run(
            ["gpg", "--batch", "--quiet", *args],
            env=self.env,
            input=input,
            capture_output=True,
            check=True,
        ).stdout

    def make(self, name: str, expired: bool = False, old: bool = False) -> Key:
        """A signing key; an expired one was made in 2020, valid for a day; an old one
        was made in 2020 and never expires."""
        spec = KEY_SPEC.format(
            name=name, email=f"{name}@example.org", expire="1d" if expired else "0"
        )
        self.gpg(*self._past(expired or old), "--gen-key", input=spec.encode())
        listing = self.gpg("--with-colons", "--list-keys", f"{name}@example.org").decode()
        fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        return Key(name, fingerprint, self.gpg("--armor", "--export", fingerprint))

    @staticmethod
    def _past(expired: bool) -> list[str]:
        return ["--faked-system-time", "20200101T010000"] if expired else []

    def revoke(self, key: Key) -> Key:
        """Revoke ``key`` with the certificate gpg made for it; returns it as exported now."""
        revocation = (self.home / "openpgp-revocs.d" / f"{key.fingerprint}.rev").read_text()
        self.gpg("--import", input=revocation.replace(":-----", "-----").encode())
        return Key(key.name, key.fingerprint, self.gpg("--armor", "--export", key.fingerprint))

    def sign_simple(
        self,
        key: Key,
        manifest_digest: str,
        identity: str,
        expired: bool = False,
        payload: bytes | None = None,
        expires: bool = False,
    ) -> bytes:
        """A containers simple-signing signature, as skopeo copy --sign-by makes; made in
        2020 if ``expired`` (the key's time), or valid only for a day then if ``expires``
        (a signature that has expired)."""
        if payload is None:
            payload = json.dumps(
                {
                    "critical": {
                        "type": "atomic container signature",
                        "image": {"docker-manifest-digest": manifest_digest},
                        "identity": {"docker-reference": identity},
                    },
                    "optional": {"creator": "podmgr tests"},
                }
            ).encode()
        lifetime = ["--default-sig-expire", "1d"] if expires else []
        return self.gpg(
            *self._past(expired or expires),
            *lifetime,
            "--local-user",
            key.fingerprint,
            "--sign",
            input=payload,
        )

    def add_signing_subkey(self, key: Key) -> Key:
        """Give ``key`` a signing subkey, which gpg (and skopeo) then sign with."""
        self.gpg(
            "--passphrase",
            "",
            "--pinentry-mode",
            "loopback",
            "--quick-add-key",
            key.fingerprint,
            "rsa2048",
            "sign",
            "0",
        )
        return Key(key.name, key.fingerprint, self.gpg("--armor", "--export", key.fingerprint))

    def export(self, keys: list[Key], path: Path) -> Path:
        """The keys as one binary keyring file (what a policy.json keyPath names)."""
        path.write_bytes(self.gpg("--export", *(key.fingerprint for key in keys)))
        return path

    def sign_detached(self, key: Key, path: Path) -> Path:
        signature = path.with_name(path.name + ".asc")
        self.gpg(
            "--yes",
            "--local-user",
            key.fingerprint,
            "--armor",
            "--detach-sign",
            "--output",
            str(signature),
            str(path),
        )
        return signature

    def close(self) -> None:
        subprocess.run(["gpgconf", "--kill", "all"], env=self.env, check=False)
