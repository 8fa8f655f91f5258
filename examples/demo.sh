#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The demo: run examples/demo.toml on this systemd (make demo runs it in a throwaway
# systemd when PID 1 is something else) and show what an administrator would look at.
# Expects podmgr installed (make install).
set -eu
cd "$(dirname "$0")"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "examples/busybox-rootfs.sh /var/lib/machines/podmgr-busybox"
./busybox-rootfs.sh /var/lib/machines/podmgr-busybox

step "install -m 644 examples/demo.toml /etc/podmgr/pods/demo.toml"
install -d /etc/podmgr/pods
install -m 644 demo.toml /etc/podmgr/pods/demo.toml
cat /etc/podmgr/pods/demo.toml

step "podmgr validate /etc/podmgr/pods/demo.toml"
podmgr validate /etc/podmgr/pods/demo.toml

step "systemctl daemon-reload && podmgr start demo"
systemctl daemon-reload
podmgr start demo

step "systemctl status pod@demo pod-demo.slice"
systemctl status --no-pager --lines=0 pod@demo.service pod-demo.slice || true

step "podmgr status demo"
podmgr status demo

step "waiting 10 s for the client to fetch the page a few times over the pod's loopback"
sleep 10

step "journalctl PODMGR_POD=demo"
journalctl --no-pager PODMGR_POD=demo

step "the page, through the port the pod publishes on the host's 127.0.0.1:8080"
curl --silent --show-error http://127.0.0.1:8080/

step "nft list table inet podmgr: the published port and the network's NAT"
nft list table inet podmgr

step "podmgr stop demo"
podmgr stop demo
podmgr list
if [ -e /run/podmgr/pods/demo ] || grep -q /run/podmgr/pods/demo /proc/self/mountinfo; then
	echo "demo: the pod left mounts behind" >&2
	exit 1
fi
if grep -qx demo /var/lib/podmgr/networks/podmgr/* 2>/dev/null \
		|| nft list table inet podmgr | grep -q '"pod demo'; then
	echo "demo: the pod left its lease or published port behind" >&2
	exit 1
fi
echo "Stopped; its mounts, namespaces, address and port are gone. Start it again with:"
echo "podmgr start demo"
