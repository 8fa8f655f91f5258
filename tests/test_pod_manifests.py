# SPDX-License-Identifier: LGPL-2.1-or-later
"""A pod's manifest over the bus, fast and without a bed: what a caller may read of a
file the service reads as root, the Pod properties made from the file (its text, digest,
problems, ports), that a value depending on the caller is never broadcast, and that a
file changed on disk is noticed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
from busfakes import ALLOWED, CALLER_UID, REFUSED, FakeBus, RecordingAuthority, fake
from hypothesis import given, settings
from hypothesis import strategies as st

from podmgr.bus import api, dispatch, podobjects, watch
from podmgr.bus.callers import Caller, may_read
from podmgr.bus.dbuslib import Message, MessageBus, MessageType
from podmgr.bus.systemd import Systemd

ALICE = Caller(4242, frozenset({4242}))
ROOT = Caller(0, frozenset({0}))
POD = '[app.main]\nrootfs = "/srv/x"\nexec = ["/bin/true"]\n'


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A directory everyone may search (pytest's own are under a 0700 one)."""
    path = Path(tempfile.mkdtemp(prefix="podmgr-access-", dir="/tmp"))
    os.chmod(path, 0o755)  # noqa: S103 -- what the test is about
    try:
        yield path
    finally:
        shutil.rmtree(path)


def tree(tmp_path: Path, dir_mode: int, file_mode: int, owner: int = 0, group: int = 0) -> Path:
    directory = tmp_path / "pods"
    directory.mkdir(exist_ok=True)
    os.chmod(tmp_path, 0o755)  # noqa: S103 -- what the test is about
    os.chmod(directory, dir_mode)
    path = directory / "web.toml"
    path.write_text(POD)
    os.chown(path, owner, group)
    os.chmod(path, file_mode)
    return path


@pytest.mark.parametrize(
    ("dir_mode", "file_mode", "owner", "group", "readable"),
    [
        (0o755, 0o644, 0, 0, True),
        (0o755, 0o600, 0, 0, False),  # a manifest whose environment holds secrets
        (0o755, 0o640, 0, 4242, True),  # the caller's group
        (0o755, 0o640, 0, 0, False),
        (0o755, 0o400, 4242, 0, True),  # the caller's own file
        (0o755, 0o044, 4242, 0, False),  # the owner class counts for its owner only
        (0o700, 0o644, 0, 0, False),  # a directory it cannot search
        (0o751, 0o644, 0, 0, True),  # search, without listing, is enough
        (0o754, 0o644, 0, 0, False),
    ],
)
def test_a_caller_may_read_what_the_bits_allow_it(
    tmp_path: Path, dir_mode: int, file_mode: int, owner: int, group: int, readable: bool
) -> None:
    path = tree(tmp_path, dir_mode, file_mode, owner, group)
    assert may_read(str(path), ALICE) is readable
    assert may_read(str(path), ROOT)


def test_a_symlink_does_not_widen_what_a_caller_may_read(tmp_path: Path) -> None:
    secret = tree(tmp_path, 0o700, 0o644)  # readable bits, but in a closed directory
    public = tmp_path / "public"
    public.mkdir(mode=0o755)
    link = public / "web.toml"
    link.symlink_to(secret)
    assert not may_read(str(link), ALICE)
    os.chmod(secret.parent, 0o755)  # noqa: S103 -- what the test is about
    assert may_read(str(link), ALICE)
    assert not may_read(str(tmp_path / "nothing.toml"), ALICE)
    assert not may_read(str(public), ALICE)  # a directory is no manifest


def kernel_lets_alice_read(path: Path) -> bool:
    """Whether open(2) succeeds for uid and gid 4242 (cat run as them)."""
    argv = ["setpriv", f"--reuid={CALLER_UID}", f"--regid={CALLER_UID}", "--clear-groups"]
    return (
        subprocess.run([*argv, "cat", str(path)], capture_output=True, check=False).returncode == 0
    )


