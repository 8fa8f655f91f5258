# SPDX-License-Identifier: LGPL-2.1-or-later
"""The page's Images view in a real browser: pulls from the local registries the image
tests use (tests/registries.sh, signed by skopeo), refusals, cancel, import, inspect,
remove and garbage collection, each checked against the store in the bed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from bed import Bed
from playwright.sync_api import FrameLocator, Locator, expect
from test_bus import BIG_LAYOUT
from test_gc_timer import BACKDATE
from test_registry import TLS, auth_json, push, reg_bed, set_auth, set_config  # noqa: F401

from cockpit import CockpitPage

# the fixtures of the page's browser tests (cockpit_page, browser, cockpit_bed)
pytest_plugins = ["cockpit"]

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHECKOUT = Path(__file__).resolve().parent.parent
STORE = "/var/lib/podmgr"
SIGNED = f"{TLS}/shop/api:1.0"
UNSIGNED = f"{TLS}/shop/unsigned:1.0"
UNTRUSTED = f"{TLS}/other/api:1.0"  # signed, by a key trusted for shop/ only
PULL_MS = 60_000

MARKUP = "<img src=x onerror=document.body.dataset.owned=1><b>bold</b>"

# Two small images that share no layer with the registry's: one to import from an
# archive, one to remove and collect.
BUILD = f"""
import sys
sys.path.insert(0, "{CHECKOUT}/tests")
from pathlib import Path
import imagebuild as ib
for name in ("app", "gone"):
    image = ib.Image([ib.tar([ib.directory("etc"), ib.file("etc/views", name.encode())])], "gzip",
                     {{"Cmd": ["/bin/sh", "-c", "echo " + name], "Env": ["VIEW=" + name]}})
    ib.write_layout(Path(f"/tmp/views/{{name}}"), {{"1": image}})
    ib.write_archive(Path(f"/tmp/views/{{name}}.tar"), Path(f"/tmp/views/{{name}}"))
# Every string slot of a config holds markup: the page must show it as text.
hostile = {{"Entrypoint": [{MARKUP!r}], "Cmd": [{MARKUP!r}, "x"], "Env": ["X=" + {MARKUP!r}],
           "User": {MARKUP!r}, "WorkingDir": "/" + {MARKUP!r}}}
