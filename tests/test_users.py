# SPDX-License-Identifier: LGPL-2.1-or-later
"""User and group lookup in the app's own rootfs, never the host's."""

from __future__ import annotations

from pathlib import Path

import pytest

from podmgr.errors import ManifestError
from podmgr.generator import resolve, users
from podmgr.generator.rootfs import Defaults, DirectorySource
from podmgr.generator.users import Credentials, UnknownName
from podmgr.image.store import Store
from podmgr.manifest import model

PASSWD = b"""\
# a comment, and a line too short to be an entry
root:x:0:0:root:/root:/bin/sh
broken:x:12
web:x:1000:1001:Web server:/srv/web:/bin/false
"""
GROUP = b"root:x:0:\nweb:x:1001:\nstaff:x:50:web\n"


@pytest.mark.parametrize(
    ("user", "group", "expected"),
    [
        pytest.param(0, None, Credentials(0, 0, "root", "/root"), id="uid-0"),
        pytest.param(
            1000,
            None,
            Credentials(1000, 1001, "web", "/srv/web"),
            id="uid-in-passwd-takes-its-group",
        ),
        pytest.param(4242, None, Credentials(4242, 0, None, None), id="uid-not-in-passwd-group-0"),
        pytest.param(4242, 4343, Credentials(4242, 4343, None, None), id="uid-and-gid"),
        pytest.param(1000, 7, Credentials(1000, 7, "web", "/srv/web"), id="uid-and-other-gid"),
        pytest.param("web", None, Credentials(1000, 1001, "web", "/srv/web"), id="name"),
        pytest.param(
            "web", "staff", Credentials(1000, 50, "web", "/srv/web"), id="name-and-group-name"
        ),
        pytest.param(0, "staff", Credentials(0, 50, "root", "/root"), id="uid-and-group-name"),
    ],
)
def test_resolve(user: str | int, group: str | int | None, expected: Credentials) -> None:
    assert users.resolve(user, group, PASSWD, GROUP) == expected


def test_a_number_needs_no_passwd() -> None:
    assert users.resolve(1000, None, None, None) == Credentials(1000, 0, None, None)


@pytest.mark.parametrize(
    ("user", "group", "passwd", "group_file", "key", "message"),
    [
        pytest.param(
            "nobody",
            None,
            PASSWD,
            GROUP,
            "user",
            "user 'nobody' is not in /etc/passwd of /srv/app (add the user there, or "
            "use a numeric uid)",
            id="unknown-user",
        ),
        pytest.param(
            "broken",
            None,
            PASSWD,
            GROUP,
            "user",
            "user 'broken' is not in /etc/passwd of /srv/app",
            id="malformed-entry",
        ),
        pytest.param(
            "web",
            None,
            None,
            None,
            "user",
            "cannot look up user 'web': /srv/app has no /etc/passwd (create it, or use a "
            "numeric uid)",
            id="no-passwd",
        ),
        pytest.param(
            "web",
            "wheel",
            PASSWD,
            GROUP,
            "group",
            "group 'wheel' is not in /etc/group of /srv/app (add the group there, or use "
            "a numeric gid)",
            id="unknown-group",
        ),
        pytest.param(
            0,
            "staff",
            PASSWD,
            None,
            "group",
            "group 'staff' is not in /etc/group of /srv/app",
            id="no-group-file",
        ),
    ],
)
def test_unknown_names_name_the_key_and_the_fix(
    user: str | int,
    group: str | None,
    passwd: bytes | None,
    group_file: bytes | None,
    key: str,
    message: str,
) -> None:
    with pytest.raises(UnknownName) as error:
        users.resolve(user, group, passwd, group_file, "/srv/app")
    assert error.value.key == key
    assert str(error.value).startswith(message)


def make_rootfs(root: Path, passwd: bytes = PASSWD, group: bytes = GROUP) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_bytes(passwd)
    (root / "etc" / "group").write_bytes(group)
    return root


def test_lookup_reads_the_rootfs(tmp_path: Path) -> None:
    source = DirectorySource(str(make_rootfs(tmp_path / "rootfs")))
    assert users.lookup("web", "staff", source) == Credentials(1000, 50, "web", "/srv/web")
    assert users.lookup(1000, None, source) == Credentials(1000, 1001, "web", "/srv/web")


def test_lookup_names_the_rootfs_in_messages(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path / "rootfs")
    with pytest.raises(UnknownName, match=f"is not in /etc/group of {rootfs} "):
        users.lookup("web", "wheel", DirectorySource(str(rootfs)))


