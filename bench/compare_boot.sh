#!/usr/bin/env bash
# bench/compare_boot.sh — part 2 of bench/compare.sh: whole boots of krunlet
# and of QEMU microvm, timed from outside by the host kernel's own trace.
#
#   bench/compare_boot.sh --runs N --kernel VMLINUX --rootfs DIR --build DIR [--out DIR]
#                         [--engines krunlet,qemu+virtiofsd,qemu+initramfs]
#
# --out keeps each boot's raw trace there (ENGINE-RUN.trace).
#
# Run it inside the KVM test host (tests/kvm-host/run.sh), as root, where
# /dev/kvm runs Linux guests; compare.sh does that. Three engines boot the
# same kernel and the same busybox root directory and run /bin/true:
#   krunlet          krunlet run --memory 512 --net none ROOT -- /bin/true
#   qemu+virtiofsd   QEMU microvm, root on virtio-fs from QEMU's C virtiofsd
#   qemu+initramfs   QEMU microvm, the same tree as an uncompressed initramfs
# QEMU's init is build/bin/krunlet-boot-guest (bench/guest/boot_guest.cpp),
# which makes the two port writes krunlet's init makes.
#
# How it measures (docs/performance.md, "Part 2"). ftrace in the test host's
# kernel records, on one clock (mono):
#   sched_process_exec   the exec of the engine's first process is the boot's
#                        start (krunlet; virtiofsd for qemu+virtiofsd, which
#                        QEMU needs running before it starts);
#   kvm_entry            each entry into the guest: the first is the first
#                        KVM_RUN, and their count is the VM exits (every exit
#                        but the last is followed by an entry);
#   kvm_pio (port 0x80)  0x4b: init started; 0x57: init forks the workload;
#   sched_process_exit   the VMM's main thread: the boot's end.
# Nothing is read from a console, so no reader's wake-up is in any number.
#
# Output on stdout, one line per boot (progress goes to stderr):
#   boot ENGINE RUN setup_ms kernel_ms init_ms workload_ms to_init_ms to_exit_ms exits
# setup: start to first KVM_RUN; kernel: to init's 0x4b; init: to its 0x57;
# workload: from there to the VMM's exit; to_init / to_exit: from the start.
set -euo pipefail
export LC_ALL=C

log() { printf 'compare_boot.sh: %s\n' "$*" >&2; }
die() { printf 'compare_boot.sh: error: %s\n' "$*" >&2; exit 1; }

