#!/bin/bash
# prepare.sh: build (once) and cache everything the KVM test host needs, then
# print the cache directory on stdout.
#
#   ${KRUNLET_CACHE:-$HOME/.cache/krunlet}/kvm-host/<key>/
#       vmlinux          Debian's stock kernel, uncompressed (QEMU boots the
#                        ELF through its PVH entry)
#       initramfs.cpio   busybox-static, the .ko files, kvm-smoke, /init
#       kvm-smoke        the same self-check program, for use on the host
#       kernel.txt       which package and version this came from
#       ready            written last: the directory is complete
#
# <key> = <kernel release>_<package version>-<hash of this folder's inputs>,
# so editing init.sh or kvm-smoke.c rebuilds only the initramfs (the kernel is
# reused from a sibling directory with the same kernel). The kernel package
# picked the first time is remembered in kvm-host/kernel-package; set
# KRUNLET_KVMHOST_KERNEL_PKG=linux-image-6.1.0-N-amd64[-unsigned] (or delete
# that file) to choose another one.
#
# A cache hit only hashes four small files. Builds hold an flock on
# kvm-host/.lock, so concurrent runs wait for one builder and then share it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${KRUNLET_CACHE:-$HOME/.cache/krunlet}
top=$cache_root/kvm-host

die() { echo "kvm-host: prepare: $*" >&2; exit 1; }
log() { echo "kvm-host: prepare: $*" >&2; }

# The modules the test host loads, in an order where every module comes after
# the ones it depends on (checked against modinfo below). /init loads the 9p
# group first, so that it can report a failure of the KVM group to run.sh.
modules_9p=(virtio_ring virtio virtio_mmio netfs fscache 9pnet 9pnet_virtio 9p)
modules_kvm=(irqbypass kvm ccp kvm-amd)
# vhost-vsock, so that QEMU inside can have a vhost-vsock-device (krunlet-bench net compares
# krunlet's user-space vsock with it). Loaded last; if they fail, only that comparison is lost.
modules_vsock=(vsock vmw_vsock_virtio_transport_common vhost_iotlb vhost vhost_vsock)
# tun, so that podman's slirp4netns network can run inside (tests/integration/podman_e2e.sh).
# Optional like the vsock group.
modules_vsock+=(tun)
all_modules=("${modules_9p[@]}" "${modules_kvm[@]}" "${modules_vsock[@]}")

# --- tools ------------------------------------------------------------------
need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v xz >/dev/null || need_pkgs+=(xz-utils)
command -v gcc >/dev/null || need_pkgs+=(gcc)
[[ -e /usr/lib/x86_64-linux-gnu/libc.a ]] || need_pkgs+=(libc6-dev)
[[ -e /usr/include/linux/kvm.h ]] || need_pkgs+=(linux-libc-dev)
command -v modinfo >/dev/null || need_pkgs+=(kmod)
# Only busybox-static works in the initramfs (nothing else is there to link).
if ! [[ -x /bin/busybox &&
        $(LC_ALL=C ldd /bin/busybox 2>&1) == *"not a dynamic executable"* ]]; then
    need_pkgs+=(busybox-static)
