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
Screenshots go to the test's temporary directory; those marked for the documentation also
to DIR/cockpit-NAME.png with PODMGR_SCREENSHOTS=DIR (``make screenshots``: docs/).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import shutil
import signal
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bed import Bed, sweep_stale_beds
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    FrameLocator,
    Page,
    expect,
    sync_playwright,
)
from test_pods import CHECKOUT, ROOTFS

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/lib/chromium/chromium"
COCKPIT_WS = "/usr/lib/cockpit/cockpit-ws"
PACKAGE = "podmgr"
FRAME = f"iframe[name='cockpit1:localhost/{PACKAGE}']"
TIMEOUT_MS = 20_000
# expect() waits this long for what the page shows (Cockpit's own pages load slowly)
expect.set_options(timeout=15_000)
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
        self.page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type not in ("error", "warning"):
            return
        print(f"console {message.type}: {message.text}")
        # Cockpit's policy forbids inline scripts and styles; chromium says so here.
        if "Content Security Policy" in message.text:
            self.errors.append(message.text)

    def check_errors(self) -> None:
        """Fail if the page threw or broke Cockpit's content security policy: every view
        must survive what the bus sends."""
        assert not self.errors, f"errors in the page: {self.errors}"

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

    def screenshot(self, name: str, docs: bool = False) -> Path:
        return screenshot(self.page, name, self.tmp_path, docs)


def screenshot(page: Page, name: str, directory: Path | None = None, docs: bool = False) -> Path:
    """Save the whole window as NAME.png under the test's temporary directory.  One that
    the documentation shows (DOCS) is also saved as cockpit-NAME.png in the directory
    PODMGR_SCREENSHOTS names (make screenshots: docs/).  Returns the test artifact."""
    directory = directory or _screenshot_dir
    assert directory, "screenshot() needs a directory outside of cockpit_page"
    target = directory / f"{name}.png"
    # Written here, not by Playwright (path=), which would write from a thread of its
    # own that outlives the test.
    target.write_bytes(page.screenshot())
    if docs and (renewed := os.environ.get("PODMGR_SCREENSHOTS")):
        shutil.copyfile(target, Path(renewed) / f"cockpit-{name}.png")
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
        # What the login page said, and what cockpit-ws and PAM logged, for the report.
        screenshot(page, f"login-{user}-failed", tmp_path)
        print(bed.run("journalctl", "--no-pager", "-n", "30", "-u", ws.unit, check=False).stdout)
        context.close()
        ws.stop()
        raise
    return Login(opened, ws, context)


# make demo-cockpit: the demo pod and the page, served to the host's 127.0.0.1.  The
# bed's network is its own, so connections are relayed into it: the listening socket is
# made in the host's namespace, then this process enters the bed's, where each relayed
# connection's socket is made (a socket keeps the namespace it was made in).  The bridge
# and everything it runs stay in the bed.

CLONE_NEWNET = 0x40000000


def _enter_network(pid: int) -> None:
    import ctypes  # noqa: PLC0415 -- only the demo needs it

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the bed's network namespace")
    finally:
        os.close(fd)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, port: int) -> None:
    with client, socket.create_connection(("127.0.0.1", port)) as upstream:
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()


def demo(port: int) -> int:
    """Boot a bed with podmgr, start the demo pod, serve Cockpit until interrupted."""
    logging.basicConfig(level=logging.INFO, format="demo: %(message)s")
    # Ctrl-C or kill: either ends the demo through the bed's teardown.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sweep_stale_beds()
    listener = socket.create_server(("127.0.0.1", port))
    with Bed("cockpit-demo", Path(CHECKOUT)) as bed:
        bed.install_project()
        bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
        bed.run("install", "-D", "-m", "644", f"{CHECKOUT}/examples/demo.toml",
                "/etc/podmgr/pods/demo.toml")  # fmt: skip
        bed.run("systemctl", "daemon-reload")
        bed.run("podmgr", "start", "demo")
        ws = CockpitWs(bed)
        _enter_network(bed.pid)
        print(f"Open http://127.0.0.1:{port}/{PACKAGE} (logged in as root of the throwaway")
        print("systemd, with the pod demo running).  Ctrl-C ends the demo and its systemd.")
        # A local session ends 15 s after its last page closes, and that cockpit-ws then
        # offers only a login page: once its session was seen and is gone, the next
        # connection gets a new cockpit-ws, so a browser that comes back finds the page.
        seen = False
        with listener, contextlib.suppress(KeyboardInterrupt):
            while True:
                client, _ = listener.accept()
                alive = bed.run("pgrep", "-x", "cockpit-bridge", check=False).returncode == 0
                if seen and not alive:
                    ws.stop()
                    ws = CockpitWs(bed)
                seen = alive
                threading.Thread(target=_relay, args=(client, ws.port), daemon=True).start()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve the Cockpit page from a bed.")
    parser.add_argument("--demo", action="store_true", required=True)
    parser.add_argument("--port", type=int, default=9090)
    sys.exit(demo(parser.parse_args().port))
