#!/.kvmhost/bin/sh
# /init of the KVM test host (busybox sh, PID 1). See README.md.
#
# Talks to run.sh only through the per-run 9p share "khrun", mounted at
# /.kvmhost/run:
#   in:  argv env cwd (NUL-separated, read by exec.sh), mounts (one share a
#        line: "TAG ro|rw PATH"), debug (present = verbose)
#   out: stdout stderr (COMMAND's output; run.sh streams them while we run),
#        status (COMMAND's exit status), error (set up failed: run.sh exits 125)
# The kernel console (ttyS0) goes to a log file on the host, never to the
# user's terminal, so nothing here can add noise to COMMAND's output.

PATH=/.kvmhost/bin
export PATH
run=/.kvmhost/run
p9opts=trans=virtio,version=9p2000.L,msize=512000

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/null >/dev/console 2>&1

stop() {
    sync
    reboot -f
    sleep 60  # reboot -f does not return; never fall out of PID 1
}

# Before the run share is up, errors can only go to the console log.
insmod_or_stop() {
    insmod "/.kvmhost/modules/$1.ko" || { echo "kvm-host: insmod $1 failed"; stop; }
}
while read -r m; do
    insmod_or_stop "$m"
done </.kvmhost/modules/9p.order
mount -t 9p -o "$p9opts,cache=none" khrun "$run" || {
    echo "kvm-host: mounting the run share failed"
    stop
}

# fail MESSAGE: tell run.sh (exit 125) with the kernel log tail, then stop.
fail() {
    {
        echo "$*"
        echo "--- test host dmesg (tail) ---"
        dmesg | tail -n 25
    } >"$run/error"
    stop
}

[ -e "$run/debug" ] && { PS4='+ [$(cut -d" " -f1 /proc/uptime)] '; set -x; }

# KVM: the modules from Debian's package; kvm-amd needs the emulated SVM of
# QEMU's "-cpu max".
while read -r m; do
    out=$(insmod "/.kvmhost/modules/$m.ko" 2>&1) || fail "insmod $m.ko failed: $out"
done </.kvmhost/modules/kvm.order
[ -c /dev/kvm ] || fail "/dev/kvm did not appear after loading kvm-amd"
[ "$(stat -c %t:%T /dev/kvm)" = "a:e8" ] ||
    fail "/dev/kvm is $(stat -c %t:%T /dev/kvm) (hex), expected 10:232"
chmod 0666 /dev/kvm
# vhost-vsock for QEMU guests (krunlet-bench net). Optional: a failure is logged on the
# console and leaves /dev/vhost-vsock missing, which the bench reports.
while read -r m; do
    out=$(insmod "/.kvmhost/modules/$m.ko" 2>&1) || { echo "kvm-host: insmod $m.ko failed: $out"; break; }
done </.kvmhost/modules/vsock.order
# Prove that KVM runs guest code before trusting it with COMMAND.
out=$(kvm-smoke -q -n 50 -c 2 2>&1) || fail "KVM inside the test host does not run a guest: $out"

# Host files: /usr and /etc read-only, then the run.sh shares (parents
# before children), and fresh tmpfs mounts where the host would have them.
mount -t 9p -o "$p9opts,cache=loose,ro" usr /usr || fail "mounting the host's /usr failed"
mount -t 9p -o "$p9opts,cache=loose,ro" etc /etc || fail "mounting the host's /etc failed"
# The RTC gave whole seconds; build tools compare our clock with mtimes the
# host sets, so take the host's time to the nanosecond from a file it just
# created for us (GNU date/stat from the host's /usr understand fractions).
: >"$run/clock" && /usr/bin/date -s "@$(/usr/bin/stat -c %.9Y "$run/clock")" >/dev/null
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
hostname kvm-host
# Loopback up, as on any machine: the network tests talk to servers on 127.0.0.1.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up

while IFS= read -r line; do
    tag=${line%% *}
    rest=${line#* }
    mode=${rest%% *}
    path=${rest#* }
    # cache=mmap: no page cache for data, so every write reaches the host
    # before write() returns (nothing is lost at power-off) and shared
    # mmap still works.
    case $mode in
        ro) opts="$p9opts,cache=loose,ro" ;;
        rw) opts="$p9opts,cache=mmap" ;;
        *) fail "bad line in the mounts file: $line" ;;
    esac
    [ -d "$path" ] || mkdir -p "$path" || fail "cannot create mount point $path"
    mount -t 9p -o "$opts" "$tag" "$path" || fail "mounting $path ($tag) failed"
done <"$run/mounts"

# COMMAND's stdout and stderr are pipes, as they would be on the host (so
# "echo x >/dev/stderr" appends rather than truncating a file). A cat per
# stream copies them into files on the run share, which run.sh streams
# while we run. A 9p write is synchronous: once the cats have finished,
# every byte is on the host, and powering off loses nothing.
mkfifo /.kvmhost/stdout.fifo /.kvmhost/stderr.fifo
/usr/bin/cat </.kvmhost/stdout.fifo >"$run/stdout" &
cat_out=$!
/usr/bin/cat </.kvmhost/stderr.fifo >"$run/stderr" &
cat_err=$!

# COMMAND runs as a child (not PID 1) so signals and waiting behave as on
# the host. Our own stderr stays on the console, so a "Killed" notice from
# a shell cannot mix into COMMAND's output.
/usr/bin/bash /.kvmhost/exec.sh
status=$?

# The test host powers off now. Processes COMMAND left behind would keep
# the pipes open, so end them (kernel threads have no exe and are skipped).
for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    case $pid in 1 | "$cat_out" | "$cat_err") continue ;; esac
    readlink "$p/exe" >/dev/null 2>&1 && kill -9 "$pid" 2>/dev/null
done
# A cat whose fifo was never opened by a writer (exec.sh failed early) is
# still blocked in open(): a read-write open counts as a writer, and
# closing it gives that cat its EOF. It never blocks itself.
exec 3<>/.kvmhost/stdout.fifo 4<>/.kvmhost/stderr.fifo
exec 3>&- 4>&-
wait "$cat_out" "$cat_err"

echo "$status" >"$run/status"
stop
