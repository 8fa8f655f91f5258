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

It then calls ``module:function(context, **arguments)`` and reports its JSON result, or
the PodmgrError it raised (code and one-line message), on stdout; the function may
report events before that (``Context.emit``), which reach the caller's ``on_event``.
The request comes on stdin; the data to work on on a pipe the caller feeds, or, for a
plain file, on a duplicate of its fd (read-only).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib
import io
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import podmgr
from podmgr.errors import PodmgrError

log = logging.getLogger(__name__)

TARGET = "/target"  # where the writable directory is inside the sandbox
_CHUNK = 1 << 20
# -I: no environment variables, user site or current directory reach the interpreter;
# -S: no site module (its path scan costs a tenth of the start); podmgr itself is found
# where this module is, the rest on the paths the request names.
_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); from podmgr.image.sandbox import child; child()"
)

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_MKNOD, CAP_SETFCAP = 0, 1, 3, 4, 27, 31
_CAPABILITY_VERSION_3 = 0x20080522


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class SandboxFailed(PodmgrError):
    """The confined process could not be set up, or died without saying why."""

    code = "SandboxFailed"


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


@dataclass
class Context:
    """What the confined function gets."""

    target_fd: int  # /target, the only writable directory
    stream: BinaryIO  # the data the caller feeds
    file_system: str  # the type of the target's file system ("ext4", "overlay")
    emit: Callable[[dict[str, object]], None]


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


def _feed(stream: Readable, fd: int, failures: list[BaseException]) -> None:
    try:
        with open(fd, "wb", buffering=0, closefd=True) as pipe:
            while chunk := stream.read(_CHUNK):
                pipe.write(chunk)
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
    stream: Readable,
    what: str,
    on_event: Callable[[dict[str, object]], None] | None = None,
    devices: bool = False,
    preload: tuple[str, ...] = (),
    group: Group | None = None,
) -> object:
    """Call ``call`` ("module:function") confined, writing only below ``target_fd`` and
    reading ``stream``; returns its result or raises the error it raised.  A process in
    ``group`` ends when the group is killed."""
    paths = [str(Path(podmgr.__file__).parent.parent)] + [p for p in sys.path if os.path.isdir(p)]
    direct = _file_of(stream)
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


# The confined side.

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, step: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{step}: {os.strerror(number)}")


def _prctl(option: int, argument: int, more: int = 0) -> None:
    _check(
        _libc.prctl(
            option,
            ctypes.c_ulong(argument),
            ctypes.c_ulong(more),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        ),
        f"prctl {option}",
    )


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _mount(
    source: str | None, target: str, kind: str | None, flags: int, data: str | None = None
) -> None:
    _check(
        _libc.mount(
            _bytes(source), _bytes(target), _bytes(kind), ctypes.c_ulong(flags), _bytes(data)
        ),
        f"mount {target}",
    )


def _drop_capabilities(keep: set[int], last: int) -> None:
    for capability in range(last + 1):
        if capability not in keep:
            _prctl(PR_CAPBSET_DROP, capability)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    mask = sum(1 << capability for capability in keep)
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    # Two {effective, permitted, inheritable} triples: the low and high 32 bits.
    data = (ctypes.c_uint32 * 6)(mask & 0xFFFFFFFF, mask & 0xFFFFFFFF, 0, mask >> 32, mask >> 32, 0)
    _check(_libc.capset(header, data), "capset")


