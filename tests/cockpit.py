# SPDX-License-Identifier: LGPL-2.1-or-later
"""Browser tests of the Cockpit page: a real cockpit-ws in a bed, Debian's chromium.

The bed (conftest's ``bed``) runs ``make install``, which installs the page into
/usr/share/cockpit/podmgr before any bridge starts.  Each test gets its own cockpit-ws,
run inside the bed as a transient unit (a local session ends 15 s after its last page
closes, so one is never shared); chromium runs in the bed's network namespace through a
wrapper given to Playwright as ``executable_path``, so 127.0.0.1 is the bed's.

A test module imports the fixtures it uses (pytest finds fixtures in the module's
namespace):

    from cockpit import CockpitPage, browser, cockpit_bed, cockpit_page  # noqa: F401

    def test_x(cockpit_page: CockpitPage) -> None:
        cockpit_page.go("images")
        cockpit_page.frame.locator("[data-action=pull]").click()
        cockpit_page.screenshot("images")

``cockpit_page`` is logged in as root through a local session (no login, the page has
administrative rights).  ``login(...)`` logs a user in through Cockpit's login page and
PAM (cockpit-ws without --local-session), for the tests of users without the right.
Screenshots go to the test's temporary directory; with PODMGR_SCREENSHOTS=DIR (``make
screenshots``) also to DIR/cockpit-NAME.png.
"""

from __future__ import annotations

import itertools
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bed import Bed
from playwright.sync_api import Browser, BrowserContext, FrameLocator, Page, sync_playwright
from test_pods import CHECKOUT, ROOTFS

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/lib/chromium/chromium"
COCKPIT_WS = "/usr/lib/cockpit/cockpit-ws"
PACKAGE = "podmgr"
FRAME = f"iframe[name='cockpit1:localhost/{PACKAGE}']"
TIMEOUT_MS = 20_000
_ports = itertools.count(9091)
_screenshot_dir: Path | None = None


@pytest.fixture(scope="module")
def cockpit_bed(bed: Bed) -> Bed:
    """The module's bed, with podmgr and the page installed and the busybox rootfs built."""
    if not Path(CHROMIUM).exists() or not Path(COCKPIT_WS).exists():
        reason = f"browser tests need {CHROMIUM} and {COCKPIT_WS} (make deps)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    bed.run("test", "-f", f"/usr/share/cockpit/{PACKAGE}/manifest.json")
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    return bed


