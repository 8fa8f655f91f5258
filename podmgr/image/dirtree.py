# SPDX-License-Identifier: LGPL-2.1-or-later
"""Directories of an image layer, walked without following symlinks, with bounded fds.

A layer may be of any shape: tens of thousands of directories side by side, or
thousands nested in one another.  Nothing here recurses or holds an fd per directory:

- ``Tree`` keeps the fds of the most recently used directories (an LRU of ``capacity``
  entries) and reaches any other by opening one component after another from the
  nearest one it holds, each with O_NOFOLLOW, closing each step behind it;
- ``remove`` deletes a directory with all its contents iteratively, going back up
  through "..", which in a tree we made ourselves is always the directory we came from.

Directory times are set when a directory's fd is closed (evicted or at the end), since
creating entries in a directory changes its modification time.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import OrderedDict

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Subdirectory names that ``remove`` remembers at once, over all levels.
_PENDING = 4096


class Blocked(Exception):
    """A component of a path is a symlink or not a directory."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class _Held:
    __slots__ = ("fd", "times")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        info = os.fstat(fd)
        self.times = (info.st_atime_ns, info.st_mtime_ns)


def _open_directory(parent_fd: int, name: str, path: str) -> int:
    try:
        return os.open(name, DIRECTORY, dir_fd=parent_fd)
    except OSError as error:
        if error.errno in (errno.ENOTDIR, errno.ELOOP):
            raise Blocked(path) from None
        raise


def _open_child(parent_fd: int, name: str, path: str, held: bool, create: bool) -> int:
    """Open (made if missing and ``create``, as tar does) directory ``name`` in
    ``parent_fd``.  A parent that is not ``held`` gets its times back at once: no
    eviction will restore them."""
    if not create:
        return _open_directory(parent_fd, name, path)
    with contextlib.suppress(FileNotFoundError):
        return _open_directory(parent_fd, name, path)
    times = None if held else os.fstat(parent_fd)
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent_fd)
    if times is not None:
        os.utime(parent_fd, ns=(times.st_atime_ns, times.st_mtime_ns))
    return _open_directory(parent_fd, name, path)


class Tree:
    """Directory fds below ``root_fd`` by path ("a/b"; "" is the root itself)."""

    def __init__(self, root_fd: int, capacity: int = 64) -> None:
        self.root_fd = root_fd
        self.capacity = max(3, capacity)
        self._held: OrderedDict[str, _Held] = OrderedDict()

    def directory(self, path: str, create: bool = True) -> int:
        """The fd of directory ``path``, made (with its parents) where missing unless not
        ``create`` (then FileNotFoundError).  At most ``capacity`` fds stay open, the least
        recently used closed first: the fd stays valid while fewer than ``capacity`` other
        directories are opened (each call opens at most one that it keeps)."""
        if not path:
            return self.root_fd
        found = self._held.get(path)
        if found is not None:
            self._held.move_to_end(path)
            return found.fd
        ancestor, missing = path, []
        while ancestor and ancestor not in self._held:
            ancestor, _, base = ancestor.rpartition("/")
            missing.append(base)
        fd = self._held[ancestor].fd if ancestor else self.root_fd
        transient = False
        walked = ancestor
        for base in reversed(missing):
            walked = f"{walked}/{base}" if walked else base
            try:
                child = _open_child(fd, base, walked, not transient, create)
            finally:
                if transient:
                    os.close(fd)
            fd, transient = child, True
        self._hold(path, fd)
        return fd

    def _hold(self, path: str, fd: int) -> None:
        try:
            held = _Held(fd)
        except OSError:
            os.close(fd)
            raise
        self._held[path] = held
        while len(self._held) > self.capacity:
            _, evicted = self._held.popitem(last=False)
            self._release(evicted)

    @staticmethod
    def _release(held: _Held) -> None:
        try:
            os.utime(held.fd, ns=held.times)
        finally:
            os.close(held.fd)

    def set_times(self, path: str, ns: int) -> None:
        """Give directory ``path`` (just returned by ``directory``) these times when done."""
        found = self._held.get(path)
        if found is not None:
            found.times = (ns, ns)

    def forget(self, path: str) -> None:
        """``path`` is about to be removed or replaced: drop it and everything below it."""
        prefix = path + "/"
        for cached in [p for p in self._held if p == path or p.startswith(prefix)]:
            os.close(self._held.pop(cached).fd)

    def close(self) -> None:
        """Set the times of the directories held and close them."""
        error: OSError | None = None
        while self._held:
            _, held = self._held.popitem()
            try:
                self._release(held)
            except OSError as failed:
                error = error or failed
        if error is not None:
            raise error

    def abandon(self) -> None:
        """Close every fd without touching anything (after a failure)."""
        while self._held:
            os.close(self._held.popitem()[1].fd)


def _clear(fd: int, limit: int) -> list[str]:
    """Unlink what is not a directory in ``fd``; return up to ``limit`` subdirectories."""
    found: list[str] = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                found.append(entry.name)
                if len(found) >= limit:
                    break
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=fd)
    return found


def remove(parent_fd: int, name: str) -> None:
    """Remove ``name`` in ``parent_fd`` whatever it is; a directory with its contents."""
    try:
        info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    fd = os.open(name, DIRECTORY, dir_fd=parent_fd)
    # Each level: its name in the level above, and subdirectories of it still to remove.
    levels: list[tuple[str, list[str]]] = [(name, [])]
    pending = 0
    try:
        while levels:
            level, todo = levels[-1]
            if not todo:
                todo.extend(_clear(fd, max(1, min(1024, _PENDING - pending))))
                pending += len(todo)
            if todo:
                sub = todo.pop()
                pending -= 1
                try:
                    child = os.open(sub, DIRECTORY, dir_fd=fd)
                except FileNotFoundError:
                    continue
                os.close(fd)
                fd = child
                levels.append((sub, []))
                continue
            levels.pop()
            if levels:
                up = os.open("..", DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = up
                os.rmdir(level, dir_fd=fd)
            else:
                os.close(fd)
                fd = -1
                os.rmdir(level, dir_fd=parent_fd)
    finally:
        if fd >= 0:
            os.close(fd)


def remove_path(path: str) -> None:
    """``remove`` for a path of the store (its parent is trusted)."""
    parent, _, name = os.path.abspath(path).rpartition("/")
    fd = os.open(parent or "/", DIRECTORY & ~os.O_NOFOLLOW)
    try:
        remove(fd, name)
    finally:
        os.close(fd)


def file_system_type(fd: int) -> str:
    """The type of the file system ``fd`` is on ("ext4", "overlay"), or "" if unknown."""
    try:
        device = os.fstat(fd).st_dev
        wanted = f"{os.major(device)}:{os.minor(device)}"
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 2 and fields[2] == wanted and "-" in fields:
                    return fields[fields.index("-") + 1]
    except OSError:
        pass
    return ""
