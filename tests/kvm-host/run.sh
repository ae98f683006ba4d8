#!/bin/bash
# run.sh COMMAND [ARG...]   run COMMAND inside the KVM test host
# run.sh --self-test        boot it, prove KVM runs a guest inside, report
#
# The test host is Debian's stock kernel in QEMU (TCG, -cpu max = emulated
# AMD SVM) with kvm-amd loaded, so /dev/kvm inside is real KVM even where
# this machine's own /dev/kvm (kvm_pvm) cannot run Linux user space. COMMAND
# runs there in the same working directory, sees the same paths, and its exit
# status becomes ours. 125 = the test host failed, 124 = watchdog timeout.
# README.md has the details and the measured costs.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {  # infrastructure failure: one line, exit 125
    echo "kvm-host: $*" >&2
    exit 125
}

usage() {
    cat >&2 <<'EOF'
usage: tests/kvm-host/run.sh COMMAND [ARG...]
       tests/kvm-host/run.sh --self-test
Runs COMMAND inside the QEMU-emulated KVM test host (see tests/kvm-host/README.md).
Environment: KRUNLET_KVMHOST_TIMEOUT (s, default 900), KRUNLET_KVMHOST_MEM (MiB,
default 3072), KRUNLET_KVMHOST_CPUS (default 1), KRUNLET_KVMHOST_SHARE (extra
directories, colon-separated), KRUNLET_KVMHOST_ENV (extra variable names),
KRUNLET_KVMHOST_DEBUG=1 (kernel console to stderr), KRUNLET_CACHE.
EOF
    exit 125
}

