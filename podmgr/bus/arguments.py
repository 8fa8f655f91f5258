# SPDX-License-Identifier: LGPL-2.1-or-later
"""The edge of the service: each argument of a call becomes a typed, checked value.

api.KINDS says what each argument slot holds and how long it may be; CONVERTERS holds,
for each kind, the function that checks a raw D-Bus value and returns the typed value
handlers take (a PodName, a Reference, a Fingerprint, ...).  The size limit is checked
first, before any parsing, so a 100 MB string costs a len() and nothing more.  The CLI
runs the same checks before it calls, so its users get the same one-line message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Self

from podmgr import names
from podmgr.bus import api
from podmgr.errors import InvalidName
from podmgr.image import reference
from podmgr.limits import DURATION_MAX

_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
# A trust prefix: a registry host or a repository path, then repository path components
# (reference.py has the full grammar; the trust store normalizes what passes here).


class Fingerprint(str):
    """A primary key fingerprint, upper-case hex without spaces; constructing one is
    checking it."""

    def __new__(cls, text: object) -> Self:
        if not isinstance(text, str):
            raise InvalidName(f"a fingerprint must be a string, not {type(text).__name__}")
        clean = text.replace(" ", "").upper()
        if not _FINGERPRINT.fullmatch(clean):
            raise InvalidName(
                f"{names.shown(text)} is not a key fingerprint (give the 40 hex "
                "digits podmgr trust list shows)"
            )
        return super().__new__(cls, clean)


def _text(kind: api.Kind, value: object, empty: bool = False) -> str:
    """A string within the kind's limit: checked before anything parses it."""
    if not isinstance(value, str):
        raise InvalidName(f"the {kind.noun} must be a string, not {type(value).__name__}")
    if len(value) > kind.limit:
        raise InvalidName(
            f"the {kind.noun} is {len(value)} characters long (at most {kind.limit} are allowed)"
        )
    if not value and not empty:
        raise InvalidName(f"the {kind.noun} is empty")
    if "\0" in value:
        raise InvalidName(f"the {kind.noun} {names.shown(value)} contains a NUL character")
    return value


def _image(kind: api.Kind, value: object) -> reference.Reference:
    return reference.parse(_text(kind, value))


def _image_or_empty(kind: api.Kind, value: object) -> reference.Reference | None:
    text = _text(kind, value, empty=True)
    return reference.parse(text) if text else None


def _pull(kind: api.Kind, value: object) -> reference.Reference:
    text = _text(kind, value)
    if "://" in text and not text.startswith("docker://"):
        raise InvalidName(
            f"{names.shown(text)}: PullImage fetches from registries (docker://); "
            "ImportImage takes archives and layouts"
        )
    return reference.parse(text.removeprefix("docker://"))


def _manifest(kind: api.Kind, value: object) -> str:
    text = _text(kind, value, empty=True)
    if len(text.encode()) > kind.limit:
        raise InvalidName(f"the {kind.noun} is over the limit of {kind.limit} bytes")
    return text


def _digest(kind: api.Kind, value: object) -> str:
    text = _text(kind, value).lower()
    if not _DIGEST.fullmatch(text):
        raise InvalidName(
            f"{names.shown(text)} is not a sha256 digest (give the 64 hex digits of the "
            "pod's ManifestDigest property)"
        )
    return text


def _prefix(kind: api.Kind, value: object) -> str:
    text = _text(kind, value, empty=True)
    if text:
        # The trust store's own grammar, so that the edge and the store never disagree.
        try:
            reference.normalize_prefix(text)
        except reference.BadReference as error:
            raise InvalidName(str(error)) from None
    return text


