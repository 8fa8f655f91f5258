# SPDX-License-Identifier: LGPL-2.1-or-later
"""The shape of the package: one folder per concern, imports pointing downward only.

Every import counts, those deferred into a function too: a deferred import keeps a
program lean, it does not make an upward arrow right.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "podmgr"

# Bottom to top: a folder may import the base modules (podmgr/*.py) and the folders
# above it in this table, nothing below it.  The README's map of the code has the same
# rows in the same order.
ORDER = (
    "image",  # image names, the store, pulls, layers, trust and signatures
    "manifest",  # the key table of manifests, parsing them, finding them
    "generator",  # manifests to units and the prepare plan
    "network",  # network definitions, joining them, links, leases, nftables
    "runtime",  # a pod's prepare and release: mounts, namespaces, user records
    "bus",  # everything that speaks D-Bus: org.podmgr1, its client, systemd1
    "cli",  # the podmgr command and the man pages
)
BASE = "base"
DBUS = ("dbus_next", "dbus_fast")
SEAM = "podmgr.bus.dbuslib"  # the one module that imports either (DBUS)
LINES_MAX = 600


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _folder(module: str) -> str:
    """The folder (ORDER's name) a dotted module lies in, or BASE for the top level."""
    if module == "podmgr.__main__":
        return "cli"  # python3 -m podmgr: the command, run from a checkout
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ORDER) else BASE


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it, by dotted name (podmgr's own ones
    as modules, so that `from podmgr.image import store` names podmgr.image.store)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (write podmgr.X in full)"
            assert node.module is not None
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in MODULES else node.module)
    return found


IMPORTS = {module: _imports(path) for module, path in MODULES.items()}


def _own(imported: str) -> bool:
    return imported == "podmgr" or imported.startswith("podmgr.")


def _folder_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, imported in IMPORTS.items():
        edges = graph.setdefault(_folder(module), set())
        edges |= {_folder(i) for i in imported if _own(i)} - {_folder(module)}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph``, as the path that closes it, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            if found := visit(target, [*path, node]):
                return found
        done.add(node)
        return None

    for node in sorted(graph):
        if found := visit(node, []):
            return found
    return None


def test_the_folders_are_the_ordered_ones() -> None:
    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert folders == set(ORDER)


def test_no_cycle_between_folders() -> None:
    assert _cycle(_folder_graph()) is None


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_downward(module: str) -> None:
    """A folder imports the base and the folders above it in ORDER; the base imports only
    the base."""
    folder = _folder(module)
    allowed = {BASE, folder, *(ORDER[: ORDER.index(folder)] if folder != BASE else ())}
    upward = sorted(i for i in IMPORTS[module] if _own(i) and _folder(i) not in allowed)
    assert not upward, f"{module} ({folder}) imports {upward}, which lie above it"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_bus_speaks_dbus(module: str) -> None:
    """Nothing outside bus/ imports the D-Bus library or the seam that stands for it."""
    speaks = sorted(i for i in IMPORTS[module] if i.split(".")[0] in DBUS or i == SEAM)
    assert _folder(module) == "bus" or not speaks, f"{module} imports {speaks}"


TESTS = {path.name: _imports(path) for path in sorted((ROOT / "tests").glob("*.py"))}


@pytest.mark.parametrize("module", sorted(MODULES) + sorted(TESTS))
def test_only_the_seam_imports_a_dbus_library(module: str) -> None:
    """dbus-next or dbus-fast, whichever runs: every module and test takes the names from
    the seam, so that the same code (and the same tests) run on both."""
    imported = IMPORTS[module] if module in IMPORTS else TESTS[module]
    speaks = sorted(i for i in imported if i.split(".")[0] in DBUS)
    assert module == SEAM or not speaks, f"{module} imports {speaks} (take them from {SEAM})"


