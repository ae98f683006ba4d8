#!/usr/bin/env bash
# bench/compare.sh — krunlet against QEMU microvm, side by side, in one table
# (issue 7).
#
#   bench/compare.sh [--runs N] [--guest-runs N] [--fs-rounds N] [--part 1|2|all]
#                    [--kernel VMLINUX] [--rootfs DIR] [--chart FILE.svg]
#
# --kernel defaults to the vmlinux the build was configured with; --rootfs to
# a fresh tests/make-rootfs.sh busybox tree in a temporary directory.
#
# Part 1 runs here, on the real CPU, outside any emulation (--runs, default 10):
#   - process start to the first KVM_RUN, krunlet and QEMU microvm, same kernel;
#   - each VMM's own memory beyond the guest RAM its guest touched;
#   - host CPU per FUSE request of krunlet's virtio-fs server and of QEMU's
#     virtiofsd, sent the same requests with no guest (krunlet-bench fs-host).
# Part 2 runs inside the KVM test host (tests/kvm-host/run.sh), where guests
# boot to their end; there both VMMs pay the same emulation tax, so only the
# ratios carry over:
#   - boot to init and boot to exit of /bin/true, and the VM exits of each
#     boot, for krunlet, QEMU microvm + virtiofsd and QEMU microvm + an
#     initramfs, with the same kernel and rootfs (bench/compare_boot.sh,
#     --guest-runs rounds, default 10);
#   - server CPU per FUSE request measured from the guest side, krunlet
#     against virtiofsd (krunlet-bench fs, --fs-rounds rounds, default 3; 0
#     leaves it out).
# --chart writes the boot-time breakdown of part 2 (setup, kernel, init,
# workload) as an SVG; default build/compare-boot.svg.
#
# Every row is N runs: p50, min and max of each engine, and the ratio
# krunlet p50 / QEMU p50. Progress goes to stderr; the table and the raw
# numbers go to stdout. docs/performance.md explains the methods and holds a
# run of this script.
set -euo pipefail
# EPOCHREALTIME and awk must use '.' as the decimal point.
export LC_ALL=C

readonly repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly build=$repo/build

