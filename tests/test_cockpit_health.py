# SPDX-License-Identifier: LGPL-2.1-or-later
"""Health checks on the Cockpit page: the overview and a pod's page show the pod's and each
app's health, and follow it live as the checks pass and fail in the bed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from test_health import marked, start, wait_health
from test_pods import main_pid

from cockpit import CockpitPage

pytest_plugins = ["cockpit"]
pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_the_page_shows_health_and_follows_it(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    start(bed, "checked", marked("checked", "none", retries=1))
    wait_health(bed, "checked", "healthy")

    cockpit_page.go()
    frame = cockpit_page.frame
    row = frame.locator("#pods tr[data-name='checked']")
    expect(row.locator(".pm-state")).to_have_text("active")
    expect(row.locator(".pm-health")).to_have_text("healthy")

    row.locator("a").click()
    expect(frame.locator("h1 .pm-health")).to_have_text("healthy")
    main = frame.locator("#apps tr[data-name=main] td").nth(2)
    expect(main.locator(".pm-state")).to_have_text("active")
    expect(main.locator(".pm-health")).to_have_attribute("data-health", "healthy")
    # An app without a check has no health to show.
    expect(frame.locator("#apps tr[data-name=plain] td").nth(2)).to_have_text("active")
    assert frame.locator("#apps tr[data-name=plain] .pm-health").count() == 0
    cockpit_page.screenshot("pod-health")

    # The check fails: the page follows, without a reload.
    pid = main_pid(bed, "checked", "main")
    bed.run("rm", f"/proc/{pid}/root/tmp/ok")
    expect(frame.locator("h1 .pm-health")).to_have_text("unhealthy")
    expect(main.locator(".pm-health")).to_have_text("unhealthy")
    bed.run("touch", f"/proc/{pid}/root/tmp/ok")
    expect(frame.locator("h1 .pm-health")).to_have_text("healthy")

    # A stopped pod has no health.
    bed.run("podmgr", "stop", "checked")
    expect(frame.locator("h1 .pm-state")).to_have_text("inactive")
    assert frame.locator("h1 .pm-health").count() == 0
    cockpit_page.check_errors()
