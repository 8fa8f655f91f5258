# SPDX-License-Identifier: LGPL-2.1-or-later
"""Signatures and the trust store, judged as containers/image judges them.

Every case is a dir: image written and signed by skopeo (or, where skopeo will not make
such a signature, by gpg as skopeo would), then given both to podmgr and to `skopeo copy`
under a policy.json whose signedBy requirement trusts the same keys for the same name:
the table asserts podmgr's verdict, its message, and that skopeo's verdict is the same,
so every disagreement shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import imagebuild as ib
import pytest
from signing_keys import Key, Keyring

from podmgr import config
from podmgr.errors import PodmgrError
from podmgr.image import pull, reference, signing
from podmgr.image.digest import DigestMismatch
from podmgr.image.store import Store
from podmgr.image.trust import ROOT, TrustError, TrustStore

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="importing unpacks layers with owners: needs root",
)

NAME = "registry.example.org/shop/api:1.4"
PREFIX = "registry.example.org/shop"


def small_image() -> ib.Image:
    return ib.Image(
        [ib.tar([ib.directory("etc"), ib.file("etc/version", b"api")])],
        "gzip",
        {"Cmd": ["/bin/api"]},
    )


@dataclass
class World:
    keyring: Keyring
    keys: dict[str, Key]
    prototype: Path  # an unsigned dir: image, copied for each case
    digest: str  # its manifest digest
    presigned: dict[str, bytes]  # signatures made before their key was revoked
    work: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("trust")
    ring = Keyring(work / "gnupg")
    keys = {name: ring.make(name) for name in ("release", "stranger", "other", "revoked", "subkey")}
    keys["subkey"] = ring.add_signing_subkey(keys["subkey"])
    keys["expired"] = ring.make("expired", expired=True)
    keys["old"] = ring.make("old", old=True)
    ib.write_layout(work / "layout", {"1.4": small_image()})
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"oci:{work}/layout:1.4", f"dir:{work}/prototype"], check=True
    )
    digest = ib.sha256((work / "prototype" / "manifest.json").read_bytes())
    presigned = {"revoked": ring.sign_simple(keys["revoked"], digest, NAME)}
    keys["revoked"] = ring.revoke(keys["revoked"])
    yield World(ring, keys, work / "prototype", digest, presigned, work)
    ring.close()


def trust_store(root: Path, world: World) -> TrustStore:
    """What the administrator trusts: release, and (while they were valid) expired,
    revoked and old for PREFIX; other only for another prefix."""
    trust = TrustStore(root / "etc-keys", root / "lib-keys")
    trust.add(PREFIX, world.keys["release"].armored)
    trust.add(PREFIX, world.keys["old"].armored)
    trust.add(PREFIX, world.keys["subkey"].armored)
    trust.add("registry.example.org/other", world.keys["other"].armored)
    for name in ("expired", "revoked"):  # trust add refuses them now
        path = trust.admin / "prefix.d" / PREFIX / world.keys[name].fingerprint
        path.write_bytes(world.keys[name].armored)
    return trust


def policy(root: Path, world: World, identity: dict[str, str]) -> Path:
    """The same trust as a containers policy.json (keys for PREFIX, for dir: images)."""
    keyring = world.keyring.export(
        [world.keys[name] for name in ("release", "old", "subkey", "expired", "revoked")],
        root / "trusted.gpg",
    )
    path = root / "policy.json"
    path.write_text(
        json.dumps(
            {
                "default": [{"type": "reject"}],
                "transports": {
                    "dir": {
                        "": [
                            {
                                "type": "signedBy",
                                "keyType": "GPGKeys",
                                "keyPath": str(keyring),
                                "signedIdentity": identity,
                            }
                        ]
                    }
                },
            }
        )
    )
    return path


def skopeo_accepts(source: Path, policy_path: Path) -> bool:
    copied = subprocess.run(
        [
            "skopeo",
            "--policy",
            str(policy_path),
            "copy",
            "--quiet",
            f"dir:{source}",
            f"dir:{source.parent}/copied",
        ],
        capture_output=True,
        check=False,
    )
    shutil.rmtree(source.parent / "copied", ignore_errors=True)
    return copied.returncode == 0


# How each case's image is signed: (world, image dir) -> None.
Signer = Callable[[World, Path], None]


def skopeo_sign(key: str, identity: str = NAME) -> Signer:
    """A signature made by skopeo standalone-sign, added as the next signature-N."""

    def sign(world: World, source: Path) -> None:
        number = len(list(source.glob("signature-*"))) + 1
        subprocess.run(
            [
                "skopeo",
                "standalone-sign",
                "--output",
                str(source / f"signature-{number}"),
                str(source / "manifest.json"),
                identity,
                world.keys[key].fingerprint,
            ],
            env=world.keyring.env,
            check=True,
            capture_output=True,
        )

    return sign


def gpg_sign(key: str, identity: str = NAME, **options: object) -> Signer:
    """A signature skopeo will not make (an expired or revoked key, a hand-made payload)."""

    def sign(world: World, source: Path) -> None:
        number = len(list(source.glob("signature-*"))) + 1
        if key in world.presigned:
            data = world.presigned[key]
        else:
            payload = options.get("payload")
            data = world.keyring.sign_simple(
                world.keys[key],
                world.digest,
                identity,
                expired=bool(options.get("expired")),
                expires=bool(options.get("expires")),
                payload=payload.replace(b"DIGEST", world.digest.encode())
                if isinstance(payload, bytes)
                else None,
            )
        (source / f"signature-{number}").write_bytes(data)

    return sign


def junk(data: bytes) -> Signer:
    def sign(world: World, source: Path) -> None:
        number = len(list(source.glob("signature-*"))) + 1
        (source / f"signature-{number}").write_bytes(data)

    return sign


def corrupt_last(world: World, source: Path) -> None:
    [last] = sorted(source.glob("signature-*"))[-1:]
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0x55
    last.write_bytes(bytes(data))


def prefix_format(world: World, source: Path) -> None:
    """Rewrite signature-1 in containers/image's newer format: NUL, name, newline."""
    first = source / "signature-1"
    first.write_bytes(b"\x00simple-signing\n" + first.read_bytes())


