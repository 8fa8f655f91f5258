# SPDX-License-Identifier: LGPL-2.1-or-later
"""What each app of a manifest runs, once its source is known.

The manifest's keys win; an image fills in what they leave unset (command, environment,
user, working directory), as a container engine does.  User and group names are looked
up in the app's own /etc/passwd and /etc/group.  The generator calls this, so an image
must be in the store when the units are generated.
"""

from __future__ import annotations

from dataclasses import dataclass

from podmgr import users
from podmgr.errors import ManifestError, PodmgrError, Problem
from podmgr.manifest import App, Manifest
from podmgr.rootfs import ImageSource, Source, source_of
from podmgr.store import NoSuchImage, Store
from podmgr.users import Credentials


@dataclass(frozen=True)
class ResolvedApp:
    name: str
    lowerdirs: tuple[str, ...]  # top-most first
    exec: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]  # the image's, then the manifest's
    working_directory: str
    creds: Credentials
    image: str | None  # the image's name and manifest digest, which prepare re-checks
    image_digest: str | None


def resolve(manifest: Manifest, store: Store) -> dict[str, ResolvedApp]:
    """Every app of ``manifest``; raises ManifestError listing each app that cannot run."""
    problems = []
    resolved = {}
    for app in manifest.apps.values():
        try:
            resolved[app.name] = _resolve(app, store)
        except AppProblem as error:
            problems.append(Problem(f"app.{app.name}.{error.key}", str(error)))
    if problems:
        raise ManifestError(manifest.path, problems)
    return resolved


class AppProblem(Exception):
    """Why an app cannot run; ``key`` is the manifest key to fix."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _resolve(app: App, store: Store) -> ResolvedApp:
    try:
        source: Source = source_of(app, store)
    except NoSuchImage:
        raise AppProblem("image", f"{app.image} is not in the image store (podmgr image pull "
                          "or import it, then systemctl daemon-reload)") from None
    except (PodmgrError, OSError) as error:
        raise AppProblem("image", f"{app.image}: {error}") from None
    return resolve_app(app, source)


def resolve_app(app: App, source: Source) -> ResolvedApp:
    """``app`` as it runs from ``source``; raises AppProblem naming the key at fault."""
    defaults = source.defaults()
    command = app.exec if app.exec is not None else defaults.exec
    if not command:
        raise AppProblem("exec", f"{source.describe()} has no entrypoint or command (add: "
                          'exec = ["/path/to/program"])')
    if not command[0].startswith("/"):
        raise AppProblem("exec", f"the command {command[0]!r} of {source.describe()} is not "
                          "an absolute path (add exec with the program's full path)")
    environment = [tuple(e.split("=", 1)) for e in defaults.environment if "=" in e]
    environment += list(app.environment.items())
    user, group = app.user, app.group
    if user is None:
        user, image_group = _split_user(defaults.user)
        group = group if group is not None else image_group
    try:
        creds = users.lookup(user, group, source)
    except users.UnknownName as error:
        raise AppProblem(error.key, str(error)) from None
    except OSError as error:
        raise AppProblem("rootfs" if app.rootfs else "image",
                          f"cannot read {source.describe()}: {error.strerror}") from None
    image = source if isinstance(source, ImageSource) else None
    return ResolvedApp(
        app.name, tuple(source.lowerdirs()), tuple(command),
        tuple((k, v) for k, v in environment),
        app.working_directory or defaults.working_directory or "/", creds,
        image.record.name if image else None, image.record.manifest if image else None)


def _split_user(spec: str) -> tuple[str | int, str | int | None]:
    """An image config's User: "", "name", "uid", "name:group" or "uid:gid"."""
    if not spec:
        return 0, None
    user, _, group = spec.partition(":")

    def number_or_name(text: str) -> str | int:
        return int(text) if text.isdigit() else text

    return number_or_name(user), number_or_name(group) if group else None
