# SPDX-License-Identifier: LGPL-2.1-or-later
"""A throwaway systemd, booted in fresh namespaces over an overlay of /.

Integration tests, the demo and the benchmarks run podmgr against a real systemd on
machines whose PID 1 is not systemd.  Nothing reaches the host: the bed has its own
mount, PID, cgroup, UTS, IPC and network namespaces, its root is an overlay whose upper
layer is a tmpfs, and its cgroups live in a subtree of ours (bed-NAME in every
hierarchy), so beds never share unit names or limits.

Never exec /lib/systemd/systemd outside of this: on the host root its boot runs
tmpfiles, which wipes /tmp and more.  SETUP only execs it after pivot_root.

    with Bed("name", checkout) as bed:
        bed.install_project()
        bed.run("systemctl", "start", "pod@web")

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
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

SYSTEMD = "/lib/systemd/systemd"
CGROUP_ROOT = Path("/sys/fs/cgroup")
_serial = itertools.count(1)

# Units that would touch what the bed shares with the host (the kernel's global
# settings, the host's /dev through the bind mount) or just start noise.
MASKED = (
    # consoles and services of this machine
    "getty@.service", "serial-getty@.service", "console-getty.service",
    "postgresql.service", "postgresql@.service", "cron.service", "ssh.service",
    "docker.service", "containerd.service",
    # sysctl, binfmt_misc and kernel modules are global, not per namespace
    "systemd-sysctl.service", "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount",
    "systemd-modules-load.service",
    # /dev is the host's: no udev, no static device nodes
    "systemd-udevd.service", "systemd-udev-trigger.service", "systemd-udev-settle.service",
    "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "kmod-static-nodes.service", "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-setup-dev-early.service",
    # / is an overlay: nothing to remount; the network is the bed's empty namespace
    "systemd-remount-fs.service", "networking.service", "systemd-networkd.service",
    "systemd-resolved.service", "systemd-timesyncd.service",
)

# Runs as PID 1 of the new namespaces ($1: bed name, $2: checkout, $3: cgroup mount
# commands, $4: units to mask).  Every step must succeed before systemd is exec'ed.
SETUP = r"""
set -eu
name=$1 checkout=$2 cgroups=$3 masked=$4
mount --make-rprivate /
ip link set lo up
hostname "bed-$name"
# Staging tmpfs on /mnt: this mount namespace is private, the host never sees it.
mount -t tmpfs -o mode=0755 bed /mnt
mkdir /mnt/lower /mnt/upper /mnt/work /mnt/root
mount --bind / /mnt/lower
mount -t overlay overlay -o lowerdir=/mnt/lower,upperdir=/mnt/upper,workdir=/mnt/work /mnt/root
root=/mnt/root
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
# tmpfs where podmgr puts overlay upper dirs: overlayfs cannot be the upper of another.
for dir in /run /tmp /var/lib/podmgr; do
    mkdir -p "$root$dir"
    mount -t tmpfs -o mode=0755 tmpfs "$root$dir"