def tamper_manifest(world: World, source: Path) -> None:
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["annotations"] = {"tampered": "yes"}
    (source / "manifest.json").write_text(json.dumps(manifest))


def payload(critical_extra: str = "", duplicate: bool = False, optional: str = "{}") -> bytes:
    identity = f'{{"docker-reference": "{NAME}"}}'
    image = '{"docker-manifest-digest": "DIGEST"}'
    twice = ', "type": "atomic container signature"' if duplicate else ""
    return (
        f'{{"critical": {{"type": "atomic container signature", "image": {image}, '
        f'"identity": {identity}{twice}{critical_extra}}}, "optional": {optional}}}'
    ).encode()


def literal_only(world: World, source: Path) -> None:
    """An OpenPGP message holding the payload but no signature (gpg --store)."""
    number = len(list(source.glob("signature-*"))) + 1
    data = payload().replace(b"DIGEST", world.digest.encode())
    (source / f"signature-{number}").write_bytes(world.keyring.gpg("--store", input=data))


# Where podmgr's verdict differs from the installed skopeo's:
# - junk-then-good, deliberately (README, "Signatures"): a signature file in no format
#   containers/image knows makes it refuse the whole image; podmgr refuses that
#   signature only and judges the others;
# - signed-by-a-subkey: skopeo 1.9's containers/image refuses a signature by a signing
#   subkey of a trusted key; containers/image since then takes the subkey's primary key
#   (keyIdentityForVerificationKeyIdentity, its dir-img-valid-subkey vector), as podmgr
#   does.
SKOPEO_DIFFERS = {"junk-then-good"}
_SKOPEO = subprocess.run(
    ["skopeo", "--version"], capture_output=True, text=True, check=False
).stdout.split()
if _SKOPEO[-1:] and _SKOPEO[-1].startswith("1.9."):  # Debian 12's
    SKOPEO_DIFFERS.add("signed-by-a-subkey")