def _armored(kind: api.Kind, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise InvalidName(f"the {kind.noun} must be bytes, not {type(value).__name__}")
    if len(value) > kind.limit:
        raise InvalidName(
            f"the {kind.noun} is {len(value)} bytes long (at most {kind.limit} are allowed)"
        )
    return bytes(value)


def _app_or_empty(kind: api.Kind, value: object) -> names.AppName | None:
    text = _text(kind, value, empty=True)
    return names.AppName(text) if text else None


def _command(kind: api.Kind, value: object) -> tuple[str, ...]:
    """A command line as its words: never joined into a string, so no word can become two.
    The total is checked before any word is looked at."""
    if not isinstance(value, list | tuple):
        raise InvalidName(f"the {kind.noun} must be a list of strings, not {type(value).__name__}")
    if len(value) > api.COMMAND_WORDS:
        raise InvalidName(
            f"the {kind.noun} has {len(value)} words (at most {api.COMMAND_WORDS} are allowed)"
        )
    if not all(isinstance(word, str) for word in value):
        raise InvalidName(f"each word of the {kind.noun} must be a string")
    total = sum(len(word) for word in value)
    if total > kind.limit:
        raise InvalidName(
            f"the {kind.noun} is {total} characters long (at most {kind.limit} are allowed)"
        )
    for word in value:
        if "\0" in word:
            raise InvalidName(f"the {kind.noun} word {names.shown(word)} contains a NUL character")
    if value and not value[0]:
        raise InvalidName(f"the {kind.noun} starts with an empty word (name a program)")
    return tuple(value)


_TERM = re.compile(r"[A-Za-z0-9._+-]*")


def _term(kind: api.Kind, value: object) -> str:
    text = _text(kind, value, empty=True)
    if not _TERM.fullmatch(text):
        raise InvalidName(
            f"{names.shown(text)} is not a terminal type (use letters, digits, '.', '_', "
            "'+', '-', as in xterm-256color)"
        )
    return text


def _fd(kind: api.Kind, value: object) -> int:
    """The index of a passed file descriptor; the handler takes it (dispatch.Call)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidName(f"a {kind.noun} must be of type h, not {type(value).__name__}")
    if not 0 <= value < kind.limit:
        raise InvalidName(
            f"{value} is not the index of a passed {kind.noun} (at most {kind.limit - 1})"
        )
    return value


def _flag(kind: api.Kind, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidName(f"the {kind.noun} must be a boolean, not {type(value).__name__}")
    return value


def _duration(kind: api.Kind, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidName(f"the {kind.noun} must be microseconds from 0, not {value!r}"[:200])
    if value > DURATION_MAX:
        raise InvalidName(
            f"the {kind.noun} is longer than systemd counts (at most {DURATION_MAX} microseconds)"
        )
    return value


CONVERTERS: dict[str, Callable[[api.Kind, Any], object]] = {
    "pod": lambda kind, value: names.PodName(_text(kind, value, empty=True)),
    "app": lambda kind, value: names.AppName(_text(kind, value, empty=True)),
    "network": lambda kind, value: names.NetworkName(_text(kind, value, empty=True)),
    "image": _image,
    "image-or-empty": _image_or_empty,
    "pull": _pull,
    "source": _text,
    "manifest": _manifest,
    "prefix": _prefix,
    "fingerprint": lambda kind, value: Fingerprint(_text(kind, value, empty=True)),
    "armored": _armored,
    "digest": _digest,
    "app-or-empty": _app_or_empty,
    "command": _command,
    "term": _term,
    "fd": _fd,
    "flag": _flag,
    "duration": _duration,
}


def convert(kind: str, value: object) -> object:
    """``value`` as the typed value of ``kind``; InvalidName (or BadReference) if it is not
    one."""
    return CONVERTERS[kind](api.KINDS[kind], value)


def convert_all(method: api.Method, values: Sequence[object]) -> list[object]:
    return [convert(arg.kind, value) for arg, value in zip(method.in_args, values, strict=True)]


def check_fds(method: api.Method, values: Sequence[object], passed: int) -> None:
    """Each ``h`` argument names a file descriptor passed with the call (several may
    name the same one)."""
    for arg, index in zip(method.in_args, values, strict=True):
        if arg.kind == "fd" and not (isinstance(index, int) and 0 <= index < passed):
            raise InvalidName(
                f"the {arg.name} file descriptor argument {index} names none of the "
                f"{passed} passed with the call"
            )


def check_table(interfaces: Sequence[api.Interface] = api.INTERFACES) -> None:
    """Every argument of every method has a kind this module converts (checked when the
    service starts, and by the tests)."""
    for interface in interfaces:
        for method in interface.methods:
            for arg in method.in_args:
                if arg.kind not in CONVERTERS or arg.kind not in api.KINDS:
                    raise RuntimeError(
                        f"{interface.name}.{method.name}: argument {arg.name} "
                        f"has no known kind ({arg.kind!r})"
                    )
