# SPDX-License-Identifier: LGPL-2.1-or-later
"""What each app of a manifest runs, once its source is known.

The manifest's keys win; an image fills in what they leave unset (command, environment,
user, working directory), as a container engine does.  What an image brings is checked
with the manifest's own value types (rootfs.image_defaults()), and the whole command line
and each environment entry must fit in a line systemd reads.  User and group names are
looked up in the app's own /etc/passwd and /etc/group.  The generator calls this, so an
image must be in the store when the units are generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from podmgr.errors import ManifestError, PodmgrError, Problem
from podmgr.generator import users
from podmgr.generator.rootfs import (
    BadConfig,
    DirectorySource,
    Source,
    StoredImageSource,
    stored_image,
)
from podmgr.generator.unitfile import LONG_LINE_MAX, command_line, fits_line, quote
from podmgr.generator.users import Credentials
from podmgr.manifest.model import App, Manifest
from podmgr.values import BadValue, Executable, toml_key

if TYPE_CHECKING:  # the image store is opened only for an app that runs from an image
    from podmgr.image.store import Store


@dataclass(frozen=True)
class ResolvedApp:
    """An app as it runs: its source, command, environment and credentials settled."""

    name: str
    lowerdirs: tuple[str, ...]  # top-most first
    exec: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]  # the image's, then the manifest's
    working_directory: str
    creds: Credentials
    image: str | None  # the image's name and manifest digest, which prepare re-checks
    image_digest: str | None


def resolve(manifest: Manifest, store: Store | None = None) -> dict[str, ResolvedApp]:
    """Every app of ``manifest``; raises ManifestError listing each app that cannot run.
    An app that runs from an image finds it in ``store`` (by default, the image store)."""
    problems = []
    resolved = {}
    for app in manifest.apps.values():
        try:
            resolved[app.name] = _resolve(app, store)
        except AppProblem as error:
            problems.append(Problem(f"app.{toml_key(app.name)}.{error.key}", str(error)))
    if problems:
        raise ManifestError(manifest.path, problems)
    return resolved


class AppProblem(Exception):
    """Why an app cannot run; ``key`` is the manifest key to fix."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _resolve(app: App, store: Store | None) -> ResolvedApp:
    if app.rootfs is not None:
        return resolve_app(app, DirectorySource(app.rootfs))
    assert app.image is not None
    # Deferred: the image code is loaded only when a pod has an app that runs from an image.
    from podmgr.image.store import NoSuchImage, Store  # noqa: PLC0415

    try:
        source = stored_image(app.image, store or Store())
    except NoSuchImage:
        raise AppProblem(
            "image",
            f"{app.image} is not in the image store (podmgr image pull "
            "or import it, then systemctl daemon-reload)",
        ) from None
    except (PodmgrError, OSError) as error:
        raise AppProblem("image", f"{app.image}: {error}") from None
    return resolve_app(app, source)


def resolve_app(app: App, source: Source) -> ResolvedApp:
    """``app`` as it runs from ``source``; raises AppProblem naming the key at fault."""
    try:
        defaults = source.defaults()
    except BadConfig as error:
        raise AppProblem("image", f"{source.describe()} config {error.field} {error}") from None
    command = app.exec if app.exec is not None else defaults.exec
    if not command:
        raise AppProblem(
            "exec",
            f'{source.describe()} has no entrypoint or command (add: exec = ["/path/to/program"])',
        )
    if not command[0].startswith("/"):
        raise AppProblem(
            "exec",
            f"the command {command[0]!r} of {source.describe()} is not "
            "an absolute path (add exec with the program's full path)",
        )
    try:
        Executable().parse(command[0])
    except BadValue as error:
        raise AppProblem("exec", f"the command of {source.describe()}: {error}") from None
    if not fits_line("ExecStart", command_line(command)):
        raise AppProblem(
            "exec",
            f"the command line is longer than systemd reads a line "
            f"({LONG_LINE_MAX} bytes; pass long data in a file)",
        )
    environment = [*defaults.environment, *app.environment.items()]
    for name, value in environment:
        if not fits_line("Environment", quote(f"{name}={value}")):
            raise AppProblem(
                "environment",
                f"{name} is longer than systemd reads a line "
                f"({LONG_LINE_MAX} bytes; pass long data in a file)",
            )
    user, group = app.user, app.group
    if user is None:
        user = 0 if defaults.user is None else defaults.user
        group = group if group is not None else defaults.group
    try:
        creds = users.lookup(user, group, source)
    except users.UnknownName as error:
        raise AppProblem(error.key, str(error)) from None
    except OSError as error:
        raise AppProblem(
            "rootfs" if app.rootfs else "image",
            f"cannot read {source.describe()}: {error.strerror}",
        ) from None
    image = source if isinstance(source, StoredImageSource) else None
    return ResolvedApp(
        app.name,
        tuple(source.lowerdirs()),
        tuple(command),
        tuple(environment),
        app.working_directory or defaults.working_directory or "/",
        creds,
        image.record.name if image else None,
        image.record.manifest if image else None,
    )