log() { printf 'compare.sh: %s\n' "$*" >&2; }
die() { printf 'compare.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# ------------------------------------------------------------- options ----
runs=10
guest_runs=10
fs_rounds=3
part=all
kernel=
rootfs=
chart=
while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) [[ $# -ge 2 ]] || usage; runs=$2; shift 2 ;;
        --guest-runs) [[ $# -ge 2 ]] || usage; guest_runs=$2; shift 2 ;;
        --fs-rounds) [[ $# -ge 2 ]] || usage; fs_rounds=$2; shift 2 ;;
        --part) [[ $# -ge 2 ]] || usage; part=$2; shift 2 ;;
        --kernel) [[ $# -ge 2 ]] || usage; kernel=$2; shift 2 ;;
        --rootfs) [[ $# -ge 2 ]] || usage; rootfs=$2; shift 2 ;;
        --chart) [[ $# -ge 2 ]] || usage; chart=$2; shift 2 ;;
        -h|--help) usage ;;
        *) log "unknown argument: $1"; usage ;;
    esac
done
[[ $guest_runs =~ ^[1-9][0-9]*$ ]] || die "--guest-runs wants a positive integer, got '$guest_runs'"
[[ $fs_rounds =~ ^[0-9]+$ ]] || die "--fs-rounds wants a number (0 leaves the FUSE rows out), got '$fs_rounds'"
case $part in 1 | 2 | all) ;; *) die "--part wants 1, 2 or all, got '$part'" ;; esac
[[ -n $chart ]] || chart=$build/compare-boot.svg
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs wants a positive integer, got '$runs'"

# -------------------------------------------------------- dependencies ----
# EPOCHREALTIME (a microsecond wall-clock stamp without a fork) is bash 5.
(( BASH_VERSINFO[0] >= 5 )) || die "bash 5 or newer is needed (EPOCHREALTIME); this is $BASH_VERSION"

# strace and QEMU are bench dependencies, never test dependencies: install
# them here when missing (root only), else name the fix.
need_package() {  # need_package COMMAND DEBIAN_PACKAGE
    command -v "$1" >/dev/null && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        log "$1 is missing; installing the Debian package $2 (a bench dependency)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; } \
            || die "could not install $2; install it yourself: apt-get install $2"
        command -v "$1" >/dev/null && return 0
    fi
    die "$1 not found: install it with 'apt-get install $2' (as root)"
}
need_package strace strace
need_package qemu-system-x86_64 qemu-system-x86

krunlet=$build/bin/krunlet
krunlet_bench=$build/bin/krunlet-bench
[[ -x $krunlet && -x $krunlet_bench ]] \
    || die "$krunlet or $krunlet_bench is missing: run ./setup.sh --no-demo (or 'ninja -C build' if build/ is configured)"

# The guest kernel. By default the one the build was configured with: setup.sh
# passes kernel/build.sh's last stdout line as KRUNLET_KERNEL_IMAGE. Reading it
# back (instead of calling kernel/build.sh) never starts a kernel build of
# several minutes in the middle of a benchmark when krunlet.config has changed
# since. Both VMMs get the same file: krunlet through KRUNLET_KERNEL, QEMU
# through -kernel.
if [[ -z $kernel ]]; then
    kernel=$(sed -n 's/^KRUNLET_KERNEL_IMAGE:FILEPATH=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
    [[ -n $kernel ]] || die "build/ was not configured with a guest kernel: run ./setup.sh --no-demo (it runs kernel/build.sh and passes its vmlinux to cmake), or give --kernel \$(kernel/build.sh | tail -n 1)"
fi
[[ -f $kernel ]] || die "guest kernel $kernel not found: run kernel/build.sh (its last stdout line is the vmlinux) and pass it with --kernel, or run ./setup.sh --no-demo"

[[ -r /dev/kvm && -w /dev/kvm ]] || die "/dev/kvm is missing or not usable by this user: part 1 needs a KVM (kvm_pvm will do)"

# /dev/kvm from kvm_pvm (a software hypervisor): Linux guests start and die
# at their first user-space syscall, long after the first KVM_RUN, so the
# host-side setup cost is still measurable. Two adjustments:
#   - krunlet refuses kvm_pvm unless KRUNLET_ALLOW_KVM_PVM=1;
#   - QEMU 7.2 aborts on it ("failed to set MSR 0x10a", IA32_ARCH_CAPABILITIES,
#     kvm_buf_set_msrs assertion) unless that CPU feature is masked. Only
#     guest-visible speculation bits change; QEMU's setup does not.
qemu_cpu=host
if [[ -e /sys/module/kvm_pvm ]]; then
    export KRUNLET_ALLOW_KVM_PVM=1
    qemu_cpu=host,-arch-capabilities
    log "/dev/kvm is kvm_pvm: KRUNLET_ALLOW_KVM_PVM=1 for krunlet, -cpu $qemu_cpu for QEMU"
fi
export KRUNLET_KERNEL=$kernel

# --------------------------------------------------------------- setup ----
work=$(mktemp -d "${TMPDIR:-/tmp}/krunlet-compare.XXXXXX")
vmm_pid=
cleanup() {
    [[ -n $vmm_pid ]] && kill -KILL "$vmm_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if [[ -z $rootfs ]]; then
    rootfs=$work/rootfs
    "$repo/tests/make-rootfs.sh" "$rootfs" >/dev/null || die "tests/make-rootfs.sh failed (it needs busybox-static: apt-get install busybox-static)"
fi
[[ -d $rootfs ]] || die "rootfs $rootfs is not a directory"

# The two command lines. Both: 1 vCPU, 512 MiB, the same kernel, a virtio-mmio
# console whose output is thrown away, nothing on the network.
#   krunlet: --log-level 3 makes it print "first KVM_RUN X ms after start
#   (realtime S.US)" just before its boot vCPU enters the guest. Its devices are the console,
#   the virtio-fs root, vsock, rng and the balloon (lib/vmm/vm.cpp).
#   QEMU: virtio-serial + virtconsole (hvc0) and virtio-rng on virtio-mmio,
#   no ACPI, no option ROMs, no RTC, no PCIe, no ISA serial. Its root device
#   (vhost-user-fs) would need a separate virtiofsd process, which is outside
#   "its process start to its first KVM_RUN", so QEMU gets fewer devices than
#   krunlet: that favours QEMU. -trace kvm_vcpu_ioctl logs every vCPU ioctl
#   just before it is made, and -msg timestamp=on puts a wall-clock stamp
#   ("PID@SECONDS.MICRO:") on each line; that is how the cheap method sees
#   QEMU's first KVM_RUN (ioctl number 0xae80).
krunlet_cmd=("$krunlet" run --log-level 3 --memory 512 --net none "$rootfs" -- /bin/true)
qemu_cmd=(qemu-system-x86_64
    -M microvm,acpi=off,x-option-roms=off,rtc=off,pcie=off,isa-serial=off
    -enable-kvm -cpu "$qemu_cpu" -smp 1 -m 512
    -nodefaults -no-user-config -nographic -no-reboot
    -kernel "$kernel" -append "console=hvc0 reboot=t panic=-1 quiet"
    -device virtio-serial-device -chardev null,id=con0 -device virtconsole,chardev=con0
    -device virtio-rng-device
    -msg timestamp=on -trace enable=kvm_vcpu_ioctl)

# The line each VMM writes to stderr just before its first KVM_RUN.
is_first_run_line() {  # is_first_run_line ENGINE LINE
    case $1 in
        krunlet) [[ $2 == *"krunlet: first KVM_RUN "*"(realtime "* ]] ;;
        qemu) [[ $2 == *"kvm_vcpu_ioctl "*"type 0xae80,"* ]] ;;
    esac
}

last_lines() {  # last_lines N LINE...: the last N lines to stderr, indented
    local n=$1
    shift
    (($# <= n)) || shift $(($# - n))
    (($# == 0)) || printf '  %s\n' "$@" >&2
}

vmm_command() {  # vmm_command ENGINE -> the global array cmd
    case $1 in
        krunlet) cmd=("${krunlet_cmd[@]}") ;;
        qemu) cmd=("${qemu_cmd[@]}") ;;
    esac
}

ms_between() {  # ms_between T0 T1 (seconds.micro) -> milliseconds
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) * 1000 }'
}

# Kill the VMM once it has entered the guest: on kvm_pvm krunlet would
# otherwise run its guest kernel for ~20 s until the guest's user space dies,
# and QEMU's guest never ends by itself. SIGKILL, because nothing after the
# first KVM_RUN is measured, and wait, so that the VM's teardown is over
# before the next run starts.
stop_vmm() {
    [[ -n $vmm_pid ]] || return 0
    kill -KILL "$vmm_pid" 2>/dev/null || true
    wait "$vmm_pid" 2>/dev/null || true
    vmm_pid=
}

# -------------------------------------------- method 1: timestamps ----
# The cheap method, and the one the headline row uses: no tracer slows the
# VMM. A subshell takes a wall-clock stamp (EPOCHREALTIME, gettimeofday) and
# execs the VMM right after it, so the stamp is the process start to within a
# write(2). The end of the interval is the VMM's own wall-clock stamp of its
# first KVM_RUN, taken just before the ioctl:
#   - QEMU: -trace kvm_vcpu_ioctl logs each vCPU ioctl, stamped by
#     gettimeofday; the first one of type 0xae80 (KVM_RUN) ends the interval.
#   - krunlet: its --log-level 3 line "first KVM_RUN X ms after start
#     (realtime S.US)" (lib/vmm/vm.cpp), stamped by clock_gettime.
# Both include exec, dynamic linking and everything before main(). The
# arrival of the line here plays no part, so this reader's wake-up does not
# count. The VMM's stderr is a FIFO read line by line.
# krunlet's X counts from krun_create_ctx() in main(), after exec and
# dynamic linking: the difference is what comes before main().
# Why not /proc/PID/stat's start time: it counts clock ticks (10 ms here),
# coarser than what is measured.
#
# With "footprint", the VMM runs on for 1 s after its first KVM_RUN (its
# guest kernel is booting), and krunlet-bench footprint then reads its
# /proc/PID/smaps: guest RAM is the 512 MiB address range, the rest is the
# VMM's own. On kvm_pvm neither guest reaches user space, but both kernels
# run their early boot.
# Sets stamp_ms and other_ms, and own_kib / guest_kib with "footprint"
# (globals, so that die() ends the script).
measure_stamps() {  # measure_stamps ENGINE [footprint]
    local engine=$1 fifo=$work/stderr.fifo fd line t0= t1= own seen=() fp
    vmm_command "$engine"
    rm -f "$fifo"
    mkfifo "$fifo"
    (
        exec </dev/null >/dev/null 2>"$fifo"
        printf 'compare-t0 %s\n' "$EPOCHREALTIME" >&2
        exec "${cmd[@]}"
    ) &
    vmm_pid=$!
    exec {fd}<"$fifo"
    while IFS= read -r -t 60 -u "$fd" line; do
        if is_first_run_line "$engine" "$line"; then
            t1=$EPOCHREALTIME
            break
        fi
        if [[ $line == "compare-t0 "* ]]; then t0=${line#compare-t0 }; continue; fi
        seen+=("$line")
    done
    if [[ -n $t1 && ${2:-} == footprint ]]; then
        # The VMM keeps writing to the FIFO: drain it while it runs.
        timeout 1 cat <&"$fd" >/dev/null || true
        fp=$("$krunlet_bench" footprint "$vmm_pid" 512) || { stop_vmm; die "krunlet-bench footprint failed on $engine (pid $vmm_pid)"; }
        own_kib=$(sed -n 's/.* own_private_kib=\([0-9]*\).*/\1/p' <<<"$fp")
        guest_kib=$(sed -n 's/.* guest_ram_resident_kib=\([0-9]*\) .*/\1/p' <<<"$fp")
    fi
    stop_vmm
    exec {fd}<&-
    if [[ -z $t1 || -z $t0 ]]; then
        log "$engine never reached KVM_RUN; its stderr:"
        last_lines 15 "${seen[@]}"
        [[ $engine != qemu ]] || log "(no kvm_vcpu_ioctl lines at all: this QEMU may lack the 'log' trace backend; see 'qemu-system-x86_64 -trace help')"
        die "$engine failed before its first KVM_RUN (command: ${cmd[*]})"
    fi
    case $engine in
        krunlet)
            own=${line#*first KVM_RUN }
            other_ms=${own%% ms*}
            own=${line#*(realtime }
            stamp_ms=$(ms_between "$t0" "${own%%)*}")
            ;;
        qemu)
            own=${line#*@}  # "PID@SECONDS.MICRO:kvm_vcpu_ioctl ..."
            stamp_ms=$(ms_between "$t0" "${own%%:*}")
            other_ms=$(ms_between "$t0" "$t1")
            ;;
    esac
}

# ---------------------------------------------- method 2: strace ----
# strace -f -ttt -e trace=execve,ioctl: from the VMM's execve to the first
# ioctl that strace decodes as KVM_RUN, both stamped by strace at syscall
# entry. The tracing itself slows the VMM: every traced syscall (krunlet makes
# about 45 ioctls before its first KVM_RUN, QEMU about 170) and every new
# thread stops it while strace runs, so these numbers are higher than the
# stamps' and serve as a cross-check.
#   strace prints a syscall's line when it returns, unless another thread
# interleaves. krunlet's first KVM_RUN does not return on kvm_pvm until its
# guest dies, ~20 s later, so waiting for that line would take that long; and
# /proc/PID/task/*/syscall shows only "running" while the vCPU runs its guest.
# So the VMM's own first-KVM_RUN line on its stderr (the one method 1 uses;
# it is written just before the ioctl) says when to stop: 100 ms after it the
# VMM is killed, and strace then writes the pending KVM_RUN line with its
# entry stamp.
first_child() {  # first_child PID: its first child's PID, or nothing
    local c=
    read -r c _ 2>/dev/null </proc/"$1"/task/"$1"/children || true
    printf '%s' "$c"
}

# Sets strace_ms.
measure_strace() {  # measure_strace ENGINE
    local engine=$1 out=$work/strace.out fifo=$work/stderr.fifo fd line seen=() wrapper strace_pid vmm= t0 t1
    vmm_command "$engine"
    rm -f "$out" "$fifo"
    mkfifo "$fifo"
    # strace ends itself with its tracee's signal; the subshell (not an exec,
    # because of "|| true") keeps bash from reporting that as "Killed".
    ( strace -f -ttt -e trace=execve,ioctl -o "$out" -- "${cmd[@]}" || true ) </dev/null >/dev/null 2>"$fifo" &
    wrapper=$!
    exec {fd}<"$fifo"
    while IFS= read -r -t 60 -u "$fd" line; do
        is_first_run_line "$engine" "$line" && break
        seen+=("$line")
    done
    sleep 0.1
    # The VMM is strace's child, which is the wrapper's child.
    strace_pid=$(first_child "$wrapper")
    [[ -z $strace_pid ]] || vmm=$(first_child "$strace_pid")
    [[ -z $vmm ]] || kill -KILL "$vmm" 2>/dev/null || true
    exec {fd}<&-
    wait "$wrapper" 2>/dev/null || true
    # Lines: "PID SECONDS.MICRO syscall(...)"; the tracee's execve comes first.
    t0=$(awk '$3 ~ /^execve\(/ { print $2; exit }' "$out")
    t1=$(awk '$3 ~ /^ioctl\([0-9]+,$/ && $4 ~ /^KVM_RUN/ { print $2; exit }' "$out")
    if [[ -z $t0 || -z $t1 ]]; then
        log "$engine under strace: no KVM_RUN ioctl seen; its stderr, then the end of strace's output:"
        last_lines 10 "${seen[@]}"
        tail -n 10 "$out" | cut -c1-200 >&2
        die "$engine did not reach KVM_RUN under strace (command: strace -f -ttt -e trace=execve,ioctl ${cmd[*]})"
    fi
    strace_ms=$(ms_between "$t0" "$t1")
}

# ---------------------------------------------------------- statistics ----
# stats VALUE... -> "P50 MIN MAX" (p50: the mean of the two middle values for
# an even count).
stats() {
    printf '%s\n' "$@" | sort -g | awk '
        { v[NR] = $1 }
        END {
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%s %s %s\n", m, v[1], v[NR]
        }'
}

# The table: one row per metric, kept as tab-separated fields until printed.
# add_row METRIC KRUNLET_VALUES QEMU_VALUES: each VALUES is a space-separated
# list of the N numbers, or "-" where an engine has no counterpart.
rows=()
add_row() {
    local metric=$1 k=$2 q=$3 ks qs ratio
    ks=$(stats $k)
    if [[ $q == - ]]; then
        qs="- - -"
        ratio=-
    else
        qs=$(stats $q)
        ratio=$(awk -v a="${ks%% *}" -v b="${qs%% *}" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
    fi
    rows+=("$metric"$'\t'"$ks"$'\t'"$qs"$'\t'"$ratio")
}

fmt() {  # three significant-ish digits, "-" passes through
    awk -v x="$1" 'BEGIN { if (x == "-") print "-"; else if (x >= 100) printf "%.1f", x; else if (x >= 10) printf "%.2f", x; else printf "%.3f", x }'
}

print_table() {
    local r metric ks qs ratio kp kmin kmax qp qmin qmax
    printf '| metric | krunlet p50 | min | max | QEMU p50 | min | max | krunlet/QEMU |\n'
    printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
    for r in "${rows[@]}"; do
        IFS=$'\t' read -r metric ks qs ratio <<<"$r"
        read -r kp kmin kmax <<<"$ks"
        read -r qp qmin qmax <<<"$qs"
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$metric" \
            "$(fmt "$kp")" "$(fmt "$kmin")" "$(fmt "$kmax")" \
            "$(fmt "$qp")" "$(fmt "$qmin")" "$(fmt "$qmax")" "$ratio"
    done
}

# ====================================================================== #
# PART 1: on the real CPU, outside any emulation                         #
# ====================================================================== #
declare -A all_stamp all_other all_strace all_own all_guest
part1() {
    # --- 1a: process start to the first KVM_RUN ---
    # One untimed run of each engine first, so that the binaries, their libraries
    # and the 18 MB vmlinux are in the page cache: the first krunlet starts after
    # a build took 85-90 ms here instead of ~8 ms.
    # The runs alternate in ABBA order (krunlet first in odd rounds, QEMU first in
    # even ones), so a slow period of this shared machine hits both engines.
    log "part 1: start to first KVM_RUN, $runs runs per engine and method (kernel $kernel, rootfs $rootfs)"
    measure_stamps krunlet
    measure_stamps qemu
    # Per engine, the N values of each method, space-separated, in run order.
    for engine in krunlet qemu; do all_stamp[$engine]=; all_other[$engine]=; all_strace[$engine]=; all_own[$engine]=; all_guest[$engine]=; done
    for ((i = 1; i <= runs; i++)); do
        if ((i % 2)); then order=(krunlet qemu); else order=(qemu krunlet); fi
        for engine in "${order[@]}"; do
            measure_stamps "$engine"
            all_stamp[$engine]+=" $stamp_ms"
            all_other[$engine]+=" $other_ms"
        done
        for engine in "${order[@]}"; do
            measure_stamps "$engine" footprint
            all_own[$engine]+=" $(awk -v k="$own_kib" 'BEGIN { printf "%.2f", k / 1024 }')"
            all_guest[$engine]+=" $(awk -v k="$guest_kib" 'BEGIN { printf "%.2f", k / 1024 }')"
        done
        for engine in "${order[@]}"; do
            measure_strace "$engine"
            all_strace[$engine]+=" $strace_ms"
        done
        log "  run $i/$runs: stamps krunlet ${all_stamp[krunlet]##* } ms, qemu ${all_stamp[qemu]##* } ms; strace krunlet ${all_strace[krunlet]##* } ms, qemu ${all_strace[qemu]##* } ms; own memory krunlet ${all_own[krunlet]##* } MiB, qemu ${all_own[qemu]##* } MiB"
    done
    add_row "process start to first KVM_RUN, ms (timestamps; the headline)" "${all_stamp[krunlet]}" "${all_stamp[qemu]}"
    add_row "process start to first KVM_RUN, ms (under strace; a cross-check)" "${all_strace[krunlet]}" "${all_strace[qemu]}"
    # krunlet's own number starts at krun_create_ctx(), so exec and dynamic linking
    # are not in it; no QEMU counterpart.
    add_row "krunlet's own log, krun_create_ctx to first KVM_RUN, ms" "${all_other[krunlet]}" -
    add_row "VMM's own private memory beyond guest RAM, MiB (1 s after first KVM_RUN)" "${all_own[krunlet]}" "${all_own[qemu]}"
    add_row "guest RAM resident at that time, MiB (for reference)" "${all_guest[krunlet]}" "${all_guest[qemu]}"

    # --- 1b: host CPU per FUSE request, krunlet's server against virtiofsd ---
    # krunlet-bench fs-host sends both servers the same requests through their virtqueues, with
    # no guest (docs/bench.md), 32 in flight so that the wake-up per batch is amortized. All of
    # it on one CPU: a wake-up across CPUs costs ~18 µs on this kvm_pvm machine and swamps the
    # requests. Without root or virtiofsd, krunlet runs alone and the QEMU column stays empty.
    local engines=krunlet,virtiofsd
    if [[ $EUID != 0 || ! -x /usr/lib/qemu/virtiofsd ]]; then
        engines=krunlet
        log "part 1: virtiofsd needs root and /usr/lib/qemu/virtiofsd; fs-host runs krunlet alone"
    fi
    log "part 1: krunlet-bench fs-host ($engines), $runs runs"
    local -A fs_k=() fs_v=()
    # fs-host's row labels, up to the goal's '*' mark.
    local kinds=("LOOKUP (known inode)" "GETATTR" "READ 4 KiB" "CREATE (new file, opened)") kind
    fs_host_dir=
    for ((i = 1; i <= runs; i++)); do
        out=$(nice taskset -c "$(($(nproc) - 1))" "$krunlet_bench" fs-host --rounds 1 --depth 32 \
            --iterations 20000 --engines "$engines" --only lookup,getattr,read,create) ||
            die "krunlet-bench fs-host failed"
        [[ -n $fs_host_dir ]] || fs_host_dir=$(sed -n '1s/^krunlet-bench fs-host: \([^ ]*\) .*/\1/p' <<<"$out")
        # Rows look like "server CPU µs, GETATTR *   |   0.71 |   0.96 |   0.75x".
        local pair
        for kind in "${kinds[@]}"; do
            pair=$(awk -F'|' -v k="server CPU µs, $kind *" 'index($1, k) == 1 { gsub(/ /, ""); print $2, $3 }' <<<"$out")
            fs_k[$kind]+=" ${pair% *}"
            fs_v[$kind]+=" ${pair#* }"
        done
    done
    local v
    for kind in "${kinds[@]}"; do
        v=${fs_v[$kind]}
        [[ $engines == krunlet ]] && v=-
        add_row "server CPU per $kind, µs (fs-host; QEMU column: virtiofsd)" "${fs_k[$kind]}" "$v"
    done
}

# ====================================================================== #
# PART 2: inside the KVM test host                                       #
# ====================================================================== #
# Guests boot to their end only on a KVM that runs Linux user space. Here
# that is the KVM test host (tests/kvm-host/run.sh); on a machine with
# hardware KVM, the same scripts run directly (as root, for the trace).
in_kvm() {  # in_kvm COMMAND...: run it where guests run
    if [[ -e /sys/module/kvm_pvm ]]; then
        KRUNLET_KVMHOST_SHARE=$work KRUNLET_KVMHOST_TIMEOUT=${KRUNLET_KVMHOST_TIMEOUT:-5400} \
            "$repo/tests/kvm-host/run.sh" "$@"
    else
        [[ $(id -u) -eq 0 ]] || die "part 2 needs root on a hardware KVM (ftrace): run it with sudo, or give --part 1"
        "$@"
    fi
}

# boot ENGINE RUN setup kernel init workload to_init to_exit exits, per
# bench/compare_boot.sh; collected per engine and field.
declare -A boot
boot_fields=(setup kernel init workload to_init to_exit exits)
part2_boots() {
    local out line engine f i vals
    # The kernel and rootfs go into $work, the directory shared with the
    # test host, whatever their paths outside.
    cp "$kernel" "$work/vmlinux"
    [[ $rootfs == "$work/rootfs" ]] || { rm -rf "$work/rootfs"; cp -a "$rootfs" "$work/rootfs"; }
    log "part 2: $guest_runs boots of each engine inside the KVM test host (bench/compare_boot.sh)"
    out=$(in_kvm "$repo/bench/compare_boot.sh" --runs "$guest_runs" --kernel "$work/vmlinux" \
        --rootfs "$work/rootfs" --build "$build") || die "bench/compare_boot.sh failed (its messages are above)"
    boot_raw=$out
    while read -r line; do
        read -r _ engine _ vals <<<"$line"
        read -r -a vals <<<"$vals"
        for i in "${!boot_fields[@]}"; do boot[$engine,${boot_fields[$i]}]+=" ${vals[$i]}"; done
    done < <(grep '^boot ' <<<"$out")
    for engine in krunlet qemu+virtiofsd qemu+initramfs; do
        [[ -n ${boot[$engine,to_exit]:-} ]] || die "bench/compare_boot.sh reported no boot of $engine"
    done
    for f in to_init to_exit exits setup kernel init workload; do
        local label
        case $f in
            to_init) label="boot to init (process start to init's first instruction), ms" ;;
            to_exit) label="boot to exit of /bin/true, ms" ;;
            exits) label="VM exits during the boot" ;;
            setup) label="  of which setup: process start to first KVM_RUN, ms" ;;
            kernel) label="  of which kernel: first KVM_RUN to init, ms" ;;
            init) label="  of which init: to the workload's fork, ms" ;;
            workload) label="  of which workload: fork to the VMM's exit, ms" ;;
        esac
        add_row "[test host] $label; QEMU + virtiofsd" "${boot[krunlet,$f]}" "${boot[qemu+virtiofsd,$f]}"
        [[ $f == setup || $f == kernel || $f == init || $f == workload ]] && continue
        add_row "[test host] $label; QEMU + initramfs" "${boot[krunlet,$f]}" "${boot[qemu+initramfs,$f]}"
    done
}