runs=5 kernel= rootfs= build= out= engines=krunlet,qemu+virtiofsd,qemu+initramfs
while [[ $# -gt 0 ]]; do
    case $1 in
        --runs | --kernel | --rootfs | --build | --out | --engines)
            [[ $# -ge 2 ]] || die "$1 needs a value"
            declare "${1#--}=$2"
            shift 2
            ;;
        *) die "unknown argument: $1 (see the comment at the top of ${BASH_SOURCE[0]})" ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs wants a positive integer, got '$runs'"
[[ -f $kernel ]] || die "--kernel: no file '$kernel'"
[[ -d $rootfs ]] || die "--rootfs: no directory '$rootfs'"
[[ -x $build/bin/krunlet && -x $build/bin/krunlet-boot-guest ]] \
    || die "--build: $build/bin/krunlet or krunlet-boot-guest is missing (ninja -C build)"
build=$(cd "$build" && pwd)
[[ $(id -u) -eq 0 ]] || die "it needs root, for the kernel's trace (run it through tests/kvm-host/run.sh)"
[[ -e /sys/module/kvm_pvm ]] && die "/dev/kvm is kvm_pvm, which cannot run a Linux guest to its end: run this inside the KVM test host (tests/kvm-host/run.sh)"

virtiofsd=/usr/lib/qemu/virtiofsd
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing: apt-get install qemu-system-x86 (outside the test host: it mounts the host's /usr)"
[[ -x $virtiofsd ]] || die "$virtiofsd is missing: apt-get install qemu-system-common (outside the test host)"

# ------------------------------------------------------------- ftrace ----
tracing=/sys/kernel/tracing
[[ -e $tracing/trace ]] || mount -t tracefs nodev "$tracing" 2>/dev/null \
    || die "cannot mount tracefs at $tracing (this kernel needs CONFIG_FTRACE)"
for e in sched/sched_process_exec sched/sched_process_exit kvm/kvm_entry kvm/kvm_pio; do
    [[ -e $tracing/events/$e/enable ]] || die "the kernel has no trace event $e"
done
echo 0 >"$tracing/tracing_on"
echo nop >"$tracing/current_tracer"
echo mono >"$tracing/trace_clock"
# A boot of the emulated guests makes a few thousand exits; 64 MiB per CPU
# leaves room for far more. An overrun is detected below, never ignored.
echo 65536 >"$tracing/buffer_size_kb"
echo 0 >"$tracing/events/enable"
echo 'port == 0x80' >"$tracing/events/kvm/kvm_pio/filter"
for e in sched/sched_process_exec sched/sched_process_exit kvm/kvm_entry kvm/kvm_pio; do
    echo 1 >"$tracing/events/$e/enable"
done

# -------------------------------------------------------------- roots ----
# The root on tmpfs (/dev/shm), not on the 9p-mounted repository:
# otherwise every file access of either server would be a 9p round trip
# through the emulation (docs/bench.md, "Put ROOTFS on tmpfs").
work=$(mktemp -d /dev/shm/compare-boot.XXXXXX)
vfs_pid=
cleanup() {
    echo 0 >"$tracing/tracing_on" 2>/dev/null || true
    echo 0 >"$tracing/events/enable" 2>/dev/null || true
    [[ -z $vfs_pid ]] || kill -KILL "$vfs_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
root=$work/root
cp -a "$rootfs" "$root"
# The VMMs' own files come from tmpfs too. Inside the test host the
# repository is a 9p mount without a page cache (cache=mmap), while QEMU's
# /usr is cached (cache=loose): krunlet run from build/ would read its 29 MB
# libkrun.so and the kernel through 9p on every start. So krunlet runs from
# a copy laid out as installed (bin/ and lib/, found through its
# $ORIGIN/../lib runpath), and both VMMs read one copy of the kernel.
prefix=$work/prefix
mkdir -p "$prefix/bin" "$prefix/lib"
cp "$build/bin/krunlet" "$prefix/bin/"
cp -a "$build"/lib/libkrun.so* "$build"/lib/libkrunlet-kernel.so* "$prefix/lib/"
cp "$kernel" "$work/vmlinux"
kernel=$work/vmlinux
krunlet=$prefix/bin/krunlet
cp "$build/bin/krunlet-boot-guest" "$root/krunlet-boot-guest"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$work/initramfs.cpio" \
    || die "cpio failed (apt-get install cpio)"
[[ -n ${out:-} ]] && mkdir -p "$out"

# --------------------------------------------------------- the engines ----
# Both VMMs: 1 vCPU, 512 MiB, the same kernel, a virtio console whose output
# goes nowhere, modern virtio-mmio devices. krunlet adds vsock and the
# balloon; QEMU's guests have virtio-rng too, as krunlet's do.
common_append="reboot=t panic=-1 nomodule console=hvc0 quiet no-kvmapf io_delay=none"
qemu_common=(qemu-system-x86_64
    -M microvm,acpi=off,x-option-roms=off,rtc=off,pcie=off,isa-serial=off
    -enable-kvm -cpu host -smp 1 -m 512
    -nodefaults -no-user-config -display none -no-reboot
    -kernel "$kernel"
    -global virtio-mmio.force-legacy=false
    -device virtio-serial-device -chardev null,id=con0 -device virtconsole,chardev=con0
    -device virtio-rng-device)

run_krunlet() {
    KRUNLET_KERNEL=$kernel "$krunlet" run --boot-trace --memory 512 --net none "$root" -- /bin/true \
        </dev/null >/dev/null 2>"$work/vmm.err"
}

# virtiofsd as docs/bench.md's fs benchmark runs it, matched to krunlet's
# server: one serving thread, cache=auto, chroot sandbox.
run_qemu_virtiofsd() {
    local sock=$work/vfs.sock i
    rm -f "$sock"
    "$virtiofsd" --socket-path="$sock" --thread-pool-size=0 -o source="$root" -o cache=auto \
        -o sandbox=chroot -o xattr -o no_posix_lock -o no_flock -o log_level=warn \
        </dev/null >/dev/null 2>"$work/vfs.err" &
    vfs_pid=$!
    # QEMU connects at once, so the socket must exist first. Polled every
    # 1 ms (each poll forks a sleep); the wait is part of the boot.
    while [[ ! -S $sock ]]; do
        kill -0 "$vfs_pid" 2>/dev/null || die "virtiofsd ended before it made its socket: $(tail -n 5 "$work/vfs.err")"
        sleep 0.001
    done
    "${qemu_common[@]}" -object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem \
        -chardev socket,id=vfs,path="$sock" -device vhost-user-fs-device,chardev=vfs,tag=compare-root \
        -append "$common_append root=compare-root rootfstype=virtiofs rw init=/krunlet-boot-guest" \
        </dev/null >/dev/null 2>"$work/vmm.err" || true
    wait "$vfs_pid" || true  # it leaves when QEMU closes the socket
    vfs_pid=
}

run_qemu_initramfs() {
    "${qemu_common[@]}" -initrd "$work/initramfs.cpio" \
        -append "$common_append rdinit=/krunlet-boot-guest" \
        </dev/null >/dev/null 2>"$work/vmm.err" || true
}

# The VMM's executable, whose exit ends the boot, and the engine's first
# executable, whose exec starts it (virtiofsd runs before QEMU).
vmm_binary() {
    case $1 in
        krunlet) echo "$krunlet" ;;
        *) command -v qemu-system-x86_64 ;;
    esac
}
first_binary() {
    case $1 in
        qemu+virtiofsd) echo "$virtiofsd" ;;
        *) vmm_binary "$1" ;;
    esac
}

