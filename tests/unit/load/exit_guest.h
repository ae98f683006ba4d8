// The smallest guest a Vm can run: an ELF64 "vmlinux" of three instructions that writes the
// i8042 reset command (0xFE to port 0x64, vmm/legacy_io.h) and so ends the VM at its first
// exit. It exercises everything Vm::create/run/destroy own (KVM objects, guest memory, the
// console and vsock devices, the event loop and vCPU threads, their seccomp filters) without
// booting Linux, so it runs even on kvm_pvm (DESIGN.md §6). Used by tests/unit/load and
// `krunlet-bench load`.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "vmm/vm.h"

namespace krunlet::load {

// How such a VM ends (vm.cpp's reset path): the VMM's "guest crashed" code, no status from
// init, since there is none.
inline constexpr int kExitGuestCode = kExitGuestCrashed;

// The ELF image: one PT_LOAD at the vmlinux load address, e_entry physical, as the loader
// (arch/x86/elf_loader.h) and the 64-bit boot protocol expect.
std::vector<uint8_t> exit_guest_elf();

// One vCPU, little RAM, no network, no shares, console on nothing. `elf` must outlive the VM.
VmConfig exit_guest_config(std::span<const uint8_t> elf);

// Vm::create + Vm::run on the calling thread, then the Vm is destroyed. The caller's thread
// gets no seccomp filter (VmRunOptions::sandbox_caller stays false); the VM's own threads do.
// Fails when create fails or the VM ended any other way than by the guest's reset.
Result<VmOutcome> run_exit_guest(const VmConfig& config);

// Vm::create refuses kvm_pvm because Linux cannot run there; this guest is not Linux and
// runs fine, so lift the refusal (KRUNLET_ALLOW_KVM_PVM=1) for this process. Call it from
// main() before any thread exists (setenv is not thread-safe).
void allow_kvm_pvm();

// Why /dev/kvm cannot be used here, or nullptr.
const char* kvm_unavailable();

}  // namespace krunlet::load
