#!/usr/bin/env bash
# Build the krunlet guest kernel (an uncompressed ELF vmlinux) from Debian's
# linux-source-6.1, or return it from the cache when it was built before.
#
#   kernel/build.sh [OUTPUT_FILE]
#
# The result is cached outside the repository at
#   ${KRUNLET_CACHE:-$HOME/.cache/krunlet}/kernel/<hash>/vmlinux   (+ config)
# where <hash> covers krunlet.config, every file in patches/, this script and
# the installed linux-source-6.1 package version.  A cache hit only hashes a
# few small files.  OUTPUT_FILE, when given, receives a copy of vmlinux.
# Progress goes to stderr; the last line on stdout is the cached path.
#
# Environment:
#   KRUNLET_CACHE         cache root (default $HOME/.cache/krunlet)
#   KRUNLET_KERNEL_JOBS   parallel make jobs (default: nproc)
set -euo pipefail

readonly SRC_PKG=linux-source-6.1
readonly SRC_TAR=/usr/src/linux-source-6.1.tar.xz
# Packages the build needs.  Only the missing ones are installed.
readonly DEPS=(linux-source-6.1 build-essential bc flex bison libelf-dev
               libssl-dev xz-utils perl util-linux binutils)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly here
readonly fragment=$here/krunlet.config
readonly patches_dir=$here/patches
self=$here/$(basename "${BASH_SOURCE[0]}")
readonly self

log() { printf 'kernel/build.sh: %s\n' "$*" >&2; }
die() { printf 'kernel/build.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
    echo "usage: kernel/build.sh [OUTPUT_FILE]" >&2
    exit 2
}

[[ $# -le 1 ]] || usage
case ${1:-} in -h|--help) usage ;; esac
output_file=${1:-}

[[ -f $fragment ]] || die "missing config fragment $fragment"

# ---------------------------------------------------------------- deps ----
pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

install_missing_deps() {
    local missing=() p
    for p in "${DEPS[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0

    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null \
            || die "missing packages: ${missing[*]}; install them as root: apt-get install -y ${missing[*]}"
        sudo=(sudo -n)
    fi
    log "installing missing packages: ${missing[*]}"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -qq
               --no-install-recommends install "${missing[@]}")
    if ! "${sudo[@]}" "${apt[@]}" </dev/null >/dev/null; then
        # A stale package index is the usual cause; refresh it once.
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq update </dev/null >/dev/null \
            || die "apt-get update failed; install by hand: apt-get install -y ${missing[*]}"
        "${sudo[@]}" "${apt[@]}" </dev/null >/dev/null \
            || die "apt-get install failed; install by hand: apt-get install -y ${missing[*]}"
    fi
}

command -v dpkg-query >/dev/null \
    || die "dpkg-query not found: this script builds from Debian's $SRC_PKG package"

# The version is part of the cache key, so without it nothing can be looked
# up: install the source package (and the rest) first in that case.
src_version=$(dpkg-query -W -f='${Version}' "$SRC_PKG" 2>/dev/null || true)
if [[ -z $src_version ]] || ! pkg_installed "$SRC_PKG"; then
    install_missing_deps
    src_version=$(dpkg-query -W -f='${Version}' "$SRC_PKG")
fi

# ----------------------------------------------------------- cache key ----
# Each input is hashed under its name so that renaming a patch (which changes
# the order they apply in) changes the key too.
compute_hash() {
    {
        printf 'package %s %s\n' "$SRC_PKG" "$src_version"
        printf 'fragment %s\n' "$(sha256sum <"$fragment" | cut -d' ' -f1)"
        printf 'script %s\n' "$(sha256sum <"$self" | cut -d' ' -f1)"
        if [[ -d $patches_dir ]]; then
            local f
            while IFS= read -r -d '' f; do
                printf 'patch %s %s\n' "${f#"$patches_dir"/}" \
                    "$(sha256sum <"$f" | cut -d' ' -f1)"
            done < <(find "$patches_dir" -type f -print0 | LC_ALL=C sort -z)
        fi
    } | sha256sum | cut -c1-16
}

hash=$(compute_hash)
cache_root=${KRUNLET_CACHE:-$HOME/.cache/krunlet}/kernel
entry=$cache_root/$hash
cached=$entry/vmlinux

deliver() {
    if [[ -n $output_file ]]; then
        mkdir -p "$(dirname "$output_file")"
        # Copy next to the target, then rename: readers never see half a file.
        local tmp_out
        tmp_out=$(mktemp "$(dirname "$output_file")/.vmlinux.XXXXXX")
        cp "$cached" "$tmp_out"
        chmod 0644 "$tmp_out"
        mv -f "$tmp_out" "$output_file"
    fi
    printf '%s\n' "$cached"
}

# Fast path.  The entry directory only appears through an atomic rename once
# it is complete, so an existing vmlinux is always a finished one.
if [[ -f $cached ]]; then
    deliver
    exit 0
fi

# ----------------------------------------------------------- slow path ----
mkdir -p "$cache_root"
# One lock per cache entry: a second caller for the same kernel waits and
# then takes the fast path; different kernels build side by side.
exec {lock_fd}>"$cache_root/$hash.lock"
if ! flock -n "$lock_fd"; then
    log "another build of $hash is running; waiting for it"
    flock "$lock_fd"
