# SPDX-License-Identifier: LGPL-2.1-or-later
"""Network definitions: defaults, bridge names, one-line errors that say what to write,
the built-in default network, and the checks across all networks."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from podmgr.errors import ManifestError, PodmgrError
from podmgr.network import definitions

SUBNET = 'subnet = "10.88.0.0/16"\n'


def write(directory: Path, name: str, text: str) -> Path:
    """Write the network file NAME.toml under ``directory`` and return its path."""
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    path = Path("/etc/podmgr/networks/backend.toml")
    definition = definitions.parse("backend", SUBNET, path)
    assert definition == definitions.Definition(
        name="backend",
        subnet=ipaddress.IPv4Network("10.88.0.0/16"),
        gateway=ipaddress.IPv4Address("10.88.0.1"),
        bridge="pm-backend",
        masquerade=True,
        isolate=False,
        path=path,
    )
    assert definition.where == str(path)


def test_every_key() -> None:
    definition = definitions.parse(
        "backend",
        SUBNET + 'gateway = "10.88.255.254"\n'
        'bridge = "br-back"\nmasquerade = false\nisolate = true\n',
        None,
    )
    assert definition.gateway == ipaddress.IPv4Address("10.88.255.254")
    assert definition.bridge == "br-back"
    assert (definition.masquerade, definition.isolate) == (False, True)


def test_default_network_bridge_is_podmgr0() -> None:
    assert definitions.parse("podmgr", SUBNET, None).bridge == "podmgr0"


@pytest.mark.parametrize(
    ("name", "bridge"),
    [
        pytest.param("a", "pm-a", id="short"),
        pytest.param("twelve-chars", "pm-twelve-chars", id="exactly-15"),
    ],
)
def test_bridge_is_pm_name_while_it_fits(name: str, bridge: str) -> None:
    assert definitions.parse(name, SUBNET, None).bridge == bridge


def test_long_name_gives_short_stable_distinct_bridge() -> None:
    """Names that differ only after the first 12 characters still get distinct bridges:
    cutting the name short would give both the same one."""
    first = definitions.parse("backend-east-1", SUBNET, None).bridge
    second = definitions.parse("backend-east-2", SUBNET, None).bridge
    assert len(first) <= definitions.IFNAMSIZ
    assert len(second) <= definitions.IFNAMSIZ
    assert first.startswith("pm-")
    assert first != second
    assert definitions.parse("backend-east-1", SUBNET, None).bridge == first
    longest = definitions.parse("n" * 63, SUBNET, None).bridge
    assert len(longest) <= definitions.IFNAMSIZ


FILE = "/etc/podmgr/networks/net.toml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", 'subnet: missing (add: subnet = "10.88.0.0/16")', id="missing-subnet"),
        pytest.param(
            'subnet = "10.88.0/x"\n', "subnet: '10.88.0/x' is not an IPv4 subnet: ", id="bad-subnet"
        ),
        pytest.param(
            'subnet = "fd00::/64"\n',
            "subnet: 'fd00::/64' is not an IPv4 subnet: ",
            id="ipv6-subnet",
        ),
        pytest.param(
            'subnet = "10.88.0.1/16"\n',
            "subnet: '10.88.0.1/16' is not an IPv4 subnet: "
            '10.88.0.1/16 has host bits set (write it like "10.87.0.0/16")',
            id="host-bits-set",
        ),
        pytest.param(
            'subnet = "10.0.0.0/7"\n',
            "subnet: '10.0.0.0/7': the prefix length must be 8..30",
            id="prefix-7",
        ),
        pytest.param(
            'subnet = "10.88.0.0/31"\n',
            "subnet: '10.88.0.0/31': the prefix length must be 8..30",
            id="prefix-31",
        ),
        pytest.param(
            SUBNET + 'gateway = "10.89.0.1"\n',
            "gateway: 10.89.0.1 is not a host address "
            "of 10.88.0.0/16 (pick one inside it, or leave it out)",
            id="gateway-outside",
        ),
        pytest.param(
            SUBNET + 'gateway = "10.88.0.0"\n',
            "gateway: 10.88.0.0 is not a host address "
            "of 10.88.0.0/16 (pick one inside it, or leave it out)",
            id="gateway-network-address",
        ),
        pytest.param(
            SUBNET + 'gateway = "10.88.255.255"\n',
            "gateway: 10.88.255.255 is not a host "
            "address of 10.88.0.0/16 (pick one inside it, or leave it out)",
            id="gateway-broadcast-address",
        ),
        pytest.param(
            SUBNET + 'gateway = "fd00::1"\n',
            "gateway: fd00::1 is not a host address of 10.88.0.0/16",
            id="gateway-ipv6",
        ),
        pytest.param(
            SUBNET + 'gateway = "10.88.0.300"\n',
            "gateway: '10.88.0.300' is not an IP address",
            id="gateway-not-an-address",
        ),
        pytest.param(
            SUBNET + 'bridge = "bridge-name-too-long"\n',
            "bridge: 'bridge-name-too-long' is not a valid interface name (use 1-15 letters",
            id="bridge-too-long",
        ),
        pytest.param(
            SUBNET + "masquerade = 1\n",
            "masquerade: expected a boolean like true, got an integer",
            id="masquerade-not-boolean",
        ),
        pytest.param(
            SUBNET + "subnt = 1\n",
            "subnt: unknown key (did you mean subnet?)",
            id="unknown-key-close",
        ),
        pytest.param(
            SUBNET + "colour = 1\n", "colour: unknown key (see podmgr.toml(5)", id="unknown-key"
        ),
        pytest.param(
            'subnet = "10.88.0.0/16\n',
            "line 1, column 23: Illegal character '\\n' (fix the TOML syntax here)",
            id="toml-syntax",
        ),
        pytest.param(
            SUBNET + 'subnet = "10.89.0.0/16"\n',
            "line 2, column 24: this key is already set (set each key once)",
            id="key-set-twice",
        ),
    ],
)
def test_error(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        definitions.parse("net", text, Path(FILE))
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"{FILE}: {message}")


def test_subnet_of_wrong_type() -> None:
    with pytest.raises(ManifestError) as caught:
        definitions.parse("net", "subnet = 10\n", Path(FILE))
    assert str(caught.value) == (
        f'{FILE}: subnet: expected an IPv4 subnet like "10.87.0.0/16", got an integer'
    )


def test_every_problem_is_reported_on_its_own_line() -> None:
    with pytest.raises(ManifestError) as caught:
        definitions.parse("net", "colour = 1\nmasquerade = 1\n", Path(FILE))
    assert str(caught.value).splitlines() == [
        f"{FILE}: colour: unknown key (see podmgr.toml(5) for the keys of this table)",
        f"{FILE}: masquerade: expected a boolean like true, got an integer",
        f'{FILE}: subnet: missing (add: subnet = "10.88.0.0/16")',
    ]


def test_load_reads_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "backend", 'subnet = "10.90.0.0/24"\n')
    definition = definitions.load("backend", tmp_path)
    assert definition.subnet == ipaddress.IPv4Network("10.90.0.0/24")
    assert definition.path == path


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "backend", "")
    with pytest.raises(ManifestError) as caught:
        definitions.load("backend", tmp_path)
    assert str(caught.value) == f'{path}: subnet: missing (add: subnet = "10.88.0.0/16")'


def test_load_undefined_says_how_to_define_it(tmp_path: Path) -> None:
    with pytest.raises(PodmgrError) as caught:
        definitions.load("backend", tmp_path)
    assert str(caught.value) == (
        f"network backend is not defined (create "
        f"{tmp_path}/backend.toml with at least subnet = "
        '"10.88.0.0/16")'
    )


def test_load_default_undefined_says_where_to_create_it() -> None:
    """Without an argument, the file to create is under /etc/podmgr/networks."""
    with pytest.raises(PodmgrError) as caught:
        definitions.load("surely-not-defined-by-anyone-here")
    assert "create /etc/podmgr/networks/surely-not-defined-by-anyone-here.toml" in str(caught.value)


def test_load_of_unreadable_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "backend.toml"
    path.write_bytes(b'subnet = "10.90.0.0/24" # \xff\n')
    with pytest.raises(ManifestError) as caught:
        definitions.load("backend", tmp_path)
    assert str(caught.value).startswith(f"{path}: ")


def test_built_in_default_network(tmp_path: Path) -> None:
    definition = definitions.load("podmgr", tmp_path)
    assert definition == definitions.Definition(
        name="podmgr",
        subnet=ipaddress.IPv4Network("10.87.0.0/16"),
        gateway=ipaddress.IPv4Address("10.87.0.1"),
        bridge="podmgr0",
        masquerade=True,
        isolate=False,
        path=None,
    )
    assert definition.where == "the built-in network podmgr"


def test_file_replaces_built_in_default_network(tmp_path: Path) -> None:
    path = write(tmp_path, "podmgr", 'subnet = "192.168.50.0/24"\nisolate = true\n')
    definition = definitions.load("podmgr", tmp_path)
    assert definition.subnet == ipaddress.IPv4Network("192.168.50.0/24")
    assert definition.bridge == "podmgr0"
    assert definition.isolate
    assert definition.path == path


@pytest.mark.parametrize("exists", [True, False], ids=["empty-directory", "no-directory"])
def test_load_all_without_files_is_the_default_network(tmp_path: Path, exists: bool) -> None:
    directory = tmp_path if exists else tmp_path / "missing"
    assert definitions.load_all(directory) == {"podmgr": definitions.load("podmgr", tmp_path)}


def test_load_all(tmp_path: Path) -> None:
    write(tmp_path, "backend", 'subnet = "10.90.0.0/24"\n')
    write(tmp_path, "podmgr", 'subnet = "10.91.0.0/24"\n')
    write(tmp_path, "Not A Name", 'subnet = "10.87.0.0/16"\n')  # not a network: ignored
    (tmp_path / "notes.txt").write_text("not a network")
    every = definitions.load_all(tmp_path)
    assert sorted(every) == ["backend", "podmgr"]
    assert every["podmgr"].subnet == ipaddress.IPv4Network("10.91.0.0/24")


def test_load_all_passes_errors_on(tmp_path: Path) -> None:
    path = write(tmp_path, "backend", "colour = 1\n" + SUBNET)
    with pytest.raises(ManifestError) as caught:
        definitions.load_all(tmp_path)
    assert str(caught.value).startswith(f"{path}: colour: unknown key")


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        pytest.param(
            'subnet = "10.90.0.0/24"\nbridge = "br0"\n',
            'subnet = "10.91.0.0/24"\nbridge = "br0"\n',
            "{b}: bridge br0 is already the bridge of network a (give it another bridge)",
            id="same-bridge",
        ),
        pytest.param(
            'subnet = "10.90.0.0/24"\n',
            'subnet = "10.90.0.0/24"\n',
            "{b}: subnet 10.90.0.0/24 overlaps 10.90.0.0/24 of network a (pick another)",
            id="same-subnet",
        ),
        pytest.param(
            'subnet = "10.90.0.0/24"\n',
            'subnet = "10.90.0.0/16"\n',
            "{b}: subnet 10.90.0.0/16 overlaps 10.90.0.0/24 of network a (pick another)",
            id="subnet-inside-other",
        ),
        pytest.param(
            'subnet = "10.90.0.0/16"\n',
            'subnet = "10.90.128.0/30"\n',
            "{b}: subnet 10.90.128.0/30 overlaps 10.90.0.0/16 of network a (pick another)",
            id="other-inside-subnet",
        ),
    ],
)
def test_load_all_refuses_clashes(tmp_path: Path, first: str, second: str, message: str) -> None:
    write(tmp_path, "a", first)
    path = write(tmp_path, "b", second)
    with pytest.raises(PodmgrError) as caught:
        definitions.load_all(tmp_path)
    assert str(caught.value) == message.format(b=path)


def test_load_all_accepts_adjacent_subnets(tmp_path: Path) -> None:
    write(tmp_path, "a", 'subnet = "10.90.0.0/25"\n')
    write(tmp_path, "b", 'subnet = "10.90.0.128/25"\n')
    assert sorted(definitions.load_all(tmp_path)) == ["a", "b", "podmgr"]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('subnet = "10.87.1.0/24"\n', id="subnet"),
        pytest.param('subnet = "10.90.0.0/24"\nbridge = "podmgr0"\n', id="bridge"),
    ],
)
def test_clash_with_built_in_network_blames_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "a", text)
    with pytest.raises(PodmgrError) as caught:
        definitions.load_all(tmp_path)
    assert str(caught.value).startswith(f"{path}: ")