image = ib.Image([ib.tar([ib.file("h", b"h")])], "gzip", hostile)
ib.write_layout(Path("/tmp/views/hostile"), {{"1": image}})
"""


def shot(cockpit_page: CockpitPage, name: str, part: Locator | None = None) -> None:
    """A screenshot of the view from its top, as one opens it, or scrolled to PART."""
    if part is None:
        cockpit_page.frame.locator("body").evaluate("() => window.scrollTo(0, 0)")
    else:
        part.scroll_into_view_if_needed()
    cockpit_page.screenshot(name)


def fingerprint_of_release_key(bed: Bed) -> str:
    return bed.run(
        "sh",
        "-c",
        "gpg --with-colons --list-keys release@shop.example | awk -F: '/^fpr/ {print $10; exit}'",
        env={"GNUPGHOME": "/tmp/gnupg"},
    ).stdout.strip()


@pytest.fixture(scope="module")
def release_key(reg_bed: Bed, cockpit_bed: Bed) -> str:  # noqa: F811 -- the fixture
    """The registry bed with the page installed: the shop key trusted for TLS/shop, the
    registry's images pushed, archives built; returns the key's fingerprint."""
    bed = reg_bed
    set_config(
        bed,
        f"""
        [images]
        insecure = ["example.org"]

        [registry."{TLS}"]
        lookaside = "file:///tmp/sigstore"
    """,
    )
    set_auth(bed, auth_json())
    fingerprint = fingerprint_of_release_key(bed)
    bed.run("podmgr", "trust", "add", "--yes", "--prefix", f"{TLS}/shop", "/tmp/release.asc")
    push(bed, "oci:/tmp/layout:1.0", SIGNED, "--sign-by", fingerprint)
    push(bed, "oci:/tmp/layout:1.0", UNSIGNED)
    push(bed, "oci:/tmp/layout:1.0", UNTRUSTED, "--sign-by", fingerprint)
    bed.run("/usr/bin/python3", "-c", BUILD)
    bed.run("/usr/bin/python3", "-c", BIG_LAYOUT, timeout=300)
    return fingerprint


@pytest.fixture
def images(cockpit_page: CockpitPage, release_key: str) -> FrameLocator:
    """The Images view, listed."""
    cockpit_page.go("images")
    frame = cockpit_page.frame
    frame.locator("#images .pm-images[data-loaded]").wait_for()
    return frame


def stored(bed: Bed) -> dict[str, dict[str, object]]:
    listing = json.loads(bed.run("podmgr", "image", "list", "--json").stdout)
    return {record["name"]: record for record in listing}


def start_transfer(frame: FrameLocator, action: str, enter: bool = False, **fields: str) -> None:
    """Open the Pull or Import dialog, fill it in as a user types, and start it with its
    button, or with Enter in its last field."""
    frame.locator(f"#images [data-action={action}]").click()
    dialog = frame.locator("dialog.pm-modal")
    for field, value in fields.items():
        dialog.locator(f"#pm-{action}-{field}").press_sequentially(value)
    if enter:
        dialog.locator(f"#pm-{action}-{field}").press("Enter")
    else:
        dialog.locator(f"footer [data-action={action}]").click()
    expect(dialog).to_have_count(0)


def transfer(frame: FrameLocator, source: str) -> Locator:
    return frame.locator(f".pm-transfer[data-name='{source}']").first


def test_a_pull_shows_its_progress_and_stores_the_image(
    images: FrameLocator, cockpit_page: CockpitPage, release_key: str
) -> None:
    bed = cockpit_page.bed
    bed.run("podmgr", "image", "rm", SIGNED, check=False)
    images.locator("#images [data-action=pull]").click()
    images.locator("#pm-pull-reference").press_sequentially(SIGNED)
    shot(cockpit_page, "images-pull-dialog")
    images.locator("dialog footer [data-action=pull]").click()

    panel = images.locator(f".pm-transfer[data-name='{SIGNED}']")
    expect(panel).to_have_attribute("data-state", "done", timeout=PULL_MS)
    # The bar was fed by the Transfer's Progress, the lines by its Log signal.
    expect(panel.locator("progress")).to_have_js_property("value", 1)
    expect(panel.locator(".pm-progress-text")).to_have_text("100 %")
    expect(panel.locator("[data-action=cancel]")).to_be_hidden()  # nothing left to cancel
    expect(panel.locator(".pm-transfer-result")).to_contain_text(f"signed by {release_key}")
    row = images.locator(f"tr[data-name='{SIGNED}']")
    expect(row).to_contain_text(release_key[-16:])
    shot(cockpit_page, "images")

    record = stored(bed)[SIGNED]
    assert record["signed_by"] == [release_key]
    assert not record["insecure"]
    expect(row).to_contain_text(str(record["manifest"]).split(":")[1][:12])


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param(UNSIGNED, "unsigned (no signature found", id="unsigned"),
        pytest.param(
            UNTRUSTED, f"which is not in the trust store for {TLS}/other/api", id="untrusted"
        ),
    ],
)
def test_a_refused_pull_shows_the_reason_and_stores_nothing(
    images: FrameLocator, cockpit_page: CockpitPage, name: str, reason: str
) -> None:
    start_transfer(images, "pull", enter=True, reference=name)
    panel = images.locator(f".pm-transfer[data-name='{name}']")
    expect(panel).to_have_attribute("data-state", "failed", timeout=PULL_MS)
    message = panel.locator(".pm-alert-message")
    expect(message).to_contain_text(reason)
    assert "\n" not in message.inner_text()
    assert not message.inner_text().startswith("failed:")
    shot(cockpit_page, f"images-refused-{name.split('/')[1]}")
    assert name not in stored(cockpit_page.bed)
    expect(images.locator(f"tr[data-name='{name}']")).to_have_count(0)


@pytest.fixture
def slow_service(cockpit_page: CockpitPage) -> Iterator[None]:
    """The service on a twentieth of a CPU, so that an import of the big layout (a
    second otherwise) is still under way when the user presses Cancel."""
    quota = ("systemctl", "set-property", "--runtime", "podmgr1.service")
    cockpit_page.bed.run(*quota, "CPUQuota=5%")
    yield
    cockpit_page.bed.run(*quota, "CPUQuota=")


def test_a_transfer_is_canceled_and_leaves_nothing(
    images: FrameLocator, cockpit_page: CockpitPage, slow_service: None
) -> None:
    name = "example.org/big/app:1"
    start_transfer(images, "import", source="oci:/tmp/big:1", name=name)
    panel = images.locator(".pm-transfer[data-name='oci:/tmp/big:1']")
    # Cancel once the bar moved: the service says it is under way.
    expect(panel).to_have_attribute(
        "data-transfer", re.compile(r"^/org/podmgr1/transfer/_[0-9]+$"), timeout=PULL_MS
    )
    expect(panel.locator(".pm-progress-text")).not_to_have_text("0 %", timeout=PULL_MS)
    shot(cockpit_page, "images-transfer")
    panel.locator("[data-action=cancel]").click()
    expect(panel).to_have_attribute("data-state", "canceled", timeout=PULL_MS)
    expect(panel.locator(".pm-transfer-result")).to_contain_text("Canceled")
    assert panel.locator("progress").evaluate("bar => bar.value") < 1
    bed = cockpit_page.bed
    assert name not in stored(bed)
    assert bed.run("find", f"{STORE}/layers", "-name", ".*.partial").stdout == ""


def test_an_archive_on_the_server_is_imported(
    images: FrameLocator, cockpit_page: CockpitPage
) -> None:
    name = "example.org/views/app:1"
    source = "oci-archive:/tmp/views/app.tar:1"
    start_transfer(images, "import", source=source, name=name)
    expect(transfer(images, source)).to_have_attribute("data-state", "done", timeout=PULL_MS)
    row = images.locator(f"tr[data-name='{name}']")
    expect(row).to_contain_text("Insecure (unsigned)")
    record = stored(cockpit_page.bed)[name]
    assert record["insecure"]
    inspected = json.loads(cockpit_page.bed.run("podmgr", "image", "inspect", name).stdout)
    assert inspected["source"] == source

    # A path on the server that is not absolute: the service's refusal, as it words it.
    start_transfer(images, "import", source="oci-archive:app.tar")
    refused = transfer(images, "oci-archive:app.tar")
    expect(refused).to_have_attribute("data-state", "failed")
    expect(refused.locator(".pm-alert-message")).to_contain_text("a relative path")


def test_inspect_shows_config_layers_and_signers(
    images: FrameLocator, cockpit_page: CockpitPage, release_key: str
) -> None:
    bed = cockpit_page.bed
    bed.run("podmgr", "image", "pull", SIGNED, timeout=300)
    inspected = json.loads(bed.run("podmgr", "image", "inspect", SIGNED).stdout)
    images.locator(f"tr[data-name='{SIGNED}'] [data-action=inspect]").click()
    view = images.locator(f".pm-image[data-name='{SIGNED}']")
    view.locator(".pm-stack[data-loaded]").wait_for()
    assert cockpit_page.page.url.endswith(
        "/images/" + SIGNED.replace("/", "%2F").replace(":", "%3A")
    )

    signer = view.locator(f"#image-signatures tr[data-name='{release_key}']")
    expect(signer).to_contain_text(" ".join(release_key[i : i + 4] for i in range(0, 40, 4)))
    expect(signer).to_contain_text(f"{TLS}/shop")
    layers = view.locator("#image-layers tbody tr")
    expect(layers).to_have_count(len(inspected["layers"]))
    for layer in inspected["layers"]:
        expect(view.locator(f"#image-layers tr[data-name='{layer['digest']}']")).to_contain_text(
            layer["diff_id"].split(":")[1][:12]
        )
    config = view.locator("#image-config")
    expect(config).to_contain_text(inspected["config"]["platform"])
    expect(config).to_contain_text('/bin/sh -c "echo pulled and running;')
    expect(view.locator("#image-overview")).to_contain_text(inspected["id"])
    shot(cockpit_page, "image-inspect")
    shot(cockpit_page, "image-inspect-layers", view.locator("#image-layers"))


def count(bed: Bed, directory: str) -> int:
    """Layers or blobs in the store (not the lock files beside them)."""
    found = bed.run("find", directory, "-mindepth", "1", "-maxdepth", "1", "!", "-name", ".*")
    return len(found.stdout.split())


def test_remove_then_garbage_collect(images: FrameLocator, cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    name = "example.org/views/gone:1"
    bed.run("podmgr", "image", "import", "oci:/tmp/views/gone:1", "--name", name)
    [layer] = json.loads(bed.run("podmgr", "image", "inspect", name).stdout)["layers"]
    # Stored by someone else meanwhile: the list follows TransferRemoved.
    row = images.locator(f"tr[data-name='{name}']")
    expect(row).to_have_count(1)
    row.locator("[data-action=remove]").click()
    dialog = images.locator("dialog.pm-modal")
    expect(dialog).to_contain_text(name)
    dialog.locator("footer [data-action=remove]").click()
    expect(row).to_have_count(0)
    assert name not in stored(bed)
    assert bed.run("test", "-d", layer["path"], check=False).returncode == 0  # until gc
    # Removed two days ago, beyond [gc] grace (24h): gc frees its layers.
    bed.run("/usr/bin/python3", "-c", BACKDATE)

    # What a pod that is gone left behind: gc removes it, and says so.
    bed.run(
        "sh",
        "-c",
        "mkdir -p /var/lib/podmgr/networks/podmgr && "
        "printf ghost > /var/lib/podmgr/networks/podmgr/10.87.0.99",
    )
    layers, blobs = count(bed, f"{STORE}/layers/sha256"), count(bed, f"{STORE}/blobs/sha256")
    images.locator("#images [data-action=gc]").click()
    result = images.locator("[data-result=gc]")
    expect(result).to_be_visible()
    freed_layers = layers - count(bed, f"{STORE}/layers/sha256")
    freed_blobs = blobs - count(bed, f"{STORE}/blobs/sha256")
    assert freed_layers >= 1
    expect(result).to_contain_text(
        f"Freed {freed_layers} layer{'s' if freed_layers != 1 else ''} and {freed_blobs} blob"
    )
    expect(result).to_contain_text(
        "Removed lease of pod ghost on network podmgr, left by a pod that is gone"
    )
    assert bed.run("test", "-e", layer["path"], check=False).returncode == 1
    assert bed.run(
        "test", "-e", "/var/lib/podmgr/networks/podmgr/10.87.0.99", check=False
    ).returncode
    shot(cockpit_page, "images-gc")


def test_inspecting_an_image_that_is_not_stored(cockpit_page: CockpitPage) -> None:
    cockpit_page.go("images", "example.org%2Fnothing%3A1")
    view = cockpit_page.frame.locator(".pm-image[data-name='example.org/nothing:1']")
    expect(view.locator(".pm-empty-state")).to_contain_text("No such image")
    expect(view.locator(".pm-empty-state")).to_contain_text("example.org/nothing:1")


def test_what_an_image_says_about_itself_is_shown_as_text(
    images: FrameLocator, cockpit_page: CockpitPage
) -> None:
    name = "example.org/views/hostile:1"
    cockpit_page.bed.run("podmgr", "image", "import", "oci:/tmp/views/hostile:1", "--name", name)
    cockpit_page.go("images", name.replace("/", "%2F").replace(":", "%3A"))
    config = images.locator("#image-config")
    expect(config).to_contain_text(MARKUP)
    for slot in ("Entrypoint", "Command", "User", "Working directory", "Environment"):
        expect(config.locator(".pm-dl-group", has_text=slot)).to_contain_text(MARKUP)
    expect(config.locator("img, b")).to_have_count(0)
    expect(images.locator("body[data-owned]")).to_have_count(0)
    shot(cockpit_page, "image-hostile", config)
