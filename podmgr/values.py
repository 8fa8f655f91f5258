# SPDX-License-Identifier: LGPL-2.1-or-later
"""Value types of manifest keys: how a raw TOML value becomes a typed one.

Each type parses one raw value (as ``tomllib`` returns it) or raises ``BadValue``
whose message says what was wrong and what to write instead.  The key table in
``schema.py`` pairs keys with these types; ``doc`` is the name the man page shows.
"""

from __future__ import annotations

import enum
import ipaddress
import posixpath
import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from podmgr.limits import (
    CONTROL_CHARACTERS,
    ID_HINT,
    NAME_MAX,
    PATH_MAX,
    TEXT_HINT,
    is_text,
    is_valid_id,
)
from podmgr.syscalls import SYSCALL_NAMES

T = TypeVar("T")
E = TypeVar("E", bound=enum.StrEnum)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(key: str) -> str:
    """A key as TOML writes it in a path: bare when it can be, else a quoted string with its
    control characters escaped, so that a key path is always one line."""
    if _BARE_KEY.fullmatch(key):
        return key
    return '"' + "".join(_toml_char(c) for c in key) + '"'


def _toml_char(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if CONTROL_CHARACTERS.match(char) or not char.isprintable():
        code = ord(char)
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return char


class BadValue(ValueError):
    """A raw value that does not fit its key.

    The message is what follows the key path; ``subpath`` extends the path into an array
    (``[2]``) or table (``.NAME``) when the problem is in one element.
    """

    def __init__(self, message: str, subpath: str = "") -> None:
        super().__init__(message)
        self.subpath = subpath


def toml_type(raw: object) -> str:
    """The TOML name of a value's type, for messages."""
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(raw), "a date/time")


class ValueType(Generic[T]):
    """Base: ``parse`` a raw TOML value into ``T``."""

    doc = "value"

    def parse(self, raw: object) -> T:
        raise NotImplementedError

    def expect(self, raw: object, kind: type, example: str) -> None:
        # bool is an int subclass in Python, not in TOML.
        if not isinstance(raw, kind) or (kind is int and isinstance(raw, bool)):
            # "an IPv4 subnet", "an integer", but "a uid", "a unit name".
            article = "an" if self.doc[0].lower() in "aeio" else "a"
            raise BadValue(f"expected {article} {self.doc} like {example}, got {toml_type(raw)}")


class String(ValueType[str]):
    def __init__(self, pattern: str | None = None, hint: str = "", doc: str = "string") -> None:
        self.pattern = re.compile(pattern) if pattern else None
        self.hint = hint
        self.doc = doc

    def parse(self, raw: object) -> str:
        self.expect(raw, str, '"text"')
        assert isinstance(raw, str)
        if "\0" in raw:
            raise BadValue("must not contain NUL characters")
        if not is_text(raw):
            raise BadValue(f"{shown(raw)} holds a character systemd refuses ({TEXT_HINT})")
        if self.pattern and not self.pattern.fullmatch(raw):
            raise BadValue(f"{shown(raw)} is not a valid {self.doc} ({self.hint})")
        return raw


class Boolean(ValueType[bool]):
    doc = "boolean"

    def parse(self, raw: object) -> bool:
        self.expect(raw, bool, "true")
        assert isinstance(raw, bool)
        return raw


class Integer(ValueType[int]):
    def __init__(self, minimum: int, maximum: int, doc: str = "integer") -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.doc = doc

    def parse(self, raw: object) -> int:
        self.expect(raw, int, str(self.minimum))
        assert isinstance(raw, int)
        if not self.minimum <= raw <= self.maximum:
            if self.minimum == self.maximum:
                raise BadValue(f"{raw} is not supported (only {self.minimum} is)")
            raise BadValue(f"{raw} is out of range (use {self.minimum}..{self.maximum})")
        return raw


class Choice(ValueType[E]):
    """One of a closed set, kept as a ``StrEnum``."""

    def __init__(self, choices: type[E]) -> None:
        self.choices = choices
        self.doc = "one of " + ", ".join(f'"{c.value}"' for c in choices)

    def parse(self, raw: object) -> E:
        if not isinstance(raw, str):
            # Not expect(): "one of ..." takes no article, and the quoted choices show the form.
            raise BadValue(f"expected {self.doc}, got {toml_type(raw)}")
        try:
            return self.choices(raw)
        except ValueError:
            raise BadValue(f"{shown(raw)} is not valid (use {self.doc})") from None