# ------------------------------------------------------ one traced boot ----
# Reads the trace of one boot and prints its line (see the top), or fails
# with the reason. Trace lines look like
#   "  krunlet-123  [000] d..1.  45.678901: kvm_entry: vcpu 0, rip 0x..."
# and sched_process_exec names the file and pid:
#   "... sched_process_exec: filename=/usr/bin/qemu-system-x86_64 pid=123 old_pid=123"
parse_trace() {  # parse_trace ENGINE RUN VMM_PATH FIRST_PATH TRACE_FILE
    awk -v engine="$1" -v run="$2" -v vmm="$3" -v first="$4" '
        function field(name,   i) {
            for (i = 1; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2)
            return ""
        }
        {
            ts = ""; ev = ""
            for (i = 1; i < NF; i++) if ($i ~ /^[0-9]+\.[0-9]+:$/) { ts = substr($i, 1, length($i) - 1); ev = $(i + 1); break }
            if (ts == "") next
        }
        ev == "sched_process_exec:" {
            # Only the engine'"'"'s first process counts: the harness execs
            # helpers too (rm, sleep).
            if (field("filename") == first && start == "") start = ts
            if (field("filename") == vmm && vmm_pid == "") vmm_pid = field("pid")
        }
        ev == "kvm_entry:" { entries++; if (first_run == "") first_run = ts }
        ev == "kvm_pio:" && /pio_write/ && / val 0x4b/ && init == "" { init = ts }
        ev == "kvm_pio:" && /pio_write/ && / val 0x57/ && work == "" { work = ts }
        ev == "sched_process_exit:" && vmm_pid != "" && field("pid") == vmm_pid { end = ts }
        END {
            missing = ""
            if (start == "") missing = missing " exec of " first
            if (vmm_pid == "") missing = missing " exec of " vmm
            if (first_run == "") missing = missing " first KVM_RUN (kvm_entry)"
            if (init == "") missing = missing " init start (port 0x80 = 0x4b)"
            if (work == "") missing = missing " workload start (port 0x80 = 0x57)"
            if (end == "") missing = missing " exit of the VMM (sched_process_exit)"
            if (missing != "") { print "missing:" missing; exit 1 }
            ms = 1000
            printf "boot %s %d %.3f %.3f %.3f %.3f %.3f %.3f %d\n", engine, run,
                (first_run - start) * ms, (init - first_run) * ms, (work - init) * ms, (end - work) * ms,
                (init - start) * ms, (end - start) * ms, entries
        }' "$5"
}

traced_boot() {  # traced_boot ENGINE RUN
    local engine=$1 run=$2 line overrun
    echo >"$tracing/trace"  # clears the buffer
    echo 1 >"$tracing/tracing_on"
    case $engine in
        krunlet) run_krunlet || { echo 0 >"$tracing/tracing_on"; die "krunlet failed: $(tail -n 5 "$work/vmm.err")"; } ;;
        qemu+virtiofsd) run_qemu_virtiofsd ;;
        qemu+initramfs) run_qemu_initramfs ;;
    esac
    echo 0 >"$tracing/tracing_on"
    overrun=$(awk '/^overrun:/ { n += $2 } END { print n + 0 }' "$tracing"/per_cpu/cpu*/stats)
    [[ $overrun == 0 ]] || die "the trace buffer overran ($overrun events lost) during $engine run $run: raise buffer_size_kb"
    [[ -z $out ]] || cp "$tracing/trace" "$out/$engine-$run.trace"
    if ! line=$(parse_trace "$engine" "$run" "$(vmm_binary "$engine")" "$(first_binary "$engine")" "$tracing/trace"); then
        log "$engine run $run: the trace lacks the$(sed 's/^missing://' <<<"$line"); the VMM's stderr:"
        sed 's/^/  /' "$work/vmm.err" | tail -n 15 >&2
        die "$engine run $run did not boot to its end"
    fi
    echo "$line"
    # krunlet's own view of the same boot (it starts at krun_create_ctx).
    [[ $engine != krunlet ]] || sed -n 's/^boot-trace: /krunlet-trace '"$run"' /p' "$work/vmm.err"
}

# ------------------------------------------------------------- the runs ----
IFS=, read -r -a engines <<<"$engines"
for e in "${engines[@]}"; do
    case $e in krunlet | qemu+virtiofsd | qemu+initramfs) ;; *) die "--engines: unknown engine '$e'" ;; esac
done
log "one untimed boot per engine (page cache), then $runs timed rounds"
for e in "${engines[@]}"; do traced_boot "$e" 0 >/dev/null; done
for ((r = 1; r <= runs; r++)); do
    # A different engine goes first in each round, so a slow period of the
    # shared outer machine does not always hit the same one.
    for ((k = 0; k < ${#engines[@]}; k++)); do
        e=${engines[(k + r - 1) % ${#engines[@]}]}
        traced_boot "$e" "$r"
    done
    log "  round $r/$runs done"
done
