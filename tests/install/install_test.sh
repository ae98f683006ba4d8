#!/bin/sh
# install_test.sh BUILD_DIR — `cmake --install` into a temporary prefix, check
# that everything a user needs is in its standard place, build a C launcher
# against the installed libkrun through pkg-config, and boot a busybox rootfs
# with it where a Linux guest can run (run-in-kvm.sh: here, the KVM test host).
# The build tree is never on the launcher's search paths: the kernel must come
# from the installed libkrunlet-kernel.so.1.
set -u
BUILD=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*"; exit 1; }
command -v pkg-config > /dev/null || { echo "SKIPPED: pkg-config is not installed"; exit 77; }
command -v cc > /dev/null || { echo "SKIPPED: no C compiler (cc)"; exit 77; }

# Inside the build tree, which the KVM test host shares (it does not share /tmp).
T=$BUILD/install-test
rm -rf "$T"
mkdir -p "$T"
P=$T/prefix
cmake --install "$BUILD" --prefix "$P" > "$T/install.log" 2>&1 || { cat "$T/install.log"; fail "cmake --install"; }
for f in bin/krunlet bin/krun bin/krunlet-oci bin/krunlet-launch lib/libkrun.so.1 lib/libkrunlet-kernel.so.1 \
         include/libkrun.h lib/pkgconfig/libkrun.pc; do
    [ -e "$P/$f" ] || fail "$f is not installed under the prefix: $(cd "$P" && find . | sort | tr '\n' ' ')"
done
echo "ok: installed: bin/{krunlet,krun,krunlet-oci,krunlet-launch}, lib/{libkrun,libkrunlet-kernel}.so.1, include/libkrun.h, lib/pkgconfig/libkrun.pc"

# The installed kernel library holds a kernel (not the empty one built without
# -DKRUNLET_KERNEL_IMAGE): an x86 vmlinux is megabytes.
size=$(stat -L -c %s "$P/lib/libkrunlet-kernel.so.1") || fail "stat libkrunlet-kernel.so.1"
[ "$size" -gt 1000000 ] || fail "libkrunlet-kernel.so.1 is $size bytes: it holds no kernel (configure with -DKRUNLET_KERNEL_IMAGE, ./setup.sh does)"

# libkrun.pc is relocatable: it names the prefix it was installed to.
export PKG_CONFIG_PATH=$P/lib/pkgconfig
libdir=$(pkg-config --variable=libdir libkrun) || fail "pkg-config does not know libkrun"
[ "$(realpath "$libdir")" = "$(realpath "$P/lib")" ] || fail "libkrun.pc says libdir=$libdir, not $P/lib"
# shellcheck disable=SC2046  # pkg-config output is meant to be split
cc -std=c11 -Wall -Wextra -Werror -o "$T/boot_rootfs" "$here/boot_rootfs.c" $(pkg-config --cflags --libs libkrun) \
    -Wl,-rpath,"$libdir" 2> "$T/cc.log" || { cat "$T/cc.log"; fail "building a C program against the installed libkrun"; }
loaded=$(ldd "$T/boot_rootfs" | sed -n 's/^[[:space:]]*libkrun\.so\.1 => \([^ ]*\) .*/\1/p')
[ -n "$loaded" ] && [ "$(realpath "$loaded")" = "$(realpath "$P/lib/libkrun.so.1")" ] || fail "boot_rootfs does not load the installed libkrun.so.1: $(ldd "$T/boot_rootfs")"
echo "ok: a C program builds with \$(pkg-config --cflags --libs libkrun) and loads $P/lib/libkrun.so.1"

"$here/../make-rootfs.sh" "$T/rootfs" || fail "make-rootfs.sh"
# No KRUNLET_KERNEL, and nothing of the build tree on the way.
env -u KRUNLET_KERNEL "$here/../integration/run-in-kvm.sh" "$T/boot_rootfs" "$T/rootfs" > "$T/boot.out" 2> "$T/boot.err"
got=$?
case $got in
    7) ;;
    77) cat "$T/boot.out"; exit 77 ;;
    *) cat "$T/boot.out" "$T/boot.err"; fail "the installed launcher exited $got, not the workload's 7" ;;
esac
grep -q 'hello from the installed libkrun' "$T/boot.out" || fail "no workload output: $(cat "$T/boot.out")"
echo "ok: the installed libkrun booted the rootfs (exit 7 and the workload's output)"
[ -n "${KEEP:-}" ] || rm -rf "$T"
echo PASS
