# SPDX-License-Identifier: LGPL-2.1-or-later
"""An image's layers unpacked side by side in real confined processes: each lands in its
own directory in the image's order, one failed layer (or a cancel) ends all of them at
once, and a failed image leaves no layer behind."""

from __future__ import annotations

import io
import itertools
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

import imagebuild as ib
import pytest

from podmgr import config
from podmgr.image import layerpool, pull, unpack
from podmgr.image.digest import Digest, DigestMismatch
from podmgr.image.store import Store
from podmgr.image.tarentry import UnsafeLayer
from podmgr.image.trust import TrustStore

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="confined unpacking needs namespaces and sets owners: needs root",
)

TAR = "application/vnd.oci.image.layer.v1.tar"
HOSTILE = ib.tar([ib.symlink("escape", "/tmp"), ib.file("escape/owned", b"x")])


class Canceled(Exception):
    pass


class EndlessLayer:
    """A tar stream of one file that never ends, served slowly: its unpacker is still
    reading it when the test wants it killed."""

    def __init__(self) -> None:
        header = tarfile.TarInfo("endless")
        header.size = 1 << 34
        self.pending = header.tobuf(format=tarfile.PAX_FORMAT)
        self.served = 0
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        time.sleep(0.005)
        data, self.pending = self.pending or bytes(1 << 16), b""
        self.served += len(data)
        return data

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> EndlessLayer:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()


@pytest.fixture
def directories(tmp_path: Path) -> Iterator[Callable[[str], int]]:
    """Makes a directory under tmp_path and gives its fd; all are closed afterwards."""
    fds: list[int] = []

    def make(name: str) -> int:
        (tmp_path / name).mkdir()
        fds.append(os.open(tmp_path / name, os.O_RDONLY | os.O_DIRECTORY))
        return fds[-1]

    yield make
    for fd in fds:
        os.close(fd)


def job(data: bytes, fd: int, what: str) -> layerpool.Job:
    return layerpool.Job(
        lambda: cast(BinaryIO, io.BytesIO(data)), TAR, Digest.of(data), fd, what, len(data)
    )


def endless_job(layer: EndlessLayer, fd: int) -> layerpool.Job:
    return layerpool.Job(lambda: cast(BinaryIO, layer), TAR, Digest.of(b""), fd, "endless")


def ended(layer: EndlessLayer) -> bool:
    """Whether nobody reads ``layer`` any longer (its unpacker is gone)."""
    served = layer.served
    time.sleep(0.3)
    return layer.closed and layer.served == served


def test_layers_unpack_side_by_side_each_into_its_own_directory(
    tmp_path: Path, directories: Callable[[str], int]
) -> None:
    layers = [ib.tar([ib.file(f"etc/layer{i}", b"%d" % i * 1000)]) for i in range(5)]
    with layerpool.pool(unpack.Limits(), workers=2) as pool:
        for i, data in enumerate(layers):
            pool.submit(job(data, directories(f"l{i}"), f"layer {i}"))
        polls = []
        pool.wait(lambda: polls.append(pool.unpacked))
    for i in range(5):
        assert (tmp_path / f"l{i}/etc/layer{i}").read_bytes() == b"%d" % i * 1000
    assert polls
    assert pool.unpacked == sum(len(data) for data in layers)


def unpack_all(jobs: Iterable[layerpool.Job], poll: Callable[[], None] = lambda: None) -> None:
    """Submit each job as soon as it is given (the pool runs the earlier ones meanwhile)."""
    with layerpool.pool(unpack.Limits()) as pool:
        for item in jobs:
            pool.submit(item)
        pool.wait(poll)


def test_a_wrong_diff_id_fails_its_layer(directories: Callable[[str], int]) -> None:
    data = ib.tar([ib.file("a", b"a")])
    wrong = layerpool.Job(
        lambda: cast(BinaryIO, io.BytesIO(data)), TAR, Digest.of(b"b"), directories("a"), "a"
    )
    with pytest.raises(DigestMismatch, match="not the diff_id"):
        unpack_all([wrong])


def test_one_hostile_layer_kills_the_others_and_is_the_error(
    directories: Callable[[str], int],
) -> None:
    endless = EndlessLayer()
    hostile = job(HOSTILE, directories("hostile"), "hostile")

    def jobs() -> Iterator[layerpool.Job]:
        yield endless_job(endless, directories("endless"))
        while endless.served < 1 << 20:  # it unpacks
            time.sleep(0.01)
        yield hostile

    with pytest.raises(UnsafeLayer, match="hostile"):
        unpack_all(jobs())
    assert ended(endless)