def test_an_acl_that_denies_what_the_bits_allow_is_obeyed(tmp_path: Path) -> None:
    """user:4242:--- on a 0644 file (written as the raw xattr setfacl writes)."""
    path = tree(tmp_path, 0o755, 0o644)
    undefined = 0xFFFFFFFF
    entries = [(0x01, 6, undefined), (0x02, 0, CALLER_UID), (0x04, 4, undefined)]
    entries += [(0x10, 4, undefined), (0x20, 4, undefined)]  # mask, other
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)
    os.setxattr(path, "system.posix_acl_access", acl)
    assert not kernel_lets_alice_read(path)
    assert not may_read(str(path), ALICE)
    assert may_read(str(path), ROOT)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 0o777), st.integers(0, 0o777), st.sampled_from([0, CALLER_UID]), st.booleans()
)
def test_may_read_agrees_with_the_kernel(
    dir_mode: int, file_mode: int, owner: int, group: bool
) -> None:
    """What may_read says is what open(2) does for that user (checked by opening the file
    as uid 4242 in a child)."""
    base = Path(tempfile.mkdtemp(prefix="podmgr-access-", dir="/tmp"))
    try:
        path = tree(base, dir_mode, file_mode, owner, CALLER_UID if group else 0)
        caller = Caller(CALLER_UID, frozenset({CALLER_UID}))
        assert may_read(str(path), caller) is kernel_lets_alice_read(path)
    finally:
        os.chmod(base / "pods", 0o700)
        shutil.rmtree(base)


def pods_on(bus: FakeBus) -> podobjects.Pods:
    dispatcher = dispatch.Dispatcher(cast(MessageBus, bus))
    return podobjects.Pods(dispatcher, cast(Systemd, None))


def test_the_manifest_properties(tmp_path: Path) -> None:
    async def run() -> None:
        path = tree(tmp_path, 0o755, 0o600)
        path.write_text(
            POD + '[network]\nmode = "bridge"\nports = ["127.0.0.1:8080:80", "53:53/udp"]\n'
        )
        pod = podobjects.PodObject("web", str(path), pods_on(FakeBus()))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert pod.manifest(ROOT) == path.read_text()
        assert pod.manifest_digest(ROOT) == digest
        assert pod.problems(ROOT) == []
        assert pod.ports() == [["127.0.0.1", 8080, 80, "tcp"], ["", 53, 53, "udp"]]
        # The service reads as root: alice, who could not read the file, learns nothing.
        assert pod.manifest(ALICE) == ""
        assert pod.manifest_digest(ALICE) == ""
        # Whom polkit allows manage-pods may replace the file anyway: it may read it.
        assert pod.manifest(replace(ALICE, manages_pods=True)) == path.read_text()
        os.chmod(path, 0o644)
        assert pod.manifest(ALICE) == path.read_text()

    asyncio.run(run())


def test_an_invalid_manifest_has_its_problems(tmp_path: Path) -> None:
    async def run() -> None:
        path = tree(tmp_path, 0o755, 0o644)
        pod = podobjects.PodObject("web", str(path), pods_on(FakeBus()))
        path.write_text('[app.main]\nexec = "x"\n[app.main.resources]\nmemory_max = "12X"\n')
        pod.forget_manifest()
        problems = pod.problems(ROOT)
        assert any(where == "app.main.resources.memory_max" for where, _ in problems), problems
        assert any(where == "app.main.exec" for where, _ in problems), problems
        assert pod.apps() == []
        assert pod.ports() == []
        path.write_text("[app.main\nexec = 1\n")  # not TOML at all
        pod.forget_manifest()
        [[where, message]] = pod.problems(ROOT)
        assert where.startswith("line 1, column"), where
        assert "TOML" in message
        assert pod.manifest(ROOT) == "[app.main\nexec = 1\n"
        # Whoever may not read the file sees where, not what: a message can quote a value.
        os.chmod(path, 0o600)
        path.write_text(POD + '[app.main.resources]\nmemory_max = "hunter2"\n')
        pod.forget_manifest()
        assert "hunter2" in str(pod.problems(ROOT))
        [[where, message]] = pod.problems(ALICE)
        assert where == "app.main.resources.memory_max"
        assert "hunter2" not in message
        assert "not readable by you" in message

    asyncio.run(run())


