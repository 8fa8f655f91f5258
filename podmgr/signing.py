# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checking image signatures with the trust store.

Two kinds, both OpenPGP and checked by gpg in a keyring holding only the keys trusted
for the image's name (never the user's own keyring):

- containers "simple signing" (containers-signature(5)): a signed message whose JSON
  payload names the manifest digest and the docker reference.  The payload is parsed
  strictly, as containers/image does: exactly the known fields, no duplicate keys.
- a detached signature over a whole archive, FILE.asc or FILE.sig (as rkt's .aci.asc).

A signature is accepted only if gpg finds it good, made by a key that is neither expired
nor revoked, whose primary fingerprint the trust store trusts for the name, and (simple
signing) whose payload names this manifest and this image.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gnupg

from podmgr import reference
from podmgr.digest import Digest
from podmgr.errors import PodmgrError
from podmgr.trust import TrustedKey

SIGNATURE_TYPE = "atomic container signature"


class SignatureRejected(PodmgrError):
    code = "SignatureRejected"


@dataclass(frozen=True)
class Payload:
    manifest_digest: Digest
    docker_reference: str


@dataclass(frozen=True)
class Verified:
    fingerprint: str  # the signer's primary key fingerprint
    identity: str  # the reference the signature names ("" for a detached signature)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise SignatureRejected("signature payload: a key appears twice (not a valid "
                                "simple-signing payload)")
    return dict(pairs)


def _exact(obj: object, fields: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise SignatureRejected(f"signature payload: {what} is not a JSON object")
    if set(obj) != fields:
        unknown = sorted(set(obj) - fields) or sorted(fields - set(obj))
        raise SignatureRejected(f"signature payload: {what} has unexpected or missing fields "
                                f"{', '.join(unknown)} (refused: fields there are critical)")
    return obj


def parse_payload(data: bytes) -> Payload:
    try:
        obj = json.loads(data, object_pairs_hook=_no_duplicates)
    except ValueError as error:
        raise SignatureRejected(f"signature payload: not JSON ({error})") from None
    top = _exact(obj, {"critical", "optional"}, "the payload")
    if not isinstance(top["optional"], dict):
        raise SignatureRejected("signature payload: optional is not a JSON object")
    critical = _exact(top["critical"], {"type", "image", "identity"}, "critical")
    if critical["type"] != SIGNATURE_TYPE:
        raise SignatureRejected(f"signature payload: type {critical['type']!r} is not "
                                f"{SIGNATURE_TYPE!r}")
    image = _exact(critical["image"], {"docker-manifest-digest"}, "critical.image")
    identity = _exact(critical["identity"], {"docker-reference"}, "critical.identity")
    try:
        digest = Digest(str(image["docker-manifest-digest"]))
    except PodmgrError:
        raise SignatureRejected("signature payload: docker-manifest-digest is not a digest")\
            from None
    if not isinstance(identity["docker-reference"], str):
        raise SignatureRejected("signature payload: docker-reference is not a string")
    return Payload(digest, identity["docker-reference"])


@contextmanager
def _keyring(keys: list[TrustedKey]) -> Iterator[gnupg.GPG]:
    home = tempfile.mkdtemp(prefix="podmgr-gpg-")
    try:
        gpg = gnupg.GPG(gnupghome=home)
        for key in keys:
            gpg.import_keys(key.armored)
        yield gpg
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _check(result: Any, keys: list[TrustedKey], name: str) -> str:
    """The signer's primary fingerprint, if gpg's verdict is good and the key trusted."""
    key_status = getattr(result, "key_status", None)
    if key_status:
        raise SignatureRejected(f"signature: the {key_status} (ask the publisher to re-sign "
                                "with a current key, then update the trust store)")
    if not result.valid:
        reason = {"no public key": f"made by key {result.fingerprint or '?'}, which is not "
                                   f"trusted for {name} (podmgr trust add --prefix ...)",
                  "signature bad": "does not match the signed data (the image or signature "
                                   "was tampered with)",
                  "key expired": "made by an expired key (ask the publisher to re-sign)"}
        raise SignatureRejected("signature: " + reason.get(
            result.status, f"not valid ({result.status or 'not an OpenPGP signature'})"))
    fingerprint = str(result.pubkey_fingerprint or result.fingerprint)
    if fingerprint not in {key.fingerprint for key in keys}:
        raise SignatureRejected(f"signature: made by key {fingerprint}, which is not trusted "
                                f"for {name} (podmgr trust add --prefix ...)")
    return fingerprint


def verify_simple(signature: bytes, keys: list[TrustedKey], manifest_digest: Digest,
                  name: str | None) -> Verified:
    """Check one simple-signing signature; ``name`` None takes the identity it names."""
    with _keyring(keys) as gpg:
        result = gpg.decrypt(signature)
    scope = name or "any name"
    fingerprint = _check(result, keys, scope)
    payload = parse_payload(result.data)
    if payload.manifest_digest != manifest_digest:
        raise SignatureRejected(f"signature: it signs manifest {payload.manifest_digest}, not "
                                f"this image's {manifest_digest} (the image was changed after "
                                "signing)")
    signed = reference.parse(payload.docker_reference)
    if name is not None and not _identity_matches(signed, reference.parse(name)):
        raise SignatureRejected(f"signature: it is for {signed}, not {name} (sign the image "
                                "with --sign-identity set to the name it is stored under)")
    trusted_for = [key for key in keys if key.fingerprint == fingerprint]
    if not any(key.prefix == "" or reference.matches_prefix(signed.name, key.prefix)
               for key in trusted_for):
        raise SignatureRejected(f"signature: key {fingerprint} is not trusted for {signed.name}"
                                " (podmgr trust add --prefix ...)")
    return Verified(fingerprint, str(signed))


def _identity_matches(signed: reference.Reference, wanted: reference.Reference) -> bool:
    """containers/image's default: the same repository, and the same tag unless the image
    is named by digest alone."""
    return signed.name == wanted.name and (wanted.tag is None or signed.tag == wanted.tag)


def verify_detached(data_path: str, signature: bytes, keys: list[TrustedKey],
                    name: str) -> Verified:
    """Check a detached signature over the file ``data_path``."""
    with _keyring(keys) as gpg:
        # python-gnupg takes the signature as the stream and the signed file by name.
        result = gpg.verify_file(io.BytesIO(signature), data_path)
    return Verified(_check(result, keys, name), "")