# case: (signers in order, then spoilers; None if podmgr accepts, else what it must say)
CASES: dict[str, tuple[list[Signer], str | None]] = {
    "signed-by-skopeo": ([skopeo_sign("release")], None),
    "two-good-signatures": ([skopeo_sign("release"), skopeo_sign("old")], None),
    "signed-by-a-subkey": ([skopeo_sign("subkey")], None),
    "unsigned": ([], "unsigned (no signature found"),
    "untrusted-key": (
        [skopeo_sign("stranger")],
        "signature 1: made by key {stranger}, which is not in the trust store "
        "for registry.example.org/shop/api (podmgr trust add",
    ),
    "key-trusted-elsewhere": (
        [skopeo_sign("other")],
        "signature 1: by key {other}, which is not in the trust store "
        "for registry.example.org/shop/api (only for "
        "registry.example.org/other)",
    ),
    "expired-key": (
        [gpg_sign("expired", expired=True)],
        "signature 1: made by key {expired}, which expired on 2020-01-02",
    ),
    "revoked-key": ([gpg_sign("revoked")], "signature 1: made by key {revoked}, which is revoked"),
    "expired-signature": (
        [gpg_sign("old", expires=True)],
        "signature 1: the signature by key {old} expired on 2020-01-02",
    ),
    "wrong-repository": (
        [skopeo_sign("release", "registry.example.org/shop/other:1.4")],
        "signature 1: by key {release}: wrong identity "
        "registry.example.org/shop/other:1.4 for " + NAME,
    ),
    "wrong-tag": (
        [skopeo_sign("release", "registry.example.org/shop/api:1.5")],
        "wrong identity registry.example.org/shop/api:1.5 for " + NAME,
    ),
    "identity-without-tag": (
        [skopeo_sign("release", "registry.example.org/shop/api")],
        "its identity registry.example.org/shop/api has no tag or digest",
    ),
    "short-identity-without-tag": (
        [skopeo_sign("release", "testing/manifest")],
        "its identity docker.io/testing/manifest has no tag",
    ),
    "invalid-identity": (
        [skopeo_sign("release", "Registry.Example.org/SHOP:x")],
        "its identity 'Registry.Example.org/SHOP:x' is not an image reference",
    ),
    "junk-then-good": ([junk(b"not a signature"), skopeo_sign("release")], None),
    "invalid-identity-then-good": (
        [skopeo_sign("release", "UPPER/Case:1"), skopeo_sign("release")],
        None,
    ),
    "no-tag-then-good": (
        [skopeo_sign("release", "registry.example.org/shop/api"), skopeo_sign("release")],
        None,
    ),
    "each-refusal-listed": (
        [skopeo_sign("stranger"), skopeo_sign("release", "x.org/y:1")],
        "refused, signature 1: made by key {stranger}, which is not in the "
        "trust store for registry.example.org/shop/api (podmgr trust "
        "add --prefix PREFIX KEY.asc); signature 2: by key {release}: wrong "
        "identity x.org/y:1 for " + NAME,
    ),
    "tampered-manifest": (
        [skopeo_sign("release"), tamper_manifest],
        "the image was changed after signing",
    ),
    "corrupted-signature": ([skopeo_sign("release"), corrupt_last], "signature 1: "),
    "not-openpgp": ([junk(b"\x00" * 64)], "signature 1: it is not an OpenPGP signature"),
    "sigstore-format": (
        [junk(b"\x00application/vnd.dev.cosign-simplesigning.v1+json\n{}")],
        "signature 1: it is a 'application/vnd.dev.cosign-simplesigning.v1+"
        "json' signature, which podmgr does not check",
    ),
    "new-format-simple-signing": ([skopeo_sign("release"), prefix_format], None),
    "duplicate-key-in-payload": (
        [gpg_sign("release", payload=payload(duplicate=True))],
        "its payload has a key twice",
    ),
    "unknown-critical-field": (
        [gpg_sign("release", payload=payload(', "x": 1'))],
        "unexpected or missing fields x",
    ),
    "optional-fields-of-any-kind": (
        [
            gpg_sign(
                "release",
                payload=payload(optional='{"creator": "c", "timestamp": 1700000000, "x": [1]}'),
            )
        ],
        None,
    ),
    "optional-timestamp-not-integer": (
        [gpg_sign("release", payload=payload(optional='{"timestamp": 1.5}'))],
        "optional.timestamp is not an integer",
    ),
    "optional-creator-not-string": (
        [gpg_sign("release", payload=payload(optional='{"creator": 7}'))],
        "optional.creator is not a string",
    ),
    "payload-not-json-then-good": (
        [gpg_sign("release", payload=b"not json"), skopeo_sign("release")],
        None,
    ),
    "no-signature-in-the-message": (
        [literal_only],
        "signature 1: it is an OpenPGP message without a signature",
    ),
}


