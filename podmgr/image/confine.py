# SPDX-License-Identifier: LGPL-2.1-or-later
"""The confined side of sandbox.py: what the fresh interpreter runs to confine itself
before it calls the function it was asked to (sandbox.py says what the confinement is).

It imports as little as it can: its start is paid once per layer.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from podmgr.errors import PodmgrError

TARGET = "/target"  # where the writable directory is inside the sandbox
SANDBOX_FAILED = "SandboxFailed"  # sandbox.SandboxFailed's code

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_MKNOD, CAP_SETFCAP = 0, 1, 3, 4, 27, 31
_CAPABILITY_VERSION_3 = 0x20080522


@dataclass
class Context:
    """What the confined function gets."""

    target_fd: int  # /target, the only writable directory
    stream: BinaryIO  # the data the caller feeds
    file_system: str  # the type of the target's file system ("ext4", "overlay")
    emit: Callable[[dict[str, object]], None]


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


def _read(path: str) -> str:
    with open(path, encoding="ascii") as file:
        return file.read()


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
    last_capability = int(_read("/proc/sys/kernel/cap_last_cap"))
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
                    "code": SANDBOX_FAILED,
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
