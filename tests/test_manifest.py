# SPDX-License-Identifier: LGPL-2.1-or-later
"""Manifest parsing: every error names the file, the key and what to write instead."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podmgr import names
from podmgr.errors import ManifestError
from podmgr.manifest import model, schema
from podmgr.manifest.healthkeys import OnFailure
from podmgr.manifest.listen import Listen
from podmgr.manifest.model import (
    App,
    Health,
    Install,
    Mount,
    Network,
    PodSettings,
    Resources,
    Socket,
    Volume,
)
from podmgr.manifest.schema import (
    NetworkMode,
    Ready,
    Restart,
    VolumeType,
)
from podmgr.manifest.socketkeys import SocketNamespace, SocketType
from podmgr.tables import Section
from podmgr.values import Port

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# A valid app and volume, added to cases that are about something else.
APP = '[app.main]\nrootfs = "/srv/rootfs"\nexec = ["/bin/true"]\n'
VOLUME = '[volume.v]\ntype = "empty"\n'

# How a test fails when the parser accepts what it should refuse: pytest.raises fails it.
ACCEPTED = pytest.fail.Exception


def write(directory: Path, text: str, name: str = "pod") -> Path:
    """Write the manifest NAME.toml under ``directory`` and return its path."""
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def error_of(path: Path) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        model.load(path)
    return caught.value


def case(name: str, text: str, where: str, hint: str) -> pytest.ParameterSet:
    """A manifest with one problem: the key path it is reported at, and a fragment of the
    message that says what to write instead."""
    return pytest.param(text, where, hint, id=name)


SYNTAX = [
    case(
        "unclosed-table-header",
        "[app.main\n",
        "line 1, column 10",
        "Expected ']' at the end of a table declaration (fix the TOML syntax here)",
    ),
    case("unterminated-string", 'x = "abc\n', "line 1, column 9", "fix the TOML syntax here"),
    case("value-missing-at-end", "x =", "end of file", "fix the TOML syntax here"),
    case(
        "table-declared-twice",
        APP + '[app.main]\nuser = "web"\n',
        "line 4, column 10",
        "[app.main] is declared twice (names of tables must be unique: rename or merge one)",
    ),
    case(
        "top-level-table-declared-twice",
        "[pod]\n[pod]\n" + APP,
        "line 2, column 5",
        "[pod] is declared twice",
    ),
    case(
        "key-set-twice",
        "version = 1\nversion = 1\n" + APP,
        "line 2, column 12",
        "this key is already set (set each key once)",
    ),
    case(
        "key-set-twice-in-table",
        '[pod]\nhostname = "a"\nhostname = "b"\n' + APP,
        "line 3, column 15",
        "set each key once",
    ),
]

UNKNOWN_KEYS = [
    case("top-close", "versio = 1\n" + APP, "versio", "unknown key (did you mean version?)"),
    case(
        "top-key-of-a-table",
        'hostname = "x"\n' + APP,
        "hostname",
        "did you mean hostname in [pod]?",
    ),
    case("top-table-name", '[apps.main]\nrootfs = "/x"\n', "apps", "did you mean app?"),
    case(
        "top-none-close",
        "colour = 1\n" + APP,
        "colour",
        "unknown key (see podmgr.toml(5) for the keys of this table)",
    ),
    case("pod-close", '[pod]\nhostnme = "x"\n' + APP, "pod.hostnme", "did you mean hostname?"),
    case(
        "pod-resources-key",
        '[pod]\nmemory_max = "1G"\n' + APP,
        "pod.memory_max",
        "did you mean memory_max in [pod.resources]?",
    ),
    case(
        "pod-resources",
        '[pod.resources]\nmemory = "1G"\n' + APP,
        "pod.resources.memory",
        "did you mean memory_max?",
    ),
    case("network-close", "[network]\nport = []\n" + APP, "network.port", "did you mean ports?"),
    case(
        "network-none-close",
        "[network]\npublish = []\n" + APP,
        "network.publish",
        "see podmgr.toml(5) for the keys of this table",
    ),
    case("install", "[install]\nwanted = []\n" + APP, "install.wanted", "did you mean wanted_by?"),
    case("volume", VOLUME + 'sources = "/srv"\n' + APP, "volume.v.sources", "did you mean source?"),
    case(
        "volume-none-close",
        VOLUME + 'size_limit = "1M"\n' + APP,
        "volume.v.size_limit",
        "see podmgr.toml(5)",
    ),
    case("app", APP + "enviroment = {}\n", "app.main.enviroment", "did you mean environment?"),
    case("app-none-close", APP + 'command = ["/x"]\n', "app.main.command", "see podmgr.toml(5)"),
    case(
        "app-resources-key",
        APP + 'memory_max = "1G"\n',
        "app.main.memory_max",
        "did you mean memory_max in [app.main.resources]?",
    ),
    case("app-mounts", APP + "mounts = []\n", "app.main.mounts", "did you mean mount?"),
    case(
        "app-resources",
        APP + "[app.main.resources]\ncpus = 2\n",
        "app.main.resources.cpus",
        "see podmgr.toml(5)",
    ),
    case(
        "app-mount",
        VOLUME + APP + '[[app.main.mount]]\nvolume = "v"\npath = "/v"\nreadonly = true\n',
        "app.main.mount[0].readonly",
        "did you mean read_only?",
    ),
]

TYPES = [
    # string
    case(
        "string-type",
        "[pod]\nhostname = 3\n" + APP,
        "pod.hostname",
        'expected a host name like "text", got an integer',
    ),
    case(
        "string-pattern",
        '[pod]\nhostname = "bad host"\n' + APP,
        "pod.hostname",
        "'bad host' is not a valid host name (use letters, digits, '.', '-')",
    ),
    case(
        "string-nul",
        '[pod]\nhostname = "a\\u0000b"\n' + APP,
        "pod.hostname",
        "must not contain NUL characters",
    ),
    # boolean
    case(
        "boolean",
        VOLUME + 'read_only = "yes"\n' + APP,
        "volume.v.read_only",
        "expected a boolean like true, got a string",
    ),
    case(
        "boolean-integer",
        APP + "private_users = 1\n",
        "app.main.private_users",
        "expected a boolean like true, got an integer",
    ),
    # integer
    case(
        "integer-below",
        "[pod.resources]\ncpu_weight = 0\n" + APP,
        "pod.resources.cpu_weight",
        "0 is out of range (use 1..10000)",
    ),
    case(
        "integer-above",
        "[pod.resources]\ntasks_max = 4194305\n" + APP,
        "pod.resources.tasks_max",
        "use 1..4194304",
    ),
    case("integer-negative-uid", VOLUME + "uid = -1\n" + APP, "volume.v.uid", "use 0..4294967294"),
    case(
        "integer-float",
        "[pod.resources]\ntasks_max = 1.5\n" + APP,
        "pod.resources.tasks_max",
        "expected a count like 1, got a float",
    ),
    case(
        "integer-string",
        '[pod.resources]\ntasks_max = "10"\n' + APP,
        "pod.resources.tasks_max",
        "expected a count like 1, got a string",
    ),
    case(
        "integer-boolean",
        "[pod.resources]\nio_weight = true\n" + APP,
        "pod.resources.io_weight",
        "expected a weight like 1, got a boolean",
    ),
    # choice
    case(
        "choice",
        '[pod]\nrestart = "sometimes"\n' + APP,
        "pod.restart",
        '\'sometimes\' is not valid (use one of "no", "on-success"',
    ),
    case(
        "choice-app", APP + 'ready = "socket"\n', "app.main.ready", 'use one of "started", "notify"'
    ),
    case("choice-type", "[network]\nmode = 3\n" + APP, "network.mode", "got an integer"),
    # size
    case(
        "size-suffix",
        '[pod.resources]\nmemory_max = "12X"\n' + APP,
        "pod.resources.memory_max",
        "'12X' is not a size (use 512M, 2G)",
    ),
    case(
        "size-zero",
        "[pod.resources]\nmemory_high = 0\n" + APP,
        "pod.resources.memory_high",
        "must be positive (use 512M, 2G)",
    ),
    case(
        "size-type",
        "[pod.resources]\nmemory_max = []\n" + APP,
        "pod.resources.memory_max",
        'expected a size like "512M", got an array',
    ),
    case(
        "size-boolean",
        VOLUME.replace("empty", "tmpfs") + "size = true\n" + APP,
        "volume.v.size",
        "got a boolean",
    ),
    # duration
    case(
        "duration-unit",
        '[pod]\nstop_timeout = "3 parsecs"\n' + APP,
        "pod.stop_timeout",
        "'3 parsecs' is not a duration (use 30s, 5min, 1h 30min, 500ms)",
    ),
    case(
        "duration-trailing-junk",
        '[pod]\nstop_timeout = "1h junk"\n' + APP,
        "pod.stop_timeout",
        "use 30s, 5min",
    ),
    case(
        "duration-type",
        "[pod]\nstop_timeout = true\n" + APP,
        "pod.stop_timeout",
        'expected a duration like "30s", got a boolean',
    ),
    case(
        "duration-negative",
        "[pod]\nstop_timeout = -5\n" + APP,
        "pod.stop_timeout",
        '-5 is negative (use seconds from 0 up, or a string like "30s")',
    ),
    # percent
    case(
        "percent-number",
        "[pod.resources]\ncpu_quota = 150\n" + APP,
        "pod.resources.cpu_quota",
        'is not a percentage (use "50%"; 200% is two CPUs)',
    ),
    case(
        "percent-zero",
        '[pod.resources]\ncpu_quota = "0%"\n' + APP,
        "pod.resources.cpu_quota",
        'use "50%"',
    ),
    # absolute path
    case(
        "path-relative",
        '[volume.v]\ntype = "host"\nsource = "srv"\n' + APP,
        "volume.v.source",
        "'srv' is not an absolute path (start it with /)",
    ),
    case(
        "path-dotdot",
        '[volume.v]\ntype = "host"\nsource = "/a/../b"\n' + APP,
        "volume.v.source",
        "contains '..' (write the path without it)",
    ),
    case(
        "path-colon",
        '[volume.v]\ntype = "host"\nsource = "/a:b"\n' + APP,
        "volume.v.source",
        "(rename the path)",
    ),
    case(
        "path-space",
        '[volume.v]\ntype = "host"\nsource = "/a b"\n' + APP,
        "volume.v.source",
        "contains white space",
    ),
    case(
        "path-tab",
        '[volume.v]\ntype = "host"\nsource = "/a\\tb"\n' + APP,
        "volume.v.source",
        "(rename the path)",
    ),
    case(
        "path-type",
        '[volume.v]\ntype = "host"\nsource = 1\n' + APP,
        "volume.v.source",
        'expected an absolute path like "/srv/data", got an integer',
    ),
    case(
        "path-in-array",
        APP + 'environment_files = ["/a", "env"]\n',
        "app.main.environment_files[1]",
        "start it with /",
    ),
    case(
        "path-working-directory",
        APP + 'working_directory = "srv"\n',
        "app.main.working_directory",
        "start it with /",
    ),
    # octal mode
    case(
        "mode-integer",
        VOLUME + "mode = 755\n" + APP,
        "volume.v.mode",
        'is not an octal mode (write it as a string, e.g. "0750")',
    ),
    case(
        "mode-digits",
        VOLUME + 'mode = "0999"\n' + APP,
        "volume.v.mode",
        "'0999' is not an octal mode",
    ),
    # user and group
    case(
        "user-name",
        APP + 'user = "bad user"\n',
        "app.main.user",
        "'bad user' is not a user (use a number or a name like \"www-data\")",
    ),
    case(
        "user-negative",
        APP + "user = -5\n",
        "app.main.user",
        "-5 is out of range (use 0..4294967294 except 65535",
    ),
    case("user-too-large", APP + "user = 4294967295\n", "app.main.user", "use 0..4294967294"),
    case(
        "user-digits-too-large", APP + 'user = "4294967295"\n', "app.main.user", "use 0..4294967294"
    ),
    case(
        "user-unicode-digit", APP + 'user = "\\u00b2"\n', "app.main.user", "use a number or a name"
    ),
    case(
        "group-type",
        APP + "group = true\n",
        "app.main.group",
        "True is not a group (use a number or a name",
    ),
    # arrays
    case(
        "array-type",
        APP.replace('["/bin/true"]', '"/bin/true"'),
        "app.main.exec",
        "expected an array of strings like [...], got a string",
    ),
    case(
        "array-item",
        APP.replace('["/bin/true"]', '["/bin/sleep", 3]'),
        "app.main.exec[1]",
        'expected a string like "text", got an integer',
    ),
    case(
        "array-duplicate",
        '[install]\nrequired_by = ["a.target", "b.target", "a.target"]\n' + APP,
        "install.required_by[2]",
        "'a.target' is listed twice (list it once)",
    ),
    case(
        "array-duplicate-normalized",
        APP + 'capabilities_remove = ["NET_RAW", "CAP_NET_RAW"]\n',
        "app.main.capabilities_remove[1]",
        "'CAP_NET_RAW' is listed twice (list it once)",
    ),
    case(
        "array-duplicate-after",
        APP + '[app.db]\nrootfs = "/x"\nexec = ["/x"]\nafter = ["main", "main"]\n',
        "app.db.after[1]",
        "listed twice",
    ),
    case(
        "array-unit-name",
        '[install]\nwanted_by = ["multi-user"]\n' + APP,
        "install.wanted_by[0]",
        'use a unit name like "multi-user.target"',
    ),
    case(
        "array-app-name",
        APP + 'after = ["Db"]\n',
        "app.main.after[0]",
        "use 1-63 characters of a-z",
    ),
    # maps
    case(
        "map-type",
        '[pod]\nannotations = "x"\n' + APP,
        "pod.annotations",
        'expected a table of strings like { KEY = "value" }, got a string',
    ),
    case(
        "map-env-name",
        APP + 'environment = { "A-B" = "1" }\n',
        "app.main.environment.A-B",
        "'A-B' is not a valid variable name (use letters, digits and '_')",
    ),
    case(
        "map-env-digit-first",
        APP + 'environment = { "1A" = "1" }\n',
        "app.main.environment.1A",
        "use letters, digits and '_'",
    ),
    case(
        "map-annotation-name",
        '[pod]\nannotations = { "bad key!" = "x" }\n' + APP,
        'pod.annotations."bad key!"',
        "is not a valid annotation name",
    ),
    case(
        "map-integer-value",
        APP + "environment = { A = 1 }\n",
        "app.main.environment.A",
        'expected a string, got an integer (quote it: A = "1")',
    ),
    case(
        "map-boolean-value",
        APP + "environment = { A = true }\n",
        "app.main.environment.A",
        'expected a string, got a boolean (quote it: A = "true")',
    ),
    case(
        "map-array-value",
        APP + "environment = { A = [] }\n",
        "app.main.environment.A",
        "expected a string, got an array",
    ),
    case(
        "map-nul-value",
        APP + 'environment = { A = "a\\u0000" }\n',
        "app.main.environment.A",
        "must not contain NUL characters",
    ),
    # capabilities and system call filters
    case(
        "capability",
        APP + 'capabilities_retain = ["CAP_FLY"]\n',
        "app.main.capabilities_retain[0]",
        "'CAP_FLY' is not a capability (see capabilities(7), e.g. \"CAP_NET_BIND_SERVICE\")",
    ),
    case(
        "capability-type",
        APP + "capabilities_retain = [1]\n",
        "app.main.capabilities_retain[0]",
        'expected a capability like "CAP_NET_BIND_SERVICE", got an integer',
    ),
    case(
        "syscall-group",
        APP + 'system_call_filter = ["~@nonsense"]\n',
        "app.main.system_call_filter[0]",
        'see systemd-analyze syscall-filter, e.g. "@system-service"',
    ),
    case(
        "syscall-name",
        APP + 'system_call_filter = ["rm -rf"]\n',
        "app.main.system_call_filter[0]",
        "is not a system call name systemd knows, nor an @group (see systemd-analyze "
        'syscall-filter; e.g. "@system-service", "~@privileged"',
    ),
    case(
        "syscall-typo",
        APP + 'system_call_filter = ["~ptrcae"]\n',
        "app.main.system_call_filter[0]",
        "'~ptrcae' is not a system call name systemd knows",
    ),
    # images, addresses, ports
    case(
        "image",
        '[app.main]\nimage = "Busybox"\n',
        "app.main.image",
        "write it as registry.example.org/repo:tag",
    ),
    case(
        "image-type",
        "[app.main]\nimage = 1\n",
        "app.main.image",
        'expected an image name like "registry.example.org/app:1.0", got an integer',
    ),
    case(
        "address",
        '[network]\ndns = ["nine"]\n' + APP,
        "network.dns[0]",
        "'nine' is not an IP address (write it like \"9.9.9.9\")",
    ),
    case(
        "port-form",
        '[network]\nmode = "bridge"\nports = ["80"]\n' + APP,
        "network.ports[0]",
        "write it as [HOST_IP:]HOST_PORT:POD_PORT[/tcp|/udp]",
    ),
    case(
        "port-range",
        '[network]\nmode = "bridge"\nports = ["70000:80"]\n' + APP,
        "network.ports[0]",
        "ports are 1..65535",
    ),
    case(
        "port-address",
        '[network]\nmode = "bridge"\nports = ["1.2.3:80:80"]\n' + APP,
        "network.ports[0]",
        "'1.2.3' is not an IPv4 address",
    ),
    # schema version
    case("version-2", "version = 2\n" + APP, "version", "2 is not supported (only 1 is)"),
    case(
        "version-string",
        'version = "1"\n' + APP,
        "version",
        "expected a schema version like 1, got a string",
    ),
]

STRUCTURE = [
    # a table where a value is expected, and the other way round
    case(
        "value-is-a-table",
        "[pod.hostname]\n" + APP,
        "pod.hostname",
        'expected a host name like "text", got a table',
    ),
    case("table-is-a-value", 'pod = "x"\n' + APP, "pod", "expected a [pod] table, got a string"),
    case(
        "subtable-is-a-value",
        "pod.resources = 5\n" + APP,
        "pod.resources",
        "expected a [pod.resources] table, got an integer",
    ),
    case(
        "subtable-is-an-array",
        "[[app.main.resources]]\n" + APP.replace("main", "x"),
        "app.main.resources",
        "expected a [app.main.resources] table, got an array",
    ),
    case(
        "named-tables-are-a-value", "app = 3\n", "app", "expected [app.NAME] tables, got an integer"
    ),
    case(
        "named-tables-are-an-array",
        "volume = []\n" + APP,
        "volume",
        "expected [volume.NAME] tables, got an array",
    ),
    case(
        "named-table-is-a-value",
        'app.main = "x"\n',
        "app.main",
        "expected a [app.main] table, got a string",
    ),
    case(
        "array-of-tables-is-a-table",
        APP + '[app.main.mount]\nvolume = "v"\n',
        "app.main.mount",
        "expected [[app.main.mount]] tables, got a table",
    ),
    # names
    case(
        "app-name",
        '[app.Main]\nrootfs = "/x"\nexec = ["/x"]\n',
        "app.Main",
        "'Main' is not a valid app name (use 1-63 characters of a-z, 0-9",
    ),
    case(
        "app-name-too-long",
        f'[app.{"a" * 64}]\nrootfs = "/x"\nexec = ["/x"]\n',
        f"app.{'a' * 64}",
        "use 1-63 characters",
    ),
    case(
        "volume-name",
        '[volume._v]\ntype = "empty"\n' + APP,
        "volume._v",
        "'_v' is not a valid volume name (use 1-63 characters of a-z, 0-9, '_', '.', '-', "
        "starting with a letter or digit)",
    ),
    # required keys
    case(
        "app-rootfs-or-image",
        '[app.main]\nexec = ["/bin/true"]\n',
        "app.main",
        'set either rootfs = "/path" or image = "registry.example.org/app:1.0"',
    ),
    case("app-rootfs-and-image", APP + 'image = "busybox"\n', "app.main", "(exactly one of them)"),
    case(
        "app-exec",
        '[app.main]\nrootfs = "/srv"\n',
        "app.main.exec",
        'missing (add: exec = ["/bin/httpd", "-f"]; only an image brings its own command)',
    ),
    case(
        "volume-type",
        "[volume.v]\nread_only = true\n" + APP,
        "volume.v.type",
        'missing (add: type = "empty")',
    ),
    case(
        "mount-volume",
        VOLUME + APP + '[[app.main.mount]]\npath = "/v"\n',
        "app.main.mount[0].volume",
        'missing (add: volume = "data")',
    ),
    case(
        "mount-path",
        VOLUME + APP + '[[app.main.mount]]\nvolume = "v"\n',
        "app.main.mount[0].path",
        'missing (add: path = "/var/lib/data")',
    ),
    case(
        "no-apps", '[pod]\nhostname = "x"\n', "app", "the pod has no apps (add an [app.NAME] table)"
    ),
    case("empty-file", "", "app", "add an [app.NAME] table"),
]

CROSS_CHECKS = [
    case(
        "host-volume-source",
        '[volume.v]\ntype = "host"\n' + APP,
        "volume.v.source",
        'missing (add: source = "/srv/data")',
    ),
    case(
        "size-on-empty",
        VOLUME + 'size = "1M"\n' + APP,
        "volume.v.size",
        'only applies to type = "tmpfs" (remove it)',
    ),
    case(
        "source-on-tmpfs",
        '[volume.v]\ntype = "tmpfs"\nsource = "/srv"\n' + APP,
        "volume.v.source",
        'only applies to type = "host" (remove it)',
    ),
    case(
        "mode-on-host",
        '[volume.v]\ntype = "host"\nsource = "/srv"\nmode = "0700"\n' + APP,
        "volume.v.mode",
        'only applies to type = "empty" or "tmpfs" (remove it)',
    ),
    case(
        "uid-on-host",
        '[volume.v]\ntype = "host"\nsource = "/srv"\nuid = 0\n' + APP,
        "volume.v.uid",
        'only applies to type = "empty" or "tmpfs"',
    ),
    case(
        "mount-undefined-volume",
        APP + '[[app.main.mount]]\nvolume = "nope"\npath = "/v"\n',
        "app.main.mount[0].volume",
        "no volume 'nope' (define [volume.nope] or fix the name)",
    ),
    case(
        "mount-over-root",
        VOLUME + APP + '[[app.main.mount]]\nvolume = "v"\npath = "/"\n',
        "app.main.mount[0].path",
        "cannot mount a volume over / (pick a directory such as",
    ),
    case(
        "mount-over-root-double-slash",
        VOLUME + APP + '[[app.main.mount]]\nvolume = "v"\npath = "//"\n',
        "app.main.mount[0].path",
        "cannot mount a volume over /",
    ),
    case(
        "mount-path-twice",
        VOLUME + APP + '[[app.main.mount]]\nvolume = "v"\npath = "/v"\n'
        '[[app.main.mount]]\nvolume = "v"\npath = "/v/"\n',
        "app.main.mount[1].path",
        "/v is already a mount point of this app (use another path)",
    ),
    case(
        "exec-empty",
        APP.replace('["/bin/true"]', "[]"),
        "app.main.exec",
        'is empty (add the command, e.g. ["/bin/sh"])',
    ),
    case(
        "exec-relative",
        APP.replace('["/bin/true"]', '["true"]'),
        "app.main.exec[0]",
        "'true' is not an absolute path (give the program's full path inside the rootfs)",
    ),
    case(
        "after-itself",
        APP + 'after = ["main"]\n',
        "app.main.after",
        "an app cannot start after itself",
    ),
    case(
        "after-unknown",
        APP + 'after = ["db"]\n',
        "app.main.after",
        "no app 'db' in this pod (define [app.db] or fix the name)",
    ),
    case(
        "ports-private",
        '[network]\nports = ["80:80"]\n' + APP,
        "network.ports",
        'a private network cannot be reached from the host (set mode = "bridge")',
    ),
    case(
        "networks-not-bridged",
        '[network]\nmode = "host"\nnetworks = ["backend"]\n' + APP,
        "network.networks",
        'only a bridged pod joins networks (set mode = "bridge")',
    ),
    case(
        "port-published-twice",
        '[network]\nmode = "bridge"\nports = ["80:80", "80:81"]\n' + APP,
        "network.ports[1]",
        "80/tcp is published twice (publish it once)",
    ),
    case(
        "hosts-address",
        '[network]\nhosts = { db = "nowhere" }\n' + APP,
        "network.hosts.db",
        "'nowhere' is not an IP address (write it like \"10.0.0.5\")",
    ),
]


# [[app.NAME.socket]]: the address systemd would bind, and combinations it could not do.
SOCKET = APP + "[[app.main.socket]]\n"
BRIDGED = '[network]\nmode = "bridge"\nports = ["8080:80/tcp", "5353:53/udp"]\n'
SOCKETS = [
    case(
        "socket-listen-missing",
        SOCKET + 'type = "stream"\n',
        "app.main.socket[0].listen",
        'missing (add: listen = "127.0.0.1:8080")',
    ),
    *(
        case(
            f"socket-listen-{name}",
            SOCKET + f"listen = {value}\n",
            "app.main.socket[0].listen",
            hint,
        )
        for name, value, hint in [
            ("port-zero", '"0"', "is not a port, IP address and port or path"),
            ("port-range", '"65536"', "a port is 1..65535"),
            ("port-range-integer", "70000", "a port is 1..65535"),
            ("negative-integer", "-1", "is not a port, IP address and port or path"),
            ("leading-zero", '"08080"', "is not a port, IP address and port or path"),
            ("sign", '"+80"', "is not a port, IP address and port or path"),
            ("space", '" 80"', "is not a port, IP address and port or path"),
            ("host-name", '"localhost:8080"', 'write "8080", "127.0.0.1:8080"'),
            ("ipv6-unbracketed", '"::1:8080"', "is not a port, IP address and port or path"),
            ("ipv6-zone", '"[fe80::1%eth0]:80"', "is not a port, IP address and port or path"),
            ("ipv4-bad", '"256.0.0.1:80"', "does not hold an IPv4 address"),
            ("ipv4-leading-zero", '"010.0.0.1:80"', "does not hold an IPv4 address"),
            ("ipv6-bad", '"[1::2::3]:80"', "does not hold an IPv6 address"),
            ("no-port", '"127.0.0.1"', "is not a port, IP address and port or path"),
            ("abstract", '"@web"', "is not a port, IP address and port or path"),
            ("interface", '"eth0"', "is not a port, IP address and port or path"),
            ("vsock", '"vsock:2:80"', "is not a port, IP address and port or path"),
            ("relative", '"run/web.sock"', "is not a port, IP address and port or path"),
            ("path-too-long", '"/run/' + "a" * 103 + '"', "a unix socket's path is at most 107"),
            ("path-unnormalized", '"/run//web.sock"', "write '/run/web.sock'"),
            ("path-dot-dot", '"/run/../web.sock"', "contains '..'"),
            ("path-directory", '"/run/sock/"', "write '/run/sock'"),
            ("path-root", '"/"', "names a directory, not a socket"),
            ("path-space", '"/run/web sock"', "contains white space"),
            ("path-control", '"/run/web\\u0001"', "a control character"),
            ("boolean", "true", 'expected a socket address like "8080", got a boolean'),
            ("float", "8080.0", 'expected a socket address like "8080", got a float'),
        ]
    ),
    case(
        "socket-type",
        SOCKET + 'listen = "80"\ntype = "seqpacket"\n',
        "app.main.socket[0].type",
        'use one of "stream", "datagram"',
    ),
    case(
        "socket-namespace",
        SOCKET + 'listen = "80"\nnamespace = "container"\n',
        "app.main.socket[0].namespace",
        'use one of "host", "pod"',
    ),
    case(
        "socket-fd-name",
        SOCKET + 'listen = "80"\nfd_name = "web:1"\n',
        "app.main.socket[0].fd_name",
        "is not a valid file descriptor name",
    ),
    case(
        "socket-not-tables",
        APP + 'socket = "80"\n',
        "app.main.socket",
        "expected [[app.main.socket]] tables, got a string",
    ),
    case(
        "socket-unix-in-pod",
        SOCKET + 'listen = "/run/web.sock"\nnamespace = "pod"\n',
        "app.main.socket[0].namespace",
        'not in a network namespace (remove namespace = "pod")',
    ),
    case(
        "socket-pod-namespace-on-host-network",
        '[network]\nmode = "host"\n' + SOCKET + 'listen = "80"\nnamespace = "pod"\n',
        "app.main.socket[0].namespace",
        'so it has no namespace of its own (set namespace = "host")',
    ),
    case(
        "socket-activate-in-pod",
        SOCKET + 'listen = "80"\nnamespace = "pod"\nactivate = true\n',
        "app.main.socket[0].activate",
        "cannot start the pod",
    ),
    case(
        "socket-twice",
        SOCKET
        + 'listen = "127.0.0.1:80"\n'
        + '[[app.main.socket]]\nlisten = "127.0.0.1:80"\nfd_name = "b"\n',
        "app.main.socket[1].listen",
        "127.0.0.1:80 overlaps 127.0.0.1:80 of app.main.socket[0]",
    ),
    case(
        "socket-path-twice-across-apps",
        SOCKET
        + 'listen = "/run/a.sock"\n'
        + APP.replace("main", "other")
        + '[[app.other.socket]]\nlisten = "/run/a.sock"\ntype = "datagram"\n',
        "app.other.socket[0].listen",
        "/run/a.sock overlaps /run/a.sock of app.main.socket[0]",
    ),
    case(
        "socket-wildcard-overlaps-address",
        SOCKET + 'listen = "127.0.0.1:80"\n' + '[[app.main.socket]]\nlisten = "[::]:80"\n',
        "app.main.socket[1].listen",
        "[::]:80 overlaps 127.0.0.1:80",
    ),
    case(
        "socket-published-port",
        BRIDGED + SOCKET + 'listen = "127.0.0.1:8080"\n',
        "app.main.socket[0].listen",
        "127.0.0.1:8080 is published to the pod by network.ports[0]",
    ),
    case(
        "socket-published-udp-port",
        BRIDGED + SOCKET + 'listen = "5353"\ntype = "datagram"\n',
        "app.main.socket[0].listen",
        "5353 is published to the pod by network.ports[1]",
    ),
    case(
        "socket-one-unit-two-namespaces",
        '[network]\nmode = "bridge"\n'
        + SOCKET
        + 'listen = "80"\n'
        + '[[app.main.socket]]\nlisten = "81"\nnamespace = "pod"\n',
        "app.main.socket[1].namespace",
        "differs from app.main.socket[0].namespace, a socket of the same fd_name ('main')",
    ),
    case(
        "socket-one-unit-two-activations",
        SOCKET
        + 'listen = "80"\nfd_name = "web"\n'
        + '[[app.main.socket]]\nlisten = "81"\nfd_name = "web"\nactivate = true\n',
        "app.main.socket[1].activate",
        "(give this one another fd_name)",
    ),
]


@pytest.mark.parametrize(
    "sockets",
    [
        pytest.param(['listen = "80"', 'listen = "80"\ntype = "datagram"'], id="tcp-and-udp"),
        pytest.param(['listen = "127.0.0.1:80"', 'listen = "[::1]:80"'], id="v4-and-v6"),
        pytest.param(['listen = "0.0.0.0:80"', 'listen = "[::1]:80"'], id="every-v4-and-a-v6"),
        pytest.param(['listen = "[::1]:8080"'], id="v6-beside-a-published-port"),
        pytest.param(['listen = "127.0.0.1:80"', 'listen = "127.0.0.2:80"'], id="two-addresses"),
        pytest.param(['listen = "80"', 'listen = "80"\nnamespace = "pod"'], id="host-and-pod"),
        pytest.param(['listen = "8080"\ntype = "datagram"'], id="udp-beside-a-tcp-port"),
        pytest.param(['listen = "80"\nnamespace = "pod"'], id="the-published-pod-port"),
        pytest.param(["listen = 81\nactivate = true", 'listen = "/run/a.sock"'], id="many"),
    ],
)
def test_sockets_that_can_listen_side_by_side(tmp_path: Path, sockets: list[str]) -> None:
    tables = "".join(
        f'[[app.main.socket]]\n{socket}\nfd_name = "s{index}"\n'
        for index, socket in enumerate(sockets)
    )
    pod = model.load(write(tmp_path, BRIDGED + APP + tables))
    assert len(pod.apps["main"].sockets) == len(sockets)


def test_a_socket_address_is_written_as_systemd_reads_it(tmp_path: Path) -> None:
    values = [
        "8080",
        8080,
        "0.0.0.0:80",
        "[::]:80",
        "[0:0::1]:80",
        "[::ffff:127.0.0.1]:1",
        "/run/w.sock",
    ]
    tables = "".join(
        f'[[app.main.socket]]\nlisten = {value!r}\nfd_name = "s{index}"\n'.replace("'", '"')
        for index, value in enumerate(values)
    )
    # Apart in types and namespaces, so that none overlaps another.
    tables = tables.replace('fd_name = "s1"', 'fd_name = "s1"\ntype = "datagram"')
    tables = tables.replace('fd_name = "s3"', 'fd_name = "s3"\nnamespace = "pod"')
    tables = tables.replace(
        'fd_name = "s4"', 'fd_name = "s4"\ntype = "datagram"\nnamespace = "pod"'
    )
    pod = model.load(write(tmp_path, APP + tables))
    assert [str(socket.listen) for socket in pod.apps["main"].sockets] == [
        "8080",
        "8080",
        "0.0.0.0:80",
        "[::]:80",
        "[::1]:80",
        "[::ffff:7f00:1]:1",
        "/run/w.sock",
    ]


@pytest.mark.parametrize(
    ("text", "where", "hint"), SYNTAX + UNKNOWN_KEYS + TYPES + STRUCTURE + CROSS_CHECKS + SOCKETS
)
def test_each_error_names_the_key_and_the_fix(
    tmp_path: Path, text: str, where: str, hint: str
) -> None:
    path = write(tmp_path, text)
    error = error_of(path)
    [problem] = error.problems
    assert problem.where == where
    assert hint in problem.message
    assert str(error) == f"{path}: {where}: {problem.message}"


def test_an_error_line_is_file_key_message(tmp_path: Path) -> None:
    path = write(tmp_path, '[pod]\nhostnme = "x"\n' + APP, "shop")
    error = error_of(path)
    assert str(error) == f"{path}: pod.hostnme: unknown key (did you mean hostname?)"
    assert error.file == str(path)
    assert error.code == "ManifestInvalid"


@pytest.mark.parametrize(
    ("file_name", "message"),
    [
        pytest.param(
            "Shop.toml",
            "'Shop' is not a valid pod name (rename the file; use 1-63 "
            "characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit)",
            id="upper-case",
        ),
        pytest.param(
            "-shop.toml", "'-shop' is not a valid pod name (rename the file;", id="leading-dash"
        ),
        pytest.param(
            "shop.yaml", "a manifest's name must end in .toml (rename the file)", id="not-toml"
        ),
        pytest.param(".toml", "'' is not a valid pod name (rename the file;", id="no-name"),
        # pod-a\x2d...\x2db.slice: 4 + 1 + 61 * 4 + 1 + 6 = 256 characters, one too many.
        pytest.param(
            "a" + "-" * 61 + "b.toml",
            "the pod's slice would be pod-a\\x2d",
            id="slice-name-too-long",
        ),
    ],
)
def test_the_pod_name_comes_from_the_file_name(
    tmp_path: Path, file_name: str, message: str
) -> None:
    path = tmp_path / file_name
    path.write_text(APP)
    error = error_of(path)
    [problem] = error.problems
    assert problem.where == ""
    assert problem.message.startswith(message)
    assert str(error) == f"{path}: {problem.message}"


def test_a_bad_file_name_is_reported_with_the_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "Shop.toml"
    path.write_text("x = \n")
    assert [p.where for p in error_of(path).problems] == ["", "line 1, column 5"]


def test_every_problem_of_the_values_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[pod]
hostnme = "x"
stop_timeout = "3 parsecs"

[pod.resources]
memory_max = "12X"

[network]
mode = "Overlay"

[volume.data]
size = "1M"

[app.main]
rootfs = "relative"
exec = ["/bin/true"]
user = "bad user"

[app.Web]
rootfs = "/srv"
""",
    )
    error = error_of(path)
    assert [p.where for p in error.problems] == [
        "pod.hostnme",
        "pod.stop_timeout",
        "pod.resources.memory_max",
        "network.mode",
        "volume.data.type",
        "app.main.rootfs",
        "app.main.user",
        "app.Web",
    ]
    lines = str(error).splitlines()
    assert len(lines) == 8
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_every_problem_between_values_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[volume.conf]
type = "host"

