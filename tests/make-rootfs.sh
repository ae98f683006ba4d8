#!/bin/sh
# make-rootfs.sh DIR — a minimal container root filesystem from Debian's
# busybox-static: /bin/busybox plus a symlink per applet, and the usual
# top-level directories. Used for the demo (build/demo-rootfs) and the tests.
set -eu
dir=${1:?usage: make-rootfs.sh DIR}
bb=/bin/busybox
# Debian's busybox-static installs a static /bin/busybox, which works in a bare
# rootfs (the dynamic "busybox" package would need the host's libc).
[ -x "$bb" ] || { echo "make-rootfs: $bb missing: apt-get install busybox-static" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev tmp root home var/tmp
chmod 1777 tmp var/tmp
cp "$bb" bin/busybox
for applet in $(bin/busybox --list-full); do
    [ -e "$applet" ] || ln -s /bin/busybox "$applet"
done
[ -e etc/passwd ] || printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > etc/passwd
[ -e etc/group ] || printf 'root:x:0:\nnogroup:x:65534:\n' > etc/group
