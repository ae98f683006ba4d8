#include "arch/x86/cpuid.h"

#include <doctest/doctest.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

using namespace krunlet;
using namespace krunlet::x86;
using namespace krunlet::x86::cpuid_bits;

namespace {

kvm_cpuid_entry2 leaf(uint32_t fn, uint32_t idx, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    kvm_cpuid_entry2 e{};
    e.function = fn;
    e.index = idx;
    e.eax = a;
    e.ebx = b;
    e.ecx = c;
    e.edx = d;
    return e;
}

// What an Intel host's KVM_GET_SUPPORTED_CPUID roughly looks like.
std::vector<kvm_cpuid_entry2> intel_supported() {
    return {
        leaf(0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69),  // GenuineIntel
        leaf(1, 0, 0x000806ec, 0xdeadbeef, kLeaf1EcxVmx | kLeaf1EcxPopcnt | kLeaf1EcxXsave | kLeaf1EcxAvx,
             1u << 0),
        leaf(4, 0, 0x1c004121, 0x01c0003f, 0x3f, 0),  // L1d
        leaf(4, 2, 0x1c004143, 0x00c0003f, 0x3ff, 0),  // L2
        leaf(4, 3, 0x1c03c163, 0x03c0003f, 0x3fff, 6),  // L3, host: 16 threads share it
        leaf(4, 4, 0, 0, 0, 0),                         // end
        leaf(6, 0, 0x77, 0x2, 0x9, 0),
        leaf(7, 0, 0, kLeaf7EbxFsgsbase | kLeaf7EbxSmap | kLeaf7EbxRdseed | kLeaf7EbxAvx2, 0, 0),
        leaf(0xa, 0, 0x07300404, 0, 0, 0x603),
        leaf(0xb, 0, 1, 2, 0x100, 99),
        leaf(0xb, 1, 4, 16, 0x201, 99),
        leaf(0xb, 2, 0, 0, 2, 99),
        leaf(kKvmCpuidSignature, 0, 0x40000001, 0, 0, 0),
        leaf(kKvmCpuidFeatures, 0, 0x01007afb, 0, 0, 0),
        leaf(0x80000001, 0, 0, 0, 0x121 | kExt1EcxSvm, 0x2c100800),
    };
}

std::optional<kvm_cpuid_entry2> find(const std::vector<kvm_cpuid_entry2>& v, uint32_t fn, uint32_t idx = 0) {
    for (const auto& e : v)
        if (e.function == fn && e.index == idx) return e;
    return std::nullopt;
}

}  // namespace

TEST_CASE("CPUID: APIC ids, topology and added bits on Intel") {
    auto sup = intel_supported();
    CpuidConfig cfg;
    cfg.vcpu_id = 3;
    cfg.ncpus = 4;
    auto r = filter_cpuid(sup, cfg);
    REQUIRE(r.ok());
    const auto& out = *r;
    CHECK(out.size() == sup.size());

    auto l1 = find(out, 1);
    REQUIRE(l1);
    CHECK((l1->ebx >> 24) == 3);             // initial APIC id
    CHECK(((l1->ebx >> 16) & 0xff) == 4);    // logical CPUs per package
    CHECK(((l1->ebx >> 8) & 0xff) == 8);     // CLFLUSH line: 64 bytes
    CHECK((l1->ecx & kLeaf1EcxHypervisor) != 0);
    CHECK((l1->ecx & kLeaf1EcxX2apic) != 0);
    CHECK((l1->ecx & kLeaf1EcxTscDeadline) != 0);
    CHECK((l1->ecx & kLeaf1EcxVmx) == 0);    // no nested by default
    CHECK((l1->ecx & kLeaf1EcxPopcnt) != 0); // untouched without the PVM workaround
    CHECK((l1->edx & kLeaf1EdxHtt) != 0);
    CHECK((l1->edx & 1) == 1);

    // Leaf 4: 4 cores per package; L1/L2 per core, L3 shared by all 4.
    for (uint32_t idx : {0u, 2u, 3u}) {
        auto l4 = find(out, 4, idx);
        REQUIRE(l4);
        CHECK((l4->eax >> 26) == 3);
        uint32_t level = (l4->eax >> 5) & 7;
        CHECK(((l4->eax >> 14) & 0xfff) == (level == 3 ? 3u : 0u));
        CHECK((l4->eax & 0x3fff) == (find(sup, 4, idx)->eax & 0x3fff));  // cache description kept
    }
    CHECK(find(out, 4, 4)->eax == 0);

    auto l6 = find(out, 6);
    CHECK(l6->eax == kLeaf6EaxArat);
    CHECK(l6->ecx == 0);
    auto la = find(out, 0xa);
    CHECK((la->eax | la->ebx | la->ecx | la->edx) == 0);

    auto b0 = find(out, 0xb, 0), b1 = find(out, 0xb, 1), b2 = find(out, 0xb, 2);
    CHECK(b0->eax == 0);
    CHECK(b0->ebx == 1);
    CHECK(b0->ecx == 0x100);
    CHECK(b1->eax == 2);  // 4 CPUs need 2 id bits
    CHECK(b1->ebx == 4);
    CHECK(b1->ecx == 0x201);
    CHECK(b2->ecx == 2);  // level type 0: end
    for (auto* b : {&b0, &b1, &b2}) CHECK((*b)->edx == 3);  // x2APIC id

    auto sig = find(out, kKvmCpuidSignature);
    CHECK(sig->eax == kKvmCpuidFeatures);
    char name[13] = {};
    std::memcpy(name, &sig->ebx, 4);
    std::memcpy(name + 4, &sig->ecx, 4);
    std::memcpy(name + 8, &sig->edx, 4);
    CHECK(std::string(name) == "KVMKVMKVM");
    CHECK(find(out, kKvmCpuidFeatures)->eax == 0x01007afb);  // as KVM supports

    CHECK((find(out, 0x80000001)->ecx & kExt1EcxSvm) == 0);
}