def snapshot(store: Store) -> dict[str, int]:
    return (
        {
            str(p.relative_to(store.root)): p.lstat().st_size
            for p in store.root.rglob("*")
            if "lock" not in p.name
        }
        if store.root.exists()
        else {}
    )


def make_case(world: World, root: Path, steps: list[Signer]) -> Path:
    source = root / "image"
    shutil.copytree(world.prototype, source)
    for step in steps:
        step(world, source)
    return source


@pytest.mark.parametrize("case", CASES)
def test_verdicts_agree_with_skopeo(case: str, tmp_path: Path, world: World) -> None:
    steps, expected = CASES[case]
    source = make_case(world, tmp_path, steps)
    trust = trust_store(tmp_path, world)
    store = Store(tmp_path / "store")
    cfg = config.Config(config.ImagePolicy((), 1_000_000, 1 << 30, False, False), {})
    skopeo = skopeo_accepts(
        source, policy(tmp_path, world, {"type": "exactReference", "dockerReference": NAME})
    )
    agrees = case not in SKOPEO_DIFFERS
    if expected is None:
        record = pull.fetch(f"dir:{source}", NAME, store, cfg, trust)
        assert record.name == NAME
        assert skopeo == agrees, "podmgr accepts what skopeo refuses"
        return
    message = expected.format(**{name: key.fingerprint for name, key in world.keys.items()})
    before = snapshot(store)
    with pytest.raises(PodmgrError, match=re.escape(message)) as refused:
        pull.fetch(f"dir:{source}", NAME, store, cfg, trust)
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith(NAME) or case == "tampered-manifest"
    assert snapshot(store) == before  # nothing stored, nothing unpacked
    assert skopeo != agrees, "podmgr refuses what skopeo accepts"


def test_a_digest_name_takes_a_signature_for_any_tag(tmp_path: Path, world: World) -> None:
    """matchRepoDigestOrExact: a name by digest is signed by any tag of its repository."""
    source = make_case(world, tmp_path, [skopeo_sign("release")])
    trust = trust_store(tmp_path, world)
    cfg = config.Config(config.ImagePolicy((), 1_000_000, 1 << 30, False, False), {})
    pinned = f"registry.example.org/shop/api@{world.digest}"
    record = pull.fetch(f"dir:{source}", pinned, Store(tmp_path / "store"), cfg, trust)
    assert record.name == pinned
    assert skopeo_accepts(
        source,
        policy(
            tmp_path,
            world,
            {"type": "exactRepository", "dockerRepository": "registry.example.org/shop/api"},
        ),
    )


def test_an_identity_without_a_tag_is_not_latest(tmp_path: Path, world: World) -> None:
    """docker-reference "testing/manifest" names no image: not testing/manifest:latest."""
    latest = "registry.example.org/shop/api:latest"
    source = make_case(world, tmp_path, [skopeo_sign("release", "registry.example.org/shop/api")])
    trust = trust_store(tmp_path, world)
    cfg = config.Config(config.ImagePolicy((), 1_000_000, 1 << 30, False, False), {})
    with pytest.raises(signing.SignatureRejected, match="has no tag or digest"):
        pull.fetch(
            f"dir:{source}", "registry.example.org/shop/api", Store(tmp_path / "s"), cfg, trust
        )
    assert not skopeo_accepts(
        source, policy(tmp_path, world, {"type": "exactReference", "dockerReference": latest})
    )


def test_identity_rule(world: World) -> None:
    def matches(signed: str, wanted: str) -> bool:
        return signing.identity_matches(
            reference.parse_exact(signed), reference.parse_exact(wanted)
        )

    digest = "sha256:" + "a" * 64
    assert matches("x.org/a:1", "x.org/a:1")
    assert not matches("x.org/a:1", "x.org/a:2")
    assert not matches("x.org/a", "x.org/a:latest")  # no tag names no image
    assert matches("x.org/a:7", f"x.org/a@{digest}")
    assert not matches("x.org/b:7", f"x.org/a@{digest}")
    assert not matches("x.org/a:1", f"x.org/a:1@{digest}")  # tag and digest: exact only
    assert matches("busybox:1", "docker.io/library/busybox:1")


