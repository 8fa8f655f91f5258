# SPDX-License-Identifier: LGPL-2.1-or-later
"""User and group lookup in the app's own rootfs, never the host's."""

from __future__ import annotations

from pathlib import Path

import pytest

from podmgr import manifest, resolve, users
from podmgr.errors import ManifestError
from podmgr.store import Store
from podmgr.users import Credentials, UnknownName

PASSWD = b"root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001:Web:/srv/web:/bin/false\n"
GROUP = b"root:x:0:\nweb:x:1001:\nstaff:x:50:web\n"


@pytest.mark.parametrize(("user", "group", "expected"), [
    (0, None, Credentials(0, 0, "root", "/root")),
    (1000, None, Credentials(1000, 1001, "web", "/srv/web")),  # the group from passwd
    (4242, None, Credentials(4242, 0, None, None)),  # unknown number: group 0, as OCI
    ("web", None, Credentials(1000, 1001, "web", "/srv/web")),
    ("web", "staff", Credentials(1000, 50, "web", "/srv/web")),
    ("web", 7, Credentials(1000, 7, "web", "/srv/web")),
    (4242, 4343, Credentials(4242, 4343, None, None)),
])
def test_resolve(user: str | int, group: str | int | None, expected: Credentials) -> None:
    assert users.resolve(user, group, PASSWD, GROUP) == expected


def test_unknown_names_say_what_to_do() -> None:
    with pytest.raises(UnknownName) as error:
        users.resolve("nobody", None, PASSWD, GROUP, "/srv")
    assert error.value.key == "user"
    assert "'nobody' is not in /etc/passwd of /srv (add the user" in str(error.value)
    with pytest.raises(UnknownName) as error:
        users.resolve("web", "wheel", PASSWD, GROUP, "/srv")
    assert error.value.key == "group"
    assert "use a numeric gid" in str(error.value)
    with pytest.raises(UnknownName, match="/srv has no /etc/passwd"):
        users.resolve("web", None, None, None, "/srv")


def make_rootfs(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_bytes(PASSWD)
    (root / "etc" / "group").write_bytes(GROUP)
    return root


def resolved(rootfs: Path, user: str, store: Path) -> dict[str, resolve.ResolvedApp]:
    text = f'[app.main]\nrootfs = "{rootfs}"\nexec = ["/bin/true"]\nuser = "{user}"\n'
    return resolve.resolve(manifest.parse(text, Path("pod.toml")), Store(store))


def test_names_are_read_from_the_rootfs(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path / "rootfs")
    app = resolved(rootfs, "web", tmp_path / "store")["main"]
    assert app.creds == Credentials(1000, 1001, "web", "/srv/web")
    assert (app.lowerdirs, app.exec, app.working_directory) == ((str(rootfs),), ("/bin/true",),
                                                                "/")


def test_an_unknown_name_names_the_key(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path / "rootfs")
    with pytest.raises(ManifestError) as error:
        resolved(rootfs, "ghost", tmp_path / "store")
    assert str(error.value).startswith("pod.toml: app.main.user: user 'ghost' is not in")


def test_a_passwd_symlink_is_not_followed_to_the_host(tmp_path: Path) -> None:
    # "root" is on every host; a rootfs whose passwd points there must not resolve it.
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ManifestError, match="has no /etc/passwd"):
        resolved(rootfs, "root", tmp_path / "store")


def test_a_symlinked_etc_is_not_followed_either(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "etc").symlink_to("/etc")
    with pytest.raises(ManifestError, match="has no /etc/passwd"):
        resolved(rootfs, "root", tmp_path / "store")


def test_an_image_app_needs_its_image_in_the_store(tmp_path: Path) -> None:
    pod = manifest.parse('[app.web]\nimage = "example.org/web:1"\n', Path("pod.toml"))
    with pytest.raises(ManifestError) as error:
        resolve.resolve(pod, Store(tmp_path / "store"))
    assert str(error.value) == ("pod.toml: app.web.image: example.org/web:1 is not in the image "
                                "store (podmgr image pull or import it, then systemctl "
                                "daemon-reload)")