fi
if ((${#need_pkgs[@]})); then
    if ((EUID != 0)); then
        die "missing packages: ${need_pkgs[*]} (run: sudo apt-get install -y ${need_pkgs[*]})"
    fi
    log "installing ${need_pkgs[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            "${need_pkgs[@]}" >&2; then
        apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            "${need_pkgs[@]}" >&2 || die "apt-get install ${need_pkgs[*]} failed"
    fi
fi

# --- which kernel -------------------------------------------------------------
mkdir -p "$top"
choice_file=$top/kernel-package

# Prints "<package> <version>" for the newest linux-image-6.1.0-N-amd64 apt
# offers, preferring the -unsigned variant (same image, no signature).
pick_kernel() {
    local names best pkg
    names=$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
            grep -E '^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$' || true)
    if [[ -z $names ]]; then
        if ((EUID == 0)); then
            log "apt lists hold no linux-image-6.1.0-*-amd64; running apt-get update"
            apt-get update >&2 || true
            names=$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
                    grep -E '^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$' || true)
        fi
        [[ -n $names ]] || die "apt offers no linux-image-6.1.0-*-amd64 (is this Debian 12 with bookworm sources? try apt-get update)"
    fi
    best=$(sed -E 's/^linux-image-6\.1\.0-([0-9]+)-.*/\1/' <<<"$names" | sort -n | tail -1)
    pkg=linux-image-6.1.0-$best-amd64
    grep -qx "$pkg-unsigned" <<<"$names" && pkg=$pkg-unsigned
    echo "$pkg $(package_version "$pkg")"
}

package_version() {
    local v
    v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
    [[ -n $v && $v != "(none)" ]] || die "apt has no candidate version for $1"
    echo "$v"
}

if [[ -n ${KRUNLET_KVMHOST_KERNEL_PKG:-} ]]; then
    [[ $KRUNLET_KVMHOST_KERNEL_PKG =~ ^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$ ]] ||
        die "KRUNLET_KVMHOST_KERNEL_PKG must look like linux-image-6.1.0-N-amd64[-unsigned], got '$KRUNLET_KVMHOST_KERNEL_PKG'"
    choice="$KRUNLET_KVMHOST_KERNEL_PKG $(package_version "$KRUNLET_KVMHOST_KERNEL_PKG")"
elif [[ -s $choice_file ]]; then
    choice=$(<"$choice_file")
else
    choice=$(pick_kernel)
    printf '%s\n' "$choice" >"$choice_file.$$" && mv -f "$choice_file.$$" "$choice_file"
fi
read -r kpkg kver <<<"$choice"
[[ -n ${kver:-} ]] || die "bad $choice_file ('$choice'); delete it to pick again"
# 6.1.0-56-amd64 from linux-image-6.1.0-56-amd64[-unsigned]
krel=${kpkg#linux-image-}
krel=${krel%-unsigned}

# --- cache key ----------------------------------------------------------------
inputs_hash=$(cat "$here/prepare.sh" "$here/init.sh" "$here/exec.sh" "$here/kvm-smoke.c" |
              sha256sum | cut -c1-12)
kernel_tag=${krel}_${kver//[^A-Za-z0-9.+-]/_}
key=$kernel_tag-$inputs_hash
dir=$top/$key

if [[ -f $dir/ready ]]; then
    echo "$dir"
    exit 0
fi

exec 9>"$top/.lock"
flock 9
if [[ -f $dir/ready ]]; then  # another run built it while we waited
    echo "$dir"
    exit 0
fi

# Builds only happen under the lock, so any build folder left now is from a
# builder that died.
rm -rf "$top"/.build-*
log "building $dir (once; later runs reuse it)"
work=$(mktemp -d "$top/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
out=$work/out
mkdir -p "$out/modules"

# --- kernel and modules: reuse a sibling build of the same kernel -----------
reuse=
for d in "$top/$kernel_tag"-*/; do
    if [[ -f $d/ready && -f $d/vmlinux && -d $d/modules ]]; then
        # Only a sibling that has every module this version loads.
        complete=1
        for m in "${all_modules[@]}"; do
            [[ -f $d/modules/$m.ko ]] || complete=0
        done
        ((complete)) || continue
        reuse=${d%/}
        break
    fi
done

extract_vmlinux() {  # bzImage -> ELF vmlinux (Linux boot protocol, boot.rst)
    local img=$1 dest=$2 setup_sects off len magic
    [[ $(dd if="$img" bs=1 skip=514 count=4 status=none) == HdrS ]] ||
        die "$img is not a bzImage (no HdrS at 0x202)"
    setup_sects=$(od -An -tu1 -j 0x1f1 -N1 "$img" | tr -d ' ')
    ((setup_sects == 0)) && setup_sects=4
    # payload_offset (0x248) counts from the protected-mode code, which starts
    # after the setup sectors; payload_length (0x24c) includes a 4-byte
    # trailer holding the uncompressed size.
    read -r off len < <(od -An -tu4 -j 0x248 -N8 "$img")
    off=$(((setup_sects + 1) * 512 + off))
    magic=$(od -An -tx1 -j "$off" -N6 "$img" | tr -d ' ')
    payload() { dd if="$img" iflag=skip_bytes,count_bytes skip="$off" count="$len" bs=1M status=none; }
    case $magic in
        fd377a585a00*) payload | xz -dc --single-stream >"$dest" ;;
        1f8b*) payload | gzip -dc >"$dest" ;;
        28b52ffd*) payload | zstd -dcq >"$dest" ;;
        *) die "$img: unknown payload compression (magic $magic)" ;;
    esac
    [[ $(od -An -tx1 -N4 "$dest" | tr -d ' ') == 7f454c46 ]] ||
        die "$img: payload did not decompress to an ELF image"
}

