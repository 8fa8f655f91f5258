# SPDX-License-Identifier: LGPL-2.1-or-later
"""Sockets of apps, without a bed: socket addresses read and written back, socket unit
names, and how every generated socket unit ties to its app and pod."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import systemd_syntax
import tomlwrite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_manifest import NASTY
from test_units import Rootfs
from test_verify_corpus import POD, manifests

from podmgr import names
from podmgr.generator import resolve, units
from podmgr.limits import CONTROL_CHARACTERS
from podmgr.manifest import model, sockets
from podmgr.manifest.listen import Listen, ListenAddress, Taken
from podmgr.manifest.socketkeys import SocketNamespace
from podmgr.values import BadValue

EVERY_V4 = "0.0.0.0"  # noqa: S104 -- an address to parse, never bound
# What a unit name may be (systemd's unit_name_is_valid()): an instance of a template.
UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\-]+@[A-Za-z0-9:_.\\-]+\.socket")

ADDRESSES = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["", EVERY_V4, "::", "::1", "127.0.0.1", "::ffff:127.0.0.1", "1::"]),
)
PORTS = st.integers(-1, 70000)
RAW_LISTEN = st.one_of(
    NASTY,
    st.text(max_size=12),
    PORTS,
    PORTS.map(str),
    st.tuples(ADDRESSES, PORTS).map(
        lambda a: f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"
    ),
    st.text(max_size=120).map(lambda t: "/run/" + t),
    st.booleans(),
    st.floats(),
)


@settings(max_examples=500)
@given(RAW_LISTEN)
def test_a_socket_address_is_refused_in_one_line_or_reads_back_the_same(raw: object) -> None:
    try:
        listen = ListenAddress().parse(raw)
    except BadValue as error:
        message = str(error)
    else:
        # What the unit says (str) is what was meant: read again, it is the same address.
        assert ListenAddress().parse(str(listen)) == listen
        assert 1 <= listen.port <= 65535 or 0 < len(listen.path.encode()) <= 107
        return
    assert message
    assert not CONTROL_CHARACTERS.search(message)


LISTENS = st.one_of(
    st.builds(Listen, path=st.sampled_from(["/run/a.sock", "/run/b.sock"])),
    st.builds(
        Listen,
        address=st.sampled_from(["", EVERY_V4, "::", "::1", "127.0.0.1"]),
        port=st.sampled_from([80, 81]),
    ),
)


@given(LISTENS, LISTENS)
def test_overlapping_is_symmetric(one: Listen, other: Listen) -> None:
    assert one.overlaps(other) == other.overlaps(one)
    assert one.overlaps(one)


@given(st.lists(LISTENS, max_size=8))
def test_taken_addresses_find_what_overlaps_as_comparing_each_does(listens: list[Listen]) -> None:
    taken = Taken()
    for index, listen in enumerate(listens):
        found = taken.overlapped(listen)
        earlier = [str(i) for i in range(index) if listen.overlaps(listens[i])]
        assert (found is None) == (not earlier)
        assert found is None or found in earlier
        taken.take(listen, str(index))


def test_many_sockets_are_checked(tmp_path: Path) -> None:
    # The generator runs at boot: the overlap index, not pairs, keeps 20000 sockets cheap.
    sockets = "".join(
        f'[[app.main.socket]]\nlisten = "127.0.{n // 250}.{n % 250 + 1}:80"\n' for n in range(20000)
    )
    path = tmp_path / "many.toml"
    path.write_text('[app.main]\nrootfs = "/srv"\nexec = ["/bin/true"]\n' + sockets)
    assert len(model.load(path).apps["main"].sockets) == 20000


def test_which_addresses_overlap() -> None:
    def overlap(one: str, other: str) -> bool:
        parse = ListenAddress().parse
        return parse(one).overlaps(parse(other))

    assert overlap("80", "127.0.0.1:80")  # "80" is [::], which takes IPv4 too
    assert overlap("[::]:80", "127.0.0.1:80")
    assert overlap("0.0.0.0:80", "127.0.0.1:80")
    assert not overlap("0.0.0.0:80", "[::1]:80")
    assert not overlap("127.0.0.1:80", "127.0.0.2:80")
    assert not overlap("80", "81")
    assert not overlap("/run/a.sock", "80")
    assert overlap("[::ffff:127.0.0.1]:80", "127.0.0.1:80")


def test_socket_unit_names_are_unambiguous_and_valid() -> None:
    assert names.socket_unit("shop", "web", "http") == "podsocket@shop:web:http.socket"
    splits = [("x", "y", "z-a"), ("x", "y-z", "a"), ("x-y", "z", "a")]
    assert len({names.socket_unit(*split) for split in splits}) == len(splits)
    longest = names.socket_unit("p" * 63, "a" * 63, "s" * 63)
    assert UNIT_NAME.fullmatch(longest)
    assert len(longest) <= names.UNIT_NAME_MAX


def _by_key(found: list[systemd_syntax.Setting], section: str, key: str) -> list[str]:
    return [s.value for s in found if (s.section, s.key) == (section, key)]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(manifests(), POD)
def test_every_socket_unit_ties_to_its_app_and_pod(table: dict[str, Any], pod: str) -> None:
    parsed = model.parse(tomlwrite.document(table), Path(f"/etc/podmgr/pods/{pod}.toml"))
    apps = {
        app.name: resolve.resolve_app(app, Rootfs(app.rootfs or "")) for app in parsed.apps.values()
    }
    outputs = units.render(parsed, apps)
    files = {o.path: o.text for o in outputs if isinstance(o, units.GeneratedFile)}
    links = {o.path: o.target for o in outputs if isinstance(o, units.Symlink)}
    for app in parsed.apps.values():
        expected = list(
            dict.fromkeys(
                names.socket_unit(pod, app.name, sockets.socket_name(app, s)) for s in app.sockets
            )
        )
        found = systemd_syntax.settings(files[names.app_unit(pod, app.name)])
        assert " ".join(_by_key(found, "Service", "Sockets")).split() == expected
        assert " ".join(_by_key(found, "Unit", "Requires")).split() == expected
        for socket in app.sockets:
            name = names.socket_unit(pod, app.name, sockets.socket_name(app, socket))
            unit = systemd_syntax.settings(files[name])
            assert _by_key(unit, "Socket", "Service") == [names.app_unit(pod, app.name)]
            in_pod = socket.namespace is SocketNamespace.POD
            netns = [f"/run/podmgr/pods/{pod}/ns/net"] if in_pod else []
            assert _by_key(unit, "Socket", "NetworkNamespacePath") == netns
            assert _by_key(unit, "Unit", "BindsTo") == _by_key(unit, "Unit", "After")
            assert _by_key(unit, "Unit", "BindsTo") == ([names.pod_unit(pod)] if in_pod else [])
            assert _by_key(unit, "Unit", "DefaultDependencies") == (["no"] if in_pod else [])
            # Activated: listening from boot, outliving the pod; else it goes with the pod.
            link = f"sockets.target.wants/{name}"
            assert (links.get(link) == f"../{name}") is socket.activate
            part_of = [] if socket.activate or in_pod else [names.pod_unit(pod)]
            assert _by_key(unit, "Unit", "PartOf") == part_of