fi
if [[ -f $cached ]]; then
    deliver
    exit 0
fi

install_missing_deps
[[ -r $SRC_TAR ]] || die "$SRC_TAR is missing although $SRC_PKG is installed; reinstall it: apt-get install --reinstall $SRC_PKG"

# Build trees of this hash left by a killed run are stale: only the lock
# holder builds this hash.
rm -rf "$cache_root/build-$hash".*
work=$(mktemp -d "$cache_root/build-$hash.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
buildlog=$work/build.log
failed_log=$cache_root/$hash.failed.log

# Runs a build step with its output in the log; on failure keeps the log and
# shows its end, since the work directory is removed on exit.
step() {
    local what=$1
    shift
    if ! "$@" >>"$buildlog" 2>&1; then
        cp "$buildlog" "$failed_log"
        tail -n 40 "$buildlog" >&2
        die "$what failed; full log: $failed_log"
    fi
}

jobs=${KRUNLET_KERNEL_JOBS:-$(nproc)}
log "building kernel $hash ($SRC_PKG $src_version, $jobs jobs) in $work"
log "this takes several minutes; log: $buildlog"

step "unpacking $SRC_TAR" tar -C "$work" -xf "$SRC_TAR"
src=$work/linux-source-6.1
[[ -d $src ]] || die "$SRC_TAR did not contain linux-source-6.1/"

if [[ -d $patches_dir ]]; then
    while IFS= read -r -d '' p; do
        log "applying patch ${p#"$patches_dir"/}"
        step "applying ${p#"$patches_dir"/}" patch -d "$src" -p1 --forward --batch -i "$p"
    done < <(find "$patches_dir" -type f -name '*.patch' -print0 | LC_ALL=C sort -z)
fi

# Fixed identity strings keep `uname -v` free of the build machine's name.
export ARCH=x86_64 KBUILD_BUILD_USER=krunlet KBUILD_BUILD_HOST=krunlet
mk=(make -C "$src" -j"$jobs")

# merge_config.sh -n runs `make allnoconfig` with our fragment as
# KCONFIG_ALLCONFIG: every option we ask for is set, every other option with
# a prompt is off.  (Merging into a finished allnoconfig .config instead
# would freeze the defaults of options that only become visible through our
# fragment, such as everything behind EXPERT.)  olddefconfig then settles
# whatever is left.
step "merge_config.sh -n (allnoconfig + fragment)" \
    env -C "$src" scripts/kconfig/merge_config.sh -n "$fragment"
step "make olddefconfig" "${mk[@]}" olddefconfig

# Kconfig silently drops options whose dependencies are off.  Every line of
# the fragment must hold in the final .config, or the build stops here.
verify_config() {
    local config=$1 line sym want got bad=()
    local -A seen=()
    while IFS= read -r line; do
        if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
            sym=${BASH_REMATCH[1]}
            want=${BASH_REMATCH[2]}
        elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
            sym=${BASH_REMATCH[1]}
            want=n
        else
            continue
        fi
        if [[ -n ${seen[$sym]:-} ]]; then
            bad+=("$sym: listed twice in the fragment (the last line wins); keep one")
            continue
        fi
        seen[$sym]=1
        got=$(grep -m1 "^$sym=" "$config" | cut -d= -f2- || true)
        [[ -z $got ]] && got=n
        [[ $got == "$want" ]] || bad+=("$sym: requested $want, final .config has $got")
    done <"$fragment"
    if [[ ${#bad[@]} -gt 0 ]]; then
        cp "$config" "$cache_root/$hash.failed.config"
        printf 'kernel/build.sh: error: %d requested option(s) do not hold in the final .config:\n' "${#bad[@]}" >&2
        printf '  %s\n' "${bad[@]}" >&2
        die "fix the dependencies in $fragment (final config kept at $cache_root/$hash.failed.config)"
    fi
}
verify_config "$src/.config"

step "make vmlinux" nice -n 10 "${mk[@]}" vmlinux

vmlinux=$src/vmlinux
# The VMM loads PT_LOAD segments of a 64-bit x86 ELF at their physical
# addresses; check that is what came out.
header=$(readelf -hW "$vmlinux")
grep -q 'Class:[[:space:]]*ELF64' <<<"$header" || die "$vmlinux is not ELF64"
grep -q 'Machine:[[:space:]]*Advanced Micro Devices X86-64' <<<"$header" \
    || die "$vmlinux is not an x86-64 ELF"
readelf -lW "$vmlinux" | grep -Eq '^[[:space:]]*LOAD[[:space:]]+0x[0-9a-f]+[[:space:]]+0x[0-9a-f]+[[:space:]]+0x0*1000000[[:space:]]' \
    || die "$vmlinux has no PT_LOAD segment at physical 0x1000000"
readelf -nW "$vmlinux" | grep -q 'Xen' \
    || die "$vmlinux lacks the PVH (Xen ELF) note"

out=$work/out
mkdir "$out"
cp "$vmlinux" "$out/vmlinux"
cp "$src/.config" "$out/config"
chmod 0644 "$out/vmlinux" "$out/config"
# Publish atomically; the lock guarantees nobody else is renaming to $entry.
rm -rf "$entry"
mv "$out" "$entry"
rm -f "$failed_log" "$cache_root/$hash.failed.config"
log "built vmlinux: $(stat -c %s "$cached") bytes"

deliver
