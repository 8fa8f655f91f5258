# SPDX-License-Identifier: LGPL-2.1-or-later
"""A throwaway systemd, booted in fresh namespaces over an overlay of /.

Integration tests, the demo and the benchmarks run podmgr against a real systemd on
machines whose PID 1 is not systemd.  Nothing reaches the host: the bed has its own
mount, PID, cgroup, UTS, IPC and network namespaces, its root is an overlay whose upper
layer is a tmpfs, kernel-wide knobs (/proc/sys outside net, /sys, module loading, the
clock, the console) are out of its reach, and its cgroups live in a subtree of ours
(bed-NAME in every hierarchy), so beds never share unit names or limits.

Never exec /lib/systemd/systemd outside of this: on the host root its boot runs
tmpfiles, which wipes /tmp and more.  bed-setup.sh only execs it after pivot_root.

    with Bed("name", checkout) as bed:
        bed.install_project()
        bed.run("systemctl", "start", "pod@web")

A bed dies with the thread that booted it (PR_SET_PDEATHSIG), so boot beds from the
main thread or from one that outlives them.

CLI: python3 tests/bed.py [--install] [--name N] -- CMD [ARGS...]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SYSTEMD = "/lib/systemd/systemd"
CGROUP_ROOT = Path("/sys/fs/cgroup")
_serial = itertools.count(1)

# Units that would touch what the bed shares with the host (the kernel's global
# settings and devices, the host's /dev through the bind mount) or only start noise.
# Masking a unit that is not installed is harmless.  Found with `systemctl list-units
# --all` in a bed; units that pull in nothing of the host's are left alone.
MASKED = (
    # consoles, VTs and services of this machine (autovt@ is what logind starts on VTs)
    "getty@.service",
    "serial-getty@.service",
    "console-getty.service",
    "container-getty@.service",
    "autovt@.service",
    "getty-static.service",
    "systemd-vconsole-setup.service",
    "postgresql.service",
    "postgresql@.service",
    "cron.service",
    "ssh.service",
    "docker.service",
    "containerd.service",
    # podman's units are enabled here: they would start the host's containers in the bed
    "podman.service",
    "podman.socket",
    "podman-restart.service",
    "podman-auto-update.service",
    "podman-auto-update.timer",
    # sysctl, binfmt_misc, kernel modules, pstore, TPM PCRs, the entropy pool and the
    # kernel's debug/config file systems are global, not per namespace
    "systemd-sysctl.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "systemd-modules-load.service",
    "modprobe@.service",
    "systemd-pstore.service",
    "systemd-pcrphase.service",
    "systemd-pcrphase-sysinit.service",
    "systemd-random-seed.service",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount",
    # the journal would read the host's audit stream: noise
    "systemd-journald-audit.socket",
    # /dev is the host's: no udev, no static device nodes
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "kmod-static-nodes.service",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-setup-dev-early.service",
    # block devices and file systems under the overlay are the host's: no fsck, trim,
    # scrub (LVM snapshots) or repartitioning, and nothing to remount
    "systemd-remount-fs.service",
    "systemd-repart.service",
    "fstrim.service",
    "fstrim.timer",
    "e2scrub_all.service",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "e2scrub@.service",
    # the network is the bed's empty namespace; the clock is global
    "networking.service",
    "systemd-networkd.service",
    "systemd-resolved.service",
    "systemd-timesyncd.service",
    # periodic jobs: CPU and noise during tests, and the bed has no network for apt
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "man-db.timer",
)

# Sets the bed up in its namespaces and execs systemd there; see its header.
SETUP = Path(__file__).with_name("bed-setup.sh")


@dataclass(frozen=True)
class Hierarchy:
    """A cgroup hierarchy mounted under /sys/fs/cgroup, and where we are in it."""

    point: Path  # mount point
    fstype: str  # cgroup or cgroup2
    options: str  # what identifies a v1 hierarchy: controllers, name=, xattr
    own: Path  # our cgroup, a directory under point

    def bed(self, name: str) -> Path:
        return self.own / f"bed-{name}"


def hierarchies() -> list[Hierarchy]:
    """The host's cgroup layout, from /proc/self/mountinfo and /proc/self/cgroup."""
    ours = {}  # {"cpu", "cpuacct"} / {"name=systemd"} / set() (v2) -> our path
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        ours[frozenset(controllers.split(",")) - {""}] = path
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, super_options = fields[sep + 1], fields[sep + 3]
        root, point = fields[3], Path(fields[4])
        if fstype not in ("cgroup", "cgroup2") or CGROUP_ROOT not in (point, point.parent):
            continue
        options = ",".join(
            o
            for o in super_options.split(",")
            if o not in ("rw", "ro") and not o.startswith("release_agent")
        )
        flags = {"xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods"}
        key = frozenset() if fstype == "cgroup2" else frozenset(options.split(",")) - flags
        if key not in ours:
            raise RuntimeError(f"{point}: no cgroup of ours in it (/proc/self/cgroup)")
        # Our path is relative to the cgroup namespace; the mount shows the tree from root.
        relative = os.path.relpath(ours[key], root)
        if relative.startswith(".."):
            raise RuntimeError(f"{point}: our cgroup {ours[key]} is outside the mount")
        found.append(Hierarchy(point, fstype, options, point / relative))
    if not found:
        raise RuntimeError(f"no cgroup hierarchy is mounted under {CGROUP_ROOT}")
    return found


