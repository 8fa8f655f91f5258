# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Cockpit page's pods overview and a pod's page, clicked through in chromium.

Each test acts as a user would in the page and checks the system in the bed (systemctl,
podmgr, the journal), or acts on the system and checks that the page follows live.
"""

from __future__ import annotations

import re

import pytest
from bed import Bed
from playwright.sync_api import expect
from test_pods import CHECKOUT, ROOTFS, install, reload, show, wait_for

from cockpit import CockpitPage

pytest_plugins = ["cockpit"]
pytestmark = [pytest.mark.integration, pytest.mark.browser]

# An annotation is the manifest author's text: shown as it is, never as markup.
MARKUP = "<b>bold</b><img src=x onerror=alert(1)>"
WEB = f"""
    [pod.annotations]
    owner = "shop team"
    "docs.example.org/url" = "https://example.org/web"
    note = "{MARKUP}"

    [app.front]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sh", "-c", "echo front says hello; echo '<4>front warns'; exec sleep infinity"]

    [app.back]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sh", "-c", "echo back says hello; echo '{MARKUP}'; exec sleep infinity"]
"""
IDLE = f"""
    [app.idle]
    rootfs = "{ROOTFS}"
    exec = ["/bin/sleep", "infinity"]
"""
# Two mistakes, each named with its key by the service
BROKEN = f"""
    [app.api]
    rootfs = "{ROOTFS}"
    exec = ["/bin/true"]
    colour = "red"
    "{MARKUP}" = 1
    memory = "12X"
