# SPDX-License-Identifier: LGPL-2.1-or-later
"""The image and trust commands against the installed service in a bed: what only shows
end to end (the CLI's arguments reaching the service, paths relative to the caller)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from bed import Bed

pytestmark = pytest.mark.integration

CHECKOUT = Path(__file__).resolve().parent.parent

BUILD = f"""
import sys
sys.path.insert(0, "{CHECKOUT}/tests")
from pathlib import Path
import imagebuild as ib
image = ib.Image([ib.tar([ib.directory("etc"), ib.file("etc/version", b"cli")])], "gzip")
ib.write_layout(Path("/tmp/work/layout"), {{"1": image}})
ib.write_archive(Path("/tmp/work/relative.tar"), Path("/tmp/work/layout"))
"""

KEY = textwrap.dedent("""\
    %no-protection
    Key-Type: RSA
    Key-Length: 2048
    Name-Real: CLI Release
    Name-Email: release@cli.example
    Expire-Date: 0
    %commit
    """)


@pytest.fixture(scope="module")
def cli_bed(bed: Bed) -> Bed:
    bed.run("mkdir", "-p", "/tmp/work", "/etc/podmgr")
    bed.run("/usr/bin/python3", "-c", BUILD)
    bed.run(
        "sh", "-c", "cat > /etc/podmgr/podmgr.toml", input='[images]\ninsecure = ["example.org"]\n'
    )
    bed.run(
        "sh",
        "-c",
        "mkdir -p -m 700 /tmp/gnupg && gpg --batch --quiet --gen-key && "
        "gpg --armor --export release@cli.example > /tmp/work/release.asc",
        env={"GNUPGHOME": "/tmp/gnupg"},
        input=KEY,
    )
    return bed


def test_a_relative_path_is_the_callers(cli_bed: Bed) -> None:
    bed = cli_bed
    bed.run(
        "sh",
        "-c",
        "cd /tmp/work && podmgr image import oci-archive:relative.tar:1 "
        "--name example.org/cli/rel:1",
    )
    inspected = json.loads(bed.run("podmgr", "image", "inspect", "example.org/cli/rel:1").stdout)
    assert inspected["source"] == "oci-archive:/tmp/work/relative.tar:1"
    # The service itself refuses a relative path: it runs in /.
    refused = bed.run(
        "busctl",
        "call",
        "org.podmgr1",
        "/org/podmgr1",
        "org.podmgr1.Manager",
        "ImportImage",
        "ss",
        "oci-archive:relative.tar",
        "example.org/x:1",
        check=False,
    )
    assert "a relative path" in refused.stderr


def test_inspect_shows_the_image_id(cli_bed: Bed) -> None:
    bed = cli_bed
    bed.run("podmgr", "image", "import", "oci:/tmp/work/layout:1", "--name", "example.org/cli/id:1")
    inspected = json.loads(bed.run("podmgr", "image", "inspect", "example.org/cli/id:1").stdout)
    # The image ID (the config's digest) is shown, as podman shows it.
    config = inspected["id"]
    assert config.startswith("sha256:")
    assert inspected["config"]["digest"] == config
    blob = bed.run("cat", f"/var/lib/podmgr/blobs/sha256/{config[7:]}").stdout
    assert json.loads(blob)["rootfs"]["diff_ids"] == [
        layer["diff_id"] for layer in inspected["layers"]
    ]


def prefixes(bed: Bed) -> list[str]:
    return sorted(
        k["prefix"] for k in json.loads(bed.run("podmgr", "trust", "list", "--json").stdout)
    )


def test_trust_rm_with_a_prefix_removes_only_that(cli_bed: Bed) -> None:
    bed = cli_bed
    for prefix in ("registry.example.org/a", "registry.example.org/b"):
        bed.run("podmgr", "trust", "add", "--yes", "--prefix", prefix, "/tmp/work/release.asc")
    [fingerprint] = {
        k["fingerprint"] for k in json.loads(bed.run("podmgr", "trust", "list", "--json").stdout)
    }
    done = bed.run("podmgr", "trust", "rm", "--prefix", "registry.example.org/a", fingerprint)
    assert "no longer trusted for registry.example.org/a" in done.stdout
    assert prefixes(bed) == ["registry.example.org/b"]
    bed.run("podmgr", "trust", "rm", fingerprint)  # without --prefix: from every prefix
    assert prefixes(bed) == []


def test_trust_prefixes_are_normalized(cli_bed: Bed) -> None:
    bed = cli_bed
    added = bed.run(
        "podmgr", "trust", "add", "--yes", "--prefix", "testing/manifest", "/tmp/work/release.asc"
    )
    assert "would be trusted to sign docker.io/testing/manifest" in added.stdout
    assert prefixes(bed) == ["docker.io/testing/manifest"]
    [fingerprint] = {
        k["fingerprint"] for k in json.loads(bed.run("podmgr", "trust", "list", "--json").stdout)
    }
    refused = bed.run(
        "podmgr", "trust", "rm", "--prefix", "registry.example.org/a", fingerprint, check=False
    )
    assert refused.returncode == 1
    assert f"no trusted key {fingerprint} for registry.example.org/a" in refused.stderr
    bed.run("podmgr", "trust", "rm", "--prefix", "testing/manifest", fingerprint)
    assert prefixes(bed) == []
    refused = bed.run(
        "podmgr",
        "trust",
        "add",
        "--yes",
        "--prefix",
        "Shop/API",
        "/tmp/work/release.asc",
        check=False,
    )
    assert refused.returncode == 2  # refused by the command, before the bus
    assert "must be lower-case" in refused.stderr or "not a repository path" in refused.stderr
