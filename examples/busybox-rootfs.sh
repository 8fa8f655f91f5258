#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# busybox-rootfs.sh DIR: make DIR a minimal root file system from Debian's busybox-static
# (statically linked, so the busybox binary and its applet links are all it needs).
# The examples, the demo and the integration tests run their apps from it.
set -eu

dest=${1:?usage: busybox-rootfs.sh DIR}
busybox=/bin/busybox
if ! dpkg -S "$busybox" 2>/dev/null | grep -q '^busybox-static:'; then
	echo "busybox-rootfs.sh: $busybox is not from busybox-static (apt-get install busybox-static)" >&2
	exit 1
fi

mkdir -p "$dest"
cd "$dest"
mkdir -p bin etc proc sys dev tmp run var/tmp var/www root
chmod 1777 tmp var/tmp
cp "$busybox" bin/busybox
for applet in $(bin/busybox --list); do
	[ "$applet" = busybox ] || ln -sf busybox "bin/$applet"
done
cat > etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > etc/group <<'GROUP'
root:x:0:
www-data:x:33:
nogroup:x:65534:
GROUP
chown -R 33:33 var/www
