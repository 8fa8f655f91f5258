# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Cockpit page's pods overview and a pod's page, clicked through in chromium."""

from __future__ import annotations

import pytest
from test_pods import ROOTFS, install, reload

from cockpit import CockpitPage

# the fixtures of the page's browser tests (cockpit_page, browser, cockpit_bed)
pytest_plugins = ["cockpit"]

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_page_opens_in_cockpit(cockpit_page: CockpitPage) -> None:
    frame = cockpit_page.frame
    assert frame.locator("[data-tab=pods]").get_attribute("aria-selected") == "true"
    frame.locator("#pods").wait_for()
    cockpit_page.screenshot("opened")


def test_pod_page(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    install(
        bed,
        "web",
        f"""
        [pod]
        annotations = {{ owner = "shop team" }}

        [app.hello]
        rootfs = "{ROOTFS}"
        exec = ["/bin/sh", "-c", "echo hello from the pod; exec sleep infinity"]
    """,
    )
    reload(bed)
    cockpit_page.go("pod", "web")
    frame = cockpit_page.frame
    frame.locator("[data-action=start]").click()
    frame.locator("h1 [data-state=active]").wait_for()
    try:
        frame.locator("#journal", has_text="hello from the pod").wait_for()
    except Exception:
        cockpit_page.screenshot("journal-fail")
        print(bed.run("journalctl", "-o", "json", "PODMGR_POD=web").stdout)
        print(bed.run("journalctl", "--no-pager", "-n", "50").stdout)
        raise
    cockpit_page.screenshot("pod")
    cockpit_page.go()
    cockpit_page.screenshot("pods")
