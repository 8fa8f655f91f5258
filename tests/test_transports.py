# SPDX-License-Identifier: LGPL-2.1-or-later
"""Image sources as containers/image names them: paths end at the first colon, a
docker-archive of several images is picked from by name or index, and paths are
absolute.  The images are written by skopeo itself."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import imagebuild as ib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from podmgr import config
from podmgr.image import pull
from podmgr.image.sources import TRANSPORTS, open_source
from podmgr.image.store import ImageRecord, Store
from podmgr.image.transports import base
from podmgr.image.transports.base import SourceError
from podmgr.image.trust import TrustStore

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="importing unpacks layers with owners: needs root",
)

CONFIG = config.Config(
    config.ImagePolicy(("example.org", "example.test"), 1_000_000, 1 << 30, False, False), {}
)


def image(marker: bytes) -> ib.Image:
    return ib.Image([ib.tar([ib.directory("etc"), ib.file("etc/version", marker)])], "gzip")


def version(store: Store, record: ImageRecord) -> bytes:
    return (store.layer_path(record.layers[-1]) / "etc/version").read_bytes()


def skopeo(source: str, target: str) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", source, target], check=True)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
def trust(tmp_path: Path) -> TrustStore:
    return TrustStore(tmp_path / "keys", tmp_path / "vendor")


def test_oci_references_with_a_colon_as_skopeo_writes_them(
    tmp_path: Path, store: Store, trust: TrustStore
) -> None:
    ib.write_layout(tmp_path / "layout", {"1": image(b"one")})
    skopeo(f"oci:{tmp_path}/layout:1", f"oci:{tmp_path}/named:example.test/app:2")
    skopeo(f"oci:{tmp_path}/layout:1", f"oci-archive:{tmp_path}/named.tar:example.test/app:2")
    for source in (
        f"oci:{tmp_path}/named:example.test/app:2",
        f"oci-archive:{tmp_path}/named.tar:example.test/app:2",
    ):
        record = pull.fetch(source, None, store, CONFIG, trust)
        assert record.name == "example.test/app:2"  # the reference name skopeo wrote
        assert version(store, record) == b"one"


def test_oci_index_numbers(tmp_path: Path, store: Store, trust: TrustStore) -> None:
    ib.write_layout(tmp_path / "layout", {"a": image(b"a"), "b": image(b"b")})
    record = pull.fetch(f"oci:{tmp_path}/layout:@1", "example.org/x/b:1", store, CONFIG, trust)
    assert version(store, record) == b"b"
    with pytest.raises(SourceError, match=r"has 2 images, so no @2 \(they are @0 to @1\)"):
        pull.fetch(f"oci:{tmp_path}/layout:@2", "example.org/x/c:1", store, CONFIG, trust)
    with pytest.raises(
        SourceError,
        match=r"holds 2 images; name one with :REF or :@N "
        r"\(names: a, b\)",
    ):
        pull.fetch(f"oci:{tmp_path}/layout", "example.org/x/c:1", store, CONFIG, trust)


@pytest.fixture
def multi_archive(tmp_path: Path) -> Path:
    """A docker-archive of two images, as docker save A B writes it."""
    for name in ("a", "b"):
        ib.write_layout(tmp_path / name, {"1": image(name.encode())})
        skopeo(
            f"oci:{tmp_path}/{name}:1",
            f"docker-archive:{tmp_path}/{name}.tar:example.org/{name}/app:{name}1",
        )
    ib.merge_docker_archives(tmp_path / "both.tar", [tmp_path / "a.tar", tmp_path / "b.tar"])
    return tmp_path / "both.tar"


def test_a_multi_image_docker_archive(multi_archive: Path, store: Store, trust: TrustStore) -> None:
    by_name = pull.fetch(
        f"docker-archive:{multi_archive}:example.org/b/app:b1", None, store, CONFIG, trust
    )
    assert by_name.name == "example.org/b/app:b1"
    assert version(store, by_name) == b"b"
    by_number = pull.fetch(f"docker-archive:{multi_archive}:@0", None, store, CONFIG, trust)
    assert by_number.name == "example.org/a/app:a1"
    assert version(store, by_number) == b"a"
    listing = "@0: example.org/a/app:a1; @1: example.org/b/app:b1"
    with pytest.raises(
        SourceError, match=re.escape(f"holds 2 images; pick one with :NAME:TAG or :@N ({listing})")
    ):
        pull.fetch(f"docker-archive:{multi_archive}", None, store, CONFIG, trust)
    with pytest.raises(
        SourceError, match=re.escape(f"no image is tagged example.org/c/app:latest ({listing})")
    ):
        pull.fetch(f"docker-archive:{multi_archive}:example.org/c/app", None, store, CONFIG, trust)
    with pytest.raises(SourceError, match=re.escape(f"holds 2 images, so no @2 ({listing})")):
        pull.fetch(f"docker-archive:{multi_archive}:@2", None, store, CONFIG, trust)
    with pytest.raises(SourceError, match="is not an index"):
        pull.fetch(f"docker-archive:{multi_archive}:@x", None, store, CONFIG, trust)


def test_skopeo_reads_the_multi_image_archive_alike(multi_archive: Path, tmp_path: Path) -> None:
    """The selectors mean what they mean to skopeo: the same image comes out."""
    for selector, marker in ((":example.org/b/app:b1", b"b"), (":@0", b"a")):
        target = tmp_path / f"out{marker.decode()}"
        skopeo(f"docker-archive:{multi_archive}{selector}", f"oci:{target}:x")
        store = Store(tmp_path / f"store{marker.decode()}")
        record = pull.fetch(
            f"oci:{target}:x",
            "example.org/z/z:1",
            store,
            CONFIG,
            TrustStore(tmp_path / "k", tmp_path / "v"),
        )
        assert version(store, record) == marker
    failed = subprocess.run(
        ["skopeo", "copy", "--quiet", f"docker-archive:{multi_archive}", f"oci:{tmp_path}/none:x"],
        capture_output=True,
        check=False,
    )
    assert failed.returncode != 0  # skopeo wants a selector too


@pytest.mark.parametrize(
    "source",
    [
        "oci-archive:a.tar",
        "oci:layout:1",
        "dir:some/dir",
        "docker-archive:./saved.tar:@0",
        "oci:",
        "dir:",
    ],
)
def test_relative_paths_are_refused(source: str) -> None:
    with pytest.raises(SourceError, match=r"relative path|no path"):
        open_source(source, CONFIG)


@pytest.mark.parametrize("kind", ["oci-archive", "docker-archive"])
def test_an_archive_that_is_not_there_is_named_in_plain_words(kind: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.tar"
    with pytest.raises(SourceError) as refused:
        open_source(f"{kind}:{missing}", CONFIG)
    assert str(refused.value) == f"{missing}: cannot read the archive: no such file or directory"


def test_clients_make_paths_absolute() -> None:
    assert base.absolute("oci-archive:a.tar", "/x") == "oci-archive:/x/a.tar"
    assert base.absolute("oci:../l:example.test/app:2", "/x/y") == "oci:/x/l:example.test/app:2"
    assert base.absolute("docker-archive:s.tar:@1", "/x") == "docker-archive:/x/s.tar:@1"
    assert base.absolute("dir:d:with:colons", "/x") == "dir:/x/d:with:colons"
    assert base.absolute("oci:/abs:1", "/x") == "oci:/abs:1"
    assert base.absolute("docker://example.org/a:1", "/x") == "docker://example.org/a:1"


def test_every_transport_but_the_registry_names_a_path() -> None:
    """A new transport must say in base.LOCAL whether it names a path, or the CLI would
    send its relative paths as they are."""
    assert set(TRANSPORTS) - {"docker"} == set(base.LOCAL)


SEGMENT = st.from_regex(r"[a-z0-9._-]{1,8}", fullmatch=True)


@given(
    st.sampled_from(sorted(base.LOCAL)),
    st.lists(SEGMENT, min_size=1, max_size=4),
    st.sampled_from(["", ":example.test/app:2", ":@3"]),
)
def test_absolute_paths_reach_the_service_whole(kind: str, parts: list[str], selector: str) -> None:
    relative = "/".join(parts)
    sent = base.absolute(f"{kind}:{relative}{selector}", "/base/dir")
    base.check_absolute(sent)  # the service takes it
    path, ref = base.split_local(kind, sent.partition(":")[2])
    assert path == os.path.normpath(f"/base/dir/{relative}" + (selector if kind == "dir" else ""))
    assert ref == (None if kind == "dir" or not selector else selector[1:])
