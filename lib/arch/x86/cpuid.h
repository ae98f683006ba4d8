// The CPUID a guest vCPU sees: KVM_GET_SUPPORTED_CPUID, filtered.
//
// KVM reports what it *can* virtualize; the VMM decides the topology (one
// socket, one thread per core, APIC id = vCPU index, matching the MP table)
// and adds the bits only user space may set (hypervisor, TSC-deadline).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"

namespace krunlet::x86 {

struct CpuidConfig {
    uint32_t vcpu_id = 0;   // also the vCPU's APIC id
    uint32_t ncpus = 1;
    // Kvm::has_tsc_deadline_timer(): the LAPIC's TSC-deadline mode is
    // emulated, but KVM_GET_SUPPORTED_CPUID never reports it (api.rst).
    bool tsc_deadline = true;
    // Keep VMX/SVM visible (nested virtualization). Off by default.
    bool nested = false;
    // Hide the features kvm_pvm cannot emulate in guest kernel mode
    // (DESIGN.md §6: popcnt, smap, xsave, fsgsbase, pcid, rdrand, rdseed).
    bool pvm_workarounds = false;
};

// CPUID bits used by the filter and by tests.
namespace cpuid_bits {
constexpr uint32_t kLeaf1EcxVmx = 1u << 5;
constexpr uint32_t kLeaf1EcxFma = 1u << 12;
constexpr uint32_t kLeaf1EcxPcid = 1u << 17;
constexpr uint32_t kLeaf1EcxX2apic = 1u << 21;
constexpr uint32_t kLeaf1EcxPopcnt = 1u << 23;
constexpr uint32_t kLeaf1EcxTscDeadline = 1u << 24;
constexpr uint32_t kLeaf1EcxXsave = 1u << 26;
constexpr uint32_t kLeaf1EcxOsxsave = 1u << 27;
constexpr uint32_t kLeaf1EcxAvx = 1u << 28;
constexpr uint32_t kLeaf1EcxF16c = 1u << 29;
constexpr uint32_t kLeaf1EcxRdrand = 1u << 30;
constexpr uint32_t kLeaf1EcxHypervisor = 1u << 31;
constexpr uint32_t kLeaf1EdxHtt = 1u << 28;
constexpr uint32_t kLeaf6EaxArat = 1u << 2;
constexpr uint32_t kLeaf7EbxFsgsbase = 1u << 0;
constexpr uint32_t kLeaf7EbxAvx2 = 1u << 5;
constexpr uint32_t kLeaf7EbxAvx512f = 1u << 16;
constexpr uint32_t kLeaf7EbxRdseed = 1u << 18;
constexpr uint32_t kLeaf7EbxSmap = 1u << 20;
constexpr uint32_t kExt1EcxSvm = 1u << 2;
}  // namespace cpuid_bits

constexpr uint32_t kKvmCpuidSignature = 0x40000000;  // "KVMKVMKVM\0\0\0"
constexpr uint32_t kKvmCpuidFeatures = 0x40000001;

// The CPUID table for one vCPU. Fails on a nonsense topology.
Result<std::vector<kvm_cpuid_entry2>> filter_cpuid(std::span<const kvm_cpuid_entry2> supported,
                                                   const CpuidConfig& cfg);

}  // namespace krunlet::x86
