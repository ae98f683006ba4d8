#!/usr/bin/env bash
# ./setup.sh — install the Debian packages krunlet needs, build everything
# (guest kernel included, cached in ~/.cache/krunlet), and boot the demo.
#
#   ./setup.sh              all of it
#   ./setup.sh --no-demo    stop after the build (test.sh uses this)
set -euo pipefail
cd "$(dirname "$0")"
demo=1
[ "${1:-}" = "--no-demo" ] && demo=0

packages=(build-essential cmake ninja-build pkg-config clang lld
          libseccomp-dev libfuse3-dev nlohmann-json3-dev libcli11-dev doctest-dev libslirp-dev
          libclang-rt-14-dev busybox-static qemu-system-x86 linux-source-6.1 bc flex bison libelf-dev libssl-dev cpio xz-utils kmod
          passt podman runc conmon slirp4netns)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "setup: guest kernel (cached after the first build, ~5 min)"
kernel=$(kernel/build.sh | tail -n 1)
[ -f "$kernel" ] || { echo "setup: kernel/build.sh did not produce a vmlinux" >&2; exit 1; }

echo "setup: building krunlet"
cmake -S . -B build -G Ninja -DKRUNLET_KERNEL_IMAGE="$kernel" >/dev/null
ninja -C build

tests/make-rootfs.sh build/demo-rootfs

[ "$demo" = 1 ] || exit 0

demo_cmd=(build/bin/krunlet run --boot-trace build/demo-rootfs -- /bin/echo "hello from krunlet")
if [ -e /sys/module/kvm_pvm ] || [ ! -w /dev/kvm ]; then
    echo "setup: this machine's /dev/kvm cannot run a Linux guest (kvm_pvm or missing); booting the demo inside the KVM test host (tests/kvm-host/run.sh)"
    tests/kvm-host/run.sh "${demo_cmd[@]}"
else
    echo "setup: booting the demo directly on /dev/kvm"
    "${demo_cmd[@]}"
fi