def test_init_files_are_empty() -> None:
    """An __init__.py that imported anything would load it for every module below."""
    for path in PACKAGE.rglob("__init__.py"):
        assert path.read_text() == "", f"{path.relative_to(ROOT)} is not empty"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_small(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= LINES_MAX, f"{module} has {lines} lines (split it by concern)"


def test_readme_maps_the_folders_in_order() -> None:
    """The README's map of the code: one row per folder, in ORDER's order."""
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `podmgr/([a-z]+)/` \|", text, re.MULTILINE)
    assert tuple(rows) == ORDER


LEAN = textwrap.dedent("""
    import sys
    import podmgr.network.definitions, podmgr.network.firewall, podmgr.runtime.prepare
    print(sorted(m for m in sys.modules if m.startswith(("podmgr.manifest", "podmgr.image",
                                                         "podmgr.generator", "dbus"))))
""")


def test_a_pod_start_loads_no_parser_images_or_dbus() -> None:
    """Every pod start prepares it, and a bridged one loads the network modules too: none
    of that may load the manifest parser, the image machinery or D-Bus."""
    loaded = subprocess.run(
        [sys.executable, "-c", LEAN],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT)},
    ).stdout
    assert loaded == "[]\n"


GENERATOR = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from podmgr.generator import generator
    out, pods = Path(sys.argv[1]), Path(sys.argv[2])
    skipped = generator.generate(out, [pods], log=Path(sys.argv[3]))
    print(skipped, sorted(os.listdir(out)))
    print(sorted(m for m in sys.modules if m.startswith(GENERATOR_HEAVY)))
""")
# What the generator has no use for at boot unless a pod runs an image: the image store,
# D-Bus, and what only they or a mistaken manifest need.
GENERATOR_HEAVY = (
    "podmgr.image",
    "podmgr.bus",
    "hashlib",
    "difflib",
    "asyncio",
    "gnupg",
    "dbus_next",
    "dbus_fast",
)


def test_the_generator_loads_no_images_or_dbus(tmp_path: Path) -> None:
    """The generator runs at every boot and daemon-reload: over the examples, whose apps run
    from a directory, it loads none of the image code, D-Bus or difflib (for typos)."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text(
        "www-data:x:33:33::/var/www:/bin/false\nnobody:x:65534:65534::/:/bin/false\n"
    )
    pods, out = tmp_path / "pods", tmp_path / "out"
    pods.mkdir()
    out.mkdir()
    for example in ("demo", "shop"):
        text = (ROOT / "examples" / f"{example}.toml").read_text()
        (pods / f"{example}.toml").write_text(
            text.replace("/var/lib/machines/podmgr-busybox", str(rootfs))
        )
    script = GENERATOR.replace("GENERATOR_HEAVY", repr(GENERATOR_HEAVY))
    written, loaded = subprocess.run(
        [sys.executable, "-c", script, str(out), str(pods), str(tmp_path / "log")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT)},
    ).stdout.splitlines()
    assert "podapp@shop:web.service" in written
    assert written.startswith("0 "), written  # both pods generated: it ran all the way
    assert loaded == "[]"


# What a cold start of the service and a pod's prepare never need, and which each cost
# more than the rest of the start (tests/test_layout.py; bench/start.py shows the time).
SERVICE_HEAVY = (
    "argparse",
    "email",
    "http.client",
    "tomllib",
    "urllib.request",
    "xml.sax",
    "podmgr.config",
    "podmgr.tables",
    "podmgr.image.store",
    "podmgr.image.trust",
    "podmgr.manifest.model",
    "podmgr.manifest.schema",
    "podmgr.runtime.health",
    "pyroute2",
    "gi",  # PyGObject, which both D-Bus libraries load for their GLib main loop
)

SERVICE_START = textwrap.dedent("""
    import sys
    from podmgr.bus import binding, service
    from podmgr.runtime import prepare
    binding.check(service.SERVED)
    with prepare.timed("nothing"):
        pass
    print(sorted(m for m in sys.argv[1:] if m in sys.modules))
""")


def test_the_heavy_modules_exist() -> None:
    """Else the test below would pass for a misspelt name (gi is optional)."""
    for module in SERVICE_HEAVY[:-1]:
        assert importlib.util.find_spec(module) is not None, module


def test_a_service_start_and_prepare_load_none_of_the_heavy_modules() -> None:
    """The service starts on the call that needs it, mostly a pod's PreparePod: what it
    loads before it answers is paid by every such pod start."""
    loaded = subprocess.run(
        ["/usr/bin/python3", "-c", SERVICE_START, *SERVICE_HEAVY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    ).stdout
    assert loaded == "[]\n"
