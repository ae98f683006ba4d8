#!/usr/bin/env bash
# run-in-kvm.sh COMMAND [ARG...] — run an integration test where a Linux guest
# can really boot: directly when /dev/kvm is hardware KVM, otherwise inside
# the KVM test host. Either way the test itself decides pass or fail.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "${KRUNLET_IN_KVMHOST:-0}" = 1 ] || { [ -w /dev/kvm ] && [ ! -e /sys/module/kvm_pvm ]; }; then
    exec "$@"
fi
echo "run-in-kvm: /dev/kvm here cannot run Linux guests (kvm_pvm or missing): using the KVM test host" >&2
exec "$here/../kvm-host/run.sh" "$@"
