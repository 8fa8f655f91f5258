# SPDX-License-Identifier: LGPL-2.1-or-later
"""Where a socket listens: a port, an IP literal and port, or a unix socket's path.

``listen`` of ``[[app.NAME.socket]]`` becomes a ``Listen``, written back in the one form
systemd's socket_address_parse() reads as meant (systemd.socket(5) ListenStream=): "8080"
for every address (IPv6 and IPv4), "127.0.0.1:8080", "[::1]:8080", "/run/web.sock".
Anything else systemd would also take (a host name is refused, "eth0" binds a device,
"@name" is an abstract socket, "vsock:" a VM socket) is refused here, so that what the
unit says is what the manifest meant.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from podmgr.values import AbsolutePath, BadValue, ValueType, shown

# sockaddr_un's sun_path holds 108 bytes with the terminating NUL, and systemd refuses a
# longer path (socket_address_parse()) rather than cut it.
SUN_PATH_MAX = 107

# Decimal without sign, leading zero or white space: systemd's port parser would also read
# "+80", " 80" and "080", and what it makes of them is not what one reads.
_PORT = r"[1-9][0-9]{0,4}"
_FORMS = re.compile(
    rf"(?P<port>{_PORT})"
    rf"|(?P<v4>[0-9.]+):(?P<v4port>{_PORT})"
    rf"|\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<v6port>{_PORT})"
)
HINT = 'write "8080", "127.0.0.1:8080", "[::1]:8080" or an absolute path like "/run/web.sock"'


@dataclass(frozen=True)
class Listen:
    """A socket address: ``path`` for a unix socket, else ``port`` on ``address`` ("" for
    every address of the namespace)."""

    path: str = ""
    address: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.path:
            return self.path
        if not self.address:
            return str(self.port)
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"

    @property
    def wildcard(self) -> bool:
        """Every address of its families: "8080", "0.0.0.0:8080" or "[::]:8080"."""
        return not self.path and (
            not self.address or ipaddress.ip_address(self.address).is_unspecified
        )

    @property
    def families(self) -> frozenset[int]:
        """The IP versions it takes connections of.  "8080" and "[::]:8080" are IPv6
        sockets that take IPv4 too (systemd's BindIPv6Only=default, and the kernel's
        net.ipv6.bindv6only=0); any other IPv6 address takes IPv6 only."""
        if self.path:
            return frozenset()
        if self.address and self.compared.version == 4:
            return frozenset({4})
        return frozenset({4, 6}) if self.wildcard else frozenset({6})

    @property
    def compared(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The address as the kernel compares it: "::ffff:127.0.0.1" is 127.0.0.1."""
        ip = ipaddress.ip_address(self.address)
        return (ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else ip

    def overlaps(self, other: Listen) -> bool:
        """Whether binding both fails (EADDRINUSE): the same path, or the same port of an
        IP version both take, on the same address or a wildcard on either side.  Assumes
        the same type and namespace."""
        if self.path or other.path:
            return self.path == other.path
        if self.port != other.port or not self.families & other.families:
            return False
        return self.wildcard or other.wildcard or self.compared == other.compared


class Taken:
    """The addresses taken in one place (a file system, or one type of socket in one
    network namespace), each with a label (its key path): ``overlapped`` finds one that
    a new address overlaps in constant time, as Listen.overlaps would by comparing it
    with each, so that a manifest of many sockets is checked in linear time."""

    def __init__(self) -> None:
        self._paths: dict[str, str] = {}
        self._addresses: dict[tuple[int, object], str] = {}  # (port, address as compared)
        self._any: dict[tuple[int, int], str] = {}  # (port, family): the first taken
        self._wildcards: dict[tuple[int, int], str] = {}  # (port, family): a wildcard

    def overlapped(self, listen: Listen) -> str | None:
        """The label of a taken address that ``listen`` overlaps, if any."""
        if listen.path:
            return self._paths.get(listen.path)
        taken = self._any if listen.wildcard else self._wildcards
        for family in sorted(listen.families):
            if label := taken.get((listen.port, family)):
                return label
        if listen.wildcard:
            return None
        return self._addresses.get((listen.port, listen.compared))

    def take(self, listen: Listen, label: str) -> None:
        if listen.path:
            self._paths.setdefault(listen.path, label)
            return
        for family in listen.families:
            self._any.setdefault((listen.port, family), label)
            if listen.wildcard:
                self._wildcards.setdefault((listen.port, family), label)
        if not listen.wildcard:
            self._addresses.setdefault((listen.port, listen.compared), label)


class ListenAddress(ValueType[Listen]):
    doc = "socket address"

    def parse(self, raw: object) -> Listen:
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)  # listen = 8080 can only mean the port
        self.expect(raw, str, '"8080"')
        assert isinstance(raw, str)
        if raw.startswith("/"):
            return self._path(raw)
        match = _FORMS.fullmatch(raw)
        if not match:
            raise BadValue(f"{shown(raw)} is not a port, IP address and port or path ({HINT})")
        port = int(match["port"] or match["v4port"] or match["v6port"])
        if port > 65535:
            raise BadValue(f"{shown(raw)}: a port is 1..65535 ({HINT})")
        address = ""
        try:
            if match["v4"]:
                address = str(ipaddress.IPv4Address(match["v4"]))
            elif match["v6"]:
                address = str(ipaddress.IPv6Address(match["v6"]))
        except ValueError:
            what = "IPv4" if match["v4"] else "IPv6"
            raise BadValue(f"{shown(raw)} does not hold an {what} address ({HINT})") from None
        return Listen(address=address, port=port)

    def _path(self, raw: str) -> Listen:
        path = AbsolutePath("socket path").parse(raw)
        if path != raw:
            # systemd binds the path as written; say which one that is.
            raise BadValue(f"{shown(raw)} is not a normalized path (write {shown(path)})")
        if path == "/" or raw.endswith("/"):
            raise BadValue(f"{shown(raw)} names a directory, not a socket ({HINT})")
        if (size := len(path.encode())) > SUN_PATH_MAX:
            raise BadValue(
                f"{shown(raw)} is {size} bytes long; a unix socket's path is at most "
                f"{SUN_PATH_MAX} bytes (pick a shorter one, e.g. under /run)"
            )
        return Listen(path=path)
