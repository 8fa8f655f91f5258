# SPDX-License-Identifier: LGPL-2.1-or-later
"""podmgr gc with a grace period, and podmgr-gc.timer: an image removed or replaced
keeps its layers and blobs for [gc] grace, an image in use or pinned is never collected,
and the shipped units verify and run in a bed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bed import Bed
from hypothesis import given, settings
from hypothesis import strategies as st
from test_images import layout, small_image

from podmgr import config
from podmgr.errors import ManifestError
from podmgr.image import pull
from podmgr.image.store import ImageRecord, Store, StoreFailed
from podmgr.image.trust import TrustStore

CHECKOUT = Path(__file__).resolve().parent.parent
HOUR = 3600 * 10**6
CFG = config.Config(config.ImagePolicy(("example.org",), 1_000_000, 1 << 30, False, False), {})


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Store, ImageRecord, ImageRecord]:
    """A store with two images sharing a base layer: one, then two."""
    store = Store(tmp_path / "store")
    trust = TrustStore(tmp_path / "etc-keys", tmp_path / "lib-keys")
    one = pull.fetch(
        layout(tmp_path / "one", small_image(marker=b"one")),
        "example.org/x/one:1",
        store,
        CFG,
        trust,
    )
    two = pull.fetch(
        layout(tmp_path / "two", small_image(marker=b"two")),
        "example.org/x/two:1",
        store,
        CFG,
        trust,
    )
    return store, one, two


def kept(store: Store, record: ImageRecord) -> bool:
    """Whether everything ``record`` needs is still in the store."""
    return (
        all(store.layer_path(d).is_dir() for d in record.layers)
        and store.blob_path(record.manifest).is_file()
        and store.blob_path(record.config).is_file()
    )


def collect(
    store: Store, grace: int, used: set[str] | None = None, now: float | None = None
) -> tuple[int, int]:
    with store.locked(exclusive=True):
        return store.collect(used or set(), grace, now)


def test_a_removed_image_stays_for_the_grace_and_goes_after(
    stored: tuple[Store, ImageRecord, ImageRecord],
) -> None:
    store, one, two = stored
    pull.remove(store, one.name)
    [removal] = store.removed_images()
    assert removal.record == one
    assert abs(removal.when - time.time()) < 5
    assert collect(store, 24 * HOUR) == (0, 0)
    assert kept(store, one)
    # An hour before the grace is over: still kept; an hour after: gone.
    assert collect(store, 24 * HOUR, now=removal.when + 23 * 3600) == (0, 0)
    assert collect(store, 24 * HOUR, now=removal.when + 25 * 3600) == (1, 2)
    assert not store.layer_path(one.layers[1]).exists()
    assert kept(store, two)  # its shared base too
    assert store.removed_images() == []  # the removal record went with it


def test_a_removal_time_in_the_past_written_through_the_store(
    stored: tuple[Store, ImageRecord, ImageRecord],
) -> None:
    store, one, _ = stored
    with store.locked(exclusive=True):
        store.remove_image(one.name)
        store.retire(one, time.time() - 3 * 3600)  # replaces the record of its removal
    assert collect(store, 4 * HOUR) == (0, 0)
    assert kept(store, one)
    assert collect(store, 2 * HOUR) == (1, 2)


def test_grace_zero_frees_at_once(stored: tuple[Store, ImageRecord, ImageRecord]) -> None:
    store, one, _ = stored
    pull.remove(store, one.name)
    assert collect(store, 0) == (1, 2)


def test_a_replaced_image_is_kept_as_removed(
    tmp_path: Path, stored: tuple[Store, ImageRecord, ImageRecord]
) -> None:
    """A pull of a tag that now names another image (what an auto-update does) keeps the
    old image for the grace: it can be restored."""
    store, one, _ = stored
    trust = TrustStore(tmp_path / "etc-keys", tmp_path / "lib-keys")
    newer = pull.fetch(
        layout(tmp_path / "newer", small_image(marker=b"newer")), one.name, store, CFG, trust
    )
    assert newer.manifest != one.manifest
    assert store.image(one.name) == newer
    assert [r.record for r in store.removed_images()] == [one]
    assert collect(store, HOUR) == (0, 0)
    with store.locked():
        store.put_image(one)  # restored: the name points at the old image again
    assert store.image(one.name) == one
    assert {r.record.manifest for r in store.removed_images()} == {one.manifest, newer.manifest}
    # The same image again replaces nothing.
    with store.locked():
        store.put_image(one)
    assert len(store.removed_images()) == 2


def test_an_image_in_use_is_never_collected(
    stored: tuple[Store, ImageRecord, ImageRecord],
) -> None:
    store, one, _ = stored
    pull.remove(store, one.name)
    [removal] = store.removed_images()
    in_use = {d.hex for d in one.layers}  # a prepared pod runs on it
    assert collect(store, 0, in_use, now=removal.when + 10**6)[0] == 0
    assert all(store.layer_path(d).is_dir() for d in one.layers)


def test_a_pinned_image_is_kept_whatever_the_grace(
    stored: tuple[Store, ImageRecord, ImageRecord],
) -> None:
    store, one, _ = stored
    with store.pinned(one):
        pull.remove(store, one.name)
        assert collect(store, 0) == (0, 0)
        assert kept(store, one)
    assert list(store.pins.iterdir()) == []
    assert collect(store, 0) == (1, 2)


def test_a_pin_of_a_process_that_died_is_removed(
    stored: tuple[Store, ImageRecord, ImageRecord],
) -> None:
    store, one, _ = stored
    # A child pins the image and is killed: its lock goes with it, its file stays.
    code = (
        "import os, sys, json\n"
        "from pathlib import Path\n"
        "from podmgr.image.store import Store, ImageRecord\n"
        f"store = Store(Path({str(store.root)!r}))\n"
        f"record = ImageRecord.from_json({one.to_json()!r})\n"
        "with store.pinned(record):\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False, cwd=CHECKOUT)
    assert len(list(store.pins.iterdir())) == 1
    pull.remove(store, one.name)
    assert collect(store, 0) == (1, 2)
    assert list(store.pins.iterdir()) == []


def test_the_store_keeps_removal_records_root_only(
    stored: tuple[Store, ImageRecord, ImageRecord],
) -> None:
    store, one, _ = stored
    pull.remove(store, one.name)
    for directory in (store.removed, store.pins):
        assert directory.stat().st_mode & 0o777 == 0o700
    for path in store.removed.iterdir():
        assert path.stat().st_mode & 0o077 == 0
    # Written whole: a reader sees JSON, never a part.
    [path] = store.removed.iterdir()
    assert json.loads(path.read_text())["record"]["name"] == one.name
    assert not [p for p in store.removed.iterdir() if p.name.startswith(".")]


@settings(max_examples=50, deadline=None)
@given(
    removed_ago=st.integers(0, 10**6),
    grace=st.integers(0, 10**6),
)
def test_grace_decides_alone(removed_ago: int, grace: int) -> None:
    """For every removal age and grace (in seconds): kept exactly while younger."""
    import tempfile  # noqa: PLC0415 -- hypothesis reruns: a fresh store each time

    with tempfile.TemporaryDirectory() as scratch:
        store = Store(Path(scratch))
        with store.locked():
            record = ImageRecord(
                "example.org/x:1",
                store.put_blob(b"manifest"),
                store.put_blob(b"config"),
                (),
                0,
                "oci:/x",
                (),
                "",
                True,
                "2026-01-01T00:00:00Z",
            )
        now = 2_000_000_000.0
        store.retire(record, now - removed_ago)
        expected = (0, 0) if removed_ago < grace else (0, 2)
        assert collect(store, grace * 10**6, now=now) == expected


def test_gc_grace_in_podmgr_toml(tmp_path: Path) -> None:
    path = tmp_path / "podmgr.toml"
    assert config.load(path).gc.grace == 24 * HOUR
    path.write_text('[gc]\ngrace = "30min"\n')
    assert config.load(path).gc.grace == HOUR // 2
    path.write_text('[gc]\ngrace = "soon"\n')
    with pytest.raises(ManifestError) as refused:
        config.load(path)
    assert str(refused.value) == (
        f"{path}: gc.grace: 'soon' is not a duration (use 30s, 5min, 1h 30min, 500ms)"
    )
    path.write_text('[gc]\ngrace = "1h"\nextra = 1\n')
    with pytest.raises(ManifestError, match=r"gc\.extra"):
        config.load(path)


def test_the_command_takes_a_grace() -> None:
    from podmgr.cli import command  # noqa: PLC0415

    args = command.parser().parse_args(["gc", "--grace", "0"])
    assert args.grace == 0
    args = command.parser().parse_args(["gc", "--grace", "1h 30min"])
    assert args.grace == 90 * 60 * 10**6
    assert command.parser().parse_args(["gc"]).grace is None
    refused = subprocess.run(
        [sys.executable, "-m", "podmgr", "gc", "--grace", "later"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    assert "'later' is not a duration" in refused.stderr


# In a bed: the shipped units.

UNITS = (
    "podmgr-gc.service",
    "podmgr-gc.timer",
    "podmgr-auto-update.service",
    "podmgr-auto-update.timer",
)
BUILD = f"""
import sys
sys.path.insert(0, "{CHECKOUT}/tests")
from pathlib import Path
import imagebuild as ib
image = ib.Image([ib.tar([ib.directory("etc"), ib.file("etc/version", b"gc")])], "gzip")
ib.write_layout(Path("/tmp/gc/layout"), {{"1": image}})
"""
# Through the store's own API: the image's removal was two days ago.
BACKDATE = """
import time
from podmgr.image.store import Store
store = Store()
with store.locked(exclusive=True):
    for removal in store.removed_images():
        store.retire(removal.record, time.time() - 2 * 86400)
