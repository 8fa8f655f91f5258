# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pulling from real registries on 127.0.0.1 in a bed: TLS with the system CA store,
basic and bearer-token auth, lookaside signatures made by skopeo, manifest lists, and
a pod that runs the pulled image."""

from __future__ import annotations

import base64
import json
import textwrap
import time
from pathlib import Path

import pytest
from bed import Bed

pytestmark = pytest.mark.integration

CHECKOUT = Path(__file__).resolve().parent.parent
ROOTFS = "/tmp/rootfs"
TLS = "127.0.0.1:5000"  # HTTPS, basic auth
BEARER = "127.0.0.1:5002"  # HTTP, bearer tokens
SIGSTORE = "/tmp/sigstore"

# Builds the test images inside the bed: a busybox image, and an index of two platforms
# whose images say which they are.
BUILD = f"""
import sys
sys.path.insert(0, "{CHECKOUT}/tests")
from pathlib import Path
import imagebuild as ib
base = ib.tar(ib.tree(Path("{ROOTFS}")))
say = ["/bin/sh", "-c", "echo pulled and running; cat /etc/platform; exec sleep infinity"]
ib.write_layout(Path("/tmp/layout"), {{"1.0": ib.Image([base], "gzip", {{"Cmd": say}})}})
arm = ib.Image([base, ib.tar([ib.file("etc/platform", b"arm64")])], "zstd")
arm.architecture = "arm64"
amd = ib.Image([base, ib.tar([ib.file("etc/platform", b"amd64")])], "zstd")
ib.write_multi_platform(Path("/tmp/multi"), "1", {{"arm64": arm, "amd64": amd}})
"""


def auth_json(password: str = "secret") -> str:  # noqa: S107 -- a test registry
    token = base64.b64encode(f"shop:{password}".encode()).decode()
    return json.dumps({"auths": {TLS: {"auth": token}, BEARER: {"auth": token}}})


def serve_signed_registries(bed: Bed) -> None:
    """The test registries in ``bed``, a lookaside for the TLS one's signatures and a
    release key (its public half in /tmp/release.asc) in /tmp/gnupg."""
    bed.run(f"{CHECKOUT}/tests/registries.sh", "/tmp/registries", timeout=120)
    # skopeo writes signatures of images it pushes to the TLS registry to the lookaside.
    bed.run(
        "sh",
        "-c",
        "mkdir -p /etc/containers/registries.d && cat > "
        "/etc/containers/registries.d/podmgr-test.yaml",
        input=textwrap.dedent(f"""\
                docker:
                  {TLS}:
                    lookaside: file://{SIGSTORE}
                    lookaside-staging: file://{SIGSTORE}
                """),
    )
    bed.run(
        "sh",
        "-c",
        "mkdir -p -m 700 /tmp/gnupg && gpg --batch --quiet --gen-key && "
        "gpg --armor --export release@shop.example > /tmp/release.asc",
        env={"GNUPGHOME": "/tmp/gnupg"},
        input=textwrap.dedent("""\
                %no-protection
                Key-Type: RSA
                Key-Length: 2048
                Name-Real: Shop Release
                Name-Email: release@shop.example
                Expire-Date: 0
                %commit
                """),
    )


@pytest.fixture(scope="module")
def reg_bed(bed: Bed) -> Bed:
    serve_signed_registries(bed)
    bed.run(f"{CHECKOUT}/examples/busybox-rootfs.sh", ROOTFS)
    bed.run("/usr/bin/python3", "-c", BUILD)
    set_config(
        bed,
        f"""
        [registry."{TLS}"]
        lookaside = "file://{SIGSTORE}"

        [registry."{BEARER}"]
        insecure = true
    """,
    )
    return bed


def set_config(bed: Bed, text: str) -> None:
    bed.run(
        "sh",
        "-c",
        "mkdir -p /etc/podmgr && cat > /etc/podmgr/podmgr.toml",
        input=textwrap.dedent(text),
    )


def set_auth(bed: Bed, text: str, mode: str = "600") -> None:
    bed.run(
        "sh", "-c", f"cat > /etc/podmgr/auth.json && chmod {mode} /etc/podmgr/auth.json", input=text
    )


def push(bed: Bed, source: str, target: str, *options: str) -> None:
    bed.run(
        "skopeo",
        "copy",
        "--quiet",
        "--dest-creds",
        "shop:secret",
        *options,
        source,
        f"docker://{target}",
        env={"GNUPGHOME": "/tmp/gnupg"},
        timeout=300,
    )


def pull(bed: Bed, ref: str, check: bool = True) -> str:
    result = bed.run("podmgr", "image", "pull", ref, check=check, timeout=300)
    return result.stdout + result.stderr


def test_a_signed_image_pulled_with_basic_auth_runs_in_a_pod(reg_bed: Bed) -> None:
    bed = reg_bed
    name = f"{TLS}/shop/api:1.0"
    fingerprint = bed.run(
        "sh",
        "-c",
        "gpg --with-colons --list-keys release@shop.example | awk -F: '/^fpr/ {print $10; exit}'",
        env={"GNUPGHOME": "/tmp/gnupg"},
    ).stdout.strip()
    push(bed, "oci:/tmp/layout:1.0", name, "--sign-by", fingerprint)
    bed.run("podmgr", "trust", "add", "--yes", "--prefix", f"{TLS}/shop", "/tmp/release.asc")
    [trusted] = json.loads(bed.run("podmgr", "trust", "list", "--json").stdout)
    assert (trusted["fingerprint"], trusted["prefix"]) == (fingerprint, f"{TLS}/shop")
    refused = bed.run("podmgr", "trust", "add", "--prefix", "x", "/tmp/release.asc", check=False)
    assert "run again with --yes" in refused.stderr  # not on a terminal: never silently

    bed.run("rm", "-f", "/etc/podmgr/auth.json")
    assert "asks for a login (add credentials for 127.0.0.1:5000 to /etc/podmgr/auth.json)" in pull(
        bed, name, check=False
    )
    set_auth(bed, auth_json("wrong"))
    assert "refused the credentials" in pull(bed, name, check=False)
    set_auth(bed, auth_json(), mode="644")
    assert "readable by others than root" in pull(bed, name, check=False)
    set_auth(bed, auth_json())
    assert f"signed by {fingerprint}" in pull(bed, name)

    listing = json.loads(bed.run("podmgr", "image", "list", "--json").stdout)
    [record] = [r for r in listing if r["name"] == name]
    assert record["signed_by"] == [fingerprint]
    inspected = json.loads(bed.run("podmgr", "image", "inspect", name).stdout)
    assert inspected["source"] == f"docker://{name}"
    assert inspected["signers"] == [{"fingerprint": fingerprint, "trusted_as": [f"{TLS}/shop"]}]

    bed.run(
        "sh", "-c", "cat > /etc/podmgr/pods/pulled.toml", input=f'[app.api]\nimage = "{name}"\n'
    )
    bed.run("systemctl", "daemon-reload")
    bed.run("systemctl", "start", "pod@pulled.service")
    deadline = time.monotonic() + 15
    while (
        "pulled and running" not in bed.run("journalctl", "PODMGR_POD=pulled", "--no-pager").stdout
    ):
        assert time.monotonic() < deadline, "the app from the pulled image did not run"
        time.sleep(0.1)
    assert bed.run("systemctl", "is-active", "podapp@pulled:api.service").stdout.strip() == "active"

    # Removing the image while the pod runs: gc keeps the layers the pod uses.
    layers = [
        layer["path"]
        for layer in json.loads(bed.run("podmgr", "image", "inspect", name).stdout)["layers"]
    ]
    bed.run("podmgr", "image", "rm", name)
    bed.run("podmgr", "gc")
    assert all(bed.run("test", "-d", path, check=False).returncode == 0 for path in layers)
    bed.run("systemctl", "stop", "pod@pulled.service")
    # Removed, the image keeps its layers for [gc] grace (24h); --grace 0 frees them now.
    assert "removed 0 layers" in bed.run("podmgr", "gc").stdout
    assert "removed 1 layers" in bed.run("podmgr", "gc", "--grace", "0").stdout
    assert all(bed.run("test", "-e", path, check=False).returncode == 1 for path in layers)
    # Without its image the pod does not start, and says why.
    failed = bed.run("podmgr", "start", "pulled", check=False)
    assert f"image {name} is no longer in the store" in failed.stderr
    bed.run("systemctl", "reset-failed", "pod@pulled.service")
    # Distrusting the key refuses the next pull.
    bed.run("podmgr", "trust", "rm", fingerprint)
    assert f"which is not in the trust store for {TLS}/shop/api" in pull(bed, name, check=False)


def test_an_unsigned_image_is_refused(reg_bed: Bed) -> None:
    bed = reg_bed
    set_auth(bed, auth_json())
    push(bed, "oci:/tmp/layout:1.0", f"{TLS}/shop/unsigned:1.0")
    output = pull(bed, f"{TLS}/shop/unsigned:1.0", check=False)
    assert "unsigned (no signature found" in output
    names = [r["name"] for r in json.loads(bed.run("podmgr", "image", "list", "--json").stdout)]
    assert f"{TLS}/shop/unsigned:1.0" not in names


def test_bearer_tokens_and_plain_http_only_where_marked(reg_bed: Bed) -> None:
    bed = reg_bed
    name = f"{BEARER}/shop/api:1.0"
    push(bed, "oci:/tmp/layout:1.0", name, "--dest-tls-verify=false")
    set_config(
        bed,
        f"""
        [images]
        insecure = ["{BEARER}/shop"]
    """,
    )
    set_auth(bed, auth_json())
    # HTTPS to a plain HTTP registry fails, with a hint.
    assert "mark the registry insecure in podmgr.toml" in pull(bed, name, check=False)
    set_config(
        bed,
        f"""
        [images]
        insecure = ["{BEARER}/shop"]

        [registry."{BEARER}"]
        insecure = true
    """,
    )
    set_auth(bed, auth_json("wrong"))
    assert "the token service refused access" in pull(bed, name, check=False)
    set_auth(bed, auth_json())
    output = pull(bed, name)
    assert "INSECURE" in output
    assert "INSECURE (unsigned)" in bed.run("podmgr", "image", "list").stdout


def test_a_manifest_list_gives_this_hosts_image(reg_bed: Bed) -> None:
    bed = reg_bed
    set_config(
        bed,
        f"""
        [images]
        insecure = ["{BEARER}/shop"]

        [registry."{BEARER}"]
        insecure = true
    """,
    )
    set_auth(bed, auth_json())
    push(bed, "oci:/tmp/multi:1", f"{BEARER}/shop/multi:1", "--all", "--dest-tls-verify=false")
    pull(bed, f"{BEARER}/shop/multi:1")
    inspect = json.loads(bed.run("podmgr", "image", "inspect", f"{BEARER}/shop/multi:1").stdout)
    top = inspect["layers"][-1]["path"]
    assert bed.run("cat", f"{top}/etc/platform").stdout == "amd64"
