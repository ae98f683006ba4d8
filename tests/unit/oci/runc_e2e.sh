#!/bin/sh
# End-to-end check of krun (crun-handler/) through runc on this machine.
#   runc_e2e.sh BUILD/bin/krun
# 1. krunlet-oci with a plain busybox bundle behaves exactly like runc: same
#    stdout, same exit code (3), config.json untouched.
# 2. krun with a bundle annotated run.oci.handler=krun: runc accepts the
#    rewritten config, krunlet-launch starts inside the container through its
#    own loader and libraries, and either boots the VM (hardware KVM: the
#    workload's "exit 3" comes back) or, under kvm_pvm, fails with the
#    library's clear KVM message, never with a missing-library error.
# 3. create + exec into the krun container is refused; delete cleans up.
# Needs root, runc and /bin/busybox (busybox-static); exits 77 (SKIPPED) without them.
set -u
KRUN=$1
[ "$(id -u)" = 0 ] || { echo "SKIPPED: needs root (runc creates namespaces and device nodes)"; exit 77; }
RUNC=$(command -v runc) || { echo "SKIPPED: runc is not installed (apt-get install runc)"; exit 77; }
[ -x /bin/busybox ] || { echo "SKIPPED: /bin/busybox missing (apt-get install busybox-static)"; exit 77; }

# Inside the KVM test host (tests/kvm-host) / is an initramfs, where
# pivot_root fails; runc's --no-pivot uses MS_MOVE + chroot instead.
NOPIVOT=
[ "${KRUNLET_IN_KVMHOST:-}" = 1 ] && NOPIVOT=--no-pivot

T=$(mktemp -d /tmp/krunlet-oci-e2e-XXXXXX)
STATE=$T/state
cleanup() {
    for id in e2e-plain-$$ e2e-runc-$$ e2e-vm-$$ e2e-created-$$; do
        "$RUNC" --root "$STATE" delete -f "$id" >/dev/null 2>&1
    done
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM
ln -s "$KRUN" "$T/krunlet-oci"
fail() { echo "FAIL: $*"; exit 1; }

# make_bundle DIR ANNOTATIONS_JSON
make_bundle() {
    mkdir -p "$1/rootfs/bin" "$1/rootfs/proc" "$1/rootfs/sys" "$1/rootfs/dev" "$1/rootfs/tmp"
    cp /bin/busybox "$1/rootfs/bin/busybox"
    ln -s busybox "$1/rootfs/bin/sh"
    cat > "$1/config.json" <<JSON
{
  "ociVersion": "1.0.2",
  "process": {"terminal": false, "user": {"uid": 0, "gid": 0},
              "args": ["sh", "-c", "echo hello from the workload; grep -o krunlet_e2e=1 /proc/cmdline; exit 3"],
              "env": ["PATH=/bin"], "cwd": "/",
              "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
              "noNewPrivileges": true},
  "root": {"path": "rootfs"},
  "hostname": "e2e",
  "annotations": $2,
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
  ],
  "linux": {
    "resources": {"devices": [{"allow": false, "access": "rwm"}]},
    "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]
  }
}
JSON
}

# 1. Pass-through, compared with runc itself.
make_bundle "$T/plain" '{}'
cp "$T/plain/config.json" "$T/plain.orig"
"$RUNC" --root "$STATE" run $NOPIVOT --bundle "$T/plain" "e2e-runc-$$" > "$T/runc.out" 2> "$T/runc.err" < /dev/null
want=$?
[ "$want" = 3 ] || { cat "$T/runc.err"; fail "runc itself exited $want, not 3 (is runc usable here?)"; }
"$T/krunlet-oci" --runtime-path "$RUNC" --root "$STATE" --log "$T/log" run $NOPIVOT --bundle "$T/plain" "e2e-plain-$$" \
    > "$T/plain.out" 2> "$T/plain.err" < /dev/null
got=$?
[ "$got" = "$want" ] || { cat "$T/plain.err"; fail "krunlet-oci exited $got, runc $want"; }
cmp -s "$T/runc.out" "$T/plain.out" || fail "stdout differs: $(cat "$T/plain.out")"
cmp -s "$T/plain/config.json" "$T/plain.orig" || fail "the unannotated config.json was modified"
[ ! -e "$T/plain/rootfs/.krun_config.json" ] || fail ".krun_config.json written for a plain bundle"
echo "ok: plain bundle: exit $got and stdout '$(cat "$T/plain.out")', as with runc"