done
chmod 1777 "$root/tmp"
# systemd sets the host name from /etc/hostname at boot.
echo "bed-$name" > "$root/etc/hostname"
# Fresh cgroup mounts in the bed's cgroup namespace, in the host's layout.
umount -R "$root/sys/fs/cgroup"
mount -t tmpfs -o mode=0755 cgroup "$root/sys/fs/cgroup"
eval "$cgroups"
mkdir -p "$root$checkout"
mount --bind "$checkout" "$root$checkout"
cat > "$root/etc/systemd/system/bed.target" <<EOF
[Unit]
Description=Test bed
Requires=basic.target dbus.socket
After=basic.target dbus.socket
EOF
for unit in $masked; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
cd "$root"
pivot_root . mnt
umount -l /mnt
exec /lib/systemd/systemd --system --unit=bed.target --log-target=kmsg
"""


def _hierarchies() -> dict[Path, str]:
    """Mounted cgroup hierarchies -> the fs options that identify them (from mountinfo)."""
    found = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, super_options = fields[sep + 1], fields[sep + 3]
        point = Path(fields[4])
        if fstype == "cgroup2":
            found[point] = "cgroup2"
        elif fstype == "cgroup":
            options = [o for o in super_options.split(",")
                       if o not in ("rw", "ro") and not o.startswith("release_agent")]
            found[point] = ",".join(options)
    return found


def _own_cgroup(options: str) -> str:
    """Our cgroup path in the hierarchy mounted with ``options``."""
    wanted = set() if options == "cgroup2" else set(options.split(","))
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        names = set(controllers.split(",")) if controllers else set()
        if options == "cgroup2" and not controllers:
            return path
        if names and names <= wanted | {"none"} and names & wanted:
            return path
    raise RuntimeError(f"no cgroup of ours in the hierarchy with {options}")


def _cgroup_mounts(hierarchies: dict[Path, str]) -> str:
    """Shell commands that mount the same hierarchies in the bed's new root."""
    commands = []
    if list(hierarchies.values()) == ["cgroup2"]:
        return 'mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"'
    for point, options in hierarchies.items():
        if point.parent != CGROUP_ROOT:
            continue
        target = f'"$root/sys/fs/cgroup/{point.name}"'
        if options == "cgroup2":
            kind = "-t cgroup2 cgroup2"
        elif all(o.startswith(("name=", "xattr")) for o in options.split(",")):
            kind = f"-t cgroup -o none,{options} cgroup"  # a hierarchy without controllers
        else:
            kind = f"-t cgroup -o {options} cgroup"
        commands.append(f"mkdir -p {target} && mount {kind} {target}")
    for link in CGROUP_ROOT.iterdir():  # compat links such as cpu -> cpu,cpuacct
        if link.is_symlink():
            commands.append(f'ln -s {os.readlink(link)} "$root/sys/fs/cgroup/{link.name}"')
    return "\n".join(commands)


