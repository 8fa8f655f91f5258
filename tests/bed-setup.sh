#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Sets up a test bed (tests/bed.py) and execs systemd in it.  Runs as PID 1 of fresh
# mount, PID, cgroup, UTS, IPC and network namespaces made by unshare; never run it
# otherwise.  $1: bed name, $2: checkout, $3: cgroup layout, one "TYPE OPTIONS PATH" a
# line, PATH under /sys/fs/cgroup; $4: units to mask.  Every step must succeed before
# systemd is exec'ed (set -e).
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
# Sysctls are global except the network's (the bed's own namespace, e.g. ip_forward):
# systemd would raise fs.file-max, tests might set others.
mount --bind "$root/proc/sys/net" "$root/proc/sys/net"
mount --rbind "$root/proc/sys" "$root/proc/sys"
mount -o remount,bind,ro "$root/proc/sys"
if [ -e "$root/proc/sysrq-trigger" ]; then
    mount --bind "$root/proc/sysrq-trigger" "$root/proc/sysrq-trigger"
    mount -o remount,bind,ro "$root/proc/sysrq-trigger"
fi
# sysfs is the kernel's, not the bed's: read-only (cgroups are mounted afresh below).
mount --rbind /sys "$root/sys"
mount -o remount,bind,ro "$root/sys"
mount --rbind /dev "$root/dev"
# Own POSIX shared memory, and a console of its own: systemd resets and writes its
# console, which must not be the host's.
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
touch /mnt/console
mount --bind /mnt/console "$root/dev/console"
# tmpfs where podmgr puts overlay upper dirs: overlayfs cannot be the upper of another.
for dir in /run /tmp /var/lib/podmgr; do
    mkdir -p "$root$dir"
    mount -t tmpfs -o mode=0755 tmpfs "$root$dir"
done
chmod 1777 "$root/tmp"
# systemd sets the host name from /etc/hostname at boot.
echo "bed-$name" > "$root/etc/hostname"
# Fresh cgroup mounts in the bed's cgroup namespace, in the host's layout.
if mountpoint -q "$root/sys/fs/cgroup"; then umount -R "$root/sys/fs/cgroup"; fi
while read -r type options path; do
    target=$root/sys/fs/cgroup/$path
    case $type in
        link) ln -s "$options" "$target" ;;
        *) mkdir -p "$target"; mount -t "$type" -o "$options" "$type" "$target" ;;
    esac
done <<EOF
$cgroups
EOF
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
# No hardware watchdog: a bed is killed, and one armed at shutdown would reboot the host.
mkdir -p "$root/etc/systemd/system.conf.d"
cat > "$root/etc/systemd/system.conf.d/bed.conf" <<EOF
[Manager]
RuntimeWatchdogSec=off
RebootWatchdogSec=off
KExecWatchdogSec=off
EOF
cd "$root"
pivot_root . mnt
umount -l /mnt
# container= makes systemd skip what a container must not do: setting the clock, and on
# poweroff detaching loop and DM devices or turning swap off (all of them the host's).
# No CAP_SYS_MODULE or CAP_SYS_TIME: modules and the clock are global.
exec env -i container=podmgr-bed \
    "$(command -v setpriv)" --bounding-set -sys_module,-sys_time -- \
    /lib/systemd/systemd --system --unit=bed.target --log-target=kmsg