class CountingSource:
    """A Source whose files are counted as they are read."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def describe(self) -> str:
        return "counted"

    def lowerdirs(self) -> list[str]:
        return []

    def read_file(self, path: str) -> bytes | None:
        self.read.append(path)
        return {"etc/passwd": PASSWD, "etc/group": GROUP}.get(path)

    def defaults(self) -> Defaults:
        return Defaults()


@pytest.mark.parametrize(
    ("user", "group", "read"),
    [
        pytest.param(1000, 50, [], id="numbers"),
        pytest.param(1000, None, ["etc/passwd"], id="default-group"),
        pytest.param("web", 50, ["etc/passwd"], id="user-name"),
        pytest.param(1000, "staff", ["etc/passwd", "etc/group"], id="group-name"),
    ],
)
def test_lookup_reads_only_what_it_needs(
    user: str | int, group: str | int | None, read: list[str]
) -> None:
    source = CountingSource()
    users.lookup(user, group, source)
    assert source.read == read


def test_a_passwd_symlink_is_not_followed_to_the_host(tmp_path: Path) -> None:
    # "root" is in the host's /etc/passwd; a rootfs whose passwd links there must not see it.
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(UnknownName, match=f"{rootfs} has no /etc/passwd") as error:
        users.lookup("root", None, DirectorySource(str(rootfs)))
    assert error.value.key == "user"


def test_a_group_symlink_is_not_followed_to_the_host(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path / "rootfs")
    (rootfs / "etc" / "group").unlink()
    (rootfs / "etc" / "group").symlink_to("/etc/group")
    with pytest.raises(UnknownName) as error:
        users.lookup(0, "root", DirectorySource(str(rootfs)))
    assert error.value.key == "group"


def test_a_symlinked_etc_is_not_followed_either(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "etc").symlink_to("/etc")
    with pytest.raises(UnknownName, match="has no /etc/passwd"):
        users.lookup("root", None, DirectorySource(str(rootfs)))


def resolved(tmp_path: Path, rootfs: Path, user: str) -> resolve.ResolvedApp:
    path = tmp_path / "pod.toml"
    path.write_text(f'[app.main]\nrootfs = "{rootfs}"\nexec = ["/bin/true"]\nuser = "{user}"\n')
    return resolve.resolve(model.load(path), Store(tmp_path / "store"))["main"]


def test_an_app_runs_as_its_rootfs_user(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path / "rootfs")
    app = resolved(tmp_path, rootfs, "web")
    assert app.creds == Credentials(1000, 1001, "web", "/srv/web")


def test_an_unknown_user_is_a_problem_of_the_manifest(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path / "rootfs")
    with pytest.raises(ManifestError) as error:
        resolved(tmp_path, rootfs, "ghost")
    assert str(error.value) == (
        f"{tmp_path}/pod.toml: app.main.user: user 'ghost' is not in "
        f"/etc/passwd of {rootfs} (add the user there, or use a "
        "numeric uid)"
    )


# /etc/passwd and /etc/group are the image's: only ids systemd takes come out of them.

HOSTILE_PASSWD = (
    b"digit:x:\xc2\xb2:0:superscript two:/:/bin/sh\n"
    b"minus:x:65535:0::/:/bin/sh\n"
    b"huge:x:99999999999999999999:0::/:/bin/sh\n"
    b"badgid:x:1234:4294967295::/:/bin/sh\n"
    b"cr:x:1300:1300::/home/a\rb:/bin/sh\n"
    b"web:x:1000:1001:Web server:/srv/web:/bin/false\n"
)
HOSTILE_GROUP = b"digit:x:\xc2\xb2:\nminus:x:65535:\nweb:x:1001:\n"


@pytest.mark.parametrize(
    ("user", "group", "key", "message"),
    [
        pytest.param(
            "digit",
            None,
            "user",
            "user 'digit' has uid '²' in /etc/passwd of image x, "
            "which is not a number systemd takes (use 0..4294967294 except 65535",
            id="unicode-digit-uid",
        ),
        pytest.param("minus", None, "user", "user 'minus' has uid '65535'", id="uid-65535"),
        pytest.param(
            "huge", None, "user", "user 'huge' has uid '99999999999999999999'", id="uid-huge"
        ),
        pytest.param(
            "badgid",
            None,
            "user",
            "user 'badgid' has gid '4294967295' in /etc/passwd",
            id="gid-minus-one",
        ),
        pytest.param(
            0, "digit", "group", "group 'digit' has gid '²' in /etc/group", id="unicode-digit-gid"
        ),
        pytest.param(0, "minus", "group", "group 'minus' has gid '65535'", id="gid-65535"),
    ],
)
def test_an_id_systemd_refuses_is_a_problem_of_the_key(
    user: str | int, group: str | None, key: str, message: str
) -> None:
    with pytest.raises(UnknownName) as error:
        users.resolve(user, group, HOSTILE_PASSWD, HOSTILE_GROUP, "image x")
    assert error.value.key == key
    assert str(error.value).startswith(message)


def test_an_entry_with_a_bad_id_does_not_match_a_number() -> None:
    # Looking up uid 65534 must not find "minus" (65535) nor trip over "digit".
    assert users.resolve(65534, None, HOSTILE_PASSWD, None) == Credentials(65534, 0, None, None)


def test_a_group_given_skips_the_passwd_group() -> None:
    assert users.resolve("badgid", 7, HOSTILE_PASSWD, None) == Credentials(1234, 7, "badgid", "/")


def test_lines_end_at_newline_only_as_glibc_reads_them() -> None:
    # "\r" is part of the home field, not the end of the line; it reaches $HOME escaped.
    assert users.resolve("cr", None, HOSTILE_PASSWD, None) == Credentials(
        1300, 1300, "cr", "/home/a\rb"
    )
    passwd = b"a:x:1:1::/:/bin/sh\x85b:x:2:2::/:/bin/sh\n"
    with pytest.raises(UnknownName):
        users.resolve("b", None, passwd, None)


def test_a_name_that_is_no_name_is_not_set() -> None:
    passwd = b"we\x1bird:x:1000:1000::/home:/bin/sh\n"
    assert users.resolve(1000, None, passwd, None) == Credentials(1000, 1000, None, "/home")
