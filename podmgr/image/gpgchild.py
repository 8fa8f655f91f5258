# SPDX-License-Identifier: LGPL-2.1-or-later
"""The confined child that runs gpg (gpgsandbox.py starts it and says why).

It imports as little as it can, since it starts for every verification: no dataclasses,
no typing, nothing of podmgr.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import json
import os
import sys
from contextlib import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

ENVIRONMENT = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}

# Linux ABI (include/uapi/linux/{sched,mount,prctl,capability}.h)
_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
_MS_REC, _MS_PRIVATE = 0x4000, 0x40000
_MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID = 0x1, 0x2
_AT_FDCWD, _AT_RECURSIVE = -100, 0x8000
_SYS_MOUNT_SETATTR = 442  # the same on every architecture (added after the unification)
_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 24, 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _mount(
    libc: ctypes.CDLL, source: str, target: str, fstype: str, flags: int, options: str
) -> None:
    _check(
        libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode(),
            ctypes.c_ulong(flags),
            options.encode(),
        ),
        f"mount {target}",
    )


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    with open("/proc/sys/kernel/cap_last_cap") as file:
        last = int(file.read())
    for capability in range(last + 1):
        _check(libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0), "drop capabilities")
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: twice 32 bits
    _check(libc.capset(header, data), "capset")


def confine(home: str, hidden: list[str]) -> dict[str, str]:
    """Confine this process (see the module's docstring), ``home`` (an empty directory)
    its one writable place; returns what the kernel says of the confinement."""
    libc = _libc()
    mounted = "no"
    if libc.unshare(_CLONE_NEWNS) == 0:
        _mount(libc, "none", "/", "", _MS_REC | _MS_PRIVATE, "")
        attr = _MountAttr(_MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID, 0, 0, 0)
        _check(
            libc.syscall(
                _SYS_MOUNT_SETATTR,
                _AT_FDCWD,
                b"/",
                _AT_RECURSIVE,
                ctypes.byref(attr),
                ctypes.sizeof(attr),
            ),
            "read-only /",
        )
        for path in hidden:
            if os.path.isdir(path):
                _mount(
                    libc,
                    "tmpfs",
                    path,
                    "tmpfs",
                    _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                    "mode=0",
                )
        # What gpg writes stays in this namespace's memory and goes with it.
        _mount(
            libc, "tmpfs", home, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "mode=0700,size=64m"
        )
        _drop_capabilities(libc)
        mounted = "yes"
    elif ctypes.get_errno() != errno.EPERM or os.geteuid() == 0:
        # Not privileged (a user's CLI) may go without; root never runs gpg unconfined:
        # a unit that forbids mount namespaces (RestrictNamespaces=) must allow "mnt".
        _check(-1, "unshare (gpg is not run unconfined as root)")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.environ.clear()
    os.environ.update({**ENVIRONMENT, "GNUPGHOME": home, "TMPDIR": home})
    import tempfile  # noqa: PLC0415 -- python-gnupg's temporary files go to the home

    tempfile.tempdir = home
    with open("/proc/self/status") as file:
        status = dict(line.split(":\t", 1) for line in file.read().splitlines() if ":\t" in line)
    return {
        "mount_namespace": mounted,
        "no_new_privs": status["NoNewPrivs"].strip(),
        "capability_bounding_set": status["CapBnd"].strip(),
        "home": home,
    }


@contextmanager
def _recording(gpg: Any) -> Iterator[list[tuple[str, str]]]:
    """Every status line gpg sends during the block: python-gnupg keeps only its last
    verdict (an expired key ends as "signature valid"), signing.py wants them all."""
    lines: list[tuple[str, str]] = []
    originals = dict(gpg.result_map)

    def recorder(base: type) -> type:
        class Recording(base):  # type: ignore[misc]
            def handle_status(self, key: str, value: str) -> None:
                lines.append((key, value))
                super().handle_status(key, value)

        return Recording

    gpg.result_map = {kind: recorder(cls) for kind, cls in originals.items()}
    try:
        yield lines
    finally:
        gpg.result_map = originals


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _serve(request: dict[str, Any]) -> dict[str, Any]:
    import io  # noqa: PLC0415 -- the child's imports
    import subprocess  # noqa: PLC0415

    import gnupg  # noqa: PLC0415

    home = request["home"]
    confinement = confine(home, request["hidden"])
    gpg = gnupg.GPG(gnupghome=home)
    imported = 0
    if request["keys"]:  # at once: one gpg run for all
        imported = gpg.import_keys(
            b"\n".join(base64.b64decode(key) for key in request["keys"])
        ).count
    outcomes = []
    for message in request["messages"]:
        with _recording(gpg) as lines:
            result = gpg.decrypt(base64.b64decode(message))
        outcomes.append(
            {
                "statuses": lines,
                "data": _b64(result.data or b""),
                "complaint": _complaint(result.stderr),
            }
        )
    if request["detached"]:
        path, signature = request["detached"]
        with _recording(gpg) as lines:
            result = gpg.verify_file(io.BytesIO(base64.b64decode(signature)), path)
        outcomes.append({"statuses": lines, "data": "", "complaint": _complaint(result.stderr)})
    keys = []
    if request["list_keys"] or not all(_good(outcome["statuses"]) for outcome in outcomes):
        keys = [
            {
                "fingerprint": k["fingerprint"],
                "key_ids": [k["keyid"], *(sub[0] for sub in k.get("subkeys", []))],
                "expires": k.get("expires") or "",
                "user_ids": k.get("uids") or [],
                "validity": k.get("trust") or "",
            }
            for k in gpg.list_keys()
        ]
    if os.path.exists(os.path.join(home, "S.gpg-agent")):  # never left running
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
    return {"keys": keys, "imported": imported, "outcomes": outcomes, "confinement": confinement}


def _complaint(stderr: str | None) -> str:
    """gpg's last own words ("gpg: ..." lines that are no status), for a signature it
    gave no verdict on: printable ASCII, short."""
    said = [
        line
        for line in (stderr or "").splitlines()
        if line.startswith("gpg: ") and not line.startswith("[GNUPG:]")
    ]
    last = said[-1][5:] if said else ""
    return "".join(c for c in last if " " <= c <= "~")[:120]


def _good(statuses: Any) -> bool:
    """Simply good: anything else, signing.py wants the keys to say what it was."""
    verdicts = ("GOODSIG", "VALIDSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "BADSIG", "ERRSIG")
    return [key for key, _ in statuses if key in verdicts] == ["GOODSIG", "VALIDSIG"]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--exec"]:
        confine(argv[1], argv[2].split(","))
        os.execvp(argv[3], argv[3:])  # noqa: S606 -- an argv list, for tests' probes
    json.dump(_serve(json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
