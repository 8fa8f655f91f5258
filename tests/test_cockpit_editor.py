# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Cockpit page's manifest editor, typed into in chromium: creating a pod, problems
shown beside their lines as the text is typed, saving a running pod and restarting it
to apply, a change made on disk meanwhile (shown, never overwritten unasked), deleting
with a confirmation; each checked on the system too (the file, its units, the app)."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from test_pods import CHECKOUT, ROOTFS, install, main_pid, reload, wait_for

from cockpit import CockpitPage, add_user, login

pytest_plugins = ["cockpit"]

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SLEEPER = f'[app.main]\nrootfs = "{ROOTFS}"\nexec = ["/bin/sleep", "infinity"]\n'


def textarea_value(cockpit_page: CockpitPage) -> str:
    value: str = cockpit_page.frame.locator("#pm-manifest-text").input_value()
    return value


def open_editor(cockpit_page: CockpitPage, pod: str, start: bool = False) -> None:
    """Pod POD from SLEEPER (started if asked), open in the editor."""
    install(cockpit_page.bed, pod, SLEEPER)
    reload(cockpit_page.bed)
    if start:
        cockpit_page.bed.run("podmgr", "start", pod)
    cockpit_page.go("pod", pod, "edit")
    wait_for(lambda: textarea_value(cockpit_page) == SLEEPER, what="the manifest in the editor")


