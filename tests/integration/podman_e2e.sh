#!/bin/sh
# Podman end to end with krun (crun-handler/) as the OCI runtime, wrapping runc.
#   podman_e2e.sh BUILD/bin/krun
# Runs where a Linux guest boots (run-in-kvm.sh puts it in the KVM test host
# here). Everything podman keeps lives in a temporary directory: our own
# containers.conf and storage.conf, vfs storage, an image imported offline from
# a busybox rootfs. The host's podman configuration is never read or changed.
# Each case boots one microVM through podman, runc and krunlet-launch:
#   1. run --rm ... sh -c 'exit 3': exit 3, stdout reaches podman;
#   2. run -d, then stop: the workload traps SIGTERM and exits 0 (not 137, the
#      SIGKILL podman sends when the timeout runs out);
#   3. -p 18080:80 (slirp4netns network): busybox httpd in the guest answers;
#   4. -v HOSTDIR:/data: host files are seen, and a file written in the guest
#      is on the host afterwards;
#   5. --user 1000 plus the krun.cpus/krun.ram_mib annotations: uid, gid,
#      vCPU count and RAM inside the guest.
# Needs root, podman, runc, slirp4netns, busybox-static: exits 77 (SKIPPED) without them.
set -u
KRUN=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIPPED: needs root (rootful podman)"; exit 77; }
for tool in podman runc conmon slirp4netns; do
    command -v $tool > /dev/null || { echo "SKIPPED: $tool is not installed (./setup.sh installs it)"; exit 77; }
done
[ -x /bin/busybox ] || { echo "SKIPPED: /bin/busybox missing (apt-get install busybox-static)"; exit 77; }
if [ -e /sys/module/kvm_pvm ]; then
    echo "SKIPPED: /dev/kvm is kvm_pvm here, no Linux guest can boot (run through tests/integration/run-in-kvm.sh)"
    exit 77
fi

