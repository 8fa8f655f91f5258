# SPDX-License-Identifier: LGPL-2.1-or-later
"""Where an app's root file system comes from: a directory, or an image in the store.

A source tells prepare which directories to stack as the read-only lower layers of the
app's overlay, lets the generator read a file of it (/etc/passwd) without ever leaving
it, and gives the defaults an image brings (command, environment, user, working dir).
New kinds of source implement ``Source`` and are chosen in ``source_of``.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from podmgr import hostpaths, values
from podmgr.manifest import schema

if TYPE_CHECKING:  # the image code is loaded only for an app that runs from an image
    from podmgr.image import oci
    from podmgr.image.store import ImageRecord, Store

T = TypeVar("T")

# /etc/passwd and /etc/group of a rootfs are read whole; anything larger is not one.
MAX_READ = 4 << 20


@dataclass(frozen=True)
class Defaults:
    """What a source brings for keys the manifest leaves unset, as the manifest's value
    types parse them: the core never sees an image's raw strings."""

    exec: tuple[str, ...] = ()  # text without NUL; exec[0] is checked with the manifest's
    environment: tuple[tuple[str, str], ...] = ()
    user: str | int | None = None  # None: root
    group: str | int | None = None  # None: the user's group
    working_directory: str | None = None


class BadConfig(Exception):
    """A field of an image config that no unit can carry; ``field`` names it as the
    config does (WorkingDir, Env[2])."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _typed(field: str, value_type: values.ValueType[T], raw: object) -> T:
    try:
        return value_type.parse(raw)
    except values.BadValue as error:
        raise BadConfig(field + error.subpath, str(error)) from None


def image_defaults(config: oci.ImageConfig) -> Defaults:
    """The run settings of an image config, converted at the edge with the manifest's own
    value types; raises BadConfig naming the first field that does not fit."""
    text = values.String()
    command = [
        _typed(f"{name}[{index}]", text, arg)
        for name, args in (("Entrypoint", config.entrypoint), ("Cmd", config.cmd))
        for index, arg in enumerate(args)
    ]
    environment = []
    for index, entry in enumerate(config.env):
        name, equals, value = entry.partition("=")
        if not equals:
            raise BadConfig(f"Env[{index}]", f"{entry!r} is not NAME=value")
        environment.append(
            (_typed(f"Env[{index}]", schema.ENV_NAME, name), _typed(f"Env[{index}]", text, value))
        )
    user: str | int | None = None
    group: str | int | None = None
    if config.user:
        # "user", "uid", "user:group" or "uid:gid", as the OCI image spec has it.
        name, colon, group_name = config.user.partition(":")
        user = _typed("User", values.UserRef("user"), name)
        group = _typed("User", values.UserRef("group"), group_name) if colon else None
    working_directory = None
    if config.working_dir:
        working_directory = _typed("WorkingDir", values.AbsolutePath(), config.working_dir)
    return Defaults(tuple(command), tuple(environment), user, group, working_directory)


class Source(Protocol):
    def describe(self) -> str:
        """How messages name it: a path, or an image name."""
        ...

    def lowerdirs(self) -> list[str]:
        """The overlay's lower layers, top-most first."""
        ...

    def read_file(self, path: str) -> bytes | None:
        """A regular file of the rootfs (``path`` relative to its root), or None if absent."""
        ...

    def defaults(self) -> Defaults:
        """Raises BadConfig when the source's own settings do not fit."""
        ...


# (root, path) -> what DirectorySource.read_file() found there, while reading_once() holds.
_READ: contextvars.ContextVar[dict[tuple[str, str], bytes | None] | None] = contextvars.ContextVar(
    "read", default=None
)


@contextlib.contextmanager
def reading_once() -> Iterator[None]:
    """Read each file of a directory rootfs once inside this block, however many apps run
    from it: the generator reads the same /etc/passwd for each app of each pod, and a
    rootfs does not change while it runs."""
    token = _READ.set({})
    try:
        yield
    finally:
        _READ.reset(token)