def test_create_a_pod_by_typing(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    frame = cockpit_page.frame
    cockpit_page.go("new")
    frame.locator("#pm-pod-name").fill("typed")
    editor = frame.locator("#pm-manifest-text")
    editor.click()
    # exec as a string: the service says what is wrong, beside line 3.
    cockpit_page.page.keyboard.type(f'[app.main]\nrootfs = "{ROOTFS}"\nexec = "/bin/sleep"\n')
    problem = frame.locator(".pm-editor-problem[data-line='3']")
    problem.wait_for()
    assert "app.main.exec" in problem.inner_text()
    assert "expected an array of strings" in problem.inner_text()
    assert frame.locator(".pm-editor-number-problem[data-line='3']").count() == 1
    cockpit_page.screenshot("editor-problem")
    # Fixed by typing: the line's problem goes away.
    for _ in range(len('"/bin/sleep"\n')):
        cockpit_page.page.keyboard.press("Backspace")
    cockpit_page.page.keyboard.type('["/bin/sleep", "infinity"]\n')
    frame.locator("#pm-validation[data-state=valid]").wait_for()
    assert frame.locator(".pm-editor-problem").count() == 0
    assert frame.locator(".pm-editor-number-problem").count() == 0
    typed = textarea_value(cockpit_page)
    assert typed == SLEEPER
    frame.locator("[data-action=save]").click()
    # Created through the service: the pod's own page, the file, the units.
    cockpit_page.page.wait_for_url("**/podmgr#/pod/typed")
    assert bed.run("cat", "/etc/podmgr/pods/typed.toml").stdout == typed
    assert bed.run("podmgr", "cat", "typed").stdout == f"# /etc/podmgr/pods/typed.toml\n{typed}"
    units = bed.run("systemctl", "cat", "pod@typed.service").stdout
    assert "/run/systemd/generator/pod@typed.service.d/" in units, units
    bed.run("systemctl", "cat", "podapp@typed:main.service")
    # A name that is taken: the service's one line, nothing changed.
    cockpit_page.go("new")
    frame.locator("#pm-pod-name").fill("typed")
    frame.locator("#pm-manifest-text").fill(SLEEPER.replace("infinity", "1"))
    frame.locator("[data-action=save]").click()
    frame.locator("#pm-editor-error", has_text="there is a pod 'typed' already").wait_for()
    assert bed.run("cat", "/etc/podmgr/pods/typed.toml").stdout == typed
    # A name that is not one, checked by the service.
    frame.locator("#pm-pod-name").fill("Not A Name")
    frame.locator("[data-action=save]").click()
    frame.locator("#pm-editor-error", has_text="not a valid pod name").wait_for()
    assert bed.run("test", "-e", "/etc/podmgr/pods/Not A Name.toml", check=False).returncode == 1


def test_problems_without_a_line_are_listed_above(cockpit_page: CockpitPage) -> None:
    frame = cockpit_page.frame
    cockpit_page.go("new")
    frame.locator("#pm-manifest-text").fill("# nothing yet\n")
    # "app: the pod has no apps": no line has that key, so it is listed above the text.
    frame.locator("#pm-problems li[data-where=app]", has_text="the pod has no apps").wait_for()
    frame.locator("#pm-manifest-text").fill('[app.web]\nexec = ["/bin/true"\n')  # not TOML
    frame.locator(".pm-editor-problem", has_text="fix the TOML syntax").wait_for()


LINES = """\
[app.main]
rootfs = "/srv/x"
exec = "/bin/sleep"
[app.main.resources]
memory_max = "12X"
[[app.main.mount]]
volume = "a"
[[app.main.mount]]
volume = "b"
[app."my app"]
environment = { A = "1" }
[network]
text = \"\"\"
ports = 1
\"\"\"
ports = ["1:2", "3:4"]
"""
# The service's key paths (and positions), and the line the editor shows each beside.
WHERE = {
    "app.main.exec": 3,
    "app.main.resources.memory_max": 5,
    "app.main.mount[1].volume": 9,
    "app.main.mount[0]": 6,
    'app."my app".environment.A': 11,
    "network.ports[1]": 16,  # not the line inside the multi-line string
    "app.main.user": 1,  # a key that is missing: beside its table
    "line 4, column 2": 4,
    "end of file": 17,
    "pod.annotations": None,  # nowhere in the text: listed above it
    "": None,
}


def test_problem_paths_find_their_lines(cockpit_page: CockpitPage) -> None:
    """The page's own mapping, run in the browser: every form of path the service uses."""
    cockpit_page.go("new")
    frame = cockpit_page.page.frame(name="cockpit1:localhost/podmgr")
    assert frame is not None
    found = frame.evaluate(
        """async ([text, paths]) => {
            const { keyLines, lineOf } = await import("./editor.js");
            const lines = keyLines(text);
            return paths.map(where => lineOf(where, lines, text.split("\\n").length));
        }""",
        [LINES, list(WHERE)],
    )
    assert dict(zip(WHERE, found, strict=True)) == WHERE


def test_edit_save_and_restart_a_running_pod(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    frame = cockpit_page.frame
    open_editor(cockpit_page, "shop", start=True)
    before = main_pid(bed, "shop", "main")
    edited = SLEEPER + '\n[pod]\nannotations = { owner = "shop team" }\n'
    frame.locator("#pm-manifest-text").fill(edited)
    frame.locator("#pm-validation[data-state=valid]").wait_for()
    frame.locator("[data-action=save]").click()
    frame.locator("#pm-saved").wait_for()
    assert bed.run("cat", "/etc/podmgr/pods/shop.toml").stdout == edited
    assert main_pid(bed, "shop", "main") == before  # runs on, until restarted
    cockpit_page.screenshot("editor-saved")
    frame.locator("[data-action=restart]").click()
    frame.locator(".pm-alert-success", has_text="Pod shop restarted").wait_for()
    assert bed.run("systemctl", "is-active", "pod@shop.service").stdout.strip() == "active"
    assert bed.run("systemctl", "is-active", "podapp@shop:main.service").stdout.strip() == "active"
    assert main_pid(bed, "shop", "main") != before
    annotation = bed.run("podmgr", "status", "shop").stdout
    assert "owner=shop team" in annotation, annotation
    # Saved twice in a row (with Ctrl+S): the editor knows the file it wrote.
    frame.locator("#pm-manifest-text").fill(edited + "# again\n")
    frame.locator("#pm-manifest-text").press("Control+s")
    frame.locator("#pm-saved").wait_for()
    assert bed.run("cat", "/etc/podmgr/pods/shop.toml").stdout == edited + "# again\n"
    bed.run("podmgr", "stop", "shop")


def test_a_change_on_disk_is_shown_and_not_overwritten(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    frame = cockpit_page.frame
    open_editor(cockpit_page, "disk")
    mine = SLEEPER + "# mine\n"
    frame.locator("#pm-manifest-text").fill(mine)
    # Someone edits the file meanwhile, as an editor on the host does (write and rename).
    theirs = SLEEPER + "# theirs\n"
    bed.run(
        "sh",
        "-c",
        "cat > /etc/podmgr/pods/.disk.toml.swp && "
        "mv /etc/podmgr/pods/.disk.toml.swp /etc/podmgr/pods/disk.toml",
        input=theirs,
    )
    frame.locator("#pm-disk-changed").wait_for()
    cockpit_page.screenshot("editor-changed-on-disk")
    # Save does not overwrite it: the service refuses, the change stays shown.
    frame.locator("[data-action=save]").click()
    frame.locator("#pm-disk-changed").wait_for()
    wait_for(lambda: frame.locator("[data-action=save]").is_enabled(), what="save done")
    assert bed.run("cat", "/etc/podmgr/pods/disk.toml").stdout == theirs
    assert textarea_value(cockpit_page) == mine
    # Reload shows theirs; overwriting knowingly writes mine over exactly theirs.
    frame.locator("[data-action=reload]").click()
    wait_for(lambda: textarea_value(cockpit_page) == theirs, what="the file reloaded")
    assert frame.locator("#pm-disk-changed").count() == 0
    frame.locator("#pm-manifest-text").fill(mine)
    bed.run("sh", "-c", "cat > /etc/podmgr/pods/disk.toml", input=theirs + "# again\n")
    frame.locator("#pm-disk-changed").wait_for()
    frame.locator("[data-action=overwrite]").click()
    frame.locator("#pm-saved").wait_for()
    assert bed.run("cat", "/etc/podmgr/pods/disk.toml").stdout == mine
    digest = bed.run(
        "busctl",
        "get-property",
        "org.podmgr1",
        "/org/podmgr1/pod/disk",
        "org.podmgr1.Pod",
        "ManifestDigest",
    ).stdout
    assert hashlib.sha256(mine.encode()).hexdigest() in digest


def test_a_vendor_manifest_is_overridden_not_changed(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    frame = cockpit_page.frame
    install(bed, "vend", SLEEPER, directory="/usr/lib/podmgr/pods")
    reload(bed)
    cockpit_page.go("pod", "vend", "edit")
    frame.locator(".pm-alert", has_text="Saving stores /etc/podmgr/pods/vend.toml").wait_for()
    assert frame.locator(".pm-card-title").inner_text() == "/usr/lib/podmgr/pods/vend.toml"
    frame.locator("#pm-manifest-text").fill(SLEEPER + "# the admin's\n")
    frame.locator("[data-action=save]").click()
    frame.locator("#pm-saved").wait_for()
    assert bed.run("cat", "/etc/podmgr/pods/vend.toml").stdout == SLEEPER + "# the admin's\n"
    assert bed.run("cat", "/usr/lib/podmgr/pods/vend.toml").stdout == SLEEPER


def test_delete_with_confirmation(cockpit_page: CockpitPage) -> None:
    bed = cockpit_page.bed
    frame = cockpit_page.frame
    open_editor(cockpit_page, "gone", start=True)
    frame.locator("[data-action=delete]").click()
    frame.locator("dialog.pm-modal", has_text="Delete pod gone?").wait_for()
    cockpit_page.screenshot("editor-delete")
    frame.locator("[data-action=cancel-dialog]").click()
    assert frame.locator("dialog.pm-modal").count() == 0
    assert bed.run("test", "-e", "/etc/podmgr/pods/gone.toml", check=False).returncode == 0
    frame.locator("[data-action=delete]").click()
    frame.locator("[data-action=confirm-delete]").click()
    frame.locator("#pods").wait_for()  # back on the overview
    assert bed.run("test", "-e", "/etc/podmgr/pods/gone.toml", check=False).returncode == 1
    assert bed.run("systemctl", "is-active", "pod@gone.service", check=False).stdout.strip() in (
        "inactive",
        "unknown",
    )
    assert (
        bed.run("test", "-e", "/run/systemd/generator/pod@gone.service.d", check=False).returncode
        == 1
    )
    missing = bed.run("systemctl", "cat", "podapp@gone:main.service", check=False)
    assert missing.returncode != 0


def test_a_change_is_seen_while_the_service_is_idle(cockpit_page: CockpitPage) -> None:
    """org.podmgr1 exits when idle, and nothing then signals a change of the file: the
    editor's watch on the manifest's directory still sees it."""
    bed = cockpit_page.bed
    frame = cockpit_page.frame
    bed.run("sh", "-c", "printf '[service]\\nidle_timeout = \"1s\"\\n' > /etc/podmgr/podmgr.toml")
    try:
        # The open page may activate the service meanwhile, which cancels a stop job:
        # stop until a stop went through, so the next start reads the file.
        wait_for(
            lambda: bed.run("systemctl", "stop", "podmgr1.service", check=False).returncode == 0,
            30,
            "org.podmgr1 to stop",
        )
        open_editor(cockpit_page, "idle")
        wait_for(
            lambda: (
                bed.run("systemctl", "is-active", "podmgr1.service", check=False).stdout.strip()
                == "inactive"
            ),
            timeout=30,
            what="org.podmgr1 to exit",
        )
        install(bed, "idle", SLEEPER + "# changed while the service was gone\n")
        frame.locator("#pm-disk-changed").wait_for()
    finally:
        bed.run("rm", "-f", "/etc/podmgr/podmgr.toml")
        # The next test must meet a service that read the configuration without the file.
        wait_for(
            lambda: bed.run("systemctl", "stop", "podmgr1.service", check=False).returncode == 0,
            30,
            "org.podmgr1 to stop",
        )


SECRET = SLEEPER + '[app.main.environment]\nTOKEN = "hunter2"\n'


def test_users_without_the_right_and_with_it(
    cockpit_page: CockpitPage, browser: Browser, tmp_path: Path
) -> None:
    """Through a real login: a user polkit does not allow manage-pods can check a
    manifest but not save it, and does not get the text of a 0600 one; a member of the
    group the shipped rule names edits both without administrative access."""
    bed = cockpit_page.bed
    bed.run("systemctl", "start", "systemd-user-sessions.service")  # lets users log in
    bed.run("groupadd", "--system", "podmgr")
    rules = "/etc/polkit-1/rules.d/50-podmgr.rules"
    bed.run("install", "-D", "-m", "644", f"{CHECKOUT}/polkit/50-podmgr.rules", rules)
    password = secrets.token_urlsafe(16)
    add_user(bed, "viewer", password)
    add_user(bed, "member", password, groups=("podmgr",))
    install(bed, "vault", SECRET)
    bed.run("chmod", "600", "/etc/podmgr/pods/vault.toml")
    install(bed, "open", SLEEPER)
    reload(bed)
    viewer = login(bed, browser, tmp_path, "viewer", password)
    try:
        page = viewer.cockpit
        page.go("pod", "vault", "edit")
        page.frame.locator(".pm-alert", has_text="not readable for you").wait_for()
        assert page.frame.locator("#pm-manifest-text").is_hidden()
        assert "hunter2" not in page.frame.locator("body").inner_text()
        page.screenshot("editor-viewer-secret")
        page.go("pod", "open", "edit")
        wait_for(lambda: textarea_value(page) == SLEEPER, what="the manifest in the editor")
        page.frame.locator("#pm-manifest-text").fill('[app.main]\nexec = "x"\n')
        page.frame.locator(".pm-editor-problem", has_text="app.main.exec").wait_for()
        assert page.frame.locator("[data-action=save]").is_disabled()
        assert page.frame.locator("[data-action=delete]").is_disabled()
        page.check_errors()
    finally:
        viewer.close()
    member = login(bed, browser, tmp_path, "member", password)
    try:
        page = member.cockpit
        page.go("pod", "vault", "edit")
        wait_for(lambda: textarea_value(page) == SECRET, what="the secret manifest")
        page.frame.locator("#pm-manifest-text").fill(SECRET + "# by member\n")
        page.frame.locator("[data-action=save]:enabled").click()
        page.frame.locator("#pm-saved").wait_for()
        assert bed.run("cat", "/etc/podmgr/pods/vault.toml").stdout == SECRET + "# by member\n"
        page.check_errors()
    finally:
        member.close()
