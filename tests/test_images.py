# SPDX-License-Identifier: LGPL-2.1-or-later
"""Importing images: every format, every refusal, and a store that stays consistent.

Runs on the host with stores under tmp_path; gpg and skopeo are the real tools.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import imagebuild as ib
import pytest
from signing_keys import Key, Keyring

from podmgr import config
from podmgr.errors import PodmgrError
from podmgr.image import oci, pull, signing
from podmgr.image.digest import DigestMismatch
from podmgr.image.store import NoSuchImage, Store
from podmgr.image.trust import TrustStore

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="unpacking sets owners and makes whiteouts: needs root",
)

NAME = "registry.example.org/shop/api:1.4"
PREFIX = "registry.example.org/shop"
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyring]:
    ring = Keyring(tmp_path_factory.mktemp("gnupg") / "home")
    yield ring
    ring.close()


@pytest.fixture(scope="module")
def keys(keyring: Keyring) -> dict[str, Key]:
    made = {name: keyring.make(name) for name in ("release", "stranger", "revoked")}
    made["expired"] = keyring.make("expired", expired=True)
    return made


@pytest.fixture
def env(tmp_path: Path) -> tuple[Store, TrustStore, config.Config]:
    policy = config.ImagePolicy((), 1_000_000, 1 << 30, False, False)
    return (
        Store(tmp_path / "store"),
        TrustStore(tmp_path / "etc-keys", tmp_path / "lib-keys"),
        config.Config(policy, {}),
    )


def small_image(compression: str = "gzip", marker: bytes = b"api") -> ib.Image:
    base = ib.tar(
        [
            ib.directory("etc"),
            ib.file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            ib.directory("bin"),
            ib.file("bin/api", b"#!/bin/sh\n", 0o755),
        ]
    )
    top = ib.tar([ib.file("etc/version", marker)])
    return ib.Image([base, top], compression, {"Cmd": ["/bin/api"], "User": "0"})


def layout(path: Path, image: ib.Image | None = None, tag: str = "1.4") -> str:
    ib.write_layout(path, {tag: image or small_image()})
    return f"oci:{path}:{tag}"


def signed_dir(tmp_path: Path, keyring: Keyring, key: Key, identity: str = NAME) -> Path:
    """A dir: layout signed by ``key`` with skopeo, as a publisher would make it."""
    source = layout(tmp_path / "layout")
    target = tmp_path / "signed"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--sign-by",
            key.fingerprint,
            "--sign-identity",
            identity,
            source,
            f"dir:{target}",
        ],
        env=keyring.env,
        check=True,
    )
    return target


def snapshot(store: Store) -> dict[str, int]:
    """Every path in the store with its size: what "nothing changed" compares."""
    return (
        {
            str(p.relative_to(store.root)): p.lstat().st_size
            for p in store.root.rglob("*")
            if "lock" not in p.name
        }
        if store.root.exists()
        else {}
    )


def test_every_compression_of_an_oci_layout(
    tmp_path: Path, env: tuple[Store, TrustStore, config.Config]
) -> None:
    store, trust, cfg = env
    cfg = config.Config(config.ImagePolicy((PREFIX,), 1_000_000, 1 << 30, False, False), {})
    layers: set[str] = set()
    for compression in ("", "gzip", "zstd"):
        source = layout(tmp_path / f"layout-{compression or 'none'}", small_image(compression))
        record = pull.fetch(source, f"{PREFIX}/{compression or 'none'}:1", store, cfg, trust)
        assert record.insecure
        layers.update(record.layers)
        assert (store.layer_path(record.layers[1]) / "etc/version").read_bytes() == b"api"
    assert len(layers) == 2  # the same content, however compressed, is stored once
    assert len(list(store.layers.glob("[0-9a-f]*"))) == 2


def test_formats_and_default_names(
    tmp_path: Path, keyring: Keyring, env: tuple[Store, TrustStore, config.Config]
) -> None:
    store, trust, _ = env
    cfg = config.Config(config.ImagePolicy(("example.org",), 1_000_000, 1 << 30, False, False), {})
    source = layout(tmp_path / "layout")
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            source,
            f"docker-archive:{tmp_path}/saved.tar:example.org/saved/app:2",
        ],
        check=True,
    )
    subprocess.run(
        ["skopeo", "copy", "--quiet", source, f"oci-archive:{tmp_path}/oci.tar"], check=True
    )
    ib.write_archive(tmp_path / "plain.tar", tmp_path / "layout")
    docker = pull.fetch(f"docker-archive:{tmp_path}/saved.tar", None, store, cfg, trust)
    assert docker.name == "example.org/saved/app:2"  # the archive's tag
    oci_archive = pull.fetch(
        f"oci-archive:{tmp_path}/oci.tar", "example.org/a/b", store, cfg, trust
    )
    assert oci_archive.name == "example.org/a/b:latest"
    ours = pull.fetch(
        f"oci-archive:{tmp_path}/plain.tar:1.4", "example.org/c/d:1", store, cfg, trust
    )
    assert ours.layers == oci_archive.layers == docker.layers
    with pytest.raises(PodmgrError, match="no name for the image"):
        pull.fetch(f"oci:{tmp_path}/layout:1.4", None, store, cfg, trust)


def test_a_docker_25_archive(tmp_path: Path, env: tuple[Store, TrustStore, config.Config]) -> None:
    """docker save >= 25 writes an OCI layout plus the old manifest.json."""
    store, trust, _ = env
    cfg = config.Config(config.ImagePolicy(("example.org",), 1_000_000, 1 << 30, False, False), {})
    layout(tmp_path / "layout", small_image(compression=""))
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    index["manifests"][0]["annotations"]["io.containerd.image.name"] = "example.org/d25/app:1"
    (tmp_path / "layout" / "index.json").write_text(json.dumps(index))
    manifest = json.loads(
        (tmp_path / "layout" / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text()
    )
    (tmp_path / "layout" / "manifest.json").write_text(
        json.dumps(
            [
                {
                    "Config": "blobs/sha256/" + manifest["config"]["digest"][7:],
                    "RepoTags": ["example.org/d25/app:1"],
                    "Layers": [
                        "blobs/sha256/" + layer["digest"][7:] for layer in manifest["layers"]
                    ],
                }
            ]
        )
    )
    ib.write_archive(tmp_path / "saved.tar", tmp_path / "layout")
    record = pull.fetch(f"docker-archive:{tmp_path}/saved.tar", None, store, cfg, trust)
    assert record.name == "example.org/d25/app:1"
    assert record.source == f"docker-archive:{tmp_path}/saved.tar"


def test_an_index_gives_this_hosts_image(
    tmp_path: Path, env: tuple[Store, TrustStore, config.Config]
) -> None:
    store, trust, _ = env
    cfg = config.Config(config.ImagePolicy(("example.org",), 1_000_000, 1 << 30, False, False), {})
    arm = small_image(marker=b"arm64")
    arm.architecture = "arm64"
    ib.write_layout(tmp_path / "images", {"arm": arm, "amd": small_image(marker=b"amd64")})
    index = json.loads((tmp_path / "images" / "index.json").read_text())
    for entry, arch in zip(index["manifests"], ("arm64", "amd64"), strict=True):
        entry["platform"] = {"os": "linux", "architecture": arch}
    nested = json.dumps(
        {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": index["manifests"]}
    ).encode()
    digest = ib.sha256(nested)
    (tmp_path / "images" / "blobs" / "sha256" / digest[7:]).write_bytes(nested)
    (tmp_path / "images" / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": oci.OCI_INDEX,
                        "digest": digest,
                        "size": len(nested),
                        "annotations": {"org.opencontainers.image.ref.name": "multi"},
                    }
                ],
            }
        )
    )
    record = pull.fetch(f"oci:{tmp_path}/images:multi", "example.org/multi/app", store, cfg, trust)
    assert (store.layer_path(record.layers[1]) / "etc/version").read_bytes() == b"amd64"


def test_schema_1_is_refused() -> None:
    with pytest.raises(oci.BadImage, match="schema 1 is not supported"):
        oci.media_type_of(b'{"schemaVersion": 1, "name": "x", "fsLayers": []}')


def trust_release(trust: TrustStore, keys: dict[str, Key], prefix: str = PREFIX) -> None:
    trust.add(prefix, keys["release"].armored)


def test_a_signed_image_is_stored(
    tmp_path: Path,
    keyring: Keyring,
    keys: dict[str, Key],
    env: tuple[Store, TrustStore, config.Config],
) -> None:
    store, trust, cfg = env
    trust_release(trust, keys)
    source = signed_dir(tmp_path, keyring, keys["release"])
    record = pull.fetch(f"dir:{source}", None, store, cfg, trust)
    assert record.name == NAME  # the identity the signature names
    assert record.signed_by == (keys["release"].fingerprint,)
    assert not record.insecure
    assert store.image(NAME) == record
    # skopeo agrees.
    subprocess.run(
        [
            "skopeo",
            "standalone-verify",
            f"{source}/manifest.json",
            NAME,
            keys["release"].fingerprint,
            f"{source}/signature-1",
        ],
        env=keyring.env,
        check=True,
        capture_output=True,
    )


def replace_signature(source: Path, signature: bytes) -> None:
    for old in source.glob("signature-*"):
        old.unlink()
    (source / "signature-1").write_bytes(signature)


def manifest_digest(source: Path) -> str:
    return ib.sha256((source / "manifest.json").read_bytes())


# Each refusal: how to spoil a signed image, what podmgr says, and whether skopeo's
# standalone-verify (which checks one given fingerprint) refuses it as well.
def spoil_unsigned(source: Path, keyring: Keyring, keys: dict[str, Key]) -> None:
    for old in source.glob("signature-*"):
        old.unlink()


def spoil_stranger(source: Path, keyring: Keyring, keys: dict[str, Key]) -> None:
    replace_signature(source, keyring.sign_simple(keys["stranger"], manifest_digest(source), NAME))


def spoil_expired(source: Path, keyring: Keyring, keys: dict[str, Key]) -> None:
    replace_signature(
        source, keyring.sign_simple(keys["expired"], manifest_digest(source), NAME, expired=True)
    )


def spoil_identity(source: Path, keyring: Keyring, keys: dict[str, Key]) -> None:
    replace_signature(
        source,
        keyring.sign_simple(
            keys["release"], manifest_digest(source), "registry.example.org/shop/other:1.4"
        ),
    )


def spoil_manifest(source: Path, keyring: Keyring, keys: dict[str, Key]) -> None:
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["annotations"] = {"tampered": "yes"}
    (source / "manifest.json").write_text(json.dumps(manifest))


def spoil_signature(source: Path, keyring: Keyring, keys: dict[str, Key]) -> None:
    data = bytearray((source / "signature-1").read_bytes())
    data[len(data) // 2] ^= 0x55
    (source / "signature-1").write_bytes(bytes(data))


def spoil_payload(source: Path, keyring: Keyring, keys: dict[str, Key]) -> None:
    digest = manifest_digest(source)
    payload = (
        b'{"critical": {"type": "atomic container signature", "image": '
        b'{"docker-manifest-digest": "' + digest.encode() + b'"}, "identity": '
        b'{"docker-reference": "' + NAME.encode() + b'"}, "type": "x"}, "optional": {}}'
    )
    replace_signature(source, keyring.sign_simple(keys["release"], digest, NAME, payload=payload))


REFUSALS = {
    "unsigned": (spoil_unsigned, "unsigned (no signature found", False),
    "untrusted-key": (spoil_stranger, "which is not in the trust store for", True),
    "expired-key": (spoil_expired, "expired", True),
    "wrong-identity": (spoil_identity, "wrong identity registry.example.org/shop/other:1.4", True),
    "tampered-manifest": (spoil_manifest, "the image was changed after signing", True),
    "bad-signature": (spoil_signature, "signature", True),
    "duplicate-key-in-payload": (spoil_payload, "its payload has a key twice", False),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals(
    case: str,
    tmp_path: Path,
    keyring: Keyring,
    keys: dict[str, Key],
    env: tuple[Store, TrustStore, config.Config],
) -> None:
    store, trust, cfg = env
    trust_release(trust, keys)
    # Trusted while it was valid (trust add refuses an expired key now).
    expired = trust.admin / "prefix.d" / PREFIX / keys["expired"].fingerprint
    expired.write_bytes(keys["expired"].armored)
    source = signed_dir(tmp_path, keyring, keys["release"])
    spoil, message, skopeo_refuses = REFUSALS[case]
    spoil(source, keyring, keys)
    before = snapshot(store)
    with pytest.raises(signing.SignatureRejected, match=re.escape(message)):
        pull.fetch(f"dir:{source}", NAME, store, cfg, trust)
    assert snapshot(store) == before  # nothing stored, nothing unpacked
    if skopeo_refuses:
        verify = subprocess.run(
            [
                "skopeo",
                "standalone-verify",
                f"{source}/manifest.json",
                NAME,
                keys["release"].fingerprint,
                f"{source}/signature-1",
            ],
            env=keyring.env,
            capture_output=True,
            check=False,
        )
        assert verify.returncode != 0


def test_a_revoked_key_is_refused(
    tmp_path: Path,
    keyring: Keyring,
    keys: dict[str, Key],
    env: tuple[Store, TrustStore, config.Config],
) -> None:
    store, trust, cfg = env
    source = signed_dir(tmp_path, keyring, keys["revoked"])
    # Trusted before it was revoked; the administrator then stored the revoked key.
    revoked = trust.admin / "prefix.d" / PREFIX / keys["revoked"].fingerprint
    revoked.parent.mkdir(parents=True)
    revoked.write_bytes(keyring.revoke(keys["revoked"]).armored)
    with pytest.raises(signing.SignatureRejected, match="revoked"):
        pull.fetch(f"dir:{source}", NAME, store, cfg, trust)
    assert not store.record_path(NAME).exists()


def test_a_tampered_layer_is_refused_before_unpacking(
    tmp_path: Path,
    keyring: Keyring,
    keys: dict[str, Key],
    env: tuple[Store, TrustStore, config.Config],
) -> None:
    store, trust, cfg = env
    trust_release(trust, keys)
    source = signed_dir(tmp_path, keyring, keys["release"])
    manifest = json.loads((source / "manifest.json").read_text())
    blob = source / manifest["layers"][0]["digest"].split(":")[1]
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="tampered"):
        pull.fetch(f"dir:{source}", NAME, store, cfg, trust)
    assert not any(store.layers.iterdir()) or all(
        p.name.endswith(".lock") for p in store.layers.iterdir()
    )
    with pytest.raises(NoSuchImage):
        store.image(NAME)


def test_detached_archive_signatures(
    tmp_path: Path,
    keyring: Keyring,
    keys: dict[str, Key],
    env: tuple[Store, TrustStore, config.Config],
) -> None:
    store, trust, cfg = env
    trust_release(trust, keys)
    layout(tmp_path / "layout")
    archive = tmp_path / "api.tar"
    ib.write_archive(archive, tmp_path / "layout")
    keyring.sign_detached(keys["release"], archive)
    record = pull.fetch(f"oci-archive:{archive}:1.4", NAME, store, cfg, trust)
    assert record.signed_by == (keys["release"].fingerprint,)
    with archive.open("ab") as file:
        file.write(b"\0" * 1024)  # tampered after signing
    with pytest.raises(signing.SignatureRejected, match="tampered"):
        pull.fetch(f"oci-archive:{archive}:1.4", f"{PREFIX}/again:1", store, cfg, trust)


def test_trust_store_masking_and_prefixes(tmp_path: Path, keys: dict[str, Key]) -> None:
    trust = TrustStore(tmp_path / "etc", tmp_path / "lib")
    vendor = TrustStore(tmp_path / "lib", tmp_path / "none")
    vendor.add(PREFIX, keys["release"].armored)
    assert [k.fingerprint for k in trust.keys_for("registry.example.org/shop/api")] == [
        keys["release"].fingerprint
    ]
    assert trust.keys_for("registry.example.org/shopping/api") == []
    trust.remove(keys["release"].fingerprint)  # masks the vendor key with an empty file
    assert trust.keys_for("registry.example.org/shop/api") == []
    masking = tmp_path / "etc" / "prefix.d" / PREFIX / keys["release"].fingerprint
    assert masking.read_bytes() == b""
    trust.add("", keys["stranger"].armored)  # the root set: every name
    assert [k.fingerprint for k in trust.keys_for("anything.example/x")] == [
        keys["stranger"].fingerprint
    ]


def test_payloads_are_parsed_strictly() -> None:
    good = {
        "critical": {
            "type": "atomic container signature",
            "image": {"docker-manifest-digest": "sha256:" + "a" * 64},
            "identity": {"docker-reference": NAME},
        },
        "optional": {},
    }
    assert signing.parse_payload(json.dumps(good).encode()).docker_reference == NAME
    bad = json.loads(json.dumps(good))
    bad["critical"]["image"]["extra"] = "x"
    with pytest.raises(signing.SignatureRejected, match="unexpected or missing fields extra"):
        signing.parse_payload(json.dumps(bad).encode())
    with pytest.raises(signing.SignatureRejected, match="not 'atomic container signature'"):
        signing.parse_payload(json.dumps(good).replace("atomic container", "other").encode())


def test_remove_and_gc_keep_shared_layers(
    tmp_path: Path, env: tuple[Store, TrustStore, config.Config]
) -> None:
    store, trust, _ = env
    cfg = config.Config(config.ImagePolicy(("example.org",), 1_000_000, 1 << 30, False, False), {})
    one = pull.fetch(
        layout(tmp_path / "one", small_image(marker=b"one")), "example.org/x/one", store, cfg, trust
    )
    two = pull.fetch(
        layout(tmp_path / "two", small_image(marker=b"two")), "example.org/x/two", store, cfg, trust
    )
    assert one.layers[0] == two.layers[0]  # the shared base
    pull.remove(store, "example.org/x/one")
    with store.locked(exclusive=True):
        assert store.collect(set()) == (1, 2)  # one's top layer, its manifest and config
    assert store.layer_path(two.layers[0]).is_dir()
    pull.remove(store, "example.org/x/two")
    with store.locked(exclusive=True):
        # A prepared pod still uses two's top layer: kept.
        assert store.collect({two.layers[1].hex}) == (1, 2)
    assert store.layer_path(two.layers[1]).is_dir()


IMPORT = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from podmgr import config
from podmgr.image import pull
from podmgr.image.store import Store
from podmgr.image.trust import TrustStore
cfg = config.Config(config.ImagePolicy(("example.org",), 10**6, 1 << 34, False, False), {{}})
pull.fetch(sys.argv[1], sys.argv[2], Store(Path(sys.argv[3])), cfg,
             TrustStore(Path(sys.argv[3]) / "k", Path(sys.argv[3]) / "v"))
"""


