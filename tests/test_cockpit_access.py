# SPDX-License-Identifier: LGPL-2.1-or-later
"""Users without the right, through a real PAM login on Cockpit's login page.

An unprivileged user sees everything read-only; an administrator (group sudo) acts once
Cockpit's administrative access is switched on; a member of the group the shipped polkit
rule names (polkit/50-podmgr.rules) acts without it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from bed import Bed
from playwright.sync_api import Browser, expect
from test_pods import CHECKOUT, ROOTFS, install, reload

from cockpit import Login, add_user, login

pytest_plugins = ["cockpit"]
pytestmark = [pytest.mark.integration, pytest.mark.browser]

# the bed's users exist only in the bed; a fresh password each run all the same
PASSWORD = secrets.token_urlsafe(16)
POD = f"""
    [app.idle]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sh", "-c", "echo idle and ready; exec sleep infinity"]
"""


@pytest.fixture(scope="module")
def access_bed(cockpit_bed: Bed) -> Bed:
    """Users of each kind, the shipped rule installed, one pod."""
    bed = cockpit_bed
    # The bed boots a target of its own, short of the point where a system lets users
    # log in (pam_nologin refuses them until this removes /run/nologin).
    bed.run("systemctl", "start", "systemd-user-sessions.service")
    # sudo (Cockpit's way to administrative access) resolves the host's own name: the
    # bed's name is its own, unknown to the host's /etc/hosts.
    bed.run("sh", "-c", 'echo "127.0.1.1 $(hostname)" >> /etc/hosts')
    # The rule names the group "podmgr"; it is shipped as an example to install.
    bed.run("groupadd", "--system", "podmgr")
    bed.run(
        "install",
        "-D",
        "-m",
        "644",
        f"{CHECKOUT}/polkit/50-podmgr.rules",
        "/etc/polkit-1/rules.d/50-podmgr.rules",
    )
    add_user(bed, "viewer", PASSWORD)
    add_user(bed, "admin", PASSWORD, groups=("sudo",))
    add_user(bed, "member", PASSWORD, groups=("podmgr",))
    install(bed, "idle", POD)
    reload(bed)
    return bed


@pytest.fixture
def session(
    access_bed: Bed, browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Login]:
    """The page, logged in as the user the test's parameter names."""
    user = request.param
    opened = login(access_bed, browser, tmp_path, user, PASSWORD)
    try:
        yield opened
        opened.cockpit.check_errors()
    finally:
        opened.close()


def active(bed: Bed, unit: str) -> str:
    return bed.run("systemctl", "is-active", unit, check=False).stdout.strip()


@pytest.mark.parametrize("session", ["viewer"], indirect=True)
def test_an_unprivileged_user_sees_everything_read_only(session: Login) -> None:
    page = session.cockpit
    frame = page.frame
    frame.locator("tr[data-name=idle]").wait_for()
    frame.locator("#notice", has_text="Read-only access").wait_for()
    assert frame.locator("[data-action=create]").is_disabled()
    page.screenshot("viewer-pods")
    frame.locator("tr[data-name=idle] a").click()
    frame.locator("main[data-allowed=false][data-loaded]").wait_for(state="attached")
    for action in ("start", "stop", "restart", "edit"):
        assert frame.locator(f"[data-action={action}]").is_disabled(), action
    # The system's journal is not theirs to read; journalctl shows nothing, the page says why.
    expect(frame.locator("#journal")).to_contain_text("Without administrative access only")
    page.screenshot("viewer-pod")
    assert active(page.bed, "pod@idle.service") == "inactive"


def open_pod(session: Login) -> None:
    frame = session.cockpit.frame
    frame.locator("tr[data-name=idle] a").click()
    frame.locator("main[data-loaded]").wait_for(state="attached")


@pytest.mark.parametrize("session", ["admin"], indirect=True)
def test_an_administrator_acts_with_administrative_access(session: Login) -> None:
    page = session.cockpit
    shell = page.page
    open_pod(session)
    assert page.frame.locator("[data-action=start]").is_disabled()
    # The shell's own button and dialog (sudo asks for the user's password).
    shell.get_by_role("button", name="Limited access").click()
    page.screenshot("admin-dialog")
    shell.get_by_label("Password").fill(PASSWORD)
    shell.get_by_role("button", name="Authenticate").click()
    shell.get_by_text("Administrative access", exact=True).wait_for()
    # Cockpit reloads the page when the access changes.
    page.wait_ready()
    page.frame.locator("main[data-loaded]").wait_for(state="attached")
    page.frame.locator("[data-action=start]:enabled").click()
    page.frame.locator("h1 [data-state=active]").wait_for()
    assert active(page.bed, "pod@idle.service") == "active"
    page.frame.locator("[data-action=stop]:enabled").click()
    page.frame.locator("h1 [data-state=inactive]").wait_for()
    assert active(page.bed, "pod@idle.service") == "inactive"


@pytest.mark.parametrize("session", ["member"], indirect=True)
def test_a_member_of_the_rules_group_acts_without_administrative_access(session: Login) -> None:
    page = session.cockpit
    open_pod(session)
    assert page.page.get_by_role("button", name="Limited access").is_visible()
    page.frame.locator("[data-action=start]:enabled").click()
    page.frame.locator("h1 [data-state=active]").wait_for()
    assert active(page.bed, "pod@idle.service") == "active"
    page.frame.locator("[data-action=stop]:enabled").click()
    page.frame.locator("h1 [data-state=inactive]").wait_for()
    assert active(page.bed, "pod@idle.service") == "inactive"