def test_a_pinned_digest_must_be_the_manifests(tmp_path: Path, world: World) -> None:
    source = make_case(world, tmp_path, [skopeo_sign("release")])
    trust = trust_store(tmp_path, world)
    store = Store(tmp_path / "store")
    cfg = config.Config(config.ImagePolicy((), 1_000_000, 1 << 30, False, False), {})
    wrong = "sha256:" + "0" * 64
    with pytest.raises(
        DigestMismatch, match=re.escape(f"has digest {world.digest}, not the {wrong} the name pins")
    ):
        pull.fetch(f"dir:{source}", f"registry.example.org/shop/api@{wrong}", store, cfg, trust)
    assert snapshot(store) == {}
    # Unsigned but allowed: the pin is checked all the same.
    insecure = config.Config(
        config.ImagePolicy(("example.org",), 1_000_000, 1 << 30, False, False), {}
    )
    with pytest.raises(DigestMismatch, match="the name pins"):
        pull.fetch(f"dir:{world.prototype}", f"example.org/x@{wrong}", store, insecure, trust)
    assert snapshot(store) == {}
    record = pull.fetch(
        f"dir:{world.prototype}", f"example.org/x@{world.digest}", store, insecure, trust
    )
    assert record.manifest == world.digest
    # A name the signature gives pins what it says too.
    pinned = make_case(
        world,
        tmp_path / "by-identity",
        [skopeo_sign("release", f"registry.example.org/shop/api@{wrong}")],
    )
    with pytest.raises(DigestMismatch, match="the name pins"):
        pull.fetch(f"dir:{pinned}", None, Store(tmp_path / "store2"), cfg, trust)


def test_a_pinned_digest_may_name_the_index(tmp_path: Path) -> None:
    """As `podman pull NAME@DIGEST` of a manifest list: the index's digest pins it."""
    arm = small_image()
    arm.architecture = "arm64"
    index = ib.write_multi_platform(tmp_path / "multi", "1", {"arm64": arm, "amd64": small_image()})
    trust = TrustStore(tmp_path / "k", tmp_path / "v")
    cfg = config.Config(config.ImagePolicy(("example.org",), 1_000_000, 1 << 30, False, False), {})
    record = pull.fetch(
        f"oci:{tmp_path}/multi:1", f"example.org/m@{index}", Store(tmp_path / "store"), cfg, trust
    )
    assert record.name == f"example.org/m@{index}"


def test_a_signed_manifest_list_from_skopeo_copy_all(tmp_path: Path, world: World) -> None:
    """skopeo copy --all --sign-by writes HEX.signature-N for each instance."""
    arm = small_image()
    arm.architecture = "arm64"
    ib.write_multi_platform(tmp_path / "multi", "1", {"arm64": arm, "amd64": small_image()})
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--all",
            "--sign-by",
            world.keys["release"].fingerprint,
            "--sign-identity",
            NAME,
            f"oci:{tmp_path}/multi:1",
            f"dir:{tmp_path}/signed",
        ],
        env=world.keyring.env,
        check=True,
    )
    assert list((tmp_path / "signed").glob("*.signature-1"))
    trust = trust_store(tmp_path, world)
    cfg = config.Config(config.ImagePolicy((), 1_000_000, 1 << 30, False, False), {})
    record = pull.fetch(f"dir:{tmp_path}/signed", NAME, Store(tmp_path / "store"), cfg, trust)
    assert record.signed_by == (world.keys["release"].fingerprint,)
    # Without the instances' signatures the list's own does not sign the instance (as
    # containers/image checks the instance it copies).
    for signature in (tmp_path / "signed").glob("*.signature-1"):
        signature.unlink()
    with pytest.raises(signing.SignatureRejected, match="unsigned"):
        pull.fetch(f"dir:{tmp_path}/signed", NAME, Store(tmp_path / "store2"), cfg, trust)


# The trust store


