# SPDX-License-Identifier: LGPL-2.1-or-later
"""Manifest parsing: every error names the file, the key and what to write instead."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from podmgr import manifest, schema, tables
from podmgr.errors import ManifestError, Problem
from podmgr.schema import NetworkMode, Ready, Restart, VolumeType

ROOT = Path(__file__).resolve().parent.parent
APP = '[app.main]\nrootfs = "/srv/rootfs"\nexec = ["/bin/true"]\n'


def parse(text: str, name: str = "pod.toml") -> manifest.Manifest:
    return manifest.parse(textwrap.dedent(text), Path("/etc/podmgr/pods") / name)


def problems(text: str, name: str = "pod.toml") -> list[Problem]:
    with pytest.raises(ManifestError) as error:
        parse(text, name)
    return error.value.problems


def only_problem(text: str, name: str = "pod.toml") -> Problem:
    [problem] = problems(text, name)
    return problem


# (TOML, key path, a fragment of the message that tells what to do)
CASES = [
    # syntax
    ("[app.main\n", "line 1, column 10", "fix the TOML syntax"),
    (APP + APP, "line 4, column 10", "names of tables must be unique"),
    ("version = 1\nversion = 1\n" + APP, "line 2, column 12", "set each key once"),
    ('x = "unterminated\n', "line 1, column 18", "fix the TOML syntax"),
    # unknown keys at every level, with suggestions
    ("versio = 1\n" + APP, "versio", "did you mean version?"),
    ("[pod]\nhostnme = 'x'\n" + APP, "pod.hostnme", "did you mean hostname?"),
    ("[pod.resources]\nmemory = '1G'\n" + APP, "pod.resources.memory",
     "did you mean memory_max?"),
    ("[network]\npublish = []\n" + APP, "network.publish", "see podmgr.toml(5)"),
    ("[install]\nwanted = []\n" + APP, "install.wanted", "did you mean wanted_by?"),
    ("[volume.v]\ntype = 'empty'\nsize_limit = '1M'\n" + APP, "volume.v.size_limit",
     "see podmgr.toml(5)"),
    (APP + "command = ['/x']\n", "app.main.command", "see podmgr.toml(5)"),
    (APP + "memory_max = '1G'\n", "app.main.memory_max",
     "did you mean memory_max in [app.main.resources]?"),
    (APP + "[app.main.resources]\ncpus = 2\n", "app.main.resources.cpus",
     "see podmgr.toml(5)"),
    ("[volume.v]\ntype = 'empty'\n" + APP + "[[app.main.mount]]\nvolume = 'v'\n"
     "path = '/v'\nreadonly = true\n", "app.main.mount[0].readonly",
     "did you mean read_only?"),
    ("[apps.main]\nrootfs = '/x'\n", "apps", "did you mean app?"),
    # types
    ("version = 2\n" + APP, "version", "use 1..1"),
    ("version = '1'\n" + APP, "version", "expected a schema version like 1, got a string"),
    ("[pod]\nhostname = 'bad host'\n" + APP, "pod.hostname", "use letters, digits"),
    ("[pod]\nhostname = 3\n" + APP, "pod.hostname", "got an integer"),
    ("[pod]\nrestart = 'sometimes'\n" + APP, "pod.restart", 'use one of "no", "on-success"'),
    ("[pod]\nstop_timeout = '3 parsecs'\n" + APP, "pod.stop_timeout", "use 30s, 5min"),
    ("[pod]\nstop_timeout = true\n" + APP, "pod.stop_timeout", 'like "30s", got a boolean'),
    ("[pod]\nannotations = 'x'\n" + APP, "pod.annotations", "got a string"),
    ("[pod]\nannotations = { 'bad key!' = 'x' }\n" + APP, "pod.annotations.bad key!",
     "use letters, digits"),
    ("[pod]\nannotations = { k = 1 }\n" + APP, "pod.annotations.k", 'quote it: k = "1"'),
    ("[pod.resources]\nmemory_max = '12X'\n" + APP, "pod.resources.memory_max",
     "is not a size (use 512M, 2G)"),
    ("[pod.resources]\nmemory_high = 0\n" + APP, "pod.resources.memory_high",
     "must be positive"),
    ("[pod.resources]\nmemory_max = []\n" + APP, "pod.resources.memory_max",
     'like "512M", got an array'),
    ("[pod.resources]\ncpu_weight = 0\n" + APP, "pod.resources.cpu_weight", "use 1..10000"),
    ("[pod.resources]\ncpu_quota = 150\n" + APP, "pod.resources.cpu_quota",
     'use "50%"; 200% is two CPUs'),
    ("[pod.resources]\ntasks_max = 1.5\n" + APP, "pod.resources.tasks_max", "got a float"),
    ("[network]\nmode = 'overlay'\n" + APP, "network.mode",
     'use one of "private", "host", "bridge"'),
    ("[network]\nmode = 'bridge'\nports = ['80']\n" + APP, "network.ports[0]",
     "write it as [HOST_IP:]HOST_PORT:POD_PORT[/tcp|/udp]"),
    ("[network]\nmode = 'bridge'\nports = ['70000:80']\n" + APP, "network.ports[0]",
     "ports are 1..65535"),
    ("[network]\nmode = 'bridge'\nports = ['1.2.3:80:80']\n" + APP, "network.ports[0]",
     "is not an IPv4 address"),
    ("[network]\nmode = 'bridge'\nports = ['80:80', '80:81/tcp']\n" + APP, "network.ports[1]",
     "published twice"),
    ("[network]\nports = ['80:80']\n" + APP, "network.ports",
     'a private network cannot be reached from the host (set mode = "bridge")'),
    ("[network]\nnetworks = ['backend']\n" + APP, "network.networks",
     'only a bridged pod joins networks (set mode = "bridge")'),
    ("[network]\nmode = 'bridge'\nnetworks = ['Bad']\n" + APP, "network.networks[0]",
     "use 1-63 characters"),
    ("[network]\ndns = ['nine']\n" + APP, "network.dns[0]", 'write it like "9.9.9.9"'),
    ("[network]\nhosts = { db = 'nowhere' }\n" + APP, "network.hosts.db",
     'write it like "10.0.0.5"'),
    ("[install]\nwanted_by = 'multi-user.target'\n" + APP, "install.wanted_by",
     "got a string"),
    ("[install]\nwanted_by = ['multi-user']\n" + APP, "install.wanted_by[0]",
     'use a unit name like "multi-user.target"'),
    ("[install]\nrequired_by = ['a.target', 'a.target']\n" + APP, "install.required_by[1]",
     "listed twice (list it once)"),
    ("[volume.v]\ntype = 'nfs'\n" + APP, "volume.v.type", 'use one of "host", "empty"'),
    ("[volume.v]\ntype = 'host'\nsource = 'relative'\n" + APP, "volume.v.source",
     "start it with /"),
    ("[volume.v]\ntype = 'host'\nsource = '/a/../b'\n" + APP, "volume.v.source",
     "write the path without it"),
    ("[volume.v]\ntype = 'host'\nsource = '/a:b'\n" + APP, "volume.v.source",
     "use a symlink without them"),
    ("[volume.v]\ntype = 'host'\nsource = '/a b'\n" + APP, "volume.v.source",
     "use a symlink without them"),
    ("[volume.v]\ntype = 'empty'\nmode = 755\n" + APP, "volume.v.mode",
     'write it as a string, e.g. "0750"'),
    ("[volume.v]\ntype = 'empty'\nmode = '0999'\n" + APP, "volume.v.mode", "octal mode"),
    ("[volume.v]\ntype = 'empty'\nuid = -1\n" + APP, "volume.v.uid", "out of range"),
    ("[volume.v]\ntype = 'empty'\nread_only = 'yes'\n" + APP, "volume.v.read_only",
     "expected a boolean like true, got a string"),
    (APP.replace('["/bin/true"]', '"/bin/true"'), "app.main.exec",
     'expected an array of strings like [...], got a string'),
    (APP.replace('["/bin/true"]', '["/bin/sleep", 3]'), "app.main.exec[1]",
     'expected a string like "text", got an integer'),
    (APP + "environment = { 'A-B' = '1' }\n", "app.main.environment.A-B",
     "use letters, digits and '_'"),
    (APP + "environment = { A = 1 }\n", "app.main.environment.A", 'quote it: A = "1"'),
    (APP + "environment_files = ['env']\n", "app.main.environment_files[0]",
     "start it with /"),
    (APP + "working_directory = 'srv'\n", "app.main.working_directory", "start it with /"),
    (APP + "user = 'bad user'\n", "app.main.user", 'use a number or a name like "www-data"'),
    (APP + "user = -5\n", "app.main.user", "out of range"),
    (APP + "group = true\n", "app.main.group", "use a number or a name"),
    (APP + "restart = 'yes'\n", "app.main.restart", 'use one of "no"'),
    (APP + "ready = 'socket'\n", "app.main.ready", 'use one of "started", "notify"'),
    (APP + "after = ['Bad']\n", "app.main.after[0]", "use 1-63 characters"),
    (APP + "capabilities_retain = ['CAP_FLY']\n", "app.main.capabilities_retain[0]",
     "see capabilities(7)"),
    (APP + "capabilities_remove = ['NET_RAW', 'CAP_NET_RAW']\n",
     "app.main.capabilities_remove[1]", "listed twice"),
    (APP + "system_call_filter = ['@nonsense']\n", "app.main.system_call_filter[0]",
     "see systemd-analyze syscall-filter"),
    (APP + "system_call_filter = ['rm -rf']\n", "app.main.system_call_filter[0]",
     '"~@privileged"'),
    (APP + "private_users = 1\n", "app.main.private_users", "got an integer"),
    (APP + "[[app.main.mount]]\nvolume = 'v'\npath = 'rel'\n[volume.v]\ntype = 'empty'\n",
     "app.main.mount[0].path", "start it with /"),
    # tables and values in each other's place
    ("pod = 'x'\n" + APP, "pod", "expected a [pod] table, got a string"),
    ("app = 3\n", "app", "expected [app.NAME] tables, got an integer"),
    ("app.main = 'x'\n", "app.main", "expected a [app.main] table, got a string"),
    (APP + "[app.main.mount]\nvolume = 'v'\n", "app.main.mount",
     "expected [[app.main.mount]] tables, got a table"),
    # names
    ("[app.Main]\nrootfs = '/x'\nexec = ['/x']\n", "app.Main", "use 1-63 characters"),
    ("[volume._v]\ntype = 'empty'\n" + APP, "volume._v", "starting with a letter or digit"),
    # required keys
    ("[app.main]\nexec = ['/bin/true']\n", "app.main",
     'set either rootfs = "/path" or image = "registry.example.org/app:1.0"'),
    ("[app.main]\nrootfs = '/srv'\nimage = 'busybox'\nexec = ['/bin/true']\n", "app.main",
     "exactly one of them"),
    ("[app.main]\nrootfs = '/srv'\n", "app.main.exec",
     'add: exec = ["/bin/httpd", "-f"]; only an image brings its own command'),
    ("[app.main]\nimage = 'Busybox'\n", "app.main.image", "is not a repository name"),
    ("[volume.v]\nsource = '/srv'\n" + APP, "volume.v.type", 'add: type = "empty"'),
    ("[volume.v]\ntype = 'empty'\n" + APP + "[[app.main.mount]]\npath = '/v'\n",
     "app.main.mount[0].volume", 'add: volume = "data"'),
    ("[volume.v]\ntype = 'empty'\n" + APP + "[[app.main.mount]]\nvolume = 'v'\n",
     "app.main.mount[0].path", 'add: path = "/var/lib/data"'),
    # between values
    ("[pod]\nhostname = 'x'\n", "app", "add an [app.NAME] table"),
    ("[volume.v]\ntype = 'host'\n" + APP, "volume.v.source",
     'missing (add: source = "/srv/data")'),
    ("[volume.v]\ntype = 'empty'\nsize = '1M'\n" + APP, "volume.v.size",
     'only applies to type = "tmpfs" (remove it)'),
    ("[volume.v]\ntype = 'tmpfs'\nsource = '/srv'\n" + APP, "volume.v.source",
     'only applies to type = "host" (remove it)'),
    ("[volume.v]\ntype = 'host'\nsource = '/srv'\nmode = '0700'\n" + APP, "volume.v.mode",
     'only applies to type = "empty" or "tmpfs"'),
    (APP + "[[app.main.mount]]\nvolume = 'nope'\npath = '/v'\n", "app.main.mount[0].volume",
     "define [volume.nope] or fix the name"),
    ("[volume.v]\ntype = 'empty'\n" + APP + "[[app.main.mount]]\nvolume = 'v'\npath = '/'\n",
     "app.main.mount[0].path", "pick a directory such as /data"),
    ("[volume.v]\ntype = 'empty'\n" + APP + "[[app.main.mount]]\nvolume = 'v'\npath = '/v'\n"
     "[[app.main.mount]]\nvolume = 'v'\npath = '/v/'\n", "app.main.mount[1].path",
     "already a mount point of this app"),
    (APP.replace('["/bin/true"]', "[]"), "app.main.exec", "add the command"),
    (APP.replace('["/bin/true"]', '["true"]'), "app.main.exec[0]",
     "give the program's full path inside the rootfs"),
    (APP + "after = ['main']\n", "app.main.after", "cannot start after itself"),
    (APP + "after = ['db']\n", "app.main.after", "define [app.db] or fix the name"),
]


@pytest.mark.parametrize(("text", "where", "hint"), CASES,
                         ids=[f"{i:02}-{case[1]}" for i, case in enumerate(CASES)])
def test_each_error_names_the_key_and_the_fix(text: str, where: str, hint: str) -> None:
    problem = only_problem(text)
    assert problem.where == where
    assert hint in problem.message


def test_error_lines_are_file_key_message() -> None:
    with pytest.raises(ManifestError) as error:
        parse("[pod]\nhostnme = 'x'\n" + APP, "shop.toml")
    assert str(error.value) == \
        "/etc/podmgr/pods/shop.toml: pod.hostnme: unknown key (did you mean hostname?)"
    assert error.value.code == "ManifestInvalid"


@pytest.mark.parametrize(("name", "fragment"), [
    ("Shop.toml", "'Shop' is not a valid pod name (rename the file"),
    ("shop.yaml", "must end in .toml"),
    (".toml", "'' is not a valid pod name"),
])
def test_the_file_name_is_the_pod_name(name: str, fragment: str) -> None:
    assert any(fragment in str(problem) for problem in problems(APP, name))


def test_every_problem_is_reported_not_just_the_first() -> None:
    found = problems("""
        [pod]
        hostnme = "x"
        stop_timeout = "3 parsecs"
        [app.main]
        rootfs = "relative"
        exec = ["/bin/true"]
        user = "bad user"
    """)
    assert [p.where for p in found] == ["pod.hostnme", "pod.stop_timeout", "app.main.rootfs",
                                        "app.main.user"]


def test_an_image_app_needs_no_command() -> None:
    pod = parse("[app.web]\nimage = 'busybox'\n")
    assert pod.apps["web"].image == "docker.io/library/busybox:latest"
    assert pod.apps["web"].exec is None


def test_problems_between_values_are_all_reported() -> None:
    found = problems(APP + "after = ['x', 'main']\n[volume.v]\ntype = 'host'\n")
    assert {p.where for p in found} == {"app.main.after", "volume.v.source"}


@pytest.mark.parametrize("apps", [
    {"a": ["b"], "b": ["a"]},
    {"a": ["c"], "b": ["a"], "c": ["b"]},
], ids=["two", "three"])
def test_ordering_cycles_are_refused(apps: dict[str, list[str]]) -> None:
    text = "".join(f'[app.{name}]\nrootfs = "/x"\nexec = ["/x"]\nafter = {after!r}\n'
                   for name, after in apps.items())
    problem = only_problem(text)
    assert problem.where.endswith(".after")
    assert "ordering cycle" in problem.message
    assert problem.message.count("->") == len(apps)


FULL = """
    version = 1

    [pod]
    hostname = "shop-host"
    annotations = { "org.example.owner" = "ops" }
    restart = "on-failure"
    stop_timeout = "1min 30s"

    [pod.resources]
    memory_max = "1G"
    memory_high = "1.5M"
    cpu_weight = 200
    cpu_quota = "150%"
    tasks_max = 100
    io_weight = 50

    [network]
    mode = "host"

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
    size = 1024

    [app.db]
    rootfs = "/srv/db"
    exec = ["/bin/db", "--port", "5432"]

    [app.web]
    rootfs = "/srv/web"
    exec = ["/bin/httpd", "-f"]
    environment = { LANG = "C.UTF-8" }
    environment_files = ["/etc/shop/web.env"]
    working_directory = "/srv"
    user = "www-data"
    group = 33
    restart = "always"
    ready = "notify"
    after = ["db"]
    capabilities_retain = ["net_bind_service", "CAP_CHOWN"]
    capabilities_remove = ["CAP_CHOWN"]
    no_new_privileges = true
    read_only = true
    system_call_filter = ["@system-service", "~@privileged"]
    private_users = true

    [app.web.resources]
    memory_max = 1048576
    tasks_max = 10

    [[app.web.mount]]
    volume = "data"
    path = "/var/lib/data"

    [[app.web.mount]]
    volume = "conf"
    path = "/etc/shop"
    read_only = true