def _cgroup_layout(found: list[Hierarchy]) -> str:
    """SETUP's cgroup lines: the same hierarchies, mounted afresh in the bed."""
    if [h.point for h in found] == [CGROUP_ROOT]:
        return "cgroup2 rw ."  # pure cgroup2
    lines = ["tmpfs mode=0755 ."]
    for h in found:
        # A named hierarchy without controllers (name=systemd) needs "none".
        named = all(o.startswith("name=") or o == "xattr" for o in h.options.split(","))
        options = "rw" if h.fstype == "cgroup2" else f"none,{h.options}" if named else h.options
        lines.append(f"{h.fstype} {options} {h.point.name}")
    for link in sorted(CGROUP_ROOT.iterdir()):  # compat links such as cpu -> cpu,cpuacct
        if link.is_symlink():
            lines.append(f"link {os.readlink(link)} {link.name}")
    return "\n".join(lines)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie is dead already (the host's init may reap late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class BedCommandError(subprocess.CalledProcessError):
    """A command in a bed failed; the message carries its output."""

    def __str__(self) -> str:
        return (
            f"in bed: {shlex.join(self.cmd)} exited {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


class Bed:
    """A throwaway systemd booted in fresh namespaces over an overlay of /."""

    def __init__(self, name: str, checkout: Path) -> None:
        # Our PID in the name tells sweep_stale_beds() whether the bed's owner still lives.
        # It is also the bed's host name: keep to what hostname(1) takes, 64 at most.
        label = re.sub(r"[^a-z0-9-]", "-", name.lower())[:32]
        self.name = f"{os.getpid()}-{next(_serial)}-{label}"
        self.checkout = checkout.resolve()
        self.pid = 0
        self._unshare: subprocess.Popen[bytes] | None = None
        self._cgroups: list[Path] = []

    def __enter__(self) -> Bed:
        self.boot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def boot(self, timeout: float = 60) -> None:
        """Boot the bed; return when systemd finished booting.  On failure, tear down."""
        try:
            self._boot(timeout)
        except BaseException:
            self.shutdown()
            raise

    def _boot(self, timeout: float) -> None:
        started = time.monotonic()
        found = hierarchies()
        argv = [
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--cgroup",
            "--uts",
            "--ipc",
            "--net",
            "/bin/sh",
            str(SETUP),
            self.name,
            str(self.checkout),
            _cgroup_layout(found),
            " ".join(MASKED),
        ]
        # setpriv --pdeathsig: the bed dies with the thread that made it, so a test run
        # that is killed leaves no bed; unshare --kill-child passes it on to PID 1 (seen
        # to work: SIGKILL from an ancestor namespace reaches the namespace's init).
        # The shell waits on stdin until it is in the bed's cgroups, then becomes unshare.
        self._unshare = subprocess.Popen(
            [
                "setpriv",
                "--pdeathsig",
                "KILL",
                "/bin/sh",
                "-c",
                'read -r _ && exec "$@"',
                "bed",
                *argv,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for hierarchy in found:
            cgroup = hierarchy.bed(self.name)
            cgroup.mkdir()
            self._cgroups.append(cgroup)
            if hierarchy.fstype == "cgroup" and (cgroup / "cpuset.cpus").exists():
                # A new v1 cpuset is empty, and no process may join an empty one.
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (cgroup / knob).write_text((cgroup.parent / knob).read_text())
            (cgroup / "cgroup.procs").write_text(str(self._unshare.pid))
        assert self._unshare.stdin
        self._unshare.stdin.write(b"go\n")
        self._unshare.stdin.close()
        deadline = started + timeout
        self.pid = self._wait_for_child(deadline)
        self._wait_for_exec(deadline)
        self._wait_for_boot(deadline)
        log.debug("bed %s booted in %.2f s", self.name, time.monotonic() - started)

    def _setup_failed(self) -> RuntimeError | None:
        assert self._unshare
        if self._unshare.poll() is None:
            return None
        assert self._unshare.stderr
        return RuntimeError(
            f"bed {self.name} did not boot (exit {self._unshare.returncode}): "
            f"{self._unshare.stderr.read().decode().strip()}"
        )

    def _wait_for_child(self, deadline: float) -> int:
        assert self._unshare
        children = Path(f"/proc/{self._unshare.pid}/task/{self._unshare.pid}/children")
        while time.monotonic() < deadline:
            if error := self._setup_failed():
                raise error
            with contextlib.suppress(FileNotFoundError):
                if pids := children.read_text().split():
                    return int(pids[0])
            time.sleep(0.01)
        raise TimeoutError(f"bed {self.name}: unshare started no child")

    def _wait_for_exec(self, deadline: float) -> None:
        """Until bed-setup.sh has exec'ed systemd, the child's mount namespace still shows the
        host's /run: a systemctl entering it could reach a systemd running on the host."""
        comm = Path(f"/proc/{self.pid}/comm")
        while True:
            with contextlib.suppress(FileNotFoundError):
                if comm.read_text().strip() == "systemd":
                    return
            if error := self._setup_failed():
                raise error
            if time.monotonic() > deadline:
                raise TimeoutError(f"bed {self.name}: systemd did not start")
            time.sleep(0.01)

    def _wait_for_boot(self, deadline: float) -> None:
        while True:
            # Until systemd has its bus this fails at once; then it waits for the boot.
            state = self.run(
                "systemctl",
                "is-system-running",
                "--wait",
                check=False,
                timeout=max(deadline - time.monotonic(), 1),
            ).stdout.strip()
            if state in ("running", "degraded"):
                break
            if not _alive(self.pid):
                raise self._setup_failed() or RuntimeError(f"bed {self.name}: systemd died")
            if time.monotonic() > deadline:
                raise TimeoutError(f"bed {self.name} did not boot: state {state!r}")
            time.sleep(0.02)
        if state == "degraded":
            failed = self.run("systemctl", "--failed", "--no-legend", check=False).stdout
            log.warning("bed %s is degraded: %s", self.name, failed.strip())

    def run(
        self,
        *argv: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the bed and capture its output (text)."""
        log.debug("bed %s: + %s", self.name, shlex.join(argv))
        result = subprocess.run(
            self.command(*argv, env=env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise BedCommandError(result.returncode, list(argv), result.stdout, result.stderr)
        return result

    def command(self, *argv: str, env: dict[str, str] | None = None) -> list[str]:
        """The host command line that runs ``argv`` in the bed, with a clean environment
        as a login there would have, not the caller's."""
        clean = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
            "SYSTEMD_PAGER": "",
            "TERM": "dumb",
        }
        clean.update(env or {})
        return [
            "nsenter",
            "-t",
            str(self.pid),
            "-a",
            "env",
            "-i",
            *(f"{key}={value}" for key, value in clean.items()),
            *argv,
        ]

    def copy_in(self, source: Path, directory: str) -> str:
        """Copy the host's file ``source`` into the bed's ``directory``; its path there.
        (The bed's /tmp is its own tmpfs, so the host's temporary files are not in it.)"""
        target = f"{directory.rstrip('/')}/{source.name}"
        # /proc/PID/root is the bed's root as its PID 1 sees it.
        shutil.copyfile(source, f"/proc/{self.pid}/root{target}")
        return target

    def install_project(self) -> None:
        """make install the checkout into the bed, and have systemd read the units."""
        self.run("make", "-C", str(self.checkout), "install", timeout=300)
        self.run("systemctl", "daemon-reload")

    def shutdown(self) -> None:
        """Kill the bed and remove its cgroups.  Safe to call again."""
        if self._unshare:
            if self._unshare.poll() is None:
                # SIGKILL to the namespace's PID 1 kills everything in it; unshare reaps
                # it and exits.  Were unshare killed first, the host's init would have to
                # reap PID 1, which it does late.
                if self.pid and _alive(self.pid):
                    os.kill(self.pid, signal.SIGKILL)
                try:
                    self._unshare.wait(10)
                except subprocess.TimeoutExpired:
                    self._unshare.kill()
                    self._unshare.wait()
            if self._unshare.stderr:
                self._unshare.stderr.close()
        deadline = time.monotonic() + 10
        while self.pid and _alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        _remove_cgroups(self._cgroups)
        self._cgroups = []


def _remove_cgroups(cgroups: list[Path], timeout: float = 5) -> None:
    """rmdir each bed cgroup depth-first; processes die asynchronously, so retry."""
    deadline = time.monotonic() + timeout
    for top in cgroups:
        while top.exists():
            nested = sorted(
                (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            )
            for path in [*nested, top]:
                with contextlib.suppress(OSError):
                    path.rmdir()
            if not top.exists():
                break
            if time.monotonic() > deadline:
                log.warning("cannot remove %s: it still has processes", top)
                break
            time.sleep(0.05)


def sweep_stale_beds() -> None:
    """Remove the cgroups (and kill the processes) of beds whose test run crashed."""
    our_pidns = os.readlink("/proc/self/ns/pid")
    for hierarchy in hierarchies():
        for stale in hierarchy.own.glob("bed-*"):
            owner = stale.name.split("-")[1]
            if owner.isdigit() and _alive(int(owner)):
                continue  # that test run is alive: its beds are not stale
            for procs in (stale / "cgroup.procs", *stale.rglob("*/cgroup.procs")):
                for pid in procs.read_text().split() if procs.exists() else []:
                    # Only the bed's own processes: a process of our PID namespace there
                    # is not one we know how it got there.
                    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                        if os.readlink(f"/proc/{pid}/ns/pid") != our_pidns:
                            os.kill(int(pid), signal.SIGKILL)
            log.info("removing stale bed cgroup %s", stale)
            _remove_cgroups([stale])


def main() -> int:
    parser = argparse.ArgumentParser(description="Run a command in a throwaway systemd.")
    parser.add_argument("--install", action="store_true", help="make install into the bed")
    parser.add_argument("--name", default="cli", help="name of the bed")
    parser.add_argument("command", nargs="+", help="command to run in the bed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="bed: %(message)s")
    if os.geteuid() != 0:
        print("bed: must run as root", file=sys.stderr)
        return 1
    sweep_stale_beds()
    checkout = Path(__file__).resolve().parent.parent
    with Bed(args.name, checkout) as bed:
        if args.install:
            bed.install_project()
        # Output passes straight through, so a demo shows as it happens.
        terminal = {"TERM": os.environ.get("TERM", "dumb")}
        code = subprocess.call(bed.command(*args.command, env=terminal))
    # Killed by a signal: exit as a shell reports it.
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