"""


def remove_pods(bed: Bed) -> None:
    bed.run("podmgr", "stop", "web", check=False)
    bed.run("sh", "-c", "rm -f /etc/podmgr/pods/*.toml")
    reload(bed)


def active(bed: Bed, unit: str) -> str:
    return bed.run("systemctl", "is-active", unit, check=False).stdout.strip()


def row(page: CockpitPage, pod: str) -> str:
    return f"#pods tr[data-name='{pod}']"


def test_an_empty_system_explains_how_to_add_a_pod(cockpit_page: CockpitPage) -> None:
    remove_pods(cockpit_page.bed)
    cockpit_page.go()
    frame = cockpit_page.frame
    empty = frame.locator(".pm-empty-state")
    expect(empty).to_contain_text("No pods")
    expect(empty).to_contain_text("/etc/podmgr/pods/NAME.toml")
    expect(empty).to_contain_text("systemctl daemon-reload")
    cockpit_page.screenshot("pods-empty")
    empty.locator("[data-action=create]").click()
    expect(cockpit_page.page).to_have_url(re.compile(r"/podmgr#/new$"))


def test_start_stop_restart_in_the_page(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    install(bed, "web", WEB)
    reload(bed)
    cockpit_page.go()
    frame = cockpit_page.frame
    frame.locator(f"{row(cockpit_page, 'web')} a").click()
    expect(cockpit_page.page).to_have_url(re.compile(r"/podmgr#/pod/web$"))

    frame.locator("[data-action=start]").click()
    expect(frame.locator("h1 .pm-state")).to_have_text("active")
    assert active(bed, "pod@web.service") == "active"
    for app in ("front", "back"):
        unit = f"podapp@web:{app}.service"
        cells = frame.locator(f"#apps tr[data-name={app}] td")
        expect(cells.nth(2)).to_have_text("active")
        expect(cells.nth(3)).to_have_text(show(bed, unit, "NRestarts"))
        expect(cells.nth(4)).to_contain_text("iB")  # MemoryCurrent, in KiB or MiB
        link = cells.nth(1).locator("a")
        expect(link).to_have_text(unit)
        assert link.get_attribute("href") == f"/system/services#/{unit}"
    details = frame.locator("#details")
    expect(details).to_contain_text("/etc/podmgr/pods/web.toml")
    expect(details.locator(".pm-annotations li[data-key=owner]")).to_have_text("owner = shop team")
    expect(details.locator(".pm-annotations li[data-key=note]")).to_have_text(f"note = {MARKUP}")
    assert frame.locator("#details b, #details img").count() == 0
    cockpit_page.screenshot("pod")

    before = show(bed, "pod@web.service", "InvocationID")
    frame.locator("[data-action=restart]").click()
    wait_for(
        lambda: show(bed, "pod@web.service", "InvocationID") != before, what="a new invocation"
    )
    expect(frame.locator("[data-action=restart]")).to_be_enabled()
    expect(frame.locator("h1 .pm-state")).to_have_text("active")

    frame.locator("[data-action=stop]").click()
    expect(frame.locator("h1 .pm-state")).to_have_text("inactive")
    assert active(bed, "pod@web.service") == "inactive"
    expect(frame.locator("#apps tr[data-name=front] td").nth(2)).to_have_text("inactive")


def test_the_overview_follows_the_system_live(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    cockpit_page.go()
    frame = cockpit_page.frame
    frame.locator("#pods [data-loaded]").wait_for(state="attached")
    # Nothing changes, nothing is read: the page follows signals, it does not poll.
    calls = bed.run(
        "timeout", "4", "busctl", "monitor", "--match", "type='method_call',member='ListPods'",
        check=False,
    ).stdout  # fmt: skip
    assert "Member=ListPods" not in calls, calls
    # A manifest appears: the page was not reloaded, it follows.
    install(bed, "idle", IDLE)
    reload(bed)
    idle = frame.locator(row(cockpit_page, "idle"))
    expect(idle.locator(".pm-state")).to_have_text("inactive")
    # Started and stopped from the command line and by systemctl
    bed.run("podmgr", "start", "idle")
    expect(idle.locator(".pm-state")).to_have_text("active")
    expect(idle.locator("td").nth(2)).to_have_text("1 of 1 active")
    bed.run("systemctl", "stop", "pod@idle.service")
    expect(idle.locator(".pm-state")).to_have_text("inactive")
    # The service exits when idle; systemd's signals still reach the page.
    # (the page's own calls may activate it again meanwhile: a canceled stop is fine)
    bed.run("systemctl", "stop", "podmgr1.service", check=False)
    bed.run("systemctl", "start", "pod@idle.service")
    expect(idle.locator(".pm-state")).to_have_text("active")
    bed.run("systemctl", "stop", "pod@idle.service")
    # The manifest goes away
    bed.run("rm", "/etc/podmgr/pods/idle.toml")
    reload(bed)
    expect(idle).to_have_count(0)


def test_an_invalid_manifest_is_listed_with_its_problems(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    install(bed, "broken", BROKEN)
    reload(bed)
    validate = bed.run("podmgr", "validate", "/etc/podmgr/pods/broken.toml", check=False)
    expected = [line for line in (validate.stdout + validate.stderr).splitlines() if line]
    assert validate.returncode == 1, validate
    assert expected, validate
    cockpit_page.go()
    broken = cockpit_page.frame.locator(row(cockpit_page, "broken"))
    expect(broken.locator(".pm-state")).to_have_text("invalid")
    problems = cockpit_page.frame.locator("#pods tr[data-detail-of=broken] .pm-problems li")
    expect(problems).to_have_text(expected)
    for line in expected:
        assert line.startswith("/etc/podmgr/pods/broken.toml: app.api"), line
    assert any(MARKUP in line for line in expected)  # an unknown key of markup, as text
    assert cockpit_page.frame.locator("#pods b, #pods img").count() == 0
    cockpit_page.screenshot("pods-invalid")
    # Its page says the same, above what is there to see
    broken.locator("a").click()
    expect(cockpit_page.frame.locator(".pm-alert .pm-problems li")).to_have_text(expected)


def journal_lines(page: CockpitPage) -> list[str]:
    return page.frame.locator("#journal .pm-journal-message").all_text_contents()


def test_the_journal_follows_filters_and_stops(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed  # a pod of its own: the journal keeps other tests' lines
    install(bed, "chatty", WEB)
    reload(bed)
    bed.run("podmgr", "start", "chatty")
    cockpit_page.go("pod", "chatty")
    frame = cockpit_page.frame
    journal = frame.locator("#journal")
    expect(journal).to_contain_text("front says hello")
    expect(journal).to_contain_text("back says hello")
    expect(journal.locator(".pm-journal-warning")).to_contain_text("front warns")
    expect(journal).to_contain_text(MARKUP)
    assert journal.locator("b, img").count() == 0

    frame.locator("#journal-app").select_option("back")
    expect(journal).to_contain_text("back says hello")
    expect(journal).not_to_contain_text("front")
    frame.locator("#journal-app").select_option("")
    frame.locator("#journal-priority").select_option("4")
    expect(journal).to_contain_text("front warns")
    expect(journal).not_to_contain_text("says hello")
    frame.locator("#journal-priority").select_option("6")

    # Live: what the apps print after a restart from the command line appears.
    expect(journal.get_by_text("back says hello")).to_have_count(1)
    bed.run("podmgr", "restart", "chatty")
    expect(journal.get_by_text("back says hello")).to_have_count(2)
    journal.scroll_into_view_if_needed()
    cockpit_page.screenshot("pod-journal")

    def followers() -> int:
        found = bed.run("pgrep", "-f", "journalctl.*PODMGR_POD=chatty", check=False).stdout
        return len(found.split())

    assert followers() == 1
    # Leaving the pod's page stops following.
    frame.locator(".pm-breadcrumb a").click()
    frame.locator("#pods").wait_for()
    wait_for(lambda: followers() == 0, what="journalctl to end")
    bed.run("podmgr", "stop", "chatty")


def test_links_to_cockpit_services_and_the_editor(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    install(bed, "web", WEB)
    reload(bed)
    bed.run("podmgr", "start", "web")
    cockpit_page.go("pod", "web")
    frame = cockpit_page.frame
    frame.locator("[data-action=edit]").click()
    expect(cockpit_page.page).to_have_url(re.compile(r"/podmgr#/pod/web/edit$"))
    cockpit_page.go("pod", "web")
    frame.locator("#apps a[data-unit='podapp@web:front.service']").click()
    # Cockpit's own Services page, on that unit
    expect(cockpit_page.page).to_have_url(
        re.compile(r"/system/services#/podapp@web:front\.service$")
    )
    services = cockpit_page.page.frame_locator("iframe[name='cockpit1:localhost/system/services']")
    expect(services.locator("body")).to_contain_text("front says hello")
    bed.run("podmgr", "stop", "web")


def test_without_the_service_the_page_says_so(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    activation = "/usr/share/dbus-1/system-services/org.podmgr1.service"

    def reload_dbus() -> None:
        bed.run(
            "busctl", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
            "org.freedesktop.DBus", "ReloadConfig",
        )  # fmt: skip

    bed.run("rm", activation)
    reload_dbus()
    # Not activatable any more; what already runs goes too.
    wait_for(
        lambda: bed.run("systemctl", "stop", "podmgr1.service", check=False).returncode == 0,
        what="podmgr1.service to stop",
    )
    try:
        cockpit_page.go()
        frame = cockpit_page.frame
        expect(frame.locator("body")).to_have_attribute("data-ready", "not-installed")
        expect(frame.locator(".pm-empty-state")).to_contain_text("podmgr is not installed")
        cockpit_page.screenshot("not-installed")
    finally:
        bed.run("install", "-m", "644", f"{CHECKOUT}/dbus/org.podmgr1.service", activation)
        reload_dbus()


def test_the_page_follows_cockpits_light_and_dark_style(cockpit_page: CockpitPage) -> None:
    """Also the README's screenshot (make screenshots): a pod of each kind."""
    bed = cockpit_page.bed
    install(bed, "web", WEB)
    install(bed, "idle", IDLE)
    install(bed, "broken", BROKEN)
    reload(bed)
    bed.run("podmgr", "start", "web")
    page = cockpit_page.page
    # What the shell's Session menu > Style > Dark stores
    page.evaluate("localStorage.setItem('shell:style', 'dark')")
    cockpit_page.go()
    html = cockpit_page.frame.locator("html")
    expect(html).to_have_class(re.compile(r"\bpf-theme-dark\b"))
    background = cockpit_page.frame.locator("#pods").evaluate(
        "element => getComputedStyle(element).backgroundColor"
    )
    assert background == "rgb(27, 29, 33)", background  # PatternFly's dark surface
    expect(cockpit_page.frame.locator(f"{row(cockpit_page, 'web')} .pm-state")).to_have_text(
        "active"
    )
    cockpit_page.screenshot("pods-dark")
    cockpit_page.go("pod", "web")
    cockpit_page.frame.locator("main[data-loaded]").wait_for(state="attached")
    cockpit_page.screenshot("pod-dark")

    page.evaluate("localStorage.setItem('shell:style', 'light')")
    cockpit_page.go()
    expect(html).not_to_have_class(re.compile(r"\bpf-theme-dark\b"))
    background = cockpit_page.frame.locator("#pods").evaluate(
        "element => getComputedStyle(element).backgroundColor"
    )
    assert background == "rgb(255, 255, 255)", background
    expect(cockpit_page.frame.locator(f"{row(cockpit_page, 'web')} .pm-state")).to_have_text(
        "active"
    )
    expect(cockpit_page.frame.locator(f"{row(cockpit_page, 'broken')} .pm-state")).to_have_text(
        "invalid"
    )
    cockpit_page.screenshot("pods", docs=True)
    bed.run("podmgr", "stop", "web")


@pytest.mark.parametrize(
    ("name", "title", "message"),
    [
        ("nope", "Pod nope not found", "no pod 'nope'"),
        ("Bad<Name>", "Cannot show pod Bad<Name>", "is not a valid pod name"),
    ],
)
def test_a_pod_that_cannot_be_shown_says_why(
    cockpit_page: CockpitPage, name: str, title: str, message: str
) -> None:
    cockpit_page.go("pod", name)
    empty = cockpit_page.frame.locator(".pm-empty-state")
    expect(empty.locator("h2")).to_have_text(title)
    expect(empty).to_contain_text(message)  # the service's own words
    assert cockpit_page.frame.locator("[data-action]").count() == 0
    wait_for(lambda: cockpit_page.bed.run("pgrep", "journalctl", check=False).returncode == 1)