TEST_CASE("CPUID: single vCPU, options and added KVM leaves") {
    auto sup = intel_supported();
    // Drop KVM's own leaves: the filter must add them.
    std::erase_if(sup, [](const kvm_cpuid_entry2& e) { return (e.function & 0xf0000000) == 0x40000000; });
    CpuidConfig cfg;
    cfg.tsc_deadline = false;
    cfg.nested = true;
    cfg.pvm_workarounds = true;
    auto r = filter_cpuid(sup, cfg);
    REQUIRE(r.ok());
    auto l1 = find(*r, 1);
    CHECK((l1->ebx >> 24) == 0);
    CHECK((l1->edx & kLeaf1EdxHtt) == 0);
    CHECK((l1->ecx & kLeaf1EcxTscDeadline) == 0);
    CHECK((l1->ecx & kLeaf1EcxVmx) != 0);
    CHECK((l1->ecx & (kLeaf1EcxPopcnt | kLeaf1EcxXsave | kLeaf1EcxAvx)) == 0);
    auto l7 = find(*r, 7);
    CHECK((l7->ebx & (kLeaf7EbxFsgsbase | kLeaf7EbxSmap | kLeaf7EbxRdseed | kLeaf7EbxAvx2)) == 0);
    CHECK(find(*r, 0xb, 1)->eax == 0);
    CHECK(find(*r, 0xb, 1)->ebx == 1);
    CHECK((find(*r, 0x80000001)->ecx & kExt1EcxSvm) != 0);
    auto sig = find(*r, kKvmCpuidSignature);
    REQUIRE(sig);
    CHECK(sig->ebx == 0x4b4d564b);
    auto feat = find(*r, kKvmCpuidFeatures);
    REQUIRE(feat);
    CHECK(feat->eax == 0);
}

TEST_CASE("CPUID: AMD topology leaves") {
    std::vector<kvm_cpuid_entry2> sup = {
        leaf(0, 0, 0x10, 0x68747541, 0x444d4163, 0x69746e65),  // AuthenticAMD
        leaf(1, 0, 0x00a00f11, 0, 0, 0),
        leaf(4, 0, 0x121, 0, 0, 0),  // reserved on AMD: left alone
        leaf(0x80000008, 0, 0x3030, 0, 0x700f, 0),
        leaf(0x8000001e, 0, 0x55, 0x0155, 0x0300, 0),
    };
    CpuidConfig cfg;
    cfg.vcpu_id = 5;
    cfg.ncpus = 8;
    auto r = filter_cpuid(sup, cfg);
    REQUIRE(r.ok());
    CHECK(find(*r, 4)->eax == 0x121);
    CHECK(find(*r, 0x80000008)->ecx == 7);
    CHECK(find(*r, 0x80000008)->eax == 0x3030);
    auto t = find(*r, 0x8000001e);
    CHECK(t->eax == 5);
    CHECK(t->ebx == 5);
    CHECK(t->ecx == 0);
}

TEST_CASE("CPUID: nonsense topologies are refused") {
    auto sup = intel_supported();
    CpuidConfig cfg;
    cfg.ncpus = 0;
    CHECK(!filter_cpuid(sup, cfg).ok());
    cfg.ncpus = 2;
    cfg.vcpu_id = 2;
    CHECK(!filter_cpuid(sup, cfg).ok());
    cfg.ncpus = 255;
    cfg.vcpu_id = 0;
    CHECK(!filter_cpuid(sup, cfg).ok());
}
