# SPDX-License-Identifier: LGPL-2.1-or-later
"""User and group lookup in the app's own rootfs, never the host's."""

from __future__ import annotations

from pathlib import Path

import pytest

from podmgr import manifest, users
from podmgr.errors import ManifestError
from podmgr.users import Credentials, UnknownName

PASSWD = b"root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001:Web:/srv/web:/bin/false\n"
GROUP = b"root:x:0:\nweb:x:1001:\nstaff:x:50:web\n"


def app(user: object = 0, group: object = None, rootfs: str = "/srv") -> manifest.App:
    extra = f"user = {user!r}\n" + (f"group = {group!r}\n" if group is not None else "")
    text = f'[app.main]\nrootfs = "{rootfs}"\nexec = ["/bin/true"]\n{extra}'
    return manifest.parse(text, Path("pod.toml")).apps["main"]


@pytest.mark.parametrize(("user", "group", "expected"), [
    (0, None, Credentials(0, 0, "root", "/root")),
    (1000, None, Credentials(1000, 1001, "web", "/srv/web")),  # the group from passwd
    (4242, None, Credentials(4242, 0, None, None)),  # unknown number: group 0, as OCI
    ("web", None, Credentials(1000, 1001, "web", "/srv/web")),
    ("web", "staff", Credentials(1000, 50, "web", "/srv/web")),
    ("web", 7, Credentials(1000, 7, "web", "/srv/web")),
    (4242, 4343, Credentials(4242, 4343, None, None)),
])
def test_resolve(user: object, group: object, expected: Credentials) -> None:
    assert users.resolve(app(user, group), PASSWD, GROUP) == expected


def test_unknown_names_say_what_to_do() -> None:
    with pytest.raises(UnknownName) as error:
        users.resolve(app("nobody"), PASSWD, GROUP, "/srv")
    assert error.value.key == "user"
    assert "'nobody' is not in /srv/etc/passwd (add the user" in str(error.value)
    with pytest.raises(UnknownName) as error:
        users.resolve(app("web", "wheel"), PASSWD, GROUP, "/srv")
    assert error.value.key == "group"
    assert "use a numeric gid" in str(error.value)
    with pytest.raises(UnknownName, match="/srv/etc/passwd does not exist"):
        users.resolve(app("web"), None, None, "/srv")


def make_rootfs(root: Path, passwd: bytes = PASSWD) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_bytes(passwd)
    (root / "etc" / "group").write_bytes(GROUP)
    return root


def pod_with(rootfs: Path, user: str) -> manifest.Manifest:
    text = f'[app.main]\nrootfs = "{rootfs}"\nexec = ["/bin/true"]\nuser = "{user}"\n'
    return manifest.parse(text, Path("pod.toml"))


def test_credentials_read_the_rootfs(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path / "rootfs")
    assert users.credentials(pod_with(rootfs, "web")) == {
        "main": Credentials(1000, 1001, "web", "/srv/web")}


def test_credentials_report_the_key(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path / "rootfs")
    with pytest.raises(ManifestError) as error:
        users.credentials(pod_with(rootfs, "ghost"))
    assert str(error.value).startswith("pod.toml: app.main.user: user 'ghost' is not in")


def test_a_passwd_symlink_is_not_followed_to_the_host(tmp_path: Path) -> None:
    # "root" is on every host; a rootfs whose passwd points there must not resolve it.
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ManifestError, match="etc/passwd does not exist"):
        users.credentials(pod_with(rootfs, "root"))


def test_a_symlinked_etc_is_not_followed_either(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "etc").symlink_to("/etc")
    with pytest.raises(ManifestError, match="etc/passwd does not exist"):
        users.credentials(pod_with(rootfs, "root"))