def test_prefixes_are_normalized_as_image_names(tmp_path: Path, world: World) -> None:
    trust = TrustStore(tmp_path / "etc", tmp_path / "lib")
    release = world.keys["release"]
    trust.add("testing/manifest", release.armored)
    trust.add("busybox", release.armored)
    trust.add("index.docker.io/team/", release.armored)
    assert sorted(key.prefix for key in trust.all_keys()) == [
        "docker.io/library/busybox",
        "docker.io/team",
        "docker.io/testing/manifest",
    ]
    assert trust.keys_for(reference.parse("testing/manifest:1").name)
    assert trust.keys_for(reference.parse("busybox").name)
    assert trust.keys_for("docker.io/team/app")
    assert not trust.keys_for("docker.io/testing/other")
    # A prefix stored before normalization still serves the names it meant.
    old = trust.admin / "prefix.d" / "legacy" / "app" / world.keys["other"].fingerprint
    old.parent.mkdir(parents=True)
    old.write_bytes(world.keys["other"].armored)
    assert [k.fingerprint for k in trust.keys_for("docker.io/legacy/app")] == [
        world.keys["other"].fingerprint
    ]
    assert [k.fingerprint for k in trust.keys_for(reference.parse("legacy/app:1").name)] == [
        world.keys["other"].fingerprint
    ]


@pytest.mark.parametrize(
    "prefix",
    [
        "Registry.example.org/Shop",
        "registry.example.org/a:1",
        "x.org/a@sha256:" + "a" * 64,
        "x.org/../etc",
        "/",
        "a//b",
        "x.org/" + "a" * 300,
        "bad_host.org:x/a",
    ],
)
def test_bad_prefixes_are_refused(prefix: str, tmp_path: Path, world: World) -> None:
    trust = TrustStore(tmp_path / "etc", tmp_path / "lib")
    with pytest.raises(TrustError, match="--root"):
        trust.add(prefix, world.keys["release"].armored)
    assert not (tmp_path / "etc").exists() or not any((tmp_path / "etc").rglob("*[0-9A-F]"))


def test_untrust_for_one_prefix_or_all(tmp_path: Path, world: World) -> None:
    vendor = TrustStore(tmp_path / "lib", tmp_path / "none")
    trust = TrustStore(tmp_path / "etc", tmp_path / "lib")
    release = world.keys["release"]
    trust.add("registry.example.org/a", release.armored)
    trust.add("registry.example.org/b", release.armored)
    vendor.add("registry.example.org/c", release.armored)
    trust.add(ROOT, release.armored)

    def scopes() -> list[str]:
        return sorted(key.prefix for key in trust.all_keys())

    trust.remove(release.fingerprint, "registry.example.org/a/")
    assert scopes() == ["", "registry.example.org/b", "registry.example.org/c"]
    with pytest.raises(TrustError, match=r"for registry\.example\.org/a"):
        trust.remove(release.fingerprint, "registry.example.org/a")
    trust.remove(release.fingerprint, ROOT)
    assert scopes() == ["registry.example.org/b", "registry.example.org/c"]
    trust.remove(release.fingerprint)  # every prefix; the vendor's key is masked
    assert scopes() == []
    assert (
        tmp_path / "etc" / "prefix.d" / "registry.example.org" / "c" / release.fingerprint
    ).read_bytes() == b""


def test_a_key_says_whether_the_vendor_or_the_admin_trusts_it(tmp_path: Path, world: World) -> None:
    """The origin ListTrustedKeys gives: an admin file is the admin's, also where it
    replaces a vendor file of the same prefix and fingerprint."""
    vendor = TrustStore(tmp_path / "lib", tmp_path / "none")
    trust = TrustStore(tmp_path / "etc", tmp_path / "lib")
    release, other = world.keys["release"], world.keys["other"]
    vendor.add("registry.example.org/v", release.armored)
    vendor.add("registry.example.org/both", other.armored)
    trust.add("registry.example.org/both", other.armored)
    trust.add("registry.example.org/a", release.armored)
    assert sorted((key.prefix, key.origin) for key in trust.all_keys()) == [
        ("registry.example.org/a", "admin"),
        ("registry.example.org/both", "admin"),
        ("registry.example.org/v", "vendor"),
    ]


def test_insecure_prefixes_read_as_trust_prefixes() -> None:
    """[images] insecure = ["testing/scratch"] means docker.io/testing/scratch, as a trust
    prefix does; a prefix that is none matches nothing."""
    cfg = config.Config(
        config.ImagePolicy(("testing/scratch", "Bad/Prefix"), 1_000_000, 1 << 30, False, False), {}
    )
    assert pull.insecure_allowed(cfg, reference.parse("testing/scratch/app:1").name)
    assert not pull.insecure_allowed(cfg, reference.parse("testing/other:1").name)
    assert not pull.insecure_allowed(cfg, "docker.io/bad/prefix")