def _confine_mounts(target_fd: int) -> None:
    """Root: an empty read-only tmpfs with the target bound writable at TARGET."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # The fd's mount belongs to the namespace left behind, which mount(2) refuses to
    # bind from: bind the same directory by its path here, checked to be the same.
    source = os.readlink(f"/proc/self/fd/{target_fd}")
    wanted = os.fstat(target_fd)
    found = os.stat(source, follow_symlinks=False)
    if (found.st_dev, found.st_ino) != (wanted.st_dev, wanted.st_ino):
        raise OSError(errno.ESTALE, f"{source} is no longer the directory to unpack into")
    # Any existing directory that does not hold the target will do as the new root's
    # mount point: in this namespace only.
    candidates = ("/mnt", "/tmp", "/run", "/srv", "/media", "/opt")  # noqa: S108 -- not written
    top = next(d for d in candidates if os.path.isdir(d) and not source.startswith(d + "/"))
    _mount(
        "podmgr-sandbox",
        top,
        "tmpfs",
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        "size=64k,nr_inodes=16,mode=0755",
    )
    os.mkdir(top + TARGET, 0o755)
    _mount(source, top + TARGET, None, MS_BIND)
    _mount(None, top + TARGET, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount(None, top, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(top)
    _mount(".", "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir("/")


# System calls refused with EPERM once confined (x86_64 numbers): what could undo the
# confinement or reach beyond it even without capabilities (the mount API, namespaces,
# keyrings of uid 0, io_uring, handles, tracing).  Elsewhere only the rest applies.
AUDIT_ARCH_X86_64 = 0xC000003E
_X32 = 0x40000000
_REFUSED_X86_64 = {
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "chroot": 161,
    "unshare": 272,
    "setns": 308,
    "mount_setattr": 442,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "bpf": 321,
    "reboot": 169,
    "swapon": 167,
    "swapoff": 168,
    "perf_event_open": 298,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "userfaultfd": 323,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "settimeofday": 164,
    "clock_settime": 227,
    "adjtimex": 159,
    "clock_adjtime": 305,
    "sethostname": 170,
    "setdomainname": 171,
    "acct": 163,
    "quotactl": 179,
    "syslog": 103,
    "vhangup": 153,
    "iopl": 172,
    "ioperm": 173,
    "fanotify_init": 300,
    "pidfd_getfd": 438,
}
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
_SECCOMP_RET_ALLOW, _SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_JGE_K, _BPF_RET_K = 0x20, 0x15, 0x35, 0x06


class _Filter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def _seccomp() -> None:
    """Refuse _REFUSED_X86_64, other ABIs (x32, i386) included; only on x86_64, where the
    numbers are right."""
    if os.uname().machine != "x86_64":
        return
    numbers = sorted(set(_REFUSED_X86_64.values()))
    # ld arch; jne -> refuse; ld nr; jge x32 -> refuse; jeq each -> refuse; allow; refuse
    length = 4 + len(numbers) + 2
    refuse = length - 1
    program = [
        (_BPF_LD_W_ABS, 0, 0, 4),
        (_BPF_JEQ_K, 0, refuse - 2, AUDIT_ARCH_X86_64),
        (_BPF_LD_W_ABS, 0, 0, 0),
        (_BPF_JGE_K, refuse - 4, 0, _X32),
    ]
    program += [(_BPF_JEQ_K, refuse - (4 + i) - 1, 0, number) for i, number in enumerate(numbers)]
    program += [
        (_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW),
        (_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | errno.EPERM),
    ]
    filters = (_Filter * length)(*(_Filter(*instruction) for instruction in program))
    fprog = _Program(length, filters)
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


def _close_fds(keep: set[int]) -> None:
    """Close every fd but ``keep``: none may lead outside once confined."""
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if int(name) not in keep:
                os.close(int(name))


def _confine(target_fd: int, devices: bool, keep: set[int]) -> int:
    """Confine this process; returns the fd of TARGET as seen from inside."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _close_fds(keep | {0, 1, 2, target_fd})
    last_capability = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    _check(
        _libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET),
        "unshare",
    )
    # The new PID namespace holds this process's children, not itself: go on in one.
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _confine_mounts(target_fd)
    os.close(target_fd)
    keep = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_SETFCAP}
    _drop_capabilities(keep | ({CAP_MKNOD} if devices else set()), last_capability)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _seccomp()
    return os.open(TARGET, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def child() -> None:
    """The confined process's main (started by ``run``)."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # stray prints must not garble the protocol

    def emit(message: dict[str, object]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    request = json.loads(sys.stdin.readline())
    sys.path[:0] = request["path"]
    module, _, name = request["call"].partition(":")
    function = getattr(importlib.import_module(module), name)
    for preload in request["preload"]:  # nothing can be imported once confined
        importlib.import_module(preload)
    from podmgr.image import dirtree  # noqa: PLC0415

    file_system = dirtree.file_system_type(request["target_fd"])
    try:
        target_fd = _confine(
            request["target_fd"], request["devices"], {out.fileno(), request["stream_fd"]}
        )
    except OSError as error:
        emit(
            {
                "error": {
                    "code": SandboxFailed.code,
                    "message": f"cannot confine the unpacking process ({error})",
                }
            }
        )
        return
    stream = os.fdopen(request["stream_fd"], "rb")
    context = Context(target_fd, stream, file_system, lambda event: emit({"event": event}))
    try:
        emit({"result": function(context, **request["arguments"])})
    except PodmgrError as error:
        emit({"error": {"code": error.code, "message": str(error)}})
    with contextlib.suppress(OSError):
        stream.close()