T=$(mktemp -d /tmp/krunlet-podman-XXXXXX)
fail() { echo "FAIL: $*"; [ -f "$T/events.log" ] && tail -n 5 "$T/events.log"; exit 1; }
cleanup() {
    podman rm -af -t 0 > /dev/null 2>&1
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM

# Inside the KVM test host / is an initramfs, where pivot_root fails.
nopivot=false
[ "${KRUNLET_IN_KVMHOST:-}" = 1 ] && nopivot=true
mkdir -p "$T/net" "$T/tmp" "$T/data"
# default_ulimits = []: this machine lacks CAP_SYS_RESOURCE, and podman's
# default nofile limit would make runc fail. No systemd and no journald here:
# cgroupfs and a file for events.
cat > "$T/containers.conf" <<EOF
[containers]
default_ulimits = []
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$T/events.log"
no_pivot_root = $nopivot
static_dir = "$T/libpod"
tmp_dir = "$T/tmp"
volume_path = "$T/volumes"
runtime = "krun"

[engine.runtimes]
krun = ["$KRUN"]

[network]
network_config_dir = "$T/net"
EOF
cat > "$T/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$T/storage"
runroot = "$T/runroot"
EOF
export CONTAINERS_CONF="$T/containers.conf" CONTAINERS_STORAGE_CONF="$T/storage.conf"
# podman reads the runtime from containers.conf; every run also names it, as
# the issue's command line does.
P="podman --runtime $KRUN"
A="--annotation run.oci.handler=krun"

"$here/../make-rootfs.sh" "$T/rootfs"
mkdir -p "$T/rootfs/www"
echo "served from the microVM" > "$T/rootfs/www/index.html"
tar -C "$T/rootfs" -cf "$T/rootfs.tar" . || fail "tar of the busybox rootfs"
$P import -q "$T/rootfs.tar" localhost/krunlet-busybox:e2e > /dev/null 2> "$T/import.err" ||
    { cat "$T/import.err"; fail "podman import"; }
IMG=localhost/krunlet-busybox:e2e
echo "ok: image imported"

# 1. Exit code and stdout.
$P run --rm $A --network none $IMG /bin/sh -c 'echo hello from the guest; grep -c krunlet /proc/version; exit 3' \
    > "$T/1.out" 2> "$T/1.err" < /dev/null
got=$?
[ "$got" = 3 ] || { cat "$T/1.err"; fail "case 1: podman run exited $got, not 3"; }
grep -q '^hello from the guest$' "$T/1.out" || { cat "$T/1.out" "$T/1.err"; fail "case 1: the workload's stdout did not reach podman"; }
# The guest kernel is krunlet's (its version string names it), so this ran in a VM, not natively under runc.
grep -qx 1 "$T/1.out" || { cat "$T/1.out"; fail "case 1: /proc/version is not the krunlet guest kernel's: the workload ran without a VM"; }
echo "ok: 1. run --rm: exit 3, stdout reached podman, guest kernel"

# 2. run -d + stop: SIGTERM reaches the workload.
$P run -d --name e2e-stop $A --network none $IMG /bin/sh -c \
    'trap "echo got SIGTERM; exit 0" TERM; echo ready; while :; do sleep 1; done' > /dev/null 2> "$T/2.err" ||
    { cat "$T/2.err"; fail "case 2: podman run -d"; }
i=0
until $P logs e2e-stop 2> /dev/null | grep -q ready; do
    i=$((i + 1)); [ $i -le 240 ] || fail "case 2: the workload never printed ready: $($P logs e2e-stop 2>&1 | tail -n 5)"
    sleep 0.5
done
$P stop -t 120 e2e-stop > /dev/null 2> "$T/2.err" || { cat "$T/2.err"; fail "case 2: podman stop"; }
code=$($P inspect --format '{{.State.ExitCode}}' e2e-stop)
[ "$code" = 0 ] || fail "case 2: the stopped container exited $code (137 = SIGKILL after the timeout: SIGTERM was lost)"
$P logs e2e-stop 2>&1 | grep -q 'got SIGTERM' || fail "case 2: the workload's trap did not run: $($P logs e2e-stop 2>&1 | tail -n 3)"
$P rm e2e-stop > /dev/null || fail "case 2: podman rm"
echo "ok: 2. run -d + stop: the workload trapped SIGTERM and exited 0"

# 3. A published port reaches busybox httpd in the guest. With no port map of
# its own, krunlet mirrors the guest's listener on port 80 into the container's
# network namespace, where slirp4netns forwards 18080 to it.
$P run -d --name e2e-port $A --network slirp4netns:port_handler=slirp4netns -p 18080:80 $IMG \
    /bin/busybox httpd -f -p 80 -h /www > /dev/null 2> "$T/3.err" || { cat "$T/3.err"; fail "case 3: podman run -p"; }
i=0
until wget -q -T 5 -O "$T/3.body" http://127.0.0.1:18080/ 2> /dev/null || busybox wget -q -T 5 -O "$T/3.body" http://127.0.0.1:18080/ 2> /dev/null; do
    i=$((i + 1)); [ $i -le 120 ] && [ "$($P inspect --format {{.State.Running}} e2e-port)" = true ] || fail "case 3: nothing answered on 127.0.0.1:18080: $($P logs e2e-port 2>&1 | tail -n 5)"
    sleep 1
done
grep -q 'served from the microVM' "$T/3.body" || fail "case 3: wrong body: $(head -c 200 "$T/3.body")"
$P rm -f -t 5 e2e-port > /dev/null 2>&1
echo "ok: 3. -p 18080:80: the guest's HTTP server answered on the host"

# 4. A volume.
echo "from the host" > "$T/data/host.txt"
$P run --rm $A --network none -v "$T/data:/data" $IMG /bin/sh -c \
    'cat /data/host.txt && echo "from the guest" > /data/guest.txt && sync' > "$T/4.out" 2> "$T/4.err" < /dev/null ||
    { cat "$T/4.err"; fail "case 4: podman run -v exited $?"; }
grep -q 'from the host' "$T/4.out" || fail "case 4: the guest did not see the host file: $(cat "$T/4.out")"
grep -q 'from the guest' "$T/data/guest.txt" 2> /dev/null || fail "case 4: the guest's file is not on the host"
echo "ok: 4. -v: host file read in the guest, guest file on the host"

# 5. --user and the VM size annotations.
$P run --rm $A --annotation krun.cpus=2 --annotation krun.ram_mib=384 --network none --user 1000:1000 $IMG \
    /bin/sh -c 'echo "uid=$(id -u) gid=$(id -g) cpus=$(nproc) memkib=$(sed -n "s/^MemTotal: *\([0-9]*\) kB/\1/p" /proc/meminfo)"' \
    > "$T/5.out" 2> "$T/5.err" < /dev/null || { cat "$T/5.err"; fail "case 5: podman run --user exited $?"; }
line=$(grep '^uid=' "$T/5.out") || fail "case 5: no output: $(cat "$T/5.out" "$T/5.err")"
case $line in
    "uid=1000 gid=1000 cpus=2 memkib="*) ;;
    *) fail "case 5: expected uid=1000 gid=1000 cpus=2, got: $line" ;;
esac
mem=${line##*memkib=}
# MemTotal is the RAM less what the kernel keeps: between 300 and 384 MiB.
[ "$mem" -gt 307200 ] && [ "$mem" -le 393216 ] || fail "case 5: MemTotal ${mem} kB does not match krun.ram_mib=384"
echo "ok: 5. --user 1000:1000, krun.cpus=2, krun.ram_mib=384 ($line)"
echo PASS
