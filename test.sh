#!/usr/bin/env bash
# ./test.sh — build everything and run the whole test suite with ctest.
# Integration tests boot real microVMs: directly where /dev/kvm can run
# guests, otherwise inside the KVM test host (tests/kvm-host/run.sh).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh --no-demo
cd build
ctest --output-on-failure --timeout 3000 "$@"