def test_a_cancel_kills_every_layer(directories: Callable[[str], int]) -> None:
    layers = [EndlessLayer() for _ in range(2)]

    def poll() -> None:
        if all(layer.served > 1 << 20 for layer in layers):
            raise Canceled

    jobs = [endless_job(layer, directories(f"l{n}")) for n, layer in enumerate(layers)]
    with pytest.raises(Canceled):
        unpack_all(jobs, poll)
    assert all(ended(layer) for layer in layers)


def test_a_failed_layer_fails_the_image_and_keeps_no_layer_of_it(tmp_path: Path) -> None:
    big = ib.tar([ib.file(f"data/{i}", os.urandom(1 << 20)) for i in range(8)])
    image = ib.Image([big, HOSTILE, ib.tar([ib.file("top", b"top")])], "gzip")
    ib.write_layout(tmp_path / "layout", {"1": image})
    store = Store(tmp_path / "store")
    policy = config.ImagePolicy(("example.org",), 1_000_000, 1 << 30, False, False)
    trust = TrustStore(tmp_path / "keys", tmp_path / "vendor")
    with pytest.raises(UnsafeLayer, match="escape"):
        pull.fetch(
            f"oci:{tmp_path}/layout:1",
            "example.org/t/app:1",
            store,
            config.Config(policy, {}),
            trust,
        )
    assert [p.name for p in store.layers.iterdir() if not p.name.endswith(".lock")] == []
    assert not store.all_images()


@pytest.mark.parametrize("transport", ["oci", "oci-archive"])
def test_an_image_is_stacked_in_its_own_order_whichever_layer_ends_first(
    tmp_path: Path, transport: str
) -> None:
    big = ib.tar([ib.file(f"data/{i}", os.urandom(1 << 20)) for i in range(8)])
    small = [ib.tar([ib.file("etc/motd", b"%d" % i)]) for i in range(3)]
    layers = [big, *small, small[0]]  # the last is the first small one again
    ib.write_layout(tmp_path / "layout", {"1": ib.Image(layers, "zstd")})
    source = f"oci:{tmp_path}/layout:1"
    if transport == "oci-archive":
        ib.write_archive(tmp_path / "image.tar", tmp_path / "layout")
        source = f"oci-archive:{tmp_path}/image.tar:1"
    store = Store(tmp_path / "store")
    policy = config.ImagePolicy(("example.org",), 1_000_000, 1 << 30, False, False)
    trust = TrustStore(tmp_path / "keys", tmp_path / "vendor")
    seen: list[tuple[int, int]] = []
    record = pull.fetch(
        source,
        "example.org/t/app:1",
        store,
        config.Config(policy, {}),
        trust,
        lambda done, total: seen.append((done, total)),
    )
    assert list(record.layers) == [Digest.of(layer) for layer in layers]
    assert [(store.layer_path(d) / "etc/motd").read_bytes() for d in record.layers[1:]] == [
        b"0",
        b"1",
        b"2",
        b"0",
    ]
    assert (store.layer_path(record.layers[0]) / "data/7").stat().st_size == 1 << 20
    assert seen[-1][0] == seen[-1][1]
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen))
    assert not [t for t in threading.enumerate() if t.name.startswith("podmgr-layer")]


def test_an_unpacker_started_before_its_blob_gets_it_once_ready(
    tmp_path: Path, directories: Callable[[str], int]
) -> None:
    data = ib.tar([ib.file("etc/motd", b"fetched")])
    with layerpool.pool(unpack.Limits()) as pool:
        blob = pool.pending()
        pool.submit(
            layerpool.Job(blob.open, TAR, Digest.of(data), directories("a"), "a", None, True)
        )
        time.sleep(0.3)  # the process starts, and waits
        assert not (tmp_path / "a/etc").exists()
        blob.ready(lambda: cast(BinaryIO, io.BytesIO(data)))
        pool.wait()
    assert (tmp_path / "a/etc/motd").read_bytes() == b"fetched"


def fetch_fails(fd: int) -> None:
    with layerpool.pool(unpack.Limits()) as pool:
        blob = pool.pending()
        pool.submit(layerpool.Job(blob.open, TAR, Digest.of(b""), fd, "a", None, True))
        raise OSError("the registry went away")


def test_a_failed_fetch_ends_the_unpacker_waiting_for_it(directories: Callable[[str], int]) -> None:
    with pytest.raises(OSError, match="the registry went away"):
        fetch_fails(directories("a"))
    assert not [t for t in threading.enumerate() if t.name.startswith("podmgr-layer")]
