# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run work on untrusted data in a process that can write only where it must.

systemd-importd confines tar the same way.  ``run`` starts a fresh interpreter that:

- dies with its parent (PR_SET_PDEATHSIG), and gets PR_SET_NO_NEW_PRIVS;
- enters new mount, PID, IPC, UTS and network namespaces (so it sees, signals and
  reaches no other process, and has no network);
- makes its root an empty read-only tmpfs holding one writable directory, /target: the
  directory it was given, bound there nosuid, nodev and noexec (the old root is hidden
  beneath, reachable only by unmounting, which it is no longer allowed to do);
- refuses, through a seccomp filter (on x86_64), the system calls that could undo this
  or reach beyond it without capabilities (the mount API, namespaces, keyrings, io_uring,
  file handles, tracing);
- keeps only the capabilities unpacking needs: CAP_CHOWN, CAP_DAC_OVERRIDE,
  CAP_FOWNER, CAP_FSETID and CAP_SETFCAP (file capabilities), and CAP_MKNOD only when
  device nodes are allowed (whiteouts, 0/0 character devices, need none since Linux
  5.8).  Without CAP_SYS_ADMIN it cannot mount, and cannot set trusted.* xattrs either,
  so it reports what needs them (overlayfs's opaque marker) for the caller to set.

It (confine.py is its side) then calls ``module:function(context, **arguments)`` and
reports its JSON result, or the PodmgrError it raised (code and one-line message), on
stdout; the function may report events before that (``Context.emit``), which reach the
caller's ``on_event``.  The request comes on stdin; the data to work on on a pipe the
caller feeds, or, for a plain file, on a duplicate of its fd (read-only).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import podmgr
from podmgr.errors import PodmgrError
from podmgr.image.confine import SANDBOX_FAILED, TARGET, Context

__all__ = ["TARGET", "Context", "Group", "SandboxFailed", "run"]

_CHUNK = 1 << 20
# -I: no environment variables, user site or current directory reach the interpreter;
# -S: no site module (its path scan costs a tenth of the start); podmgr itself is found
# where this module is, the rest on the paths the request names.  The child imports only
# confine.py and what the call needs: its start is paid once per layer.
_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); from podmgr.image.confine import child; child()"
)


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class SandboxFailed(PodmgrError):
    """The confined process could not be set up, or died without saying why."""

    code = SANDBOX_FAILED


class Group:
    """Confined processes that end together: ``kill`` ends every one running, and any
    started afterwards at once (a failed layer fails its whole image, and so does a
    cancel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: set[subprocess.Popen[bytes]] = set()
        self.killed = False

    def add(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.add(process)
            if self.killed:
                process.kill()

    def discard(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.discard(process)

    def kill(self) -> None:
        with self._lock:
            self.killed = True
            for process in self._processes:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()


# The parent's side.


def _errors() -> dict[str, type[PodmgrError]]:
    """Error codes the confined function may raise, to raise them again here."""
    from podmgr.image.digest import DigestMismatch  # noqa: PLC0415 -- only when one comes back
    from podmgr.image.tarentry import BadLayer, UnsafeLayer  # noqa: PLC0415
    from podmgr.image.unpack import StoreFailed  # noqa: PLC0415

    return {
        kind.code: kind
        for kind in (BadLayer, UnsafeLayer, StoreFailed, DigestMismatch, SandboxFailed)
    }


# The data to work on, or what opens it once it can be had (the process meanwhile starts).
Source = Readable | Callable[[], Readable]


def _feed(source: Source, fd: int, failures: list[BaseException]) -> None:
    try:
        with open(fd, "wb", buffering=0, closefd=True) as pipe:
            stream = source() if callable(source) else source
            try:
                while chunk := stream.read(_CHUNK):
                    pipe.write(chunk)
            finally:
                if stream is not source and (close := getattr(stream, "close", None)):
                    close()
    except BrokenPipeError:
        pass  # the process stopped reading: it says why on stdout
    except BaseException as error:  # the caller's source failed: raised after the child
        failures.append(error)


def _file_of(stream: Readable) -> int | None:
    """A duplicate of ``stream``'s fd when it is a plain file read from where its fd
    stands (the confined process then reads it itself, with no copy through a pipe)."""
    raw = getattr(stream, "raw", stream)
    if not isinstance(raw, io.FileIO):
        return None
    try:
        fd = raw.fileno()
        tell = getattr(stream, "tell", None)
        if (
            not stat.S_ISREG(os.fstat(fd).st_mode)
            or tell is None
            or tell() != os.lseek(fd, 0, os.SEEK_CUR)
        ):
            return None
        return os.dup(fd)
    except (OSError, ValueError):
        return None


def _exchange(
    process: subprocess.Popen[bytes],
    request: dict[str, object],
    on_event: Callable[[dict[str, object]], None] | None,
) -> dict[str, object] | None:
    """Send the request; relay events; return the result or error message, if any came."""
    outcome: dict[str, object] | None = None
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(json.dumps(request).encode() + b"\n")
    process.stdin.close()
    for line in process.stdout:
        message = json.loads(line)
        if "event" in message and on_event is not None:
            on_event(message["event"])
        elif "result" in message or "error" in message:
            outcome = message
    return outcome


def _reap(process: subprocess.Popen[bytes]) -> None:
    try:  # it has closed stdout: it is exiting
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run(
    call: str,
    arguments: dict[str, object],
    target_fd: int,
    stream: Source,
    what: str,
    on_event: Callable[[dict[str, object]], None] | None = None,
    devices: bool = False,
    preload: tuple[str, ...] = (),
    group: Group | None = None,
) -> object:
    """Call ``call`` ("module:function") confined, writing only below ``target_fd`` and
    reading ``stream``; returns its result or raises the error it raised.  ``stream``
    may be a function that opens it, called once the process has started (it may wait
    until the data can be had, and is closed after).  A process in ``group`` ends when
    the group is killed."""
    paths = [str(Path(podmgr.__file__).parent.parent)] + [p for p in sys.path if os.path.isdir(p)]
    direct = None if callable(stream) else _file_of(stream)
    read_end, write_end = (direct, -1) if direct is not None else os.pipe()
    os.set_inheritable(read_end, True)
    request: dict[str, object] = {
        "call": call,
        "arguments": arguments,
        "devices": devices,
        "preload": list(preload),
        "path": paths,
        "stream_fd": read_end,
        "target_fd": target_fd,
    }
    failures: list[BaseException] = []
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _CHILD, paths[0]],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                pass_fds=(read_end, target_fd),
                cwd="/",
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
        finally:
            os.close(read_end)
        if group is not None:
            group.add(process)
        feeder = threading.Thread(
            target=_feed,
            args=(stream, write_end, failures),
            name="podmgr-sandbox-feed",
            daemon=True,
        )
        if direct is None:
            feeder.start()
        try:
            outcome = _exchange(process, request, on_event)
        except BaseException:
            process.kill()
            raise
        finally:
            _reap(process)
            if group is not None:
                group.discard(process)
            if direct is None:
                feeder.join()
        if failures:
            raise failures[0]
        if outcome is None:
            stderr.seek(0)
            lines = stderr.read()[-4000:].decode("utf-8", "replace").strip().splitlines()
            raise SandboxFailed(
                f"{what}: the confined process failed (exit status "
                f"{process.returncode}): {lines[-1] if lines else 'no output'}"
            )
    if "error" in outcome:
        error = outcome["error"]
        assert isinstance(error, dict)
        kind = _errors().get(str(error.get("code")), PodmgrError)
        raise kind(str(error.get("message")))
    return outcome["result"]
