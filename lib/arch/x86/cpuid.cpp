#include "arch/x86/cpuid.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace krunlet::x86 {

using namespace cpuid_bits;

namespace {

// "KVMKVMKVM\0\0\0" in EBX, ECX, EDX (Documentation/virt/kvm/x86/cpuid.rst).
constexpr uint32_t kKvmSigEbx = 0x4b4d564b;  // "KVMK"
constexpr uint32_t kKvmSigEcx = 0x564b4d56;  // "VMKV"
constexpr uint32_t kKvmSigEdx = 0x0000004d;  // "M\0\0\0"

// Bits needed to hold values 0..n-1 (the x2APIC id shift for n logical CPUs).
uint32_t id_bits(uint32_t n) {
    uint32_t bits = 0;
    while ((1u << bits) < n) ++bits;
    return bits;
}

bool is_amd(std::span<const kvm_cpuid_entry2> entries) {
    for (const auto& e : entries)
        if (e.function == 0) return e.ebx == 0x68747541;  // "Auth"enticAMD
    return false;
}

// CPUID leaves 0xB and 0x1F: extended topology, one entry per level (SDM
// vol. 2A, CPUID "V2 Extended Topology Enumeration"). Level 0 is SMT (one
// thread per core), level 1 is core (all vCPUs in one package); the shift in
// EAX tells how many low x2APIC id bits that level uses.
void set_topology_level(kvm_cpuid_entry2& e, const CpuidConfig& cfg) {
    constexpr uint32_t kTypeSmt = 1, kTypeCore = 2;
    e.edx = cfg.vcpu_id;  // x2APIC id, at every subleaf
    switch (e.index) {
        case 0:
            e.eax = 0;  // no SMT bits
            e.ebx = 1;
            e.ecx = (kTypeSmt << 8) | e.index;
            break;
        case 1:
            e.eax = id_bits(cfg.ncpus);
            e.ebx = cfg.ncpus;
            e.ecx = (kTypeCore << 8) | e.index;
            break;
        default:  // "invalid" level type ends the enumeration
            e.eax = 0;
            e.ebx = 0;
            e.ecx = e.index;
            break;
    }
}

void filter_entry(kvm_cpuid_entry2& e, const CpuidConfig& cfg, bool amd) {
    switch (e.function) {
        case 1:
            // EBX: [31:24] initial APIC id, [23:16] logical CPUs per package
            // (valid with HTT), [15:8] CLFLUSH line size in quadwords.
            e.ebx = (cfg.vcpu_id << 24) | (cfg.ncpus << 16) | (8u << 8);
            e.ecx |= kLeaf1EcxHypervisor | kLeaf1EcxX2apic;
            if (cfg.tsc_deadline)
                e.ecx |= kLeaf1EcxTscDeadline;
            else
                e.ecx &= ~kLeaf1EcxTscDeadline;
            if (!cfg.nested) e.ecx &= ~kLeaf1EcxVmx;
            if (cfg.ncpus > 1)
                e.edx |= kLeaf1EdxHtt;
            else
                e.edx &= ~kLeaf1EdxHtt;
            if (cfg.pvm_workarounds)
                // AVX and its dependents need XSAVE to enable their state.
                e.ecx &= ~(kLeaf1EcxPopcnt | kLeaf1EcxPcid | kLeaf1EcxXsave | kLeaf1EcxOsxsave |
                           kLeaf1EcxRdrand | kLeaf1EcxAvx | kLeaf1EcxFma | kLeaf1EcxF16c);
            break;
        case 4:
            // Intel deterministic cache parameters. EAX[4:0] = 0 ends the list.
            // [31:26] cores per package - 1, [25:14] threads sharing the cache - 1
            // (L1/L2 are per core; L3 is shared by the whole package).
            if (!amd && (e.eax & 0x1f) != 0) {
                uint32_t level = (e.eax >> 5) & 0x7;
                uint32_t sharing = level >= 3 ? cfg.ncpus - 1 : 0;
                e.eax = (e.eax & 0x3fff) | ((sharing & 0xfff) << 14) | (((cfg.ncpus - 1) & 0x3f) << 26);
            }
            break;
        case 6:
            // Thermal and power management: nothing for a guest to manage.
            // Keep ARAT only (the LAPIC timer keeps running in C-states), so the
            // guest does not fall back to a broadcast timer.
            e.eax &= kLeaf6EaxArat;
            e.ebx = e.ecx = e.edx = 0;
            break;
        case 7:
            if (e.index == 0 && cfg.pvm_workarounds)
                e.ebx &= ~(kLeaf7EbxFsgsbase | kLeaf7EbxSmap | kLeaf7EbxRdseed | kLeaf7EbxAvx2 | kLeaf7EbxAvx512f);
            break;
        case 0xa:
            // Architectural perfmon: no vPMU is offered to krunlet guests (the
            // counters would cost exits and leak host timing).
            e.eax = e.ebx = e.ecx = e.edx = 0;
            break;
        case 0xb:
        case 0x1f:
            set_topology_level(e, cfg);
            break;
        case kKvmCpuidSignature:
            e.eax = std::max(e.eax, kKvmCpuidFeatures);
            e.ebx = kKvmSigEbx;
            e.ecx = kKvmSigEcx;
            e.edx = kKvmSigEdx;
            break;
        case 0x80000001:
            if (!cfg.nested) e.ecx &= ~kExt1EcxSvm;
            break;
        case 0x80000008:
            // AMD: ECX[7:0] = cores per package - 1, [15:12] = 0: derive the
            // APIC id width from that count.
            if (amd) e.ecx = (cfg.ncpus - 1) & 0xff;
            break;
        case 0x8000001e:
            // AMD extended APIC id / core id / node id; one thread per core.
            if (amd) {
                e.eax = cfg.vcpu_id;
                e.ebx = cfg.vcpu_id & 0xff;  // [15:8] threads per core - 1 = 0
                e.ecx = 0;                   // node 0, one node per package
                e.edx = 0;
            }
            break;
        default:
            break;
    }
}

}  // namespace

Result<std::vector<kvm_cpuid_entry2>> filter_cpuid(std::span<const kvm_cpuid_entry2> supported,
                                                   const CpuidConfig& cfg) {
    // APIC ids are 8 bits in leaf 1 and the MP table; 255 is broadcast.
    if (cfg.ncpus == 0 || cfg.ncpus > 254 || cfg.vcpu_id >= cfg.ncpus)
        return make_error(EINVAL, "CPUID: vCPU " + std::to_string(cfg.vcpu_id) + " of " +
                                      std::to_string(cfg.ncpus) + " is not a valid topology");
    bool amd = is_amd(supported);
    std::vector<kvm_cpuid_entry2> out(supported.begin(), supported.end());
    bool has_sig = false, has_features = false;
    for (auto& e : out) {
        filter_entry(e, cfg, amd);
        has_sig |= e.function == kKvmCpuidSignature;
        has_features |= e.function == kKvmCpuidFeatures;
    }
    // The guest finds kvmclock and the other paravirt features through these
    // two leaves. A KVM that did not report them offers no PV features: add
    // the signature with an empty feature leaf so the guest still knows it
    // runs on KVM.
    if (!has_sig) {
        kvm_cpuid_entry2 e{};
        e.function = kKvmCpuidSignature;
        filter_entry(e, cfg, amd);
        out.push_back(e);
    }
    if (!has_features) {
        kvm_cpuid_entry2 e{};
        e.function = kKvmCpuidFeatures;
        out.push_back(e);
    }
    return out;
}

}  // namespace krunlet::x86