@pytest.fixture(scope="module")
def browser(cockpit_bed: Bed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Debian's chromium, headless, in the bed's network namespace."""
    wrapper = tmp_path_factory.mktemp("chromium") / "chromium"
    wrapper.write_text(
        f'#!/bin/sh\nexec nsenter --net=/proc/{cockpit_bed.pid}/ns/net -- {CHROMIUM} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(wrapper),
            headless=True,
            # root in a namespace sandbox of its own: chromium's sandbox cannot nest here
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield launched
        finally:
            launched.close()


class CockpitWs:
    """One cockpit-ws in the bed, as a transient unit; stop() ends it and its sessions."""

    def __init__(self, bed: Bed, local_session: bool = True) -> None:
        self.bed = bed
        self.port = next(_ports)
        self.unit = f"test-cockpit-ws-{self.port}.service"
        argv = [COCKPIT_WS, "--no-tls", "--port", str(self.port), "--address", "127.0.0.1"]
        if local_session:
            argv.insert(2, "--local-session=/usr/bin/cockpit-bridge")
        bed.run("systemd-run", f"--unit={self.unit}", "--collect", "--quiet", *argv)
        # Listening within a few seconds; connect from inside the bed until it is.
        bed.run(
            "python3",
            "-c",
            "import socket, sys, time\n"
            "deadline = time.monotonic() + 20\n"
            "while True:\n"
            "    try:\n"
            f"        socket.create_connection(('127.0.0.1', {self.port}), 1).close(); break\n"
            "    except OSError:\n"
            "        if time.monotonic() > deadline: sys.exit('cockpit-ws does not listen')\n"
            "        time.sleep(0.05)\n",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.bed.run("systemctl", "stop", self.unit, check=False)


@dataclass
class CockpitPage:
    """A browser tab on Cockpit's shell with the podmgr page in its frame."""

    bed: Bed
    page: Page  # the shell
    tmp_path: Path
    errors: list[str] = field(default_factory=list)  # uncaught exceptions in the page

    def __post_init__(self) -> None:
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on(
            "console",
            lambda message: (
                print(f"console {message.type}: {message.text}")
                if message.type in ("error", "warning")
                else None
            ),
        )

    def check_errors(self) -> None:
        """Fail if the page threw: every view must survive what the bus sends."""
        assert not self.errors, f"uncaught exceptions in the page: {self.errors}"

    @property
    def frame(self) -> FrameLocator:
        """The podmgr page inside the shell."""
        return self.page.frame_locator(FRAME)

    def go(self, *path: str) -> None:
        """Open the page at a route (see app.js), as a bookmark would."""
        suffix = "#/" + "/".join(path) if path else ""
        self.page.goto(f"{self.page.url.split('/podmgr')[0]}/{PACKAGE}{suffix}")
        self.wait_ready()

    def wait_ready(self) -> None:
        self.frame.locator("body[data-ready]").wait_for(state="attached", timeout=TIMEOUT_MS)

    def screenshot(self, name: str) -> Path:
        return screenshot(self.page, name, self.tmp_path)


def screenshot(page: Page, name: str, directory: Path | None = None) -> Path:
    """Save the whole window as NAME.png under the test's temporary directory (and, with
    PODMGR_SCREENSHOTS, as cockpit-NAME.png there).  Returns the test artifact's path."""
    directory = directory or _screenshot_dir
    assert directory, "screenshot() needs a directory outside of cockpit_page"
    target = directory / f"{name}.png"
    # Written here, not by Playwright (path=), which would write from a thread of its
    # own that outlives the test.
    target.write_bytes(page.screenshot())
    if docs := os.environ.get("PODMGR_SCREENSHOTS"):
        shutil.copyfile(target, Path(docs) / f"cockpit-{name}.png")
    return target


def new_context(browser: Browser) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def cockpit_page(cockpit_bed: Bed, browser: Browser, tmp_path: Path) -> Iterator[CockpitPage]:
    """The podmgr page in Cockpit's shell, as root through a local session."""
    global _screenshot_dir  # noqa: PLW0603 -- screenshot(page, name) of the current test
    _screenshot_dir = tmp_path
    ws = CockpitWs(cockpit_bed)
    context = new_context(browser)
    try:
        page = context.new_page()
        page.goto(f"{ws.url}/{PACKAGE}")
        opened = CockpitPage(cockpit_bed, page, tmp_path)
        opened.wait_ready()
        yield opened
        opened.check_errors()
    finally:
        context.close()
        ws.stop()
        _screenshot_dir = None


@dataclass
class Login:
    """A user's browser session through Cockpit's login page (PAM)."""

    cockpit: CockpitPage
    ws: CockpitWs
    context: BrowserContext

    def close(self) -> None:
        self.context.close()
        self.ws.stop()


def add_user(bed: Bed, user: str, password: str, groups: tuple[str, ...] = ()) -> None:
    """A user of the bed (never the host's) with a password Cockpit's login checks."""
    argv = ["useradd", "--create-home", "--shell", "/bin/bash"]
    if groups:
        argv += ["--groups", ",".join(groups)]
    bed.run(*argv, user)
    bed.run("chpasswd", input=f"{user}:{password}\n")


def login(bed: Bed, browser: Browser, tmp_path: Path, user: str, password: str) -> Login:
    """Log USER in on a cockpit-ws of its own (PAM through cockpit-session) and open the
    podmgr page."""
    ws = CockpitWs(bed, local_session=False)
    context = new_context(browser)
    try:
        page = context.new_page()
        page.goto(f"{ws.url}/{PACKAGE}")
        page.fill("#login-user-input", user)
        page.fill("#login-password-input", password)
        page.click("#login-button")
        opened = CockpitPage(bed, page, tmp_path)
        opened.wait_ready()
    except BaseException:
        context.close()
        ws.stop()
        raise
    return Login(opened, ws, context)