class ChoiceOr(ValueType[E | str]):
    """One of a closed set, or else a value of another type (a name, say)."""

    def __init__(self, choices: type[E], other: ValueType[str]) -> None:
        self.choice = Choice(choices)
        self.other = other
        self.doc = f"{self.choice.doc} or a {other.doc}"

    def parse(self, raw: object) -> E | str:
        try:
            return self.choice.parse(raw)
        except BadValue:
            if not isinstance(raw, str):
                raise BadValue(f"expected {self.doc}, got {toml_type(raw)}") from None
        try:
            return self.other.parse(raw)
        except BadValue:
            raise BadValue(f"{shown(raw)} is not valid (use {self.doc})") from None


def shown(raw: object) -> str:
    """A value for a message, cut short: a number of a million digits is not repeated."""
    return _cut(repr(raw))


def _cut(text: str) -> str:
    return text if len(text) <= 40 else text[:30] + "..." + text[-6:]


def check_path_length(path: str) -> None:
    """Raise BadValue unless systemd takes ``path`` as a path (path_is_valid())."""
    size = len(path.encode())
    if size >= PATH_MAX:
        raise BadValue(
            f"{shown(path)} is {size} bytes long (systemd takes paths of at most "
            f"{PATH_MAX - 1} bytes)"
        )
    if size <= NAME_MAX:
        return  # no name in it can be longer than the whole
    if (longest := max(len(part.encode()) for part in path.split("/"))) > NAME_MAX:
        raise BadValue(
            f"{shown(path)} has a name of {longest} bytes (systemd takes at most "
            f"{NAME_MAX} bytes between slashes)"
        )


# What AbsolutePath refuses besides control characters; what Executable refuses.
_PATH_REFUSED = re.compile(r"[\s:,\\\"']")
_QUOTES = re.compile(r"[\\\"']")


class AbsolutePath(ValueType[str]):
    """A normalized absolute path.

    ``:`` and white space are refused because systemd's BindPaths= and overlayfs' lowerdir=
    use them as separators; refusing them is simpler and safer than quoting.  Control
    characters are refused because a unit file has no way to write them in a path.
    """

    def __init__(self, doc: str = "absolute path") -> None:
        self.doc = doc

    def parse(self, raw: object) -> str:
        self.expect(raw, str, '"/srv/data"')
        assert isinstance(raw, str)
        if not raw.startswith("/"):
            raise BadValue(f"{shown(raw)} is not an absolute path (start it with /)")
        if _PATH_REFUSED.search(raw) or CONTROL_CHARACTERS.search(raw):
            raise BadValue(
                f"{shown(raw)} contains white space, a control character, a quote, "
                "':', ',' or '\\' (rename the path)"
            )
        if not is_text(raw):
            raise BadValue(
                f"{shown(raw)} holds a character systemd refuses (rename the path; {TEXT_HINT})"
            )
        if ".." in raw.split("/"):
            raise BadValue(f"{shown(raw)} contains '..' (write the path without it)")
        # normpath keeps a leading "//" (POSIX leaves its meaning open); on Linux it is "/",
        # and "//" must compare equal to "/" and "//v" to "/v".
        path = "/" + posixpath.normpath(raw).lstrip("/")
        check_path_length(path)
        return path


class Executable(ValueType[str]):
    """The program of a command line (exec[0]): what systemd takes as ExecStart='s
    executable (config_parse_exec(): an absolute path that is no directory, free of quotes,
    backslashes and control characters), and without a "$"."""

    doc = "absolute path of a program"

    def parse(self, raw: object) -> str:
        self.expect(raw, str, '"/bin/httpd"')
        assert isinstance(raw, str)
        hint = "give the program's full path inside the rootfs"
        if not raw.startswith("/"):
            raise BadValue(f"{shown(raw)} is not an absolute path ({hint})")
        if _QUOTES.search(raw) or CONTROL_CHARACTERS.search(raw) or not is_text(raw):
            raise BadValue(
                f"{shown(raw)} contains a quote, a backslash or a control "
                "character, which systemd refuses in a program's path (rename the "
                "program or run it through a symlink)"
            )
        if "$" in raw:
            # systemd runs the path as written but expands variables in argv[0]: no way of
            # writing it gives the program its own path.
            raise BadValue(
                f"{shown(raw)} contains '$', which systemd would expand in the "
                "program's argv[0] (rename the program or run it through a symlink)"
            )
        if raw.endswith("/") or posixpath.basename(raw) in (".", ".."):
            raise BadValue(
                f"{shown(raw)} ends in '/', '.' or '..', so it names a directory ({hint})"
            )
        check_path_length(raw)
        return raw