def importer(source: str, name: str, store: Path) -> subprocess.Popen[bytes]:
    script = IMPORT.format(tests=str(TESTS))
    return subprocess.Popen(
        [sys.executable, "-c", script, source, name, str(store)],
        env={**os.environ, "PYTHONPATH": str(TESTS.parent)},
    )


def big_image() -> ib.Image:
    noise = os.urandom(1 << 20)
    files = [ib.file(f"data/{i:03}", noise[i:] + noise[:i]) for i in range(64)]
    return ib.Image(
        [ib.tar([ib.directory("data"), *files]), ib.tar([ib.file("top", b"t")])], "gzip"
    )


def test_kill_9_during_import_leaves_a_store_the_next_import_completes(tmp_path: Path) -> None:
    source = layout(tmp_path / "layout", big_image())
    store = Store(tmp_path / "store")
    process = importer(source, "example.org/big/app", store.root)
    deadline = time.monotonic() + 30
    while not list(store.layers.glob(".*.partial")) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not store.record_path("example.org/big/app:latest").exists()
    assert not [p for p in store.layers.iterdir() if not p.name.startswith(".")]
    finished = importer(source, "example.org/big/app", store.root)
    assert finished.wait() == 0
    record = store.image("example.org/big/app:latest")
    assert all(store.layer_path(d).is_dir() for d in record.layers)
    assert not list(store.layers.glob(".*.partial"))


def test_concurrent_imports_share_layers(tmp_path: Path) -> None:
    base = big_image().layers[0]
    store = Store(tmp_path / "store")
    sources = [
        layout(
            tmp_path / f"layout{i}", ib.Image([base, ib.tar([ib.file("top", b"%d" % i)])], "gzip")
        )
        for i in range(2)
    ]
    processes = [importer(s, f"example.org/c/app{i}", store.root) for i, s in enumerate(sources)]
    assert [p.wait() for p in processes] == [0, 0]
    records = [store.image(f"example.org/c/app{i}:latest") for i in range(2)]
    assert records[0].layers[0] == records[1].layers[0]
    assert len([p for p in store.layers.iterdir() if not p.name.startswith(".")]) == 3
    shutil.rmtree(store.root)