# 2. A krun bundle.
make_bundle "$T/vm" '{"run.oci.handler": "krun", "krun.cpus": "1", "krun.ram_mib": "256"}'
cp "$T/vm/config.json" "$T/vm.orig"
# .krun_vm.json names a kernel inside the container and an extra command-line
# word, which the launcher passes to krun_set_kernel.
vmlinux=$(dirname "$KRUN")/../lib/krunlet/vmlinux
if [ -f "$vmlinux" ]; then
    mkdir -p "$T/vm/rootfs/boot"
    cp "$vmlinux" "$T/vm/rootfs/boot/vmlinux"
    echo '{"kernel_path": "/boot/vmlinux", "kernel_cmdline": "krunlet_e2e=1"}' > "$T/vm/rootfs/.krun_vm.json"
fi
timeout 100 "$KRUN" --runtime-path "$RUNC" --root "$STATE" run $NOPIVOT --bundle "$T/vm" "e2e-vm-$$" \
    > "$T/vm.out" 2> "$T/vm.err" < /dev/null
got=$?
cmp -s "$T/vm/rootfs/.krun_config.json" "$T/vm.orig" || fail ".krun_config.json is not the original config"
grep -q '"/.krunlet/bin/krunlet-launch"' "$T/vm/config.json" || fail "config.json was not rewritten"
if grep -qi 'cannot load\|error while loading shared libraries\|No such file' "$T/vm.err"; then
    cat "$T/vm.err"; fail "the launcher could not start inside the container"
fi
if [ -e /sys/module/kvm_pvm ]; then
    [ "$got" != 0 ] && [ "$got" != 3 ] || fail "exit $got under kvm_pvm, where no guest can run"
    grep -q 'kvm_pvm' "$T/vm.err" || { cat "$T/vm.err"; fail "no clear KVM message (exit $got)"; }
    echo "ok: krun bundle: runc accepted the rewritten config; krunlet-launch ran and said: $(tail -n 1 "$T/vm.err")"
else
    [ "$got" = 3 ] || { cat "$T/vm.err"; fail "the microVM exited $got, not the workload's 3"; }
    grep -q 'hello from the workload' "$T/vm.out" || fail "no workload output from the microVM"
    if [ -f "$vmlinux" ]; then
        grep -q 'krunlet_e2e=1' "$T/vm.out" || fail ".krun_vm.json's kernel_cmdline is not in the guest's /proc/cmdline"
        echo "ok: .krun_vm.json kernel_path and kernel_cmdline reached the guest"
    fi
    echo "ok: krun bundle: the microVM ran the workload (exit 3)"
fi

# 3. exec into a created krun container is refused; delete works.
"$KRUN" --runtime-path "$RUNC" --root "$STATE" create $NOPIVOT --bundle "$T/vm" "e2e-created-$$" \
    > /dev/null 2> "$T/create.err" < /dev/null || { cat "$T/create.err"; fail "create of the krun bundle failed"; }
"$KRUN" --runtime-path "$RUNC" --root "$STATE" exec "e2e-created-$$" true > /dev/null 2> "$T/exec.err"
[ $? != 0 ] && grep -q 'not supported in a krun VM' "$T/exec.err" || { cat "$T/exec.err"; fail "exec was not refused"; }
"$KRUN" --runtime-path "$RUNC" --root "$STATE" delete -f "e2e-created-$$" || fail "delete failed"
"$RUNC" --root "$STATE" state "e2e-created-$$" > /dev/null 2>&1 && fail "container still exists after delete"
echo "ok: create, exec refused, delete"
# 4. krun's own errors reach podman's --log file, as JSON with --log-format=json.
"$KRUN" --log-format=json --log "$T/err.log" --runtime-path "$T/no-such-runtime" state x 2> /dev/null
[ $? = 1 ] || fail "a missing runtime did not exit 1"
grep -q '"level":"error".*no-such-runtime' "$T/err.log" || fail "no JSON error line in --log: $(cat "$T/err.log")"
echo "ok: errors go to --log"
echo PASS