"""


@pytest.mark.integration
def test_the_units_verify_and_are_not_enabled(bed: Bed) -> None:
    paths = [f"/usr/lib/systemd/system/{unit}" for unit in UNITS]
    verified = bed.run("systemd-analyze", "verify", "--man=no", *paths, check=False)
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == ""
    for unit in UNITS:
        state = bed.run("systemctl", "is-enabled", unit, check=False).stdout.strip()
        assert state in ("disabled", "static"), (unit, state)
    for timer in ("podmgr-gc.timer", "podmgr-auto-update.timer"):
        shown = bed.run("systemctl", "show", "-P", "TimersCalendar", timer).stdout
        assert "OnCalendar=*-*-* 00:00:00" in shown, shown
        assert bed.run("systemctl", "show", "-P", "Persistent", timer).stdout == "yes\n"


@pytest.mark.integration
def test_the_gc_service_keeps_a_removed_image_for_the_grace(bed: Bed) -> None:
    bed.run("mkdir", "-p", "/tmp/gc", "/etc/podmgr")
    bed.run("/usr/bin/python3", "-c", BUILD)
    bed.run(
        "sh", "-c", "cat > /etc/podmgr/podmgr.toml", input='[images]\ninsecure = ["example.org"]\n'
    )
    bed.run("podmgr", "image", "import", "oci:/tmp/gc/layout:1", "--name", "example.org/gc/x:1")
    layers = [
        layer["path"]
        for layer in json.loads(bed.run("podmgr", "image", "inspect", "example.org/gc/x:1").stdout)[
            "layers"
        ]
    ]
    bed.run("podmgr", "image", "rm", "example.org/gc/x:1")
    bed.run("systemctl", "start", "podmgr-gc.service")
    assert bed.run("systemctl", "show", "-P", "Result", "podmgr-gc.service").stdout == "success\n"
    assert all(bed.run("test", "-d", p, check=False).returncode == 0 for p in layers)
    ran = bed.run(
        "journalctl", "-u", "podmgr-gc.service", "--no-pager", "-o", "cat", "_TRANSPORT=stdout"
    ).stdout
    assert "removed 0 layers" in ran
    bed.run("/usr/bin/python3", "-c", BACKDATE)
    bed.run("systemctl", "start", "podmgr-gc.service")
    assert all(bed.run("test", "-e", p, check=False).returncode == 1 for p in layers)
    # --grace 0 on the command line frees at once.
    bed.run("podmgr", "image", "import", "oci:/tmp/gc/layout:1", "--name", "example.org/gc/x:1")
    bed.run("podmgr", "image", "rm", "example.org/gc/x:1")
    assert "removed 1 layers" in bed.run("podmgr", "gc", "--grace", "0").stdout


def test_a_restore_cut_short_leaves_the_tag_on_a_complete_image(
    tmp_path: Path, stored: tuple[Store, ImageRecord, ImageRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollback is one rename of the tag's record: cut short before it (a full disk
    here; a crash alike), the tag names the image it named, whole, and the image it was
    to name again is still kept as removed."""
    store, one, _ = stored
    trust = TrustStore(tmp_path / "etc-keys", tmp_path / "lib-keys")
    newer = pull.fetch(
        layout(tmp_path / "newer", small_image(marker=b"newer")), one.name, store, CFG, trust
    )

    def full(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", full)
    with pytest.raises(StoreFailed, match="no space left"), store.locked():
        store.put_image(one)
    monkeypatch.undo()
    assert store.image(one.name) == newer
    assert kept(store, newer)
    assert one in [r.record for r in store.removed_images()]
    assert kept(store, one)
    assert not [p for p in store.images.iterdir() if p.name.startswith(".")]
