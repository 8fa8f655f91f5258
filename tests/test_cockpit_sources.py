# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Cockpit page's sources keep the rules that make it safe to show hostile names.

Every name and message the page shows comes from the bus or the journal: none may become
markup, and Cockpit's content security policy forbids inline scripts and styles (the
browser tests also fail on a policy violation the browser reports).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

COCKPIT = Path(__file__).resolve().parent.parent / "cockpit"
MODULES = sorted(COCKPIT.glob("*.js"))
# What parses a string as HTML, or runs one as code
MARKUP = re.compile(
    r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\("
    r"|createContextualFragment|DOMParser"
)


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.name)
def test_no_module_builds_markup_from_strings(module: Path) -> None:
    for number, line in enumerate(module.read_text().splitlines(), 1):
        assert not MARKUP.search(line), f"{module.name}:{number}: {line.strip()}"


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.name)
def test_every_module_has_its_license_header(module: Path) -> None:
    assert module.read_text().startswith("// SPDX-License-Identifier: LGPL-2.1-or-later\n")


def test_the_shell_page_has_no_inline_script_or_style() -> None:
    html = (COCKPIT / "index.html").read_text()
    for script in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in script, script
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), "an inline script"
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler"