"""


def test_a_manifest_with_every_key() -> None:
    pod = parse(FULL, "shop.toml")
    assert pod.name == "shop"
    assert pod.hostname == "shop-host"
    assert pod.pod.stop_timeout == 90 * 10**6
    assert pod.pod.restart is Restart.ON_FAILURE
    assert pod.pod.annotations == {"org.example.owner": "ops"}
    assert pod.pod.resources == manifest.Resources(
        memory_max=1 << 30, memory_high=int(1.5 * (1 << 20)), cpu_weight=200, cpu_quota=150,
        tasks_max=100, io_weight=50)
    assert pod.network.mode is NetworkMode.HOST
    assert pod.install == manifest.Install(("multi-user.target",), ("pods.target",))
    assert pod.volumes["data"] == manifest.Volume("data", VolumeType.EMPTY, None, False,
                                                  0o750, 33, 34, None)
    assert pod.volumes["conf"].source == "/etc/shop"  # normalized
    assert pod.volumes["scratch"].size == 1024
    assert list(pod.apps) == ["db", "web"]  # the file's order
    web = pod.apps["web"]
    assert web.exec == ("/bin/httpd", "-f")
    assert web.user == "www-data"
    assert web.group == 33
    assert web.ready is Ready.NOTIFY
    assert pod.restart_of(web) is Restart.ALWAYS
    assert pod.restart_of(pod.apps["db"]) is Restart.ON_FAILURE
    assert web.capabilities_retain == ("CAP_NET_BIND_SERVICE", "CAP_CHOWN")
    assert web.resources.memory_max == 1 << 20
    assert web.mounts == (manifest.Mount("data", "/var/lib/data", False),
                          manifest.Mount("conf", "/etc/shop", True))


def test_network_settings() -> None:
    pod = parse("""
        [network]
        mode = "bridge"
        ports = ["8080:80", "127.0.0.1:5353:53/udp"]
        dns = ["9.9.9.9"]
        hosts = { "db.example.org" = "10.0.0.5" }
    """ + APP)
    assert pod.network.joined == ("podmgr",)
    assert [str(p) for p in pod.network.ports] == ["8080:80/tcp", "127.0.0.1:5353:53/udp"]
    assert parse(APP).network.joined == ()


def test_defaults() -> None:
    pod = parse(APP, "min.toml")
    assert pod.hostname == "min"
    assert pod.version == 1
    assert pod.network.mode is NetworkMode.PRIVATE
    assert pod.pod.restart is Restart.NO
    assert pod.pod.stop_timeout == 90 * 10**6
    assert pod.install.wanted_by == ()
    app = pod.apps["main"]
    assert (app.user, app.group, app.working_directory) == (None, None, None)
    assert app.ready is Ready.STARTED
    assert app.capabilities_retain is None  # the runtime's default set
    assert app.resources == manifest.Resources(None, None, None, None, None, None)


@pytest.mark.parametrize("example", ["annotated", "demo", "shop"])
def test_the_examples_parse(example: str) -> None:
    path = ROOT / "examples" / f"{example}.toml"
    assert manifest.parse(path.read_text(), path).apps


def test_load_reports_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as error:
        manifest.load(tmp_path / "missing.toml")
    assert "cannot read: No such file or directory" in str(error.value)
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ManifestError):
        manifest.load(tmp_path / "binary.toml")


def _sections(section: tables.Section) -> list[tables.Section]:
    return [section, *(s for sub in section.subsections for s in _sections(sub))]


@pytest.mark.parametrize("section", _sections(schema.MANIFEST)[1:],
                         ids=lambda s: s.name)
def test_the_key_table_and_the_dataclasses_agree(section: tables.Section) -> None:
    cls = manifest._CLASSES[section.attribute]
    fields = {f.name for f in dataclasses.fields(cls)} - {"name"}
    assert fields == {k.name for k in section.keys} | {s.attribute for s in section.subsections}