[app.main]
rootfs = "/srv"
exec = ["true"]
after = ["db"]

[[app.main.mount]]
volume = "data"
path = "/"
""",
    )
    assert [p.where for p in error_of(path).problems] == [
        "volume.conf.source",
        "app.main.exec[0]",
        "app.main.after",
        "app.main.mount[0].volume",
        "app.main.mount[0].path",
    ]


@pytest.mark.parametrize(
    ("after", "where", "loop"),
    [
        pytest.param({"a": ["b"], "b": ["a"]}, "app.a.after", "a -> b -> a", id="two-apps"),
        pytest.param(
            {"a": ["c"], "b": ["a"], "c": ["b"]}, "app.a.after", "a -> c -> b -> a", id="three-apps"
        ),
        pytest.param(
            {"x": ["a"], "a": ["b"], "b": ["a"]},
            "app.a.after",
            "a -> b -> a",
            id="behind-an-app-outside-it",
        ),
    ],
)
def test_ordering_cycles_are_refused(
    tmp_path: Path, after: dict[str, list[str]], where: str, loop: str
) -> None:
    text = "".join(
        f'[app.{name}]\nrootfs = "/x"\nexec = ["/x"]\nafter = {others!r}\n'
        for name, others in after.items()
    )
    [problem] = error_of(write(tmp_path, text)).problems
    assert problem.where == where
    assert problem.message == f"ordering cycle {loop} (remove one of these after entries)"


def test_an_order_without_cycles_is_fine(tmp_path: Path) -> None:
    text = "".join(
        f'[app.{name}]\nrootfs = "/x"\nexec = ["/x"]\nafter = {others!r}\n'
        for name, others in {"a": ["b", "c"], "b": ["c"], "c": []}.items()
    )
    assert list(model.load(write(tmp_path, text)).apps) == ["a", "b", "c"]


FULL = """\
version = 1

