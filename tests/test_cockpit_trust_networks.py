# SPDX-License-Identifier: LGPL-2.1-or-later
"""The page's Trust and Networks views in a real browser: a key pasted or uploaded,
shown by its fingerprint and trusted only once confirmed, then distrusted; a network
listed with its pods, its removal refused while a pod is on it and done once none is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from bed import Bed
from playwright.sync_api import FrameLocator, expect
from signing_keys import Key, Keyring
from test_cockpit_access import access_bed, session  # noqa: F401 -- the fixtures
from test_cockpit_images import shot
from test_network import pod_with
from test_pods import install, reload

from cockpit import CockpitPage, Login

# the fixtures of the page's browser tests (cockpit_page, browser, cockpit_bed)
pytest_plugins = ["cockpit"]

pytestmark = [pytest.mark.integration, pytest.mark.browser]

TRUST = "/etc/podmgr/trustedkeys"
VENDOR_PREFIX = "registry.example.org/vendor"
PREFIX = "registry.example.org/views"


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyring]:
    """Keys made on this side, as an administrator would receive them."""
    ring = Keyring(tmp_path_factory.mktemp("gnupg"))
    yield ring
    ring.close()


@pytest.fixture(scope="module")
def keys(keyring: Keyring) -> dict[str, Key]:
    return {
        "release": keyring.make("release"),
        "vendor": keyring.make("vendor"),
        "expired": keyring.make("expired", expired=True),
    }


def grouped(fingerprint: str) -> str:
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


def trusted(bed: Bed) -> list[tuple[str, str]]:
    listing = json.loads(bed.run("podmgr", "trust", "list", "--json").stdout)
    return sorted((key["fingerprint"], key["prefix"]) for key in listing)


def trust_view(cockpit_page: CockpitPage, reload: bool = False) -> FrameLocator:
    cockpit_page.go("trust")
    if reload:  # the list is read when the view opens: keys added elsewhere show then
        cockpit_page.page.reload()
        cockpit_page.wait_ready()
    frame = cockpit_page.frame
    frame.locator("#trusted-keys .pm-keys[data-loaded]").wait_for()
    frame.locator("#trust-add").wait_for()
    return frame


def test_a_pasted_key_is_trusted_once_its_fingerprint_is_confirmed(
    cockpit_page: CockpitPage, keys: dict[str, Key]
) -> None:
    bed = cockpit_page.bed
    key = keys["release"]
    frame = trust_view(cockpit_page)
    frame.locator("#pm-trust-prefix").press_sequentially(PREFIX)
    frame.locator("#pm-trust-key").fill(key.armored.decode())
    frame.locator("#trust-add [data-action=trust]").click()

    dialog = frame.locator("dialog.pm-modal")
    expect(dialog.locator(".pm-fingerprint")).to_have_text(grouped(key.fingerprint))
    expect(dialog).to_contain_text("release@example.org")
    expect(dialog).to_contain_text(PREFIX)
    shot(cockpit_page, "trust-confirm")
    assert trusted(bed) == []  # nothing before the confirmation

    # Cancelled: still nothing.
    dialog.locator("[data-action=cancel-dialog]").click()
    expect(dialog).to_have_count(0)
    assert trusted(bed) == []

    frame.locator("#trust-add [data-action=trust]").click()
    frame.locator("dialog.pm-modal footer [data-action=trust]").click()
    row = frame.locator(f"tr[data-name='{key.fingerprint}'][data-prefix='{PREFIX}']")
    expect(row).to_contain_text(grouped(key.fingerprint))
    expect(frame.locator("#pm-trust-key")).to_have_value("")
    assert trusted(bed) == [(key.fingerprint, PREFIX)]
    stored = bed.run("cat", f"{TRUST}/prefix.d/{PREFIX}/{key.fingerprint}").stdout
    assert stored == key.armored.decode()
    expect(row).to_have_attribute("data-origin", "admin")
    expect(row).to_contain_text("this host's administrator")

    # A key the vendor ships says so.
    vendor = f"/usr/lib/podmgr/trustedkeys/prefix.d/{VENDOR_PREFIX}"
    bed.run("mkdir", "-p", vendor)
    bed.run("cp", f"{TRUST}/prefix.d/{PREFIX}/{key.fingerprint}", vendor)
    frame = trust_view(cockpit_page, reload=True)
    shipped = frame.locator(f"tr[data-name='{key.fingerprint}'][data-prefix='{VENDOR_PREFIX}']")
    expect(shipped).to_have_attribute("data-origin", "vendor")
    expect(shipped).to_contain_text("the vendor")
    bed.run("rm", "-r", "/usr/lib/podmgr/trustedkeys")
    frame = trust_view(cockpit_page, reload=True)
    row = frame.locator(f"tr[data-name='{key.fingerprint}'][data-prefix='{PREFIX}']")
    shot(cockpit_page, "trust")

    # Distrusted, after a confirmation.
    row.locator("[data-action=untrust]").click()
    frame.locator("dialog.pm-modal footer [data-action=untrust]").click()
    expect(row).to_have_count(0)
    assert trusted(bed) == []
    assert bed.run(
        "test", "-e", f"{TRUST}/prefix.d/{PREFIX}/{key.fingerprint}", check=False
    ).returncode
    expect(frame.locator("#trusted-keys .pm-empty-state")).to_contain_text("No trusted keys")


def test_an_uploaded_key_for_every_image(
    cockpit_page: CockpitPage, keys: dict[str, Key], tmp_path: Path
) -> None:
    bed = cockpit_page.bed
    key = keys["vendor"]
    upload = tmp_path / "vendor.asc"
    upload.write_bytes(key.armored)
    frame = trust_view(cockpit_page)
    frame.locator("#pm-trust-scope-root").check()
    frame.locator("#pm-trust-file").set_input_files(str(upload))
    expect(frame.locator("#pm-trust-key")).to_have_value(key.armored.decode())
    frame.locator("#trust-add [data-action=trust]").click()
    dialog = frame.locator("dialog.pm-modal")
    expect(dialog.locator(".pm-fingerprint")).to_have_text(grouped(key.fingerprint))
    expect(dialog).to_contain_text("every image")
    dialog.locator("footer [data-action=trust]").click()
    row = frame.locator(f"tr[data-name='{key.fingerprint}'][data-prefix='']")
    expect(row).to_contain_text("every image")
    assert trusted(bed) == [(key.fingerprint, "")]
    assert bed.run("test", "-f", f"{TRUST}/root.d/{key.fingerprint}", check=False).returncode == 0

    # Trusted for a prefix too; removed "for every prefix" takes both.
    bed.run("sh", "-c", f"cat > /tmp/{key.fingerprint}.asc", input=key.armored.decode())
    bed.run("podmgr", "trust", "add", "--yes", "--prefix", PREFIX, f"/tmp/{key.fingerprint}.asc")
    frame = trust_view(cockpit_page, reload=True)
    frame.locator(f"tr[data-name='{key.fingerprint}'][data-prefix='{PREFIX}']").wait_for()
    row.locator("[data-action=untrust]").click()
    dialog.locator("#pm-untrust-every").check()
    dialog.locator("footer [data-action=untrust]").click()
    expect(frame.locator(f"tr[data-name='{key.fingerprint}']")).to_have_count(0)
    assert trusted(bed) == []


def test_what_the_service_refuses_is_shown_and_nothing_is_stored(
    cockpit_page: CockpitPage, keys: dict[str, Key]
) -> None:
    bed = cockpit_page.bed
    key = keys["expired"]
    frame = trust_view(cockpit_page)
    frame.locator("#pm-trust-prefix").press_sequentially(PREFIX)
    frame.locator("#pm-trust-key").fill(key.armored.decode())
    frame.locator("#trust-add [data-action=trust]").click()
    dialog = frame.locator("dialog.pm-modal")
    expect(dialog).to_contain_text("expired")
    dialog.locator("footer [data-action=trust]").click()
    error = frame.locator("#trust-add .pm-inline-error")
    expect(error).to_have_text(
        f"key {key.fingerprint} is expired (ask the signer for a current key)"
    )
    assert trusted(bed) == []

    # Text that holds no key: gpg says so before anything reaches the service.
    frame.locator("#pm-trust-key").fill("not a key\n")
    frame.locator("#trust-add [data-action=trust]").click()
    expect(error).to_contain_text("no valid OpenPGP data found")
    expect(frame.locator("dialog.pm-modal")).to_have_count(0)
    shot(cockpit_page, "trust-refused")
    assert trusted(bed) == []


@pytest.fixture
def backend(cockpit_page: CockpitPage) -> Iterator[Bed]:
    """A network "backend" with pod "web" running on it."""
    bed = cockpit_page.bed
    bed.run("mkdir", "-p", "/etc/podmgr/networks")
    bed.run(
        "sh",
        "-c",
        "cat > /etc/podmgr/networks/backend.toml",
        input='subnet = "10.89.0.0/24"\nisolate = true\n',
    )
    install(bed, "web", pod_with('mode = "bridge"\nnetworks = ["backend"]'))
    reload(bed)
    bed.run("systemctl", "start", "pod@web.service")
    yield bed
    bed.run("systemctl", "stop", "pod@web.service")
    bed.run("rm", "-rf", "/etc/podmgr/pods/web.toml", "/etc/podmgr/networks")
    reload(bed)


def test_a_network_in_use_is_not_removed(cockpit_page: CockpitPage, backend: Bed) -> None:
    bed = backend
    cockpit_page.go("networks")
    frame = cockpit_page.frame
    row = frame.locator("tr[data-name=backend]")
    expect(row).to_contain_text("10.89.0.0/24")
    expect(row).to_contain_text("pm-backend")
    expect(row.locator("[data-flag]")).to_have_text(["masquerade", "isolate"])
    expect(row.locator("a[href='#/pod/web']")).to_have_text("web")
    shot(cockpit_page, "networks")

    row.locator("[data-action=remove-network]").click()
    dialog = frame.locator("dialog.pm-modal")
    expect(dialog).to_contain_text("/etc/podmgr/networks/backend.toml")
    dialog.locator("footer [data-action=remove-network]").click()
    refusal = frame.locator(".pm-errors .pm-alert-danger")
    expect(refusal).to_contain_text("network backend is in use by pod web (stop it first)")
    shot(cockpit_page, "networks-refused")
    assert bed.run("test", "-f", "/etc/podmgr/networks/backend.toml", check=False).returncode == 0

    # The pod stops elsewhere: the list follows, and removal works.
    bed.run("systemctl", "stop", "pod@web.service")
    expect(row.locator("a[href='#/pod/web']")).to_have_count(0)
    row.locator("[data-action=remove-network]").click()
    frame.locator("dialog.pm-modal footer [data-action=remove-network]").click()
    expect(row).to_have_count(0)
    expect(frame.locator(".pm-errors .pm-alert-success")).to_contain_text("Removed network backend")
    assert bed.run("test", "-e", "/etc/podmgr/networks/backend.toml", check=False).returncode
    assert bed.run("ip", "link", "show", "pm-backend", check=False).returncode != 0
    names = [n["name"] for n in json.loads(bed.run("podmgr", "network", "list", "--json").stdout)]
    assert "backend" not in names


@pytest.mark.parametrize("session", ["viewer"], indirect=True)
def test_a_user_without_the_right_sees_images_keys_and_networks_read_only(
    session: Login,  # noqa: F811 -- the fixture
    keys: dict[str, Key],
) -> None:
    page = session.cockpit
    frame = page.frame
    bed = page.bed
    key = keys["release"]
    bed.run("sh", "-c", "cat > /tmp/release.asc", input=key.armored.decode())
    bed.run("podmgr", "trust", "add", "--yes", "--prefix", PREFIX, "/tmp/release.asc")
    try:
        views = {
            "images": ("#images .pm-images[data-loaded]", ("pull", "import", "gc")),
            "trust": ("#trusted-keys .pm-keys[data-loaded]", ("untrust",)),
            "networks": (".pm-networks[data-loaded]", ("remove-network",)),
        }
        for view, (loaded, actions) in views.items():
            page.go(view)
            frame.locator(loaded).wait_for()
            for action in actions:
                expect(frame.locator(f"[data-action={action}]").first).to_be_disabled()
        page.go("trust")
        frame.locator("#pm-trust-prefix").press_sequentially(PREFIX)
        frame.locator("#pm-trust-key").fill(keys["vendor"].armored.decode())
        expect(frame.locator("#trust-add [data-action=trust]")).to_be_disabled()
        shot(page, "viewer-trust")
        assert trusted(bed) == [(key.fingerprint, PREFIX)]
    finally:
        bed.run("podmgr", "trust", "rm", key.fingerprint)