(($# >= 1)) || usage
case $1 in
    -h | --help) usage ;;
esac

self_test=0
if [[ $1 == --self-test ]]; then
    (($# == 1)) || usage
    self_test=1
    # Runs inside; every check must hold or the self-test fails.
    set -- /bin/sh -c '
        set -e
        read up idle </proc/uptime
        echo "kvm-host self-test: kernel start to COMMAND: ${up} s"
        test "$KRUNLET_IN_KVMHOST" = 1
        test "$(stat -c "%t:%T %a" /dev/kvm)" = "a:e8 666"
        grep -qw svm /proc/cpuinfo
        echo "kvm-host self-test: $(grep -c ^processor /proc/cpuinfo) vCPU(s), $(awk "/MemTotal/ {print int(\$2/1024)}" /proc/meminfo) MiB," \
             "modules: $(cut -d" " -f1 /proc/modules | grep -E "^(kvm|kvm_amd|ccp|irqbypass)$" | sort | tr "\n" " ")"
        test "$(pwd -P)" = "$1"
        /.kvmhost/bin/kvm-smoke -n 2000 -c 2
        read up idle </proc/uptime
        echo "kvm-host self-test: kernel start to end of checks: ${up} s"
    ' kvm-host-self-test "$(pwd -P)"
fi

# Already inside the test host: /dev/kvm here is the real thing.
if [[ ${KRUNLET_IN_KVMHOST:-} == 1 ]]; then
    exec "$@"
fi

# --- settings ---------------------------------------------------------------
int_setting() {  # NAME DEFAULT MIN MAX
    local v=${!1:-$2}
    [[ $v =~ ^[0-9]+$ ]] && ((v >= $3 && v <= $4)) ||
        die "$1 must be an integer in $3..$4, got '$v'"
    echo "$v"
}
timeout_s=$(int_setting KRUNLET_KVMHOST_TIMEOUT 900 1 86400) || exit
mem_mib=$(int_setting KRUNLET_KVMHOST_MEM 3072 256 65536) || exit
cpus=$(int_setting KRUNLET_KVMHOST_CPUS 1 1 16) || exit
debug=${KRUNLET_KVMHOST_DEBUG:-0}
cache_root=${KRUNLET_CACHE:-$HOME/.cache/krunlet}

command -v timeout >/dev/null || die "coreutils' timeout is missing"
dir=$("$here/prepare.sh") || die "preparing the test host failed (messages above)"
[[ -f $dir/ready ]] || die "prepare.sh returned '$dir', which is not a finished cache directory"
touch "$dir/last-used" 2>/dev/null  # keeps prepare.sh from pruning it

# TSC frequency for tsc_early_khz=: under TCG the guest's TSC runs at the
# host's rate and the kernel's own calibration fails (DESIGN.md section 6).
tsc_khz() {
    local mhz
    mhz=$(dmesg 2>/dev/null | sed -nE 's/.*tsc: Refined TSC clocksource calibration: ([0-9.]+) MHz.*/\1/p' | tail -1)
    [[ -n $mhz ]] || mhz=$(dmesg 2>/dev/null | sed -nE 's/.*tsc: Detected ([0-9.]+) MHz processor.*/\1/p' | tail -1)
    [[ -n $mhz ]] || mhz=$(awk -F: '/^cpu MHz/ {gsub(/ /, "", $2); print $2; exit}' /proc/cpuinfo)
    [[ $mhz =~ ^[0-9]+(\.[0-9]+)?$ ]] || return 1
    awk -v m="$mhz" 'BEGIN { printf "%d\n", m * 1000 + 0.5 }'
}
tsc=$(tsc_khz) || die "cannot find the host's TSC frequency (no 'tsc:' line in dmesg, no 'cpu MHz' in /proc/cpuinfo)"

# --- the per-run directory, shared with the test host as "khrun" ------------
run=$(mktemp -d "${TMPDIR:-/tmp}/kvm-host.XXXXXX") || die "mktemp failed"
qemu_pid=
tail_pids=()
cleanup() {
    [[ -n $qemu_pid ]] && kill -TERM "$qemu_pid" 2>/dev/null
    for p in "${tail_pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

cwd=$(pwd -P) || die "cannot read the current directory"
printf '%s\0' "$@" >"$run/argv"
printf '%s\0' "$cwd" >"$run/cwd"

# Environment: KRUNLET_*, the names in KRUNLET_KVMHOST_ENV, PATH HOME TERM.
read -r -a env_names <<<"${KRUNLET_KVMHOST_ENV:-}"
{
    declare -A sent=()
    for name in $(compgen -e) "${env_names[@]}"; do
        [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] ||
            die "KRUNLET_KVMHOST_ENV holds '$name', which is not a variable name"
        case $name in
            KRUNLET_IN_KVMHOST) continue ;;
            KRUNLET_* | PATH | HOME | TERM) ;;
            *) [[ " ${KRUNLET_KVMHOST_ENV:-} " == *" $name "* ]] || continue ;;
        esac
        [[ -v $name && -z ${sent[$name]:-} ]] || continue
        sent[$name]=1
        printf '%s=%s\0' "$name" "${!name}"
    done
} >"$run/env" || exit
: >"$run/stdout"
: >"$run/stderr"
[[ $debug == 1 ]] && : >"$run/debug"

# --- shares ------------------------------------------------------------------
# The repository (or cwd), KRUNLET_KVMHOST_SHARE read-write; the cache
# read-only. Same absolute paths inside.
repo=$(git -C "$cwd" rev-parse --show-toplevel 2>/dev/null) || repo=$cwd
shares=("rw $repo")
common=$(git -C "$cwd" rev-parse --path-format=absolute --git-common-dir 2>/dev/null) &&
    [[ $common != "$repo"/* ]] && shares+=("rw $common")  # linked worktrees
IFS=: read -r -a extra <<<"${KRUNLET_KVMHOST_SHARE:-}"
for p in "${extra[@]}"; do
    [[ -z $p ]] && continue
    [[ $p == /* ]] || die "KRUNLET_KVMHOST_SHARE entries must be absolute paths, got '$p'"
    [[ -d $p ]] || die "KRUNLET_KVMHOST_SHARE entry '$p' is not a directory"
    shares+=("rw $p")
done
[[ -d $cache_root ]] && shares+=("ro $cache_root")

qemu_shares=()
declare -A have=()
i=0
while IFS= read -r entry; do
    mode=${entry%% *}
    path=$(realpath -e -- "${entry#* }") || die "cannot resolve share '${entry#* }'"
    [[ $path == / ]] && die "refusing to share / with the test host (run from a project directory, or fix KRUNLET_KVMHOST_SHARE)"
    [[ $path == *$'\n'* ]] && die "cannot share a path with a newline: '$path'"
    [[ -n ${have[$path]:-} ]] && continue
    # Already visible read-write through a parent share?
    covered=0
    for q in "${!have[@]}"; do
        [[ ${have[$q]} == rw && $path == "$q"/* ]] && covered=1
    done
    ((covered)) && continue
    have[$path]=$mode
    tag=kh$i
    i=$((i + 1))
    ro_opt=
    [[ $mode == ro ]] && ro_opt=,readonly=on
    qemu_shares+=(-fsdev "local,id=$tag,path=${path//,/,,},security_model=none,multidevs=remap$ro_opt"
                  -device "virtio-9p-device,fsdev=$tag,mount_tag=$tag")
    printf '%s %s %s\n' "$tag" "$mode" "$path" >>"$run/mounts"
done < <(printf '%s\n' "${shares[@]}" | LC_ALL=C sort -t' ' -k2)

# --- boot ----------------------------------------------------------------------
# tsc=reliable: the clocksource watchdog compares the TSC with jiffies, which
# lag under emulation, and would otherwise switch the clock to jiffies.
# cryptomgr.notests=1: the crypto self-tests cost ~0.7 s of CPU per boot.
append="console=ttyS0 panic=-1 reboot=t tsc_early_khz=$tsc tsc=reliable cryptomgr.notests=1"
[[ $debug == 1 ]] || append+=" quiet loglevel=0"
append+=${KRUNLET_KVMHOST_APPEND:+ $KRUNLET_KVMHOST_APPEND}
# shellcheck disable=SC2054  # the commas belong to QEMU's option syntax
qemu=(qemu-system-x86_64
    -accel tcg -cpu "${KRUNLET_KVMHOST_QEMU_CPU:-max}" -smp "$cpus" -m "$mem_mib"
    -M microvm,acpi=on,isa-serial=on,rtc=on
    -nodefaults -no-user-config -display none -no-reboot
    -chardev "file,id=console,path=${run//,/,,}/console.log" -serial chardev:console
    -kernel "$dir/vmlinux" -initrd "$dir/initramfs.cpio" -append "$append"
    -fsdev "local,id=khrun,path=${run//,/,,},security_model=none"
    -device virtio-9p-device,fsdev=khrun,mount_tag=khrun
    -fsdev local,id=usr,path=/usr,security_model=none,readonly=on,multidevs=remap
    -device virtio-9p-device,fsdev=usr,mount_tag=usr
    -fsdev local,id=etc,path=/etc,security_model=none,readonly=on,multidevs=remap
    -device virtio-9p-device,fsdev=etc,mount_tag=etc
    "${qemu_shares[@]}")

start=$(date +%s.%N)
# timeout(1) is the watchdog: TERM after the limit, KILL 10 s later.
timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null >"$run/qemu.log" 2>&1 &
qemu_pid=$!

# Stream COMMAND's output while it runs; --pid makes tail read the rest and
# stop once QEMU is gone (and reaped).
tail -c +1 -s 0.1 --pid="$qemu_pid" -f "$run/stdout" &
tail_pids+=($!)
tail -c +1 -s 0.1 --pid="$qemu_pid" -f "$run/stderr" >&2 &
tail_pids+=($!)
if [[ $debug == 1 ]]; then
    tail -c +1 -s 0.1 --pid="$qemu_pid" -F "$run/console.log" >&2 2>/dev/null &
    tail_pids+=($!)
fi

wait "$qemu_pid"
qemu_rc=$?
qemu_pid=
wait "${tail_pids[@]}"
tail_pids=()
if [[ $debug == 1 && -s $run/qemu.log ]]; then
    sed 's/^/kvm-host: qemu: /' "$run/qemu.log" >&2
fi
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

# Keep the logs of a failed run where a human can find them.
keep_logs() {
    local dest=$cache_root/kvm-host/last-failure
    rm -rf "$dest" && mkdir -p "$dest" &&
        cp "$run/console.log" "$run/qemu.log" "$dest/" 2>/dev/null
    echo "$dest"
}

if ((qemu_rc == 124 || qemu_rc == 137)); then
    echo "kvm-host: timed out after ${timeout_s} s (KRUNLET_KVMHOST_TIMEOUT); the test host was killed (logs: $(keep_logs))" >&2
    exit 124
fi
if [[ -s $run/error ]]; then
    {
        echo "kvm-host: $(head -n 1 "$run/error") (logs: $(keep_logs))"
        tail -n +2 "$run/error" | sed 's/^/kvm-host: | /'
    } >&2
    exit 125
fi
status=$(cat "$run/status" 2>/dev/null)
if ! [[ $status =~ ^[0-9]+$ ]] || ((status > 255)); then
    logs=$(keep_logs)
    reason="QEMU exited with status $qemu_rc"
    grep -q . "$run/qemu.log" && reason+=": $(grep -v '^$' "$run/qemu.log" | tail -n 1)"
    echo "kvm-host: the test host stopped without reporting COMMAND's exit status ($reason; logs: $logs)" >&2
    exit 125
fi
if ((self_test)); then
    if ((status == 0)); then
        echo "kvm-host self-test: OK in $elapsed s (boot + checks + power-off, -smp $cpus -m $mem_mib)"
    else
        echo "kvm-host self-test: FAIL (status $status after $elapsed s)"
    fi
fi
exit "$status"