@pytest.mark.parametrize("manages_pods", [False, True])
def test_a_value_that_depends_on_the_caller_is_never_broadcast(manages_pods: bool) -> None:
    authority = RecordingAuthority(ALLOWED if manages_pods else REFUSED)

    async def run() -> list[Message]:
        bus = FakeBus()
        dispatcher = dispatch.Dispatcher(cast(MessageBus, bus), authority)
        pod = fake(api.POD)
        dispatcher.export(api.pod_path("web"), api.POD, pod)
        dispatcher.properties_changed(api.pod_path("web"), api.POD, podobjects.FROM_MANIFEST)
        get = Message(
            destination=api.BUS_NAME,
            path=api.pod_path("web"),
            interface=dispatch.PROPERTIES,
            member="Get",
            signature="ss",
            body=[api.POD.name, "Manifest"],
            serial=7,
        )
        get.sender = ":1.42"
        for _ in range(2):
            dispatcher.handle(get)
            while dispatcher.tasks:
                await asyncio.gather(*dispatcher.tasks)
        dispatcher.work.shutdown()
        # As the bus daemon and polkit (asked without interaction) said, once per connection.
        assert pod.callers == [Caller(CALLER_UID, frozenset(), manages_pods)] * 2
        assert bus.credentials_asked == 1
        assert [(q.sender, q.action, q.flags) for q in authority.asked] == [
            (":1.42", api.MANAGE_PODS, 0)
        ]
        return bus.sent

    signal, reply, again = asyncio.run(run())
    assert again.body == reply.body
    interface, changed, invalidated = signal.body
    assert interface == api.POD.name
    per_caller = {p.name for p in api.POD.properties if p.per_caller}
    assert per_caller == {"Manifest", "ManifestDigest", "Problems"}
    assert set(invalidated) == per_caller
    assert not per_caller & set(changed)
    assert {"State", "Apps", "Ports"} <= set(changed)
    assert reply.message_type is MessageType.METHOD_RETURN
    assert reply.reply_serial == 7


def test_a_changed_manifest_file_is_noticed(tmp_path: Path) -> None:
    """Written in place, replaced by a rename (as editors do), chmod'ed, removed: each
    calls back once the burst of events is over; other files do not."""

    async def run() -> list[str]:
        seen: list[str] = []
        quiet = asyncio.Event()

        def changed() -> None:
            seen.append("changed")
            quiet.set()

        watcher = watch.ManifestWatch(changed)
        watcher.start()
        watcher.watch([tmp_path, tmp_path / "missing"])
        path = tmp_path / "web.toml"

        async def expect(change: str, count: int) -> None:
            quiet.clear()
            if change == "write":
                path.write_text(POD)
            elif change == "rename":
                (tmp_path / ".web.toml.tmp").write_text(POD + "# 2\n")
                os.rename(tmp_path / ".web.toml.tmp", path)
            elif change == "chmod":
                os.chmod(path, 0o600)
            elif change == "other":
                (tmp_path / "notes.txt").write_text("x")
            else:
                path.unlink()
            if change != "other":
                await asyncio.wait_for(quiet.wait(), 5)
            else:
                await asyncio.sleep(watch.QUIET * 3)
            assert len(seen) == count, (change, seen)

        try:
            await expect("write", 1)
            await expect("rename", 2)
            await expect("chmod", 3)
            await expect("other", 3)
            await expect("remove", 4)
        finally:
            watcher.close()
        return seen

    assert asyncio.run(run()) == ["changed"] * 4