class Bed:
    """A throwaway systemd booted in fresh namespaces over an overlay of /."""

    def __init__(self, name: str, checkout: Path) -> None:
        # Our PID in the name tells sweep_stale_beds() whether the bed's owner still lives.
        # It is also the bed's host name: keep to what hostname(1) takes.
        label = re.sub(r"[^a-z0-9-]", "-", name.lower())
        self.name = f"{os.getpid()}-{next(_serial)}-{label}"
        self.checkout = checkout.resolve()
        self.pid = 0
        self._unshare: subprocess.Popen[bytes] | None = None
        self._cgroups: list[Path] = []

    def __enter__(self) -> Bed:
        try:
            self.boot()
        except BaseException:
            self.shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def boot(self, timeout: float = 60) -> None:
        hierarchies = _hierarchies()
        # The shell waits on stdin until it is in the bed's cgroups, then becomes unshare.
        argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--cgroup", "--uts",
                "--ipc", "--net", "/bin/sh", "-c", SETUP, "setup", self.name,
                str(self.checkout), _cgroup_mounts(hierarchies), " ".join(MASKED)]
        # setpriv --pdeathsig: the bed dies with the process that made it, so a test run
        # that is killed leaves no bed; unshare --kill-child passes it on to PID 1.
        self._unshare = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "/bin/sh", "-c", 'read -r _ && exec "$@"', "bed",
             *argv], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for point, options in hierarchies.items():
            cgroup = point / _own_cgroup(options).lstrip("/") / f"bed-{self.name}"
            cgroup.mkdir()
            self._cgroups.append(cgroup)
            if (cgroup / "cpuset.cpus").exists():  # v1 cpuset: empty until set
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (cgroup / knob).write_text((cgroup.parent / knob).read_text())
            (cgroup / "cgroup.procs").write_text(str(self._unshare.pid))
        assert self._unshare.stdin
        self._unshare.stdin.write(b"go\n")
        self._unshare.stdin.close()
        self.pid = self._wait_for_child(timeout)
        self._wait_for_exec(timeout)
        self._wait_for_boot(timeout)

    def _wait_for_child(self, timeout: float) -> int:
        assert self._unshare
        children = Path(f"/proc/{self._unshare.pid}/task/{self._unshare.pid}/children")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._unshare.poll() is not None:
                assert self._unshare.stderr
                raise RuntimeError(f"bed {self.name} did not boot: "
                                   f"{self._unshare.stderr.read().decode().strip()}")
            try:
                if pids := children.read_text().split():
                    return int(pids[0])
            except FileNotFoundError:
                pass
            time.sleep(0.01)
        raise TimeoutError(f"bed {self.name}: unshare started no child")

    def _wait_for_exec(self, timeout: float) -> None:
        """Until SETUP has exec'ed systemd, the child's mount namespace still shows the
        host's /run: a systemctl entering it could reach a systemd running on the host."""
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{self.pid}/comm").read_text().strip() != "systemd":
            if time.monotonic() > deadline:
                raise TimeoutError(f"bed {self.name}: systemd did not start")
            time.sleep(0.01)

    def _wait_for_boot(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            # Until systemd is PID 1 with a bus, this fails quickly; then it waits for boot.
            state = self.run("systemctl", "is-system-running", "--wait", check=False,
                             timeout=timeout).stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"bed {self.name} did not boot: state {state!r}")
            time.sleep(0.05)
        if state == "degraded":
            failed = self.run("systemctl", "--failed", "--no-legend", check=False).stdout
            log.warning("bed %s is degraded: %s", self.name, failed.strip())

    def run(self, *argv: str, check: bool = True, input: str | None = None,
            timeout: float = 120, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the bed and capture its output."""
        result = subprocess.run(self.command(*argv, env=env), input=input, capture_output=True,
                                text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"in bed {self.name}: {shlex.join(argv)} exited "
                                 f"{result.returncode}\n--- stdout\n{result.stdout}"
                                 f"--- stderr\n{result.stderr}")
        return result

    def command(self, *argv: str, env: dict[str, str] | None = None) -> list[str]:
        """The host command line that runs ``argv`` in the bed, with a clean environment
        as a login there would have, not the caller's."""
        clean = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "LANG": "C.UTF-8", "HOME": "/root", "SYSTEMD_PAGER": "", "TERM": "dumb"}
        clean.update(env or {})
        return ["nsenter", "-t", str(self.pid), "-a", "env", "-i",
                *(f"{key}={value}" for key, value in clean.items()), *argv]

    def install_project(self) -> None:
        self.run("make", "-C", str(self.checkout), "install", timeout=300)
        self.run("systemctl", "daemon-reload")

    def shutdown(self) -> None:
        if self._unshare and self._unshare.poll() is None:
            # SIGKILL to the namespace's PID 1 kills everything in it; unshare follows.
            if self.pid:
                os.kill(self.pid, signal.SIGKILL)
            self._unshare.kill()
            self._unshare.wait()
        # The namespace's processes die asynchronously; wait for its PID 1 to be gone.
        deadline = time.monotonic() + 10
        while self.pid and Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._unshare and self._unshare.stderr:
            self._unshare.stderr.close()
        _remove_cgroups(self._cgroups)
        self._cgroups = []


def _remove_cgroups(cgroups: list[Path], timeout: float = 5) -> None:
    """rmdir each bed cgroup depth-first; processes die asynchronously, so retry."""
    deadline = time.monotonic() + timeout
    for top in cgroups:
        while top.exists():
            nested = sorted((p for p in top.rglob("*") if p.is_dir()),
                            key=lambda p: len(p.parts), reverse=True)
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
    for point, options in _hierarchies().items():
        own = point / _own_cgroup(options).lstrip("/")
        for stale in own.glob("bed-*"):
            pid = stale.name.split("-")[1]
            if pid.isdigit() and Path(f"/proc/{pid}").exists():
                continue  # that test run is alive: its beds are not stale
            for proc in (stale / "cgroup.procs", *stale.rglob("cgroup.procs")):
                for task in proc.read_text().split() if proc.exists() else []:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(task), signal.SIGKILL)
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
        return subprocess.call(bed.command(*args.command, env=terminal))


if __name__ == "__main__":
    sys.exit(main())