if [[ -n $reuse ]]; then
    log "reusing the kernel from $reuse"
    cp -l "$reuse/vmlinux" "$out/vmlinux" 2>/dev/null || cp "$reuse/vmlinux" "$out/vmlinux"
    cp "$reuse"/modules/*.ko "$out/modules/"
else
    log "downloading $kpkg=$kver"
    (cd "$work" && apt-get download "$kpkg=$kver" >"$work/apt.log" 2>&1) || {
        cat "$work/apt.log" >&2
        die "apt-get download $kpkg=$kver failed (delete $choice_file to pick the newest kernel again)"
    }
    deb=$(echo "$work"/*.deb)
    [[ -f $deb ]] || die "apt-get download left no .deb in $work"
    log "unpacking $(basename "$deb")"
    dpkg -x "$deb" "$work/pkg"
    rm -f "$deb"
    moddir=$work/pkg/lib/modules/$krel
    [[ -d $moddir ]] || die "$kpkg has no lib/modules/$krel"
    extract_vmlinux "$work/pkg/boot/vmlinuz-$krel" "$out/vmlinux"
    declare -A seen=()
    for m in "${all_modules[@]}"; do
        ko=$(find "$moddir/kernel" -name "$m.ko" -print -quit)
        [[ -n $ko ]] || ko=$(find "$moddir/kernel" -name "${m//-/_}.ko" -print -quit)
        [[ -n $ko ]] || die "$kpkg has no $m.ko (compressed modules are not handled)"
        # Every dependency must already be in the list before this module.
        deps=$(modinfo -F depends "$ko")
        for dep in ${deps//,/ }; do
            [[ -n ${seen[${dep//-/_}]:-} ]] ||
                die "$m.ko depends on $dep, which is not loaded before it: add it to modules_9p, modules_kvm or modules_vsock in prepare.sh"
        done
        seen[${m//-/_}]=1
        cp "$ko" "$out/modules/$m.ko"
    done
    rm -rf "$work/pkg"
fi
printf '%s %s\n' "$kpkg" "$kver" >"$out/kernel.txt"

# --- kvm-smoke ----------------------------------------------------------------
gcc -O2 -static -Wall -Wextra -Werror -o "$out/kvm-smoke" "$here/kvm-smoke.c" ||
    die "building kvm-smoke failed"

# --- initramfs ------------------------------------------------------------------
# Layout: the host's /usr is mounted over 9p at /usr, and /bin /sbin /lib
# /lib64 are symlinks into it as on merged-/usr Debian, so host binaries run
# unchanged. Our own tools live under /.kvmhost, usable before /usr exists.
root=$work/root
mkdir -p "$root"/{.kvmhost/bin,.kvmhost/modules,.kvmhost/run,dev,proc,sys,tmp,usr,etc,run,var/tmp,root,home,mnt}
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
cp /bin/busybox "$root/.kvmhost/bin/busybox"
for applet in $(/bin/busybox --list); do
    [[ -e $root/.kvmhost/bin/$applet ]] || ln -s busybox "$root/.kvmhost/bin/$applet"
done
cp "$out/kvm-smoke" "$root/.kvmhost/bin/kvm-smoke"
for m in "${all_modules[@]}"; do
    [[ -f $out/modules/$m.ko ]] || die "$m.ko is missing from the kernel build (delete $top to start over)"
    cp "$out/modules/$m.ko" "$root/.kvmhost/modules/"
done
printf '%s\n' "${modules_9p[@]}" >"$root/.kvmhost/modules/9p.order"
printf '%s\n' "${modules_kvm[@]}" >"$root/.kvmhost/modules/kvm.order"
printf '%s\n' "${modules_vsock[@]}" >"$root/.kvmhost/modules/vsock.order"
install -m 0755 "$here/init.sh" "$root/init"
install -m 0755 "$here/exec.sh" "$root/.kvmhost/exec.sh"
if ((EUID == 0)); then
    mknod -m 0600 "$root/dev/console" c 5 1
fi
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc --owner=0:0 >"$out/initramfs.cpio")

date -u +%Y-%m-%dT%H:%M:%SZ >"$out/ready"
touch "$out/last-used"
mv "$out" "$dir"
log "ready: $dir"

# Drop builds nobody used for a week (run.sh touches last-used); a run of an
# older checkout that still uses one just rebuilds it.
for d in "$top"/*/; do
    d=${d%/}
    [[ $d == "$dir" || ! -f $d/ready ]] && continue
    if [[ -z $(find "$d/last-used" -mtime -7 2>/dev/null) ]]; then
        log "removing unused $d"
        rm -rf "$d"
    fi
done
echo "$dir"