[pod]
hostname = "shop-host"
annotations = { "org.example.owner" = "ops" }
restart = "on-failure"
stop_timeout = "1min 30s"
isolation = "container"

[pod.resources]
memory_max = "1G"
memory_high = "1.5M"
cpu_weight = 200
cpu_quota = "150%"
tasks_max = 100
io_weight = 50

[network]
mode = "bridge"
networks = ["backend", "frontend"]
ports = ["8080:80", "127.0.0.1:5353:53/udp"]
dns = ["9.9.9.9", "2620:fe:0::fe"]
dns_search = ["example.org"]
hosts = { "db.example.org" = "10.0.0.5" }

[install]
wanted_by = ["multi-user.target"]
required_by = ["pods.target"]

[volume.data]
type = "empty"
mode = "0750"
uid = 33
gid = 34

[volume.conf]
type = "host"
source = "/etc/shop/"
read_only = true

[volume.scratch]
type = "tmpfs"
size = "64M"
mode = "700"

[app.db]
image = "registry.example.org/shop/db:1.4"
auto_update = "registry"

[app.web]
rootfs = "/srv/web"
exec = ["/bin/httpd", "-v", "-v"]
environment = { LANG = "C.UTF-8", _X1 = "" }
environment_files = ["/etc/shop/web.env"]
working_directory = "/srv/./www/"
user = "www-data"
group = "33"
restart = "always"
ready = "notify"
after = ["db"]
capabilities_retain = ["net_bind_service", "CAP_CHOWN"]
capabilities_remove = ["CAP_NET_RAW"]
no_new_privileges = true
read_only = true
system_call_filter = ["@system-service", "~@privileged", "mkdir"]
private_users = true