class Mode(ValueType[int]):
    """Permission bits as chmod(1) takes them; the fourth digit sets the sticky, setgid
    and setuid bits ("1777" for a directory everyone shares)."""

    doc = "octal mode"

    def parse(self, raw: object) -> int:
        if isinstance(raw, str) and re.fullmatch(r"[0-7]?[0-7]{3}", raw):
            return int(raw, 8)
        raise BadValue(f'{shown(raw)} is not an octal mode (write it as a string, e.g. "0750")')


# User and group names as podmgr looks them up in a rootfs: POSIX's portable names, as
# useradd(8) makes them (systemd's strict rule, valid_user_group_name()).
USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


class UserRef(ValueType[str | int]):
    """A user or group: a number, or a name looked up in the app's own rootfs."""

    def __init__(self, doc: str) -> None:
        self.doc = doc

    def parse(self, raw: object) -> str | int:
        number = raw
        # ASCII digits make a number, range checked like one; not str.isdigit(), which is also
        # true of "\u00b2" (int() refuses it).  Over ten digits is out of range, so those skip
        # int(), which refuses strings of over 4300 digits.
        if isinstance(raw, str) and re.fullmatch(r"[0-9]+", raw):
            number = int(raw) if len(raw.lstrip("0")) <= 10 else 2**32
        if isinstance(number, int) and not isinstance(number, bool):
            if is_valid_id(number):
                return number
            raise BadValue(f"{shown(raw)} is out of range ({ID_HINT})")
        if isinstance(raw, str) and USER_NAME.fullmatch(raw):
            return raw
        raise BadValue(f'{shown(raw)} is not a {self.doc} (use a number or a name like "www-data")')


class Address(ValueType[str]):
    """An IPv4 or IPv6 address, normalized."""

    def __init__(self, doc: str = "IP address") -> None:
        self.doc = doc

    def parse(self, raw: object) -> str:
        self.expect(raw, str, '"10.0.0.1"')
        assert isinstance(raw, str)
        try:
            return str(ipaddress.ip_address(raw))
        except ValueError:
            raise BadValue(f'{shown(raw)} is not an IP address (write it like "9.9.9.9")') from None


@dataclass(frozen=True)
class Port:
    """A published port: host address (or "" for all) and port, pod port, protocol."""

    host_ip: str
    host_port: int
    pod_port: int
    protocol: str

    def __str__(self) -> str:
        host = f"{self.host_ip}:" if self.host_ip else ""
        return f"{host}{self.host_port}:{self.pod_port}/{self.protocol}"


_PORT = re.compile(
    r"(?:(?P<ip>[0-9.]+):)?(?P<host>\d{1,5}):(?P<pod>\d{1,5})"
    r"(?:/(?P<proto>tcp|udp))?"
)


class PortSpec(ValueType[Port]):
    doc = "port mapping"

    def parse(self, raw: object) -> Port:
        self.expect(raw, str, '"8080:80/tcp"')
        assert isinstance(raw, str)
        match = _PORT.fullmatch(raw)
        hint = 'write it as [HOST_IP:]HOST_PORT:POD_PORT[/tcp|/udp], e.g. "8080:80/tcp"'
        if not match:
            raise BadValue(f"{shown(raw)} is not a port mapping ({hint})")
        ports = int(match["host"]), int(match["pod"])
        if not all(1 <= port <= 65535 for port in ports):
            raise BadValue(f"{shown(raw)}: ports are 1..65535 ({hint})")
        host_ip = match["ip"] or ""
        if host_ip:
            try:
                host_ip = str(ipaddress.IPv4Address(host_ip))
            except ValueError:
                raise BadValue(
                    f"{shown(raw)}: {host_ip!r} is not an IPv4 address ({hint})"
                ) from None
        return Port(host_ip, ports[0], ports[1], match["proto"] or "tcp")


def plural(noun: str) -> str:
    """The English plural of a type's doc, for "array of ...": capabilities, prefixes."""
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", noun):
        return noun + "es"
    return noun + "s"


