# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checking image signatures with the trust store.

Two kinds, both OpenPGP and checked by gpg (confined: gpgsandbox.py) in a throwaway
keyring holding only trusted keys (never the user's own keyring):

- containers "simple signing" (containers-signature(5)): a signed message whose JSON
  payload names the manifest digest and the docker reference.  The payload is parsed
  strictly, as containers/image does: exactly the known fields, no duplicate keys.
- a detached signature over a whole archive, FILE.asc or FILE.sig (as rkt's .aci.asc).

Each signature is judged on its own, as containers/image's signedBy requirement does:
the image is accepted if one of them is, and a refusal says why each one failed.  A
signature is accepted only if gpg finds it good, made by a key that is neither expired
nor revoked, whose primary fingerprint the trust store trusts for the image's name, and
(simple signing) whose payload names this manifest and this image, by containers/image's
default rule (matchRepoDigestOrExact): a name with a tag must be signed as exactly that
name and tag, a name with only a digest by any tag of its repository; an identity without
tag or digest names no image and is refused.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from podmgr.errors import PodmgrError
from podmgr.image import gpgsandbox, reference
from podmgr.image.digest import Digest
from podmgr.image.trust import ROOT, TrustedKey

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
        raise SignatureRejected("its payload has a key twice (not a valid simple-signing payload)")
    return dict(pairs)


def _exact(obj: object, fields: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise SignatureRejected(f"its payload's {what} is not a JSON object")
    if set(obj) != fields:
        unknown = sorted(set(obj) - fields) or sorted(fields - set(obj))
        raise SignatureRejected(
            f"its payload's {what} has unexpected or missing fields "
            f"{', '.join(unknown)} (refused: fields there are critical)"
        )
    return obj


def parse_payload(data: bytes) -> Payload:
    try:
        obj = json.loads(data, object_pairs_hook=_no_duplicates)
    except ValueError as error:
        raise SignatureRejected(f"its payload is not JSON ({error})") from None
    top = _exact(obj, {"critical", "optional"}, "top level")
    optional = top["optional"]
    if not isinstance(optional, dict):
        raise SignatureRejected("its payload's optional is not a JSON object")
    # What containers/image reads of optional must have its type; the rest is ignored.
    if "creator" in optional and not isinstance(optional["creator"], str):
        raise SignatureRejected("its payload's optional.creator is not a string")
    timestamp = optional.get("timestamp")
    if "timestamp" in optional and (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int | float)
        or timestamp != int(timestamp)
    ):
        raise SignatureRejected("its payload's optional.timestamp is not an integer")
    critical = _exact(top["critical"], {"type", "image", "identity"}, "critical")
    if critical["type"] != SIGNATURE_TYPE:
        raise SignatureRejected(
            f"its payload's type {critical['type']!r} is not {SIGNATURE_TYPE!r}"
        )
    image = _exact(critical["image"], {"docker-manifest-digest"}, "critical.image")
    identity = _exact(critical["identity"], {"docker-reference"}, "critical.identity")
    try:
        digest = Digest(str(image["docker-manifest-digest"]))
    except PodmgrError:
        raise SignatureRejected("its payload's docker-manifest-digest is not a digest") from None
    if not isinstance(identity["docker-reference"], str):
        raise SignatureRejected("its payload's docker-reference is not a string")
    return Payload(digest, identity["docker-reference"])


def _date(timestamp: str) -> str:
    try:
        return time.strftime("%Y-%m-%d", time.gmtime(int(timestamp)))
    except (ValueError, OverflowError):
        return "an unknown date"


def _key(key_id: str, reply: gpgsandbox.Reply) -> tuple[str, gpgsandbox.KeyDetails | None]:
    """How to name the key ``key_id`` (a long key id or a fingerprint), and its details
    if the keyring has it."""
    for details in reply.keys:
        if key_id in details.key_ids or key_id == details.fingerprint:
            return details.fingerprint, details
    return key_id or "(no key id)", None


def _signer(outcome: gpgsandbox.Outcome, reply: gpgsandbox.Reply, scope: str) -> str:
    """The primary fingerprint of the key that made a good signature, or what is wrong
    with it, in gpg's own words turned into one line."""
    status: dict[str, list[str]] = {}
    for key, value in outcome.statuses:
        status.setdefault(key, []).append(value)

    def field(kind: str, index: int = 0) -> str:
        """A field of gpg's first KIND line ("" if it has none: gpg is trusted to
        answer, not to answer well)."""
        fields = status[kind][0].split() if status.get(kind) else []
        return fields[index] if len(fields) > index else ""

    count = len(status.get("NEWSIG", []))
    if count > 1:
        raise SignatureRejected(
            f"it holds {count} OpenPGP signatures (a containers signature has one)"
        )
    if "EXPKEYSIG" in status:
        name, details = _key(field("EXPKEYSIG"), reply)
        expired = field("KEYEXPIRED") or (details.expires if details else "")
        raise SignatureRejected(
            f"made by key {name}, which expired on {_date(expired)} (ask "
            "the publisher to sign with a current key)"
        )
    if "REVKEYSIG" in status:
        name, _ = _key(field("REVKEYSIG"), reply)
        raise SignatureRejected(
            f"made by key {name}, which is revoked (ask the publisher to sign with a current key)"
        )
    if "BADSIG" in status:
        name, _ = _key(field("BADSIG"), reply)
        raise SignatureRejected(
            f"bad signature by key {name}: it does not match the signed "
            "data (the image or the signature was tampered with)"
        )
    if "EXPSIG" in status:
        name, _ = _key(field("EXPSIG"), reply)
        raise SignatureRejected(
            f"the signature by key {name} expired on "
            f"{_date(field('VALIDSIG', 3))} (ask the publisher to sign "
            "the image again)"
        )
    if "ERRSIG" in status:
        key_id = (
            field("ERRSIG", 6)
            if field("ERRSIG", 6) not in ("", "-")
            else field("ERRSIG") or "(no key id)"
        )
        if "NO_PUBKEY" in status or field("ERRSIG", 5) == "9":
            raise SignatureRejected(
                f"made by key {key_id}, which is not in the trust store "
                f"for {scope} (podmgr trust add --prefix PREFIX KEY.asc)"
            )
        raise SignatureRejected(
            f"gpg cannot check the signature by key {key_id} (error "
            f"{field('ERRSIG', 5) or '?'}: unsupported algorithm or "
            "damaged signature)"
        )
    primary = field("VALIDSIG", 9)  # VALIDSIG's tenth field: the primary key's fingerprint
    if "GOODSIG" in status and re.fullmatch(r"[0-9A-F]{40}|[0-9A-F]{64}", primary):
        return primary
    if "PLAINTEXT" in status and "NEWSIG" not in status:
        raise SignatureRejected("it is an OpenPGP message without a signature")
    if "NODATA" in status or not outcome.complaint:
        raise SignatureRejected("it is not an OpenPGP signature")
    raise SignatureRejected(
        f"gpg cannot read it: {outcome.complaint} (a damaged or truncated signature)"
    )


def _trusted_for(fingerprint: str, keys: list[TrustedKey], name: str) -> bool:
    return any(
        key.fingerprint == fingerprint
        and (key.prefix == ROOT or reference.matches_prefix(name, key.prefix))
        for key in keys
    )


def _scopes(fingerprint: str, keys: list[TrustedKey]) -> str:
    return ", ".join(sorted(key.scope for key in keys if key.fingerprint == fingerprint))


def identity_matches(signed: reference.Reference, wanted: reference.Reference) -> bool:
    """containers/image's default rule (matchRepoDigestOrExact): a wanted name with a tag
    must be signed as exactly it; one with only a digest by any reference to its
    repository that names an image.  (The digest itself is the manifest's, checked
    against the payload's.)"""
    if signed.name_only:
        return False
    if wanted.tag is not None:
        return str(signed) == str(wanted)
    return wanted.digest is not None and signed.name == wanted.name


def _judge_simple(
    outcome: gpgsandbox.Outcome,
    reply: gpgsandbox.Reply,
    keys: list[TrustedKey],
    manifest_digest: Digest,
    name: str | None,
) -> Verified:
    fingerprint = _signer(outcome, reply, reference.parse_exact(name).name if name else "any name")
    payload = parse_payload(outcome.data)
    if payload.manifest_digest != manifest_digest:
        raise SignatureRejected(
            f"by key {fingerprint}: it signs manifest "
            f"{payload.manifest_digest}, not this image's "
            f"{manifest_digest} (the image was changed after signing)"
        )
    try:
        signed = reference.parse_exact(payload.docker_reference)
    except reference.BadReference:
        raise SignatureRejected(
            f"by key {fingerprint}: its identity "
            f"{payload.docker_reference!r} is not an image reference"
        ) from None
    if signed.name_only:
        raise SignatureRejected(
            f"by key {fingerprint}: its identity {signed} has no tag or "
            "digest, so it names no image (sign with --sign-identity "
            "NAME:TAG)"
        )
    if name is not None and not identity_matches(signed, reference.parse_exact(name)):
        raise SignatureRejected(
            f"by key {fingerprint}: wrong identity {signed} for {name} "
            "(sign the image with --sign-identity set to the name it is "
            "stored under)"
        )
    if not _trusted_for(fingerprint, keys, signed.name):
        scopes = _scopes(fingerprint, keys)
        raise SignatureRejected(
            f"by key {fingerprint}, which is not in the trust store for "
            f"{signed.name}"
            + (f" (only for {scopes})" if scopes else "")
            + " (podmgr trust add --prefix PREFIX KEY.asc)"
        )
    return Verified(fingerprint, str(signed))


def verify_simple(
    signatures: list[bytes], keys: list[TrustedKey], manifest_digest: Digest, name: str | None
) -> tuple[Verified | None, list[str]]:
    """Judge each simple-signing signature on its own: the first accepted one, and why
    each one before it was refused.  ``name`` None takes the identity a signature names;
    ``keys`` are every trusted key (whether one is trusted for the name is checked here,
    so a refusal can say for what it is trusted)."""
    readable: list[tuple[int, bytes]] = []
    reasons: list[str] = []
    for number, blob in enumerate(signatures, 1):
        try:
            readable.append((number, _openpgp(blob)))
        except SignatureRejected as error:
            reasons.append(f"signature {number}: {error}")
    if not readable:
        return None, reasons
    reply = gpgsandbox.run(_armored(keys), [blob for _, blob in readable])
    for (number, _), outcome in zip(readable, reply.outcomes, strict=True):
        try:
            return _judge_simple(outcome, reply, keys, manifest_digest, name), reasons
        except SignatureRejected as error:
            reasons.append(f"signature {number}: {error}")
    reasons.sort(key=lambda reason: int(reason.split(":", 1)[0].split()[1]))
    return None, reasons


def _openpgp(blob: bytes) -> bytes:
    """The OpenPGP message of a stored signature: containers/image writes simple signing
    as it is, or (its newer format) after a NUL, a format name and a newline."""
    if not blob.startswith(b"\0"):
        return blob
    name, newline, rest = blob[1:].partition(b"\n")
    if not newline:
        raise SignatureRejected("it is not an OpenPGP signature")
    if name != b"simple-signing":
        kind = name.decode("ascii", "replace")[:80]
        raise SignatureRejected(
            f"it is a {kind!r} signature, which podmgr does not check "
            "(sign with skopeo copy --sign-by)"
        )
    return rest


def verify_detached(
    data_path: str, signature: bytes, keys: list[TrustedKey], name: str
) -> Verified:
    """Check a detached signature over the file ``data_path`` for image ``name``."""
    wanted = reference.parse_exact(name).name
    reply = gpgsandbox.run(_armored(keys), [], detached=(data_path, signature))
    fingerprint = _signer(reply.outcomes[0], reply, wanted)
    if not _trusted_for(fingerprint, keys, wanted):
        scopes = _scopes(fingerprint, keys)
        raise SignatureRejected(
            f"by key {fingerprint}, which is not in the trust store for "
            f"{wanted}"
            + (f" (only for {scopes})" if scopes else "")
            + " (podmgr trust add --prefix PREFIX KEY.asc)"
        )
    return Verified(fingerprint, "")


def _armored(keys: list[TrustedKey]) -> list[bytes]:
    """Each key once, though it may be trusted for several prefixes."""
    return list({key.fingerprint: key.armored for key in keys}.values())