[app.web.resources]
memory_max = 1048576
memory_high = "512K"
cpu_weight = 10
cpu_quota = "200%"
tasks_max = 10
io_weight = 1

[[app.web.mount]]
volume = "data"
path = "/var/lib/data"

[[app.web.mount]]
volume = "conf"
path = "/etc/shop"
read_only = true

[[app.web.socket]]
listen = "127.0.0.1:8081"
type = "stream"
namespace = "host"
activate = true
fd_name = "http"

[[app.web.socket]]
listen = 53
type = "datagram"
namespace = "pod"

[app.web.health]
exec = ["/bin/wget", "-q", "http://127.0.0.1/"]
interval = "10s"
timeout = "2s"
retries = 5
start_period = "1min"
on_failure = "restart"
"""


def _tables(section: Section, raw: dict[str, Any]) -> Iterator[tuple[Section, dict[str, Any]]]:
    """Each TOML table of ``raw`` with the section of the key table it belongs to."""
    yield section, raw
    for sub in section.subsections:
        value = raw.get(sub.name)
        if value is None:
            continue
        children = list(value.values()) if sub.named else value if sub.array else [value]
        for child in children:
            yield from _tables(sub, child)


def test_the_full_manifest_sets_every_key() -> None:
    written: dict[str, set[str]] = {}
    for section, table in _tables(schema.MANIFEST, tomllib.loads(FULL)):
        written.setdefault(section.name, set()).update(table)
    unset = {
        f"{name}.{key.name}"
        for name, section in _all_sections().items()
        for key in section.keys
        if key.name not in written.get(name, set())
    }
    assert unset == set()


def test_a_manifest_with_every_key(tmp_path: Path) -> None:
    path = write(tmp_path, FULL, "shop")
    pod = model.load(path)
    assert (pod.name, pod.path, pod.version, pod.hostname) == ("shop", str(path), 1, "shop-host")
    assert pod.pod == PodSettings(
        hostname="shop-host",
        annotations={"org.example.owner": "ops"},
        restart=Restart.ON_FAILURE,
        stop_timeout=90_000_000,
        resources=Resources(
            memory_max=1 << 30,
            memory_high=1572864,
            cpu_weight=200,
            cpu_quota=150,
            tasks_max=100,
            io_weight=50,
        ),
    )
    assert pod.network == Network(
        mode=NetworkMode.BRIDGE,
        networks=("backend", "frontend"),
        ports=(Port("", 8080, 80, "tcp"), Port("127.0.0.1", 5353, 53, "udp")),
        dns=("9.9.9.9", "2620:fe::fe"),
        dns_search=("example.org",),
        hosts={"db.example.org": "10.0.0.5"},
    )
    assert pod.network.joined == ("backend", "frontend")
    assert pod.install == Install(wanted_by=("multi-user.target",), required_by=("pods.target",))
    assert pod.volumes == {
        "data": Volume(
            "data",
            VolumeType.EMPTY,
            source=None,
            read_only=False,
            mode=0o750,
            uid=33,
            gid=34,
            size=None,
        ),
        "conf": Volume(
            "conf",
            VolumeType.HOST,
            source="/etc/shop",
            read_only=True,
            mode=None,
            uid=None,
            gid=None,
            size=None,
        ),
        "scratch": Volume(
            "scratch",
            VolumeType.TMPFS,
            source=None,
            read_only=False,
            mode=0o700,
            uid=None,
            gid=None,
            size=64 << 20,
        ),
    }
    assert list(pod.apps) == ["db", "web"]
    assert pod.apps["db"].image == "registry.example.org/shop/db:1.4"
    assert pod.apps["db"].exec is None
    assert pod.apps["db"].auto_update == "registry"
    assert pod.apps["web"] == App(
        name="web",
        rootfs="/srv/web",
        image=None,
        exec=("/bin/httpd", "-v", "-v"),
        environment={"LANG": "C.UTF-8", "_X1": ""},
        environment_files=("/etc/shop/web.env",),
        working_directory="/srv/www",
        user="www-data",
        group=33,
        restart=Restart.ALWAYS,
        ready=Ready.NOTIFY,
        after=("db",),
        capabilities_retain=("CAP_NET_BIND_SERVICE", "CAP_CHOWN"),
        capabilities_remove=("CAP_NET_RAW",),
        no_new_privileges=True,
        read_only=True,
        system_call_filter=("@system-service", "~@privileged", "mkdir"),
        private_users=True,
        resources=Resources(
            memory_max=1 << 20,
            memory_high=512 << 10,
            cpu_weight=10,
            cpu_quota=200,
            tasks_max=10,
            io_weight=1,
        ),
        mounts=(
            Mount("data", "/var/lib/data", read_only=False),
            Mount("conf", "/etc/shop", read_only=True),
        ),
        sockets=(
            Socket(
                Listen(address="127.0.0.1", port=8081),
                SocketType.STREAM,
                SocketNamespace.HOST,
                activate=True,
                fd_name="http",
            ),
            Socket(Listen(port=53), SocketType.DATAGRAM, SocketNamespace.POD, False, None),
        ),
        health=Health(
            exec=("/bin/wget", "-q", "http://127.0.0.1/"),
            interval=10_000_000,
            timeout=2_000_000,
            retries=5,
            start_period=60_000_000,
            on_failure=OnFailure.RESTART,
        ),
    )
    assert pod.restart_of(pod.apps["web"]) is Restart.ALWAYS
    assert pod.restart_of(pod.apps["db"]) is Restart.ON_FAILURE


def test_defaults_apply_when_keys_and_tables_are_absent(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[volume.v]\ntype = "tmpfs"\n' + APP + '[[app.main.mount]]\nvolume = "v"\npath = "/v"\n',
        "min",
    )
    pod = model.load(path)
    unlimited = Resources(None, None, None, None, None, None)
    assert (pod.version, pod.hostname) == (1, "min")
    assert pod.pod == PodSettings(
        hostname=None,
        annotations={},
        restart=Restart.NO,
        stop_timeout=90_000_000,
        resources=unlimited,
    )
    assert pod.network == Network(NetworkMode.PRIVATE, (), (), (), (), {})
    assert pod.network.joined == ()
    assert pod.install == Install((), ())
    assert pod.volumes == {"v": Volume("v", VolumeType.TMPFS, None, False, None, None, None, None)}
    assert pod.apps["main"] == App(
        name="main",
        rootfs="/srv/rootfs",
        image=None,
        exec=("/bin/true",),
        environment={},
        environment_files=(),
        working_directory=None,
        user=None,
        group=None,
        restart=None,
        ready=Ready.STARTED,
        after=(),
        capabilities_retain=None,
        capabilities_remove=(),
        no_new_privileges=False,
        read_only=False,
        system_call_filter=(),
        private_users=False,
        resources=unlimited,
        mounts=(Mount("v", "/v", False),),
        sockets=(),
    )
    assert pod.restart_of(pod.apps["main"]) is Restart.NO


def test_a_bridged_pod_joins_the_default_network(tmp_path: Path) -> None:
    pod = model.load(write(tmp_path, '[network]\nmode = "bridge"\n' + APP))
    assert pod.network.joined == (names.DEFAULT_NETWORK,)


def test_an_image_app_needs_no_command(tmp_path: Path) -> None:
    pod = model.load(write(tmp_path, '[app.web]\nimage = "busybox"\n'))
    assert pod.apps["web"].image == "docker.io/library/busybox:latest"
    assert pod.apps["web"].exec is None


def test_apps_keep_the_order_of_the_file(tmp_path: Path) -> None:
    text = "".join(
        f'[app.{name}]\nrootfs = "/x"\nexec = ["/x"]\n' for name in ("zeta", "alpha", "mid")
    )
    assert list(model.load(write(tmp_path, text)).apps) == ["zeta", "alpha", "mid"]


@pytest.mark.parametrize("example", ["annotated", "demo", "shop"])
def test_the_examples_parse(example: str) -> None:
    pod = model.load(EXAMPLES / f"{example}.toml")
    assert pod.name == example
    assert pod.apps


def test_an_unreadable_manifest(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert str(error_of(missing)) == f"{missing}: cannot read: No such file or directory"
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    assert str(error_of(binary)).startswith(f"{binary}: cannot read: 'utf-8' codec")


def _all_sections() -> dict[str, Section]:
    found: dict[str, Section] = {}

    def add(section: Section) -> None:
        found[section.name] = section
        for sub in section.subsections:
            add(sub)

    add(schema.MANIFEST)
    return found


@pytest.mark.parametrize(
    "section", [s for name, s in _all_sections().items() if name], ids=lambda section: section.name
)
def test_the_key_table_and_the_dataclasses_agree(section: Section) -> None:
    cls = model._CLASSES[section.attribute]
    fields = {f.name for f in dataclasses.fields(cls)} - {"name"}
    assert fields == {k.name for k in section.keys} | {s.attribute for s in section.subsections}


def test_the_manifest_dataclass_agrees_with_the_top_of_the_key_table() -> None:
    fields = {f.name for f in dataclasses.fields(model.Manifest)} - {"name", "path"}
    top = schema.MANIFEST
    assert fields == {k.name for k in top.keys} | {s.attribute for s in top.subsections}


@pytest.mark.parametrize(
    ("network", "warned"),
    [
        ('mode = "host"\nports = ["8080:80"]', True),
        ('mode = "host"', False),
        ('mode = "bridge"\nports = ["8080:80"]', False),
    ],
    ids=["host-with-ports", "host", "bridge-with-ports"],
)
def test_ports_on_the_hosts_network_are_a_warning(network: str, warned: bool) -> None:
    pod = model.parse(f"[network]\n{network}\n" + APP, Path("web.toml"))
    warnings = [str(w) for w in model.warnings(pod)]
    assert warnings == (
        [
            'network.ports: ignored with mode = "host": the apps listen on the '
            'host\'s addresses themselves (remove it, or set mode = "bridge")'
        ]
        if warned
        else []
    )


@pytest.mark.parametrize(
    ("network", "joined"),
    [
        ('mode = "bridge"', ("podmgr",)),
        ('mode = "bridge"\nnetworks = ["back", "front"]', ("back", "front")),
        ('mode = "backend"', ("backend",)),
        ('mode = "backend"\nnetworks = ["front", "backend"]', ("backend", "front")),
        ('mode = "private"', ()),
        ('mode = "host"', ()),
    ],
    ids=["bridge", "bridge-networks", "named", "named-first", "private", "host"],
)
def test_the_networks_a_pod_joins(network: str, joined: tuple[str, ...]) -> None:
    pod = model.parse(f"[network]\n{network}\n" + APP, Path("web.toml"))
    assert pod.network.joined == joined


def test_a_mode_that_is_no_mode_nor_network_name() -> None:
    with pytest.raises(ManifestError) as caught:
        model.parse('[network]\nmode = "Bridge"\n' + APP, Path("web.toml"))
    assert str(caught.value) == (
        "web.toml: network.mode: 'Bridge' is not valid (use one of "
        '"private", "host", "bridge" or a network name)'
    )


def test_the_longest_slice_name_is_fine(tmp_path: Path) -> None:
    # 4 + 1 + 60 * 4 + 2 + 6 = 253 characters.
    path = write(tmp_path, APP, "a" + "-" * 60 + "bc")
    assert len(names.pod_slice(model.load(path).name)) == 253


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("x = " + "[" * 100_000 + "]" * 100_000, "nested too deeply", id="deep-arrays"),
        pytest.param(
            "x = " + "{a = " * 5000 + "1" + "}" * 5000, "nested too deeply", id="deep-inline-tables"
        ),
        pytest.param("x = " + "1" * 5000, "a number has too many digits", id="int-5000-digits"),
    ],
)
def test_what_tomllib_cannot_read_is_one_problem(tmp_path: Path, text: str, message: str) -> None:
    error = error_of(write(tmp_path, text))
    [problem] = error.problems
    assert problem.where == ""
    assert message in problem.message
    assert str(error) == f"{tmp_path}/pod.toml: {problem.message}"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param('"a\\nb" = 1\n' + APP, '"a\\u000ab"', id="key-with-newline"),
        pytest.param('[app."x\\ry"]\nrootfs = "/"\n', 'app."x\\u000dy"', id="app-name-with-cr"),
        pytest.param(
            '[pod]\nannotations = { "a\\u2028" = "x" }\n' + APP,
            'pod.annotations."a\\u2028"',
            id="annotation-with-line-separator",
        ),
        pytest.param(
            '[app.main]\nrootfs = "/"\nexec = ["/bin/true"]\nenvironment = { "A\\u0085" = "x" }\n',
            'app.main.environment."A\\u0085"',
            id="environment-with-next-line",
        ),
    ],
)
def test_a_key_path_is_one_line_whatever_the_key_holds(
    tmp_path: Path, text: str, where: str
) -> None:
    error = error_of(write(tmp_path, text))
    assert [p.where for p in error.problems] == [where]
    assert len(str(error).splitlines()) == 1


@pytest.mark.parametrize(
    ("exec0", "message"),
    [
        pytest.param(
            '/bin/\\"sh', "contains a quote, a backslash or a control character", id="quote"
        ),
        pytest.param("/bin\\\\sh", "contains a quote, a backslash", id="backslash"),
        pytest.param("/bin/s\\u0001h", "a control character", id="control"),
        pytest.param("/bin/", "ends in '/'", id="directory"),
    ],
)
def test_a_program_systemd_refuses_is_refused(tmp_path: Path, exec0: str, message: str) -> None:
    error = error_of(write(tmp_path, APP.replace('"/bin/true"', f'"{exec0}"')))
    [problem] = error.problems
    assert problem.where == "app.main.exec[0]"
    assert message in problem.message


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        pytest.param(
            APP + 'working_directory = "/' + "a" * 3000 + '"\n',
            "app.main.working_directory",
            "has a name of 3000 bytes",
            id="working-dir",
        ),
        pytest.param(APP + "user = 65535\n", "app.main.user", "except 65535", id="user-65535"),
        pytest.param(APP + "user = 4294967295\n", "app.main.user", "out of range", id="user-max"),
        pytest.param(
            '[pod.resources]\nmemory_max = "99999999T"\n' + APP,
            "pod.resources.memory_max",
            "more than systemd counts",
            id="memory-max",
        ),
        pytest.param(
            '[pod]\nstop_timeout = "' + "9" * 300 + 's"\n' + APP,
            "pod.stop_timeout",
            "longer than systemd counts",
            id="stop-timeout-300-digits",
        ),
        pytest.param(
            '[pod.resources]\nmemory_high = "' + "9" * 300 + '"\n' + APP,
            "pod.resources.memory_high",
            "more than systemd counts",
            id="size-300-digits",
        ),
        pytest.param(
            '[pod.resources]\ncpu_quota = "' + "9" * 5000 + '%"\n' + APP,
            "pod.resources.cpu_quota",
            "more than systemd takes",
            id="cpu-quota-5000-digits",
        ),
    ],
)
def test_what_systemd_would_refuse_or_drop_is_refused(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    error = error_of(write(tmp_path, text))
    [problem] = error.problems
    assert problem.where == where
    assert message in problem.message


@pytest.mark.parametrize(
    "unit",
    ["x" * 249 + ".target", "a@b@c.target", "@a.target"],
    ids=["longer-than-255", "two-at-signs", "at-first"],
)
def test_a_unit_name_systemd_refuses_is_refused(tmp_path: Path, unit: str) -> None:
    error = error_of(write(tmp_path, f'[install]\nwanted_by = ["{unit}"]\n' + APP))
    assert [p.where for p in error.problems] == ["install.wanted_by[0]"]


def test_a_long_chain_of_apps_is_no_recursion(tmp_path: Path) -> None:
    # Each app after the one before: the cycle check must not recurse once per app.
    apps = "".join(
        f'[app.a{i}]\nrootfs = "/r"\nexec = ["/bin/true"]\n'
        + (f'after = ["a{i - 1}"]\n' if i else "")
        for i in range(3000)
    )
    assert len(model.load(write(tmp_path, apps)).apps) == 3000
    looped = apps.replace(
        '[app.a0]\nrootfs = "/r"\n', '[app.a0]\nrootfs = "/r"\nafter = ["a2999"]\n'
    )
    [problem] = error_of(write(tmp_path, looped)).problems
    assert problem.where == "app.a0.after"
    assert problem.message.startswith("ordering cycle a0 -> a2999 -> a2998")


def test_a_dotted_name_is_quoted_in_every_key_path(tmp_path: Path) -> None:
    # [app."a.b"]: "app.a.b.user" would name a key "b" of an app "a".
    text = '[app."a.b"]\nrootfs = "/r"\nexec = ["true"]\nafter = ["c.d"]\n'
    assert [str(p) for p in error_of(write(tmp_path, text)).problems] == [
        "app.\"a.b\".exec[0]: 'true' is not an absolute path (give the program's full path "
        "inside the rootfs)",
        'app."a.b".after: no app \'c.d\' in this pod (define [app."c.d"] or fix the name)',
    ]
    [problem] = error_of(
        write(
            tmp_path,
            text.replace('after = ["c.d"]', "user = 65535").replace('"true"', '"/bin/true"'),
        )
    ).problems
    assert problem.where == 'app."a.b".user'


# Isolation levels.
FLY = '[pod]\nisolation = "fly"\n'


@pytest.mark.parametrize(
    ("text", "where", "hint"),
    [
        case(
            "fly-bridge",
            FLY + '[network]\nmode = "bridge"\n' + APP,
            "network.mode",
            'with isolation = "fly" the apps use the host\'s network (remove it, or set it to '
            '"host")',
        ),
        case(
            "fly-private",
            FLY + '[network]\nmode = "private"\n' + APP,
            "network.mode",
            "the host's network",
        ),
        case(
            "fly-network-name",
            FLY + '[network]\nmode = "backend"\n' + APP,
            "network.mode",
            "the host's network",
        ),
        case(
            "fly-ports",
            FLY + '[network]\nmode = "host"\nports = ["8080:80"]\n' + APP,
            "network.ports",
            'the host\'s network and /etc files (remove it, or set isolation = "container")',
        ),
        case(
            "fly-networks",
            FLY + '[network]\nnetworks = ["backend"]\n' + APP,
            "network.networks",
            'set isolation = "container"',
        ),
        case(
            "fly-dns",
            FLY + '[network]\ndns = ["9.9.9.9"]\n' + APP,
            "network.dns",
            "/etc files",
        ),
        case(
            "fly-dns-search",
            FLY + '[network]\ndns_search = ["example.org"]\n' + APP,
            "network.dns_search",
            "/etc files",
        ),
        case(
            "fly-hosts",
            FLY + '[network]\nhosts = { db = "10.0.0.5" }\n' + APP,
            "network.hosts",
            "/etc files",
        ),
        case(
            "fly-hostname",
            '[pod]\nisolation = "fly"\nhostname = "web"\n' + APP,
            "pod.hostname",
            "the host's /etc/hostname",
        ),
        *(
            case(
                f"fly-{key}",
                FLY + APP + f"{key} = {value}\n",
                f"app.main.{key}",
                'with isolation = "fly" the apps have every privilege (remove it, or set '
                'isolation = "container")',
            )
            for key, value in (
                ("capabilities_retain", '["CAP_CHOWN"]'),
                ("capabilities_retain", "[]"),
                ("capabilities_remove", '["CAP_NET_RAW"]'),
                ("no_new_privileges", "true"),
                ("private_users", "true"),
                ("system_call_filter", '["@system-service"]'),
            )
        ),
        case(
            "fly-socket-in-the-pod",
            FLY + APP + '[[app.main.socket]]\nlisten = "8080"\nnamespace = "pod"\n',
            "app.main.socket[0].namespace",
            'with isolation = "fly" the apps use the host\'s network',
        ),
        case(
            "isolation-unknown",
            '[pod]\nisolation = "vm"\n' + APP,
            "pod.isolation",
            '\'vm\' is not valid (use one of "container", "fly")',
        ),
    ],
)
def test_what_fly_cannot_honour_is_refused(
    tmp_path: Path, text: str, where: str, hint: str
) -> None:
    path = write(tmp_path, text)
    [problem] = error_of(path).problems
    assert (problem.where, hint in problem.message) == (where, True), problem


def test_a_fly_pod_is_on_the_hosts_network_and_warned_of() -> None:
    for network in ("", '[network]\nmode = "host"\n'):
        pod = model.parse(FLY + network + APP + "read_only = true\n", Path("kubelet.toml"))
        assert pod.pod.isolation is schema.Isolation.FLY
        assert pod.network.kind is NetworkMode.HOST
        assert [str(w) for w in model.warnings(pod)] == [
            'pod.isolation: "fly" gives up isolation: the apps run in the host\'s namespaces '
            'with every capability, as root can (use "container" unless the apps must manage '
            "the host)"
        ]
    contained = model.parse(APP, Path("web.toml"))
    assert contained.pod.isolation is schema.Isolation.CONTAINER
    assert contained.network.kind is NetworkMode.PRIVATE
    assert model.warnings(contained) == []