@dataclass(frozen=True)
class DirectorySource:
    """An app's rootfs given as a directory of the host (rootfs = "/path")."""

    root: str

    def describe(self) -> str:
        return self.root

    def lowerdirs(self) -> list[str]:
        return [self.root]

    def read_file(self, path: str) -> bytes | None:
        read = _READ.get()
        if read is None:
            return self._read_file(path)
        if (self.root, path) not in read:
            read[self.root, path] = self._read_file(path)
        return read[self.root, path]

    def _read_file(self, path: str) -> bytes | None:
        # The root is taken literally, as prepare takes it: through a link these would be
        # another directory's files, the host's even.
        try:
            fd = hostpaths.open_directory_literally(self.root)
        except hostpaths.LinkInPath as error:
            raise OSError(
                errno.ELOOP,
                f"{error.link} is a symbolic link, which podmgr does not "
                "follow in an app's rootfs (name the directory itself)",
            ) from None
        except FileNotFoundError:
            return None  # not made yet: prepare says so if it is still missing then
        try:
            found = read_beneath(f"/proc/self/fd/{fd}", path)
        finally:
            os.close(fd)
        return found if isinstance(found, bytes) else None

    def defaults(self) -> Defaults:
        return Defaults()


@dataclass(frozen=True)
class StoredImageSource:
    """An app's rootfs made of an image's layers in the store (image = "...")."""

    record: ImageRecord
    config: oci.ImageConfig
    layers: list[str] = field(default_factory=list)  # bottom-most first

    def describe(self) -> str:
        return f"image {self.record.name}"

    def lowerdirs(self) -> list[str]:
        return list(reversed(self.layers))

    def read_file(self, path: str) -> bytes | None:
        """The file as the stacked layers show it: the top-most layer that has it wins;
        a whiteout there, or an opaque directory on the way, hides the lower ones."""
        for layer in reversed(self.layers):
            found = read_beneath(layer, path)
            if found is not _ABSENT:
                return found if isinstance(found, bytes) else None
        return None

    def defaults(self) -> Defaults:
        return image_defaults(self.config)


def stored_image(image: str, store: Store) -> StoredImageSource:
    """The source of an app that runs ``image``; raises NoSuchImage when it is not stored."""
    from podmgr.image import oci  # noqa: PLC0415 -- only apps from an image need it

    record = store.image(image)
    config = oci.parse_config(store.read_blob(record.config))
    return StoredImageSource(record, config, [str(store.layer_path(d)) for d in record.layers])


class _Absent:
    """Not in this layer: look in the next one down."""


_ABSENT = _Absent()
_HIDDEN = None  # a whiteout or an opaque directory: not in any lower layer either


def read_beneath(root: str, path: str) -> bytes | _Absent | None:
    """Read ``root``/``path`` without following any symlink, so a rootfs whose
    /etc/passwd links to the host's is not read through to the host.

    Returns the content; _ABSENT when this layer does not have it; or None when this
    layer hides it from the layers below (a whiteout, an opaque directory on the way, a
    non-directory where a directory should be) or it is not a regular file."""
    parts = [p for p in path.split("/") if p]
    hidden_below = False
    with contextlib.ExitStack() as stack:
        try:
            fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return _ABSENT  # not made yet: prepare says so if it is still missing then
        stack.callback(os.close, fd)
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            flags = os.O_NONBLOCK if last else os.O_DIRECTORY
            try:
                fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | flags, dir_fd=fd)
            except FileNotFoundError:
                return _HIDDEN if hidden_below else _ABSENT
            except OSError as error:
                if error.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENXIO, errno.ENODEV):
                    return _HIDDEN  # a whiteout, a symlink or a file in the way
                raise
            stack.callback(os.close, fd)
            if not last and _is_opaque(fd):
                hidden_below = True
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_READ:
            return _HIDDEN
        return os.read(fd, MAX_READ)


def _is_opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False
