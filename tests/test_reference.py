# SPDX-License-Identifier: LGPL-2.1-or-later
"""Image references read as containers/image reads them, checked against skopeo itself.

`skopeo standalone-verify MANIFEST EXPECTED FINGERPRINT SIG` parses EXPECTED and the
signature's identity with containers/image's ParseNormalizedNamed and accepts only if
both normalize to the same string: so for a reference podmgr accepts, a signature for it
verifies against podmgr's normal form, and for one podmgr refuses, skopeo refuses too.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signing_keys import Key, Keyring

from podmgr.image import gpgsandbox, reference, signing
from podmgr.image.digest import Digest
from podmgr.image.trust import TrustedKey

HEX = "0123456789abcdef" * 4
TABLE = [
    "busybox",
    "busybox:1.36",
    "library/busybox",
    "docker.io/busybox",
    "docker.io/x/y:1",
    "index.docker.io/busybox:2",
    "testing/manifest",
    "testing/manifest:latest",
    "localhost/app",
    "localhost:5000/app:1",
    "registry.example.org/shop/api:1.4",
    "Registry.Example.org/shop/api:1",
    "registry.example.org/Shop/api",
    "x.org/a@sha256:" + HEX,
    "x.org/a:1@sha256:" + HEX,
    "x.org/a@sha256:" + HEX.upper(),
    "x.org/a@sha256:abc",
    HEX,
    "a" * 64 + ":1",
    "x.org/a__b/c--d.e_f:T_9.-",
    "x.org/a___b",
    "x.org/-a",
    "x.org/a-",
    "x.org/a..b",
    "x.org/a/:1",
    "x.org//a",
    "x.org/a:",
    "x.org/a:-1",
    "x.org/a:" + "t" * 128,
    "x.org/a:" + "t" * 129,
    "x.org:/a",
    "x.org:5000:1/a",
    "-x.org/a",
    "x-.org/a",
    "x..org/a",
    "[::1]:5000/a",
    "x.org/" + "a" * 245,
    "x.org/" + "a" * 250,
    "x.org/a:é",
    "",
    "/a",
    "a/",
    ":1",
    "@sha256:" + HEX,
    "a b",
    "x.org/a\n",
    "localhost:5000",
    "UPPER",
    "a.b:c/d",
]


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Keyring, Key, Path]]:
    work = tmp_path_factory.mktemp("reference")
    ring = Keyring(work / "gnupg")
    key = ring.make("reference")
    manifest = work / "manifest.json"
    manifest.write_text(json.dumps({"schemaVersion": 2, "config": {}, "layers": []}))
    yield ring, key, manifest
    ring.close()


def skopeo_agrees(text: str, signer: tuple[Keyring, Key, Path]) -> None:
    ring, key, manifest = signer
    signature = manifest.parent / "signature"
    made = subprocess.run(
        [
            "skopeo",
            "standalone-sign",
            "--output",
            str(signature),
            str(manifest),
            text,
            key.fingerprint,
        ],
        env=ring.env,
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:  # skopeo cannot even sign it (an empty reference)
        with pytest.raises(reference.BadReference):
            reference.parse_exact(text)
        return
    try:
        normal: str | None = str(reference.parse_exact(text))
    except reference.BadReference:
        normal = None
    verified = subprocess.run(
        [
            "skopeo",
            "standalone-verify",
            str(manifest),
            normal or text,
            key.fingerprint,
            str(signature),
        ],
        env=ring.env,
        capture_output=True,
        text=True,
        check=False,
    )
    if normal is None:
        assert verified.returncode != 0, f"skopeo accepts {text!r}, podmgr refuses it"
    else:
        assert verified.returncode == 0, (
            f"{text!r}: podmgr reads {normal!r}, skopeo: {verified.stderr.strip()}"
        )


@pytest.mark.parametrize("text", TABLE)
def test_references_as_skopeo_reads_them(text: str, signer: tuple[Keyring, Key, Path]) -> None:
    skopeo_agrees(text, signer)


FRAGMENTS = [
    "a",
    "b",
    "z9",
    "x.org",
    "localhost",
    "docker.io",
    "index.docker.io",
    "library",
    "/",
    ":",
    "@",
    ".",
    "_",
    "__",
    "-",
    "--",
    "5000",
    "1.0",
    "A",
    "sha256:" + HEX,
]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8).map("".join))
def test_fuzzed_references_as_skopeo_reads_them(
    signer: tuple[Keyring, Key, Path], text: str
) -> None:
    skopeo_agrees(text, signer)


def _refusal(call: Callable[[], object], kind: type[Exception]) -> str | None:
    """The message ``call`` fails with (only ``kind`` may escape), or None."""
    try:
        call()
    except kind as error:
        return str(error)
    return None


@given(st.text(max_size=300))
def test_parsing_fails_only_with_a_one_line_error(text: str) -> None:
    refused = _refusal(lambda: reference.parse_exact(text), reference.BadReference)
    if refused is not None:
        assert "\n" not in refused.replace(repr(text), "")
        return
    ref = reference.parse_exact(text)
    assert reference.parse_exact(str(ref)) == ref  # the normal form is a fixed point
    assert str(reference.parse(str(ref))).startswith(ref.name)


NAMES = st.from_regex(
    r"(x\.org/|localhost:5000/|)[a-z0-9]{1,5}(/[a-z0-9]{1,5}){0,2}", fullmatch=True
)


@given(NAMES)
def test_a_prefix_matches_the_names_it_is_written_as(text: str) -> None:
    prefix = reference.normalize_prefix(text)
    assert reference.normalize_prefix(prefix) == prefix  # idempotent
    name = reference.parse(text).name
    assert reference.matches_prefix(name, text)
    assert reference.matches_prefix(name + "/sub", prefix)
    assert not reference.matches_prefix(name + "x", prefix)


@given(st.binary(max_size=400))
def test_payloads_fail_only_as_refusals(data: bytes) -> None:
    refused = _refusal(lambda: signing.parse_payload(data), signing.SignatureRejected)
    assert refused is None or "\n" not in refused


STATUS = st.tuples(
    st.sampled_from(
        [
            "NEWSIG",
            "GOODSIG",
            "VALIDSIG",
            "BADSIG",
            "ERRSIG",
            "EXPSIG",
            "EXPKEYSIG",
            "REVKEYSIG",
            "KEYEXPIRED",
            "NO_PUBKEY",
            "NODATA",
            "PLAINTEXT",
        ]
    ),
    st.text(alphabet="0123456789ABCDEF -x", max_size=60),
)


@given(st.lists(STATUS, max_size=8), st.binary(max_size=200))
def test_any_gpg_answer_is_judged_without_a_traceback(
    statuses: list[tuple[str, str]], data: bytes
) -> None:
    """Whatever gpg says (or a confused gpg), the verdict is accepted or one line."""
    reply = gpgsandbox.Reply((), 0, (gpgsandbox.Outcome(tuple(statuses), data),), {})
    key = TrustedKey("A" * 40, "x.org", Path("/k"), b"")
    refused = _refusal(
        lambda: signing._judge_simple(
            reply.outcomes[0], reply, [key], Digest("sha256:" + HEX), "x.org/a:1"
        ),
        signing.SignatureRejected,
    )
    assert refused is None or "\n" not in refused
