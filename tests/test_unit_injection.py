# SPDX-License-Identifier: LGPL-2.1-or-later
"""Nothing hostile becomes a unit line: the writer refuses control characters, the quoting
helpers escape them, and image configs are checked at the edge like manifests.

Units are read back the way systemd reads them (systemd_syntax.py), and that reader is
itself checked against systemd-analyze on the same bytes.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import systemd_syntax
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_fuzz_manifest import APP_KEYS
from test_units import Rootfs
from test_verify_corpus import verify

from podmgr.errors import ManifestError
from podmgr.generator import resolve, units
from podmgr.generator.resolve import AppProblem
from podmgr.generator.rootfs import StoredImageSource
from podmgr.generator.unitfile import UnitFile, UnsafeValue, command_line, quote
from podmgr.image import oci
from podmgr.image.digest import Digest
from podmgr.image.store import ImageRecord, Store
from podmgr.limits import CONTROL_CHARACTERS, NOT_TEXT, is_text
from podmgr.manifest import model

IMAGE = "example.test/x:latest"
ANALYZE = shutil.which("systemd-analyze")
# Skipped without systemd-analyze, except in CI, which must run these.
needs_analyze = pytest.mark.skipif(
    ANALYZE is None and os.environ.get("CI") != "true", reason="needs systemd-analyze"
)

# Characters that mean something to systemd's reader or to Unicode, weighted in.
HOSTILE = st.sampled_from(
    [
        "\n",
        "\r",
        "\0",
        "\r\n",
        "\x0b",
        "\x0c",
        "\x1b",
        "\x7f",
        "\x85",
        "\x9f",
        "\u2028",
        "\u2029",
        "\\",
        '"',
        "'",
        "%",
        "$",
        ";",
        "#",
        "[",
        "]",
        "=",
        " ",
        "\t",
        "[Service]",
        "ExecStartPre=+/bin/sh",
        "\ud800",
        "\ufffe",
        "\ufdd0",
    ]
)
TEXT = st.lists(st.one_of(HOSTILE, st.text(max_size=5)), max_size=12).map("".join)


def config_bytes(run: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": run,
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()


def image_source(run: dict[str, object]) -> StoredImageSource:
    config = config_bytes(run)
    record = ImageRecord(
        IMAGE,
        Digest.of(b"manifest"),
        Digest.of(config),
        (),
        0,
        "test",
        (),
        "",
        True,
        "2026-01-01T00:00:00Z",
    )
    return StoredImageSource(record, oci.parse_config(config), [])


def image_app(tmp_path: Path, extra: str = "") -> model.App:
    path = tmp_path / "web.toml"
    path.write_text(f'[app.web]\nimage = "{IMAGE}"\n{extra}')
    return model.load(path).apps["web"]


# The writer.


@settings(deadline=None)
@given(TEXT)
def test_a_value_is_refused_or_read_back_as_one_setting(value: str) -> None:
    unit = UnitFile(["comment"])
    try:
        unit.add("Service", "Description", value)
    except UnsafeValue:
        return
    assert not CONTROL_CHARACTERS.search(value)
    found = systemd_syntax.settings(unit.render())
    assert [(s.section, s.key, s.value) for s in found] == [("Service", "Description", value)]


@settings(deadline=None)
@given(TEXT, TEXT, TEXT)
def test_sections_keys_and_comments_are_refused_or_kept(
    section: str, key: str, comment: str
) -> None:
    try:
        unit = UnitFile([comment])
        unit.add(section, key, "x")
    except UnsafeValue:
        return
    found = systemd_syntax.settings(unit.render())
    assert [(s.section, s.key, s.value) for s in found] == [(section, key, "x")]


@pytest.mark.parametrize(
    "value",
    [
        "/\r[Service]\rExecStartPre=+/bin/sh -c id",
        "a\0b",
        "a\nb",
        "a\x85b",
        "a\u2028b",
        "a\u2029b",
        "a\x1bb",
        "a\x7fb",
        "ends in \\",
        " padded",
        "\ud800",
        "a\uffffb",
    ],
)
def test_the_writer_refuses_what_would_change_the_lines(value: str) -> None:
    with pytest.raises(UnsafeValue):
        UnitFile().add("Service", "WorkingDirectory", value)
    with pytest.raises(UnsafeValue):
        UnitFile().add(value, "Description", "x")
    with pytest.raises(UnsafeValue):
        UnitFile().add("Service", value, "x")


REFUSED = [
    chr(code)
    for code in range(sys.maxunicode + 1)
    if CONTROL_CHARACTERS.match(chr(code)) or NOT_TEXT.match(chr(code))
]


def test_the_writer_refuses_every_character_no_unit_line_can_carry() -> None:
    # The writer passes printable text without searching it: that is only sound if no
    # character it must refuse is printable.
    assert [c for c in REFUSED if c.isprintable()] == []
    assert {"\n", "\r", "\0", "\x85", "\u2028", "\u2029", "\ud800", "\ufffe"} <= set(REFUSED)
    for char in REFUSED:
        with pytest.raises(UnsafeValue):
            UnitFile().add("Service", "Description", f"a{char}b")
        with pytest.raises(UnsafeValue):
            UnitFile([f"Generated from {char}"])


def test_is_text_reads_every_character_as_the_pattern_does() -> None:
    # is_text() has a fast path for ASCII; both ways must agree on each code point.
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert is_text(f"a{char}") is (NOT_TEXT.search(char) is None), hex(code)


@pytest.mark.parametrize(
    "comment", ["a\rb", "a\0b", "a\nb", "a\x85b", "a\u2028b", "\ud800", "a\ufdd0"]
)
def test_a_comment_stays_one_line(comment: str) -> None:
    with pytest.raises(UnsafeValue):
        UnitFile([f"Generated from {comment}"])


@settings(deadline=None)
@given(st.text().filter(is_text))
def test_quote_gives_back_the_value_as_one_word(value: str) -> None:
    unit = UnitFile()
    unit.add("Service", "Environment", quote(f"A={value}"))
    [setting] = systemd_syntax.settings(unit.render())
    [(_, word)] = systemd_syntax.words(setting.value)
    assert systemd_syntax.unspecify(word) == f"A={value}"


@settings(deadline=None)
@given(st.lists(st.one_of(TEXT, st.text()), min_size=1, max_size=6))
def test_command_line_gives_back_argv(args: list[str]) -> None:
    argv = ["/bin/true", *args]
    try:
        line = command_line(argv)
        unit = UnitFile()
        unit.add("Service", "ExecStart", line)
    except UnsafeValue:
        assert not all(is_text(arg) for arg in args)
        return
    [setting] = systemd_syntax.settings(unit.render())
    assert systemd_syntax.command(setting.value) == argv


# The reader above, against systemd's own.

_UNKNOWN = re.compile(r".*:(\d+): Unknown key '(.*)' in section \[(.*)\], ignoring\.")


def analyze_unknown_keys(tmp_path: Path, body: bytes) -> list[tuple[int, str]]:
    unit = tmp_path / "probe.service"
    unit.write_bytes(b"[Service]\nExecStart=/bin/true\n" + body)
    result = subprocess.run(
        [ANALYZE or "", "verify", "--man=no", str(unit)], capture_output=True, check=False
    )
    out = result.stderr.decode(errors="replace")
    return [
        (int(m[1]), m[2]) for m in map(_UNKNOWN.match, out.split("\n")) if m and m[3] == "Service"
    ]


PROBE = st.lists(
    st.sampled_from(
        [
            "\n",
            "\r",
            "\0",
            "\r\n",
            "\n\r",
            "\x0b",
            "\x85",
            "\u2028",
            "\\",
            " ",
            "#",
            ";",
            "Xa=1",
            "Xb=2",
            "Xc=\\",
            "Description=\\",
        ]
    ),
    max_size=14,
).map("".join)


@needs_analyze
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(PROBE)
def test_the_reader_splits_lines_as_systemd_does(tmp_path: Path, body: str) -> None:
    expected = [
        (s.line, s.key)
        for s in systemd_syntax.settings("[Service]\nExecStart=/bin/true\n" + body)
        if s.key not in ("", "ExecStart")
    ]
    assert analyze_unknown_keys(tmp_path, body.encode()) == expected


@needs_analyze
@pytest.mark.parametrize("separator", ["\r", "\0"])
def test_systemd_ends_a_line_at_carriage_return_and_nul(tmp_path: Path, separator: str) -> None:
    body = f"WorkingDirectory=/{separator}Xinjected=1\n"
    assert analyze_unknown_keys(tmp_path, body.encode()) == [(4, "Xinjected")]
    assert [s.key for s in systemd_syntax.settings(body)] == ["WorkingDirectory", "Xinjected"]


# Image configs, converted at the edge.

INJECTION = "/\r[Service]\rExecStartPre=+/bin/sh -c 'id > /tmp/owned'"


@pytest.mark.parametrize(
    ("run", "field", "message"),
    [
        pytest.param(
            {"Cmd": ["/bin/true"], "WorkingDir": INJECTION},
            "WorkingDir",
            "contains white space, a control character",
            id="working-dir-injection",
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "WorkingDir": "/srv\0x"},
            "WorkingDir",
            "contains white space, a control character",
            id="working-dir-nul",
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "WorkingDir": "srv"},
            "WorkingDir",
            "'srv' is not an absolute path",
            id="working-dir-relative",
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "WorkingDir": "/" + "a" * 3000},
            "WorkingDir",
            "has a name of 3000 bytes",
            id="working-dir-too-long",
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "User": "\u00b2"},
            "User",
            "'²' is not a user",
            id="user-unicode-digit",
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "User": "65535"},
            "User",
            "65535' is out of range",
            id="user-16-bit-minus-one",
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "User": "4294967295"},
            "User",
            "is out of range",
            id="user-minus-one",
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "User": "0:4294967295"},
            "User",
            "is out of range",
            id="group-minus-one",
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "User": "a:b:c"},
            "User",
            "'b:c' is not a group",
            id="user-two-colons",
        ),
        pytest.param(
            {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo\0x"]},
            "Cmd[0]",
            "must not contain NUL",
            id="cmd-nul",
        ),
        pytest.param(
            {"Entrypoint": ["/bin/sh", "a\0"]},
            "Entrypoint[1]",
            "must not contain NUL",
            id="entrypoint-nul",
        ),
        pytest.param(
            {"Cmd": ["/bin/true", "\ud800"]},
            "Cmd[1]",
            "holds a character systemd refuses",
            id="cmd-surrogate",
        ),
        pytest.param(
            {"Cmd": ["/bin/true", "\ufffe"]},
            "Cmd[1]",
            "holds a character systemd refuses",
            id="cmd-noncharacter",
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "Env": ["A=\U0010ffff"]},
            "Env[0]",
            "holds a character systemd refuses",
            id="env-noncharacter",
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "Env": ["A=\0"]}, "Env[0]", "must not contain NUL", id="env-nul"
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "Env": ["PATH=/bin", "A\nB=1"]},
            "Env[1]",
            "is not a valid variable name",
            id="env-name-newline",
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "Env": ["1A=x"]},
            "Env[0]",
            "is not a valid variable name",
            id="env-name-digit",
        ),
        pytest.param(
            {"Cmd": ["/bin/true"], "Env": ["NOEQUALS"]},
            "Env[0]",
            "'NOEQUALS' is not NAME=value",
            id="env-without-value",
        ),
    ],
)
def test_a_bad_image_config_is_a_problem_of_the_image(
    tmp_path: Path, run: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(AppProblem) as error:
        resolve.resolve_app(image_app(tmp_path), image_source(run))
    assert error.value.key == "image"
    assert str(error.value).startswith(f"image {IMAGE} config {field} ")
    assert message in str(error.value)
    assert not CONTROL_CHARACTERS.search(str(error.value))


@pytest.mark.parametrize(
    ("cmd", "message"),
    [
        pytest.param(['/bin/"sh'], "contains a quote, a backslash or a control", id="quote"),
        pytest.param(["/bin\\sh"], "contains a quote, a backslash or a control", id="backslash"),
        pytest.param(["/bin/s\x01h"], "contains a quote, a backslash or a control", id="control"),
        pytest.param(["/bin/"], "ends in '/'", id="directory"),
        pytest.param(["/" + "b/" * 2100 + "sh"], "bytes long", id="too-long"),
    ],
)
def test_an_image_command_systemd_refuses_is_a_problem_of_exec(
    tmp_path: Path, cmd: list[str], message: str
) -> None:
    with pytest.raises(AppProblem) as error:
        resolve.resolve_app(image_app(tmp_path), image_source({"Cmd": cmd}))
    assert error.value.key == "exec"
    assert message in str(error.value)


def test_control_characters_in_arguments_and_environment_are_escaped(tmp_path: Path) -> None:
    run: dict[str, object] = {
        "Entrypoint": ["/bin/echo", "a\rb", "c\u2028d"],
        "Env": ["GREETING=hi\r\x85there"],
        "WorkingDir": "/srv",
        "User": "1000:1000",
    }
    app = image_app(tmp_path)
    resolved = resolve.resolve_app(app, image_source(run))
    pod = model.load(tmp_path / "web.toml")
    [unit] = [
        o
        for o in units.render(pod, {"web": resolved})
        if isinstance(o, units.GeneratedFile) and o.path.startswith("podapp@")
    ]
    found = systemd_syntax.settings(unit.text)
    service = {(s.key, s.value) for s in found if s.section == "Service"}
    [exec_start] = [v for k, v in service if k == "ExecStart"]
    assert systemd_syntax.command(exec_start) == ["/bin/echo", "a\rb", "c\u2028d"]
    environment = [systemd_syntax.words(v)[0][1] for k, v in service if k == "Environment"]
    assert "GREETING=hi\r\x85there" in environment
    assert ("WorkingDirectory", "/srv") in service
    assert ("User", "1000") in service
    assert {s.section for s in found} == {"Unit", "Service"}


def write_image(store: Store, run: dict[str, object]) -> None:
    with store.locked():
        config = store.put_blob(config_bytes(run))
        store.put_image(
            ImageRecord(
                IMAGE,
                Digest.of(b"manifest"),
                config,
                (),
                0,
                "test",
                (),
                "",
                True,
                "2026-01-01T00:00:00Z",
            )
        )


def test_validate_names_the_manifest_key_and_the_config_field(tmp_path: Path) -> None:
    # What `podmgr validate` and the generator run: load, resolve against the store, render.
    store = Store(tmp_path / "store")
    write_image(store, {"Cmd": ["/bin/true"], "WorkingDir": INJECTION})
    image_app(tmp_path)
    with pytest.raises(ManifestError) as error:
        resolve.resolve(model.load(tmp_path / "web.toml"), store)
    assert str(error.value) == (
        f"{tmp_path}/web.toml: app.web.image: image {IMAGE} config WorkingDir "
        '"/\\r[Service]\\rExecStartPre=+/...wned\'" contains white space, a control '
        "character, a quote, ':', ',' or '\\' (rename the path)"
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"config": {"User": 1}}',
        b'{"rootfs": {"type": "layers", "diff_ids": []}, "config": {"WorkingDir": ["/"]}}',
    ],
    ids=["deep", "no-rootfs", "working-dir-not-a-string"],
)
def test_a_malformed_config_is_a_bad_image(raw: bytes) -> None:
    with pytest.raises(oci.BadImage):
        oci.parse_config(raw)


# Fuzzing the image config parser and resolve: any config is a BadImage, a problem of the
# app, or units that read back as the config said and that systemd-analyze verify loads.

JSON_TEXT = st.one_of(
    TEXT,
    st.text(),
    st.sampled_from(["", "/", "0", "65535", "0:0", "a:b", "www-data", "/bin/true", "A=b"]),
)
JSON_VALUE: st.SearchStrategy[object] = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), JSON_TEXT),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(JSON_TEXT, inner, max_size=3)
    ),
    max_leaves=8,
)
COMMAND = st.tuples(st.sampled_from(["/bin/true", "/bin/sh"]), st.lists(JSON_TEXT, max_size=3))
RUN = st.fixed_dictionaries(
    {},
    optional={
        "User": st.one_of(
            st.sampled_from(["", "0", "33:33", "www-data", "root:www-data"]), JSON_TEXT, JSON_VALUE
        ),
        "WorkingDir": st.one_of(TEXT.map(lambda t: "/srv/" + t), JSON_TEXT, JSON_VALUE),
        "Entrypoint": st.one_of(COMMAND.map(lambda c: [c[0], *c[1]]), JSON_VALUE),
        "Cmd": st.one_of(st.lists(JSON_TEXT, max_size=3), JSON_VALUE),
        "Env": st.one_of(
            st.lists(JSON_TEXT.map(lambda t: "A_1=" + t), max_size=3),
            st.lists(JSON_TEXT, max_size=3),
            JSON_VALUE,
        ),
    },
)
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\n"


class PasswdImage(StoredImageSource):
    """An image whose only file is /etc/passwd (and /etc/group)."""

    def read_file(self, path: str) -> bytes | None:
        return {"etc/passwd": PASSWD, "etc/group": b"www-data:x:33:\n"}.get(path)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(RUN, st.booleans())
def test_any_image_config_is_refused_or_reaches_the_unit_and_loads(
    tmp_path: Path, run: dict[str, object], surrogates: bool
) -> None:
    raw = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": run,
            "rootfs": {"type": "layers", "diff_ids": []},
        },
        ensure_ascii=surrogates,
    ).encode(errors="surrogatepass")
    refused: oci.BadImage | None = None
    try:
        config = oci.parse_config(raw)
    except oci.BadImage as error:
        refused = error
    if refused:
        assert not CONTROL_CHARACTERS.search(str(refused))
        return
    record = ImageRecord(
        IMAGE, Digest.of(b"m"), Digest.of(raw), (), 0, "test", (), "", True, "2026-01-01T00:00:00Z"
    )
    path = tmp_path / "web.toml"
    path.write_text(f'[app.web]\nimage = "{IMAGE}"\n')
    pod = model.load(path)
    problem: AppProblem | None = None
    try:
        resolved = resolve.resolve_app(pod.apps["web"], PasswdImage(record, config, []))
    except AppProblem as error:
        problem = error
    if problem:
        assert problem.key in ("image", "exec", "user", "group")
        assert not CONTROL_CHARACTERS.search(str(problem)), str(problem)
        return
    event("rendered")
    outputs = units.render(pod, {"web": resolved})
    [unit] = [
        o for o in outputs if isinstance(o, units.GeneratedFile) and o.path.startswith("podapp@")
    ]
    found = systemd_syntax.settings(unit.text)
    assert {s.section for s in found} == {"Unit", "Service"}
    [exec_start] = [s.value for s in found if s.key == "ExecStart"]
    assert systemd_syntax.command(exec_start) == [*config.entrypoint, *config.cmd]
    [working_directory] = [s.value for s in found if s.key == "WorkingDirectory"]
    assert working_directory.replace("%%", "%") == "/" + posixpath.normpath(
        config.working_dir or "/"
    ).lstrip("/")
    environment = [
        systemd_syntax.unspecify(systemd_syntax.words(s.value)[0][1])
        for s in found
        if s.key == "Environment"
    ]
    assert [e for e in environment if not e.startswith(("USER=", "LOGNAME=", "HOME="))] == list(
        config.env
    )
    if ANALYZE:
        verify(tmp_path, outputs, pod.name, {"web": resolved})


@pytest.mark.parametrize(
    ("path", "source_path"),
    [
        pytest.param("/etc/podmgr/pods/web.toml", "/etc/podmgr/pods/web.toml", id="generator"),
        pytest.param("/srv/100%/web.toml", "/srv/100%%/web.toml", id="specifier"),
        pytest.param("/srv/a b/web.toml", "/srv/a b/web.toml", id="space"),
        pytest.param("web.toml", None, id="relative"),
        pytest.param("/srv/../web.toml", None, id="not-normalized"),
        pytest.param("/srv/a\nExecStartPre=/x/web.toml", None, id="newline"),
        pytest.param("/srv/a\rb/web.toml", None, id="carriage-return"),
        pytest.param("/srv/\udcff/web.toml", None, id="undecodable-byte"),
        pytest.param("/srv/\ufffe/web.toml", None, id="noncharacter"),
    ],
)
def test_the_manifest_path_never_adds_a_line(path: str, source_path: str | None) -> None:
    # `podmgr render PATH` takes any path; the generator's are always plain.
    pod = model.parse('[app.a]\nrootfs = "/r"\nexec = ["/bin/true"]\n', Path(path))
    apps = {"a": resolve.resolve_app(pod.apps["a"], Rootfs("/r"))}
    for output in units.render(pod, apps):
        if isinstance(output, units.GeneratedFile) and not output.path.endswith(".json"):
            found = systemd_syntax.settings(output.text)
            assert [s.value for s in found if s.key == "SourcePath"] == (
                [source_path] if source_path else []
            )
            assert {s.key for s in found} <= {
                "Wants",
                "Before",
                "Environment",
                "Slice",
                "LogExtraFields",
                "SourcePath",
                *APP_KEYS["Unit"],
                *APP_KEYS["Service"],
            }


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        pytest.param(
            'exec = ["/bin/echo", "' + "\u00e9" * 600_000 + '"]\n',
            "exec",
            id="command-line-of-1.2-MB",
        ),
        pytest.param(
            'exec = ["/bin/true"]\nenvironment = { A = "' + "\\u0001" * 300_000 + '" }\n',
            "environment",
            id="environment-of-1.2-MB-escaped",
        ),
    ],
)
def test_a_line_longer_than_systemd_reads_is_a_problem(
    tmp_path: Path, extra: str, key: str
) -> None:
    with pytest.raises(AppProblem) as error:
        resolve.resolve_app(image_app(tmp_path, extra), image_source({}))
    assert error.value.key == key
    assert "longer than systemd reads a line" in str(error.value)
