// Putting vCPUs in the state Linux's 64-bit boot protocol expects
// (Documentation/x86/boot.rst, "64-bit Boot Protocol"): long mode, paging on
// with the kernel, zero page and command line identity-mapped, a GDT with
// flat __BOOT_CS (0x10) and __BOOT_DS (0x18), interrupts off, rsi = zero page.
//
// The boot vCPU (id 0) gets everything. The others (APs) get CPUID, MSRs and
// their LAPIC only: with the in-kernel irqchip KVM keeps them in
// KVM_MP_STATE_UNINITIALIZED until the guest sends INIT/SIPI, and the guest's
// trampoline sets their mode itself.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "arch/x86/layout.h"
#include "base/result.h"
#include "kvm/kvm.h"
#include "memory/guest_memory.h"

namespace krunlet::x86 {

// Writes the boot GDT, the empty IDT and the identity page tables (2 MiB
// pages over 0-4 GiB) at their layout.h addresses. Once per VM.
Result<void> write_boot_tables(const GuestMemory& mem);

// The segment, control and descriptor-table registers for long mode, as
// set_boot_registers() loads them (exposed for tests).
kvm_sregs long_mode_sregs(const kvm_sregs& current);

// MSR values a freshly booted CPU would have (what the firmware leaves).
std::vector<kvm_msr_entry> boot_msrs();

// rip = entry, rsi = zero page, rsp = boot stack, rflags = 2 (IF clear),
// sregs from long_mode_sregs(), x87/SSE control words at their reset values.
Result<void> set_boot_registers(const Vcpu& vcpu, uint64_t entry, uint64_t zero_page = kZeroPageAddr,
                                uint64_t stack = kBootStackTop);

// MSRs and LAPIC (LINT0 = ExtINT, LINT1 = NMI), for every vCPU. Needs the
// in-kernel irqchip. Call after KVM_SET_CPUID2 (KVM checks some MSRs against
// the CPUID it was given).
Result<void> setup_common_vcpu_state(const Vcpu& vcpu);

// The whole boot-vCPU setup: CPUID, MSRs, LAPIC, then registers.
Result<void> setup_boot_vcpu(const Vcpu& vcpu, std::span<const kvm_cpuid_entry2> cpuid, uint64_t entry,
                             uint64_t zero_page = kZeroPageAddr);
// An AP: CPUID, MSRs and LAPIC; KVM starts it when the guest sends INIT/SIPI.
Result<void> setup_ap_vcpu(const Vcpu& vcpu, std::span<const kvm_cpuid_entry2> cpuid);

}  // namespace krunlet::x86
