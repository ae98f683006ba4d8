#!/usr/bin/env bash
# bench/compare.sh — krunlet against QEMU microvm, side by side, in one table
# (issue 7).
#
#   bench/compare.sh [--runs N] [--kernel VMLINUX] [--rootfs DIR]
#
# --kernel defaults to the vmlinux the build was configured with; --rootfs to
# a fresh tests/make-rootfs.sh busybox tree in a temporary directory.
#
# Part 1 runs here, on the real CPU, outside any emulation:
#   - process start to the first KVM_RUN, krunlet and QEMU microvm, same kernel;
#   - host CPU per FUSE request of krunlet's virtio-fs server (krunlet-bench
#     fs-host; there is no QEMU counterpart on the real CPU).
# Part 2 (inside the KVM test host) is not written yet; see the marked section
# near the end, before the table is printed.
#
# Every row is N runs (default 10): p50, min and max of each engine, and the
# ratio krunlet p50 / QEMU p50. Progress goes to stderr; the table and the raw
# numbers go to stdout. docs/bench.md ("bench/compare.sh") explains the
# methods.
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
kernel=
rootfs=
while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) [[ $# -ge 2 ]] || usage; runs=$2; shift 2 ;;
        --kernel) [[ $# -ge 2 ]] || usage; kernel=$2; shift 2 ;;
        --rootfs) [[ $# -ge 2 ]] || usage; rootfs=$2; shift 2 ;;
        -h|--help) usage ;;
        *) log "unknown argument: $1"; usage ;;
    esac
done
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
#   krunlet: --log-level 3 makes it print "first KVM_RUN ... ms after start"
#   just before its boot vCPU enters the guest. Its devices are the console,
#   the virtio-fs root, vsock, rng and the balloon (lib/vmm/vm.cpp).
#   QEMU: virtio-serial + virtconsole (hvc0) and virtio-rng on virtio-mmio,
#   no ACPI, no option ROMs, no RTC, no PCIe, no ISA serial. Its root device
#   (vhost-user-fs) would need a separate virtiofsd process, which is outside
#   "its process start to its first KVM_RUN", so QEMU gets fewer devices than
#   krunlet: that favours QEMU. -trace kvm_vcpu_ioctl logs every vCPU ioctl
#   just before it is made, and -msg timestamp=on puts a wall-clock stamp
#   ("PID@SECONDS.MICRO:") on each line; that is how the cheap method sees
#   QEMU's first KVM_RUN (ioctl number 0xae80).
krunlet_cmd=("$krunlet" run --log-level 3 --net none "$rootfs" -- /bin/true)
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
        krunlet) [[ $2 == *"krunlet: first KVM_RUN "* ]] ;;
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
# write(2). The VMM's stderr is a FIFO read here line by line. The end of the
# interval is the VMM's own event just before its first KVM_RUN:
#   - QEMU: -trace kvm_vcpu_ioctl logs each vCPU ioctl, stamped by
#     gettimeofday in QEMU just before the ioctl is made. The first one of type
#     0xae80 (KVM_RUN) ends the interval: exact, and it includes exec and
#     dynamic linking.
#   - krunlet: its --log-level 3 line "first KVM_RUN X ms after start" is
#     printed just before the boot vCPU's first KVM_RUN, but X counts from
#     krun_create_ctx() in main() (lib/capi/libkrun.cpp), after exec, dynamic
#     linking, static constructors and option parsing, and the line carries no
#     absolute time. So the interval ends when the line arrives here. That adds
#     the wake-up of this reader (about 0.13 ms on this machine, with spikes of
#     1.5 ms under load) to krunlet's number only: a bias against krunlet.
#     X itself is a lower bound; krunlet's true value lies between the two.
# Both are recorded: stamp_ms is the row's value, own_ms / arrival_ms the
# other view (krunlet's X; QEMU's line arrival, whose difference from its
# stamp shows the reader latency under load).
# Why not /proc/PID/stat's start time: it counts clock ticks (10 ms here),
# coarser than what is measured.
# Sets stamp_ms and other_ms (globals, so that die() ends the script).
measure_stamps() {  # measure_stamps ENGINE
    local engine=$1 fifo=$work/stderr.fifo fd line t0= t1= own seen=()
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
            stamp_ms=$(ms_between "$t0" "$t1")
            other_ms=${own%% ms*}
            ;;
        qemu)
            own=${line#*@}  # "PID@SECONDS.MICRO:kvm_vcpu_ioctl ..."
            stamp_ms=$(ms_between "$t0" "${own%%:*}")
            other_ms=$(ms_between "$t0" "$t1")
            ;;
    esac
}

# krunlet's start before krun_create_ctx(): exec, dynamic linking, static
# constructors and option parsing. The same stamp-and-exec as above, with a
# root directory that does not exist: main() checks it just before
# krun_create_ctx() and prints "rootfs ... is not a directory". No guest runs
# then, so the reader wakes on an idle CPU and its latency is small. The sum of
# this and krunlet's own log value estimates the headline without the
# reader's wake-up. Sets exec_ms.
measure_exec_to_main() {
    local fifo=$work/stderr.fifo fd line t0= t1= seen=()
    rm -f "$fifo"
    mkfifo "$fifo"
    (
        exec </dev/null >/dev/null 2>"$fifo"
        printf 'compare-t0 %s\n' "$EPOCHREALTIME" >&2
        exec "$krunlet" run --log-level 3 --net none "$work/no-such-rootfs" -- /bin/true
    ) &
    vmm_pid=$!
    exec {fd}<"$fifo"
    while IFS= read -r -t 60 -u "$fd" line; do
        if [[ $line == *"no-such-rootfs is not a directory"* ]]; then t1=$EPOCHREALTIME; break; fi
        if [[ $line == "compare-t0 "* ]]; then t0=${line#compare-t0 }; continue; fi
        seen+=("$line")
    done
    wait "$vmm_pid" 2>/dev/null || true  # it exits by itself (status 125)
    vmm_pid=
    exec {fd}<&-
    if [[ -z $t0 || -z $t1 ]]; then
        last_lines 10 "${seen[@]}"
        die "krunlet did not report the missing root directory (command: $krunlet run --net none $work/no-such-rootfs -- /bin/true)"
    fi
    exec_ms=$(ms_between "$t0" "$t1")
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
all_exec=
declare -A all_stamp all_other all_strace
for engine in krunlet qemu; do all_stamp[$engine]=; all_other[$engine]=; all_strace[$engine]=; done
for ((i = 1; i <= runs; i++)); do
    if ((i % 2)); then order=(krunlet qemu); else order=(qemu krunlet); fi
    for engine in "${order[@]}"; do
        measure_stamps "$engine"
        all_stamp[$engine]+=" $stamp_ms"
        all_other[$engine]+=" $other_ms"
    done
    measure_exec_to_main
    all_exec+=" $exec_ms"
    for engine in "${order[@]}"; do
        measure_strace "$engine"
        all_strace[$engine]+=" $strace_ms"
    done
    log "  run $i/$runs: stamps krunlet ${all_stamp[krunlet]##* } ms, qemu ${all_stamp[qemu]##* } ms; strace krunlet ${all_strace[krunlet]##* } ms, qemu ${all_strace[qemu]##* } ms"
done
add_row "process start to first KVM_RUN, ms (timestamps; the headline)" "${all_stamp[krunlet]}" "${all_stamp[qemu]}"
add_row "process start to first KVM_RUN, ms (under strace; a cross-check)" "${all_strace[krunlet]}" "${all_strace[qemu]}"
# krunlet's own number starts at krun_create_ctx(), so exec and dynamic linking
# are not in it: a lower bound, with no QEMU counterpart.
add_row "krunlet's own log, krun_create_ctx to first KVM_RUN, ms (a lower bound)" "${all_other[krunlet]}" -
add_row "krunlet's exec to krun_create_ctx, ms (separate runs, no guest)" "$all_exec" -

# --- 1b: host CPU per FUSE request of krunlet's virtio-fs server ---
# krunlet-bench fs-host drives fs::Server::handle() with no guest (docs/bench.md).
# QEMU's virtiofsd has no such harness here: it is only measured from the
# guest side, inside the KVM test host (part 2), so its columns stay empty.
log "part 1: krunlet-bench fs-host, $runs runs"
lookup_us= getattr_us= read_us=
fs_host_dir=
for ((i = 1; i <= runs; i++)); do
    out=$(nice "$krunlet_bench" fs-host) || die "krunlet-bench fs-host failed"
    [[ -n $fs_host_dir ]] || fs_host_dir=$(sed -n '1s/.* on //p' <<<"$out")
    # Lines look like "GETATTR    0.73 us CPU/request  (100000)".
    lookup_us+=" $(awk '/^LOOKUP \(inode already known\)/ { print $(NF-3) }' <<<"$out")"
    getattr_us+=" $(awk '/^GETATTR / { print $(NF-3) }' <<<"$out")"
    read_us+=" $(awk '/^READ 4 KiB / { print $(NF-3) }' <<<"$out")"
done
add_row "server CPU per LOOKUP (known inode), µs (fs-host)" "$lookup_us" -
add_row "server CPU per GETATTR, µs (fs-host)" "$getattr_us" -
add_row "server CPU per 4 KiB READ, µs (fs-host)" "$read_us" -

# ====================================================================== #
# PART 2: inside the KVM test host — NOT WRITTEN YET                     #
# ====================================================================== #
# Room for the rows issue 7 wants from inside the KVM test host
# (tests/kvm-host/run.sh), where guests run and both VMMs pay the same
# emulation tax, so only ratios count:
#   - boot to init and boot to exit of /bin/true, krunlet vs QEMU microvm
#     with the same kernel and busybox rootfs;
#   - QEMU with its root over virtio-fs from /usr/lib/qemu/virtiofsd, and
#     with an initramfs;
#   - VM exits during each boot;
#   - server CPU per FUSE request from the guest side, krunlet vs virtiofsd.
# Whoever adds it: run the measurements inside the test host, bring the N
# values per engine back, and add them with add_row like part 1 does, before
# the table below is printed. Install QEMU/virtiofsd as bench dependencies
# (need_package), never as test dependencies.

# ====================================================================== #
# The table                                                              #
# ====================================================================== #
echo
echo "krunlet vs QEMU microvm, $runs runs each; ratio = krunlet p50 / QEMU p50 (lower is better for every row)"
echo
print_table
echo
echo "- Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), load $(cut -d' ' -f1-3 /proc/loadavg), /dev/kvm $([[ -e /sys/module/kvm_pvm ]] && echo kvm_pvm || echo kvm); $(qemu-system-x86_64 --version | head -n 1)."
echo "- Kernel: $kernel ($(stat -c %s "$kernel") bytes), for both VMMs. krunlet: ${krunlet_cmd[*]}"
echo "- QEMU: ${qemu_cmd[*]}"
echo "- Timestamps row (the headline, no tracer): from a wall-clock stamp taken just before exec to QEMU's own trace stamp of its first KVM_RUN ioctl, and to the arrival of krunlet's 'first KVM_RUN' log line here (krunlet's line has no absolute time; the reader's wake-up counts against krunlet). strace row: strace -f -ttt -e trace=execve,ioctl, from execve to the first KVM_RUN ioctl; the tracing slows both VMMs."
echo "- fs-host rows: krunlet-bench fs-host on $fs_host_dir, 100000 requests per kind per run. QEMU: no counterpart on the real CPU (virtiofsd is measured from the guest side, inside the KVM test host)."
echo
echo "Raw values (ms, run order):"
echo "  krunlet, exec stamp to log line arrival (row 1): ${all_stamp[krunlet]# }"
echo "  krunlet, its own log, from krun_create_ctx:      ${all_other[krunlet]# }"
echo "  krunlet, strace (row 2):                         ${all_strace[krunlet]# }"
echo "  krunlet, exec stamp to main()'s rootfs error:    ${all_exec# }"
echo "  QEMU, exec stamp to its trace stamp (row 1):     ${all_stamp[qemu]# }"
echo "  QEMU, exec stamp to trace line arrival:          ${all_other[qemu]# }"
echo "  QEMU, strace (row 2):                            ${all_strace[qemu]# }"
echo "Raw values (µs per request): LOOKUP ${lookup_us# }; GETATTR ${getattr_us# }; READ 4 KiB ${read_us# }"