# Server CPU per FUSE request from the guest side: krunlet-bench fs
# (docs/bench.md) with a small workload, ROOTFS on the test host's tmpfs.
# Its per-round listing gives each engine's value per round.
fs_rows=("server CPU per 4 KiB read, us" "server CPU per stat, us" "server CPU per create, us"
    "server CPU per unlink, us" "server CPU per walked entry, us" "server CPU per MiB written, us"
    "server CPU per MiB read, us")
part2_fs() {
    local out row k q
    log "part 2: krunlet-bench fs, $fs_rounds rounds inside the KVM test host (a few minutes per round)"
    out=$(in_kvm sh -c 'mkdir -p /tmp/compare-fsroot && exec "$1" fs --rounds "$2" --randread-mib 16 \
        --randread-count 400 --seq-mib 16 --files 300 --tree-entries 3000 /tmp/compare-fsroot' \
        compare-fs "$krunlet_bench" "$fs_rounds") || die "krunlet-bench fs failed inside the test host (its messages are above)"
    fs_raw=$out
    for row in "${fs_rows[@]}"; do
        # Per-round lines: "  LABEL  K1 / Q1  K2 / Q2 ..."; with one round,
        # the table's "LABEL | K | Q | RATIO" is all there is.
        read -r k q < <(awk -v label="$row" '
            index($0, "  " label) == 1 {
                rest = substr($0, length(label) + 3); n = split(rest, w, " ")
                for (i = 1; i + 2 <= n; i += 3) { ks = ks " " w[i]; qs = qs " " w[i + 2] }
                per_round = 1
            }
            index($0, label " ") == 1 && !per_round { split($0, c, "|"); table_k = c[2]; table_q = c[3] }
            END {
                if (!per_round) { ks = table_k; qs = table_q }
                gsub(/^ +| +$/, "", ks); gsub(/^ +| +$/, "", qs); gsub(/ /, ",", ks); gsub(/ /, ",", qs)
                print ks, qs
            }' <<<"$out")
        [[ -n $k && -n $q ]] || die "krunlet-bench fs printed no '$row' row"
        add_row "[test host] ${row/, us/, µs} (guest-side workload); QEMU's virtiofsd" "${k//,/ }" "${q//,/ }"
    done
}

# The boot-time breakdown chart: one stacked bar per engine, the p50 of each
# phase, as an SVG file (plain text; any browser shows it). One line per
# engine goes to awk ("ENGINE SETUP KERNEL INIT WORKLOAD"), which lays it out.
write_chart() {
    local file=$1 engine f line
    for engine in krunlet qemu+virtiofsd qemu+initramfs; do
        line=$engine
        for f in setup kernel init workload; do
            line+=" $(stats ${boot[$engine,$f]} | cut -d' ' -f1)"
        done
        echo "$line"
    done | awk -v runs="$guest_runs" '
        function attr(name, value) { return sprintf(" %s=\"%s\"", name, value) }
        { n++; engine[n] = $1; total[n] = 0
          for (f = 1; f <= 4; f++) { v[n, f] = $(f + 1); total[n] += $(f + 1) }
          if (total[n] > max) max = total[n] }
        END {
            split("#4e79a7 #f28e2b #59a14f #e15759", color, " ")
            split("setup (start to first KVM_RUN)|kernel (to init)|init (to the workload)|workload and exit", name, "|")
            printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"250\" font-family=\"sans-serif\" font-size=\"13\">\n"
            printf "<text x=\"10\" y=\"22\" font-size=\"15\">Boot to exit of /bin/true inside the KVM test host, p50 of each phase over %s runs (ms)</text>\n", runs
            for (i = 1; i <= n; i++) {
                y = 2 + 48 * i; x = 140
                printf "<text x=\"10\" y=\"%d\">%s</text>\n", y + 22, engine[i]
                for (f = 1; f <= 4; f++) {
                    w = v[i, f] / max * 620
                    printf "<rect%s%s%s%s%s/>\n", attr("x", sprintf("%.1f", x)), attr("y", y), attr("width", sprintf("%.1f", w)), attr("height", 34), attr("fill", color[f])
                    if (w > 45) printf "<text%s%s%s>%.0f</text>\n", attr("x", sprintf("%.1f", x + 4)), attr("y", y + 22), attr("fill", "white"), v[i, f]
                    x += w
                }
                printf "<text x=\"%.1f\" y=\"%d\">%.0f ms</text>\n", x + 6, y + 22, total[i]
            }
            for (f = 1; f <= 4; f++)
                printf "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n", 10 + 220 * (f - 1), 2 + 48 * (n + 1) + 8, color[f], 30 + 220 * (f - 1), 2 + 48 * (n + 1) + 20, name[f]
            printf "</svg>\n"
        }' >"$file"
}

# Everything runs from main, called on the last line: bash reads a script as
# it goes, so an edit to this file during a run (which takes minutes) would
# otherwise change what the rest of the run executes.
boot_raw= fs_raw=
main() {
    [[ $part == 2 ]] || part1
    if [[ $part != 1 ]]; then
        part2_boots
        write_chart "$chart"
        log "boot-time breakdown chart: $chart"
        ((fs_rounds == 0)) || part2_fs
    fi

    # ====================================================================== #
    # The table                                                              #
    # ====================================================================== #
    echo
    echo "krunlet vs QEMU microvm; ratio = krunlet p50 / QEMU p50 (lower is better for every row)"
    echo
    print_table
    echo
    echo "- Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), load $(cut -d' ' -f1-3 /proc/loadavg), /dev/kvm $([[ -e /sys/module/kvm_pvm ]] && echo kvm_pvm || echo kvm); $(qemu-system-x86_64 --version | head -n 1)."
    echo "- Kernel: $kernel ($(stat -c %s "$kernel") bytes), for both VMMs."
    if [[ $part != 2 ]]; then
        echo "- Part 1 ($runs runs per engine, on the real CPU). krunlet: ${krunlet_cmd[*]}"
        echo "  QEMU: ${qemu_cmd[*]}"
        echo "  Timestamps row (the headline, no tracer): from a wall-clock stamp taken just before exec to each VMM's own wall-clock stamp of its first KVM_RUN (QEMU's kvm_vcpu_ioctl trace, krunlet's 'first KVM_RUN ... (realtime ...)' log line). strace row: strace -f -ttt -e trace=execve,ioctl, from execve to the first KVM_RUN ioctl; the tracing slows both VMMs."
        echo "  Memory rows: krunlet-bench footprint 1 s after the first KVM_RUN (Private_Clean + Private_Dirty of /proc/PID/smaps outside the 512 MiB guest RAM range)."
        echo "  fs-host rows: krunlet-bench fs-host --depth 32 --iterations 20000 on $fs_host_dir, pinned to one CPU; the QEMU column is /usr/lib/qemu/virtiofsd driven over vhost-user with the same requests."
        echo
        echo "  Raw values, run order (ms; MiB for memory):"
        for engine in krunlet qemu; do
            echo "    $engine: stamps ${all_stamp[$engine]# }"
            echo "    $engine: strace ${all_strace[$engine]# }"
            echo "    $engine: own memory ${all_own[$engine]# }; guest RAM resident ${all_guest[$engine]# }"
        done
        echo "    krunlet: own log from krun_create_ctx ${all_other[krunlet]# }"
        echo "    QEMU: exec stamp to the arrival of its trace line here ${all_other[qemu]# }"
        echo "    fs-host µs per request: LOOKUP ${lookup_us# }; GETATTR ${getattr_us# }; READ 4 KiB ${read_us# }"
    fi
    if [[ $part != 1 ]]; then
        echo "- Part 2 (inside the KVM test host: QEMU TCG with emulated SVM, ${KRUNLET_KVMHOST_CPUS:-1} CPU, real nested KVM; absolute times are inflated, the ratios carry over). Boots: bench/compare_boot.sh, $guest_runs rounds, engines in rotating order, timed by the test host kernel's ftrace (sched_process_exec/exit, kvm_entry, kvm_pio on port 0x80). QEMU: microvm,acpi=off, -cpu host, 1 vCPU, 512 MiB, virtio console + rng, init = krunlet-boot-guest; + virtiofsd (cache=auto, one thread) or + -initrd (uncompressed cpio of the same tree). Chart: $chart."
        echo "  Raw boot lines (engine round setup kernel init workload to_init to_exit exits):"
        grep '^boot ' <<<"$boot_raw" | sed 's/^boot /    /'
        grep '^krunlet-trace ' <<<"$boot_raw" | sed 's/^/    /'
        if [[ -n $fs_raw ]]; then
            echo "  krunlet-bench fs ($fs_rounds rounds; --randread-mib 16 --randread-count 400 --seq-mib 16 --files 300 --tree-entries 3000):"
            sed 's/^/    /' <<<"$fs_raw"
        fi
    fi
}

main