class ListOf(ValueType[tuple[T, ...]]):
    def __init__(self, item: ValueType[T], unique: bool = True) -> None:
        self.item = item
        self.unique = unique
        self.doc = f"array of {plural(item.doc)}"

    def parse(self, raw: object) -> tuple[T, ...]:
        self.expect(raw, list, "[...]")
        assert isinstance(raw, list)
        items = []
        for index, element in enumerate(raw):
            try:
                items.append(self.item.parse(element))
            except BadValue as error:
                raise BadValue(str(error), f"[{index}]{error.subpath}") from None
        if self.unique and len(set(items)) != len(items):
            index = next(i for i, item in enumerate(items) if items.index(item) != i)
            raise BadValue(f"{items[index]!r} is listed twice (list it once)", f"[{index}]")
        return tuple(items)


class MapOf(ValueType[dict[str, str]]):
    """A table of string keys to string values (environment, annotations)."""

    def __init__(self, key: String, doc: str = "table of strings") -> None:
        self.key = key
        self.doc = doc

    def parse(self, raw: object) -> dict[str, str]:
        self.expect(raw, dict, '{ KEY = "value" }')
        assert isinstance(raw, dict)
        out = {}
        for name, value in raw.items():
            try:
                self._check_entry(name, value)
            except BadValue as error:
                raise BadValue(str(error), "." + toml_key(name)) from None
            out[name] = value
        return out

    def _check_entry(self, name: str, value: object) -> None:
        """Raise BadValue for an entry that does not fit; its key path is the caller's."""
        self.key.parse(name)
        if not isinstance(value, str):
            # As TOML writes it: true, not Python's True.
            text = str(value).lower() if isinstance(value, bool) else _cut(str(value))
            raise BadValue(
                f'expected a string, got {toml_type(value)} (quote it: {name} = "{text}")'
            )
        if "\0" in value:
            raise BadValue("must not contain NUL characters")
        if not is_text(value):
            raise BadValue(f"{shown(value)} holds a character systemd refuses ({TEXT_HINT})")


CAPABILITIES = frozenset(
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE".split()
)


class Capability(ValueType[str]):
    doc = "capability"

    def parse(self, raw: object) -> str:
        self.expect(raw, str, '"CAP_NET_BIND_SERVICE"')
        assert isinstance(raw, str)
        name = raw.upper().removeprefix("CAP_")
        if name not in CAPABILITIES:
            raise BadValue(
                f"{shown(raw)} is not a capability (see capabilities(7), "
                'e.g. "CAP_NET_BIND_SERVICE")'
            )
        return "CAP_" + name


# The groups systemd 252 knows (systemd-analyze syscall-filter).
SYSCALL_GROUPS = frozenset(
    "default aio basic-io chown clock cpu-emulation debug file-system io-event ipc keyring "
    "memlock module mount network-io obsolete pkey privileged process raw-io reboot "
    "resources setuid signal swap sync system-service timer known".split()
)


class SyscallFilter(ValueType[str]):
    """A SystemCallFilter= entry: ``@group`` or a system call name; ``~`` denies it."""

    doc = "system call filter entry"

    def parse(self, raw: object) -> str:
        self.expect(raw, str, '"@system-service"')
        assert isinstance(raw, str)
        name = raw.removeprefix("~")
        if name.startswith("@"):
            if name[1:] not in SYSCALL_GROUPS:
                raise BadValue(
                    f"{shown(raw)} is not a system call group "
                    '(see systemd-analyze syscall-filter, e.g. "@system-service")'
                )
        elif name not in SYSCALL_NAMES:
            raise BadValue(
                f"{shown(raw)} is not a system call name systemd knows, nor an "
                "@group (see systemd-analyze syscall-filter; e.g. "
                '"@system-service", "~@privileged", "mkdir")'
            )
        return raw


class Subnet(ValueType[ipaddress.IPv4Network]):
    """An IPv4 subnet in CIDR notation, from /8 to /30 (a network needs room for a
    gateway and at least one pod)."""

    doc = "IPv4 subnet"

    def parse(self, raw: object) -> ipaddress.IPv4Network:
        self.expect(raw, str, '"10.87.0.0/16"')
        assert isinstance(raw, str)
        try:
            subnet = ipaddress.IPv4Network(raw)
        except ValueError as error:
            raise BadValue(
                f'{shown(raw)} is not an IPv4 subnet: {error} (write it like "10.87.0.0/16")'
            ) from None
        if not 8 <= subnet.prefixlen <= 30:
            raise BadValue(f"{shown(raw)}: the prefix length must be 8..30")
        return subnet
