# SPDX-License-Identifier: LGPL-2.1-or-later
"""The console of an app on the pod page (cockpit/console.js), in chromium.

Root (a local session) opens the console of an app, types, and sees output only a
process inside that app can give: a file the app wrote into its own root, its user, its
network namespace.  A viewer without the right sees the console disabled, with why."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from bed import Bed
from playwright.sync_api import Browser, expect
from test_pods import ROOTFS, install, reload, wait_for

from cockpit import CockpitPage, add_user, login

pytest_plugins = ["cockpit"]
pytestmark = [pytest.mark.integration, pytest.mark.browser]

PASSWORD = secrets.token_urlsafe(16)
POD = f"""
    [app.front]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sh", "-c", "echo written-by-front > /tmp/marker; exec sleep infinity"]
    user = "33"

    [app.back]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sh", "-c", "echo written-by-back > /tmp/marker; exec sleep infinity"]
"""


@pytest.fixture(scope="module")
def console_bed(cockpit_bed: Bed) -> Bed:
    bed = cockpit_bed
    install(bed, "shell", POD)
    reload(bed)
    bed.run("podmgr", "start", "shell")
    return bed


def open_console(page: CockpitPage, app: str) -> None:
    page.go("pod", "shell")
    frame = page.frame
    frame.locator("main[data-allowed=true][data-loaded]").wait_for(state="attached")
    frame.locator("#console-app").select_option(app)
    frame.locator("[data-action=console-connect]:enabled").click()
    expect(frame.locator("#console-input")).to_be_enabled()


def type_line(page: CockpitPage, line: str) -> None:
    page.frame.locator("#console-input").fill(line)
    page.frame.locator("#console-input").press("Enter")


def test_a_console_runs_inside_its_app(console_bed: Bed, cockpit_page: CockpitPage) -> None:
    page = cockpit_page
    open_console(page, "front")
    output = page.frame.locator("#console-output")
    # What the shell prints, not the echo of what was typed: the marks are split there.
    type_line(page, "cat /tmp/marker; id -u; echo do''ne")
    expect(output).to_contain_text("written-by-front\n33\ndone")
    pid = console_bed.run(
        "systemctl", "show", "--value", "-p", "MainPID", "podapp@shell:front.service"
    ).stdout.strip()
    netns = console_bed.run("readlink", f"/proc/{pid}/ns/net").stdout.strip()
    type_line(page, "readlink /proc/self/ns/net")
    expect(output).to_contain_text(netns)
    page.screenshot("console")
    # ^C reaches the command inside; the console stays connected.
    type_line(page, "sleep 100")
    page.frame.locator("[data-action=console-interrupt]").click()
    type_line(page, "echo after''wards")
    expect(output).to_contain_text("afterwards")
    type_line(page, "exit 3")
    expect(page.frame.locator("#console-status")).to_have_text("Disconnected (exit status 3).")
    expect(page.frame.locator("[data-action=console-connect]")).to_be_enabled()
    # The other app: its own root.
    page.frame.locator("#console-app").select_option("back")
    page.frame.locator("[data-action=console-connect]:enabled").click()
    type_line(page, "cat /tmp/marker; id -u; echo do''ne")
    expect(output).to_contain_text("written-by-back\n0\ndone")
    page.frame.locator("[data-action=console-disconnect]").click()
    expect(page.frame.locator("#console-input")).to_be_disabled()
    # Disconnecting ends the command; its unit goes once systemd has collected it.
    wait_for(
        lambda: (
            not console_bed.run(
                "systemctl", "list-units", "--all", "--no-legend", "podenter@*"
            ).stdout.strip()
        ),
        30,
        "the entered unit to be unloaded",
    )


def test_a_viewer_without_the_right_gets_no_console(
    console_bed: Bed, browser: Browser, tmp_path: Path
) -> None:
    bed = console_bed
    bed.run("systemctl", "start", "systemd-user-sessions.service")
    add_user(bed, "viewer", PASSWORD)
    session = login(bed, browser, tmp_path, "viewer", PASSWORD)
    try:
        page = session.cockpit
        page.go("pod", "shell")
        frame = page.frame
        frame.locator("main[data-allowed=false][data-loaded]").wait_for(state="attached")
        assert frame.locator("[data-action=console-connect]").is_disabled()
        expect(frame.locator("#console-status")).to_contain_text("needs the right to manage pods")
        assert frame.locator("#console-input").is_disabled()
        page.check_errors()
    finally:
        session.close()
