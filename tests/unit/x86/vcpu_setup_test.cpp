// The boot tables and register values, checked without KVM (kvm_test.cpp
// runs them for real).
#include "arch/x86/vcpu_setup.h"

#include <doctest/doctest.h>

using namespace krunlet;
using namespace krunlet::x86;

namespace {

GuestMemory make_ram() {
    auto m = GuestMemory::create(16 * kMiB, kMmioHoleStart, kMmioHoleEnd);
    REQUIRE(m.ok());
    return std::move(m).value();
}

uint64_t q(const GuestMemory& mem, uint64_t gpa) {
    auto v = mem.read_obj<uint64_t>(gpa);
    REQUIRE(v.has_value());
    return *v;
}

// Walks the 4-level tables like the MMU does for a 2 MiB page.
uint64_t translate(const GuestMemory& mem, uint64_t cr3, uint64_t va) {
    uint64_t pml4e = q(mem, cr3 + ((va >> 39) & 511) * 8);
    REQUIRE((pml4e & 1) == 1);
    uint64_t pdpte = q(mem, (pml4e & ~0xfffull) + ((va >> 30) & 511) * 8);
    REQUIRE((pdpte & 1) == 1);
    REQUIRE((pdpte & 0x80) == 0);  // not a 1 GiB page
    uint64_t pde = q(mem, (pdpte & ~0xfffull) + ((va >> 21) & 511) * 8);
    REQUIRE((pde & 1) == 1);
    REQUIRE((pde & 0x80) == 0x80);  // 2 MiB page
    REQUIRE((pde & 2) == 2);        // writable
    return (pde & ~0x1fffffull) + (va & 0x1fffff);
}

}  // namespace

TEST_CASE("boot GDT holds the flat __BOOT_CS/__BOOT_DS descriptors") {
    auto mem = make_ram();
    REQUIRE(write_boot_tables(mem).ok());
    CHECK(q(mem, kGdtAddr) == 0);
    // The textbook encodings: 64-bit ring-0 code and flat ring-0 data.
    CHECK(q(mem, kGdtAddr + kBootCodeSelector) == 0x00af9b000000ffffull);
    CHECK(q(mem, kGdtAddr + kBootDataSelector) == 0x00cf93000000ffffull);
    CHECK(q(mem, kGdtAddr + kBootTssSelector) == 0x00008b0000000067ull);
    CHECK(q(mem, kIdtAddr) == 0);
}

TEST_CASE("identity page tables cover 0-4 GiB with 2 MiB pages") {
    auto mem = make_ram();
    REQUIRE(write_boot_tables(mem).ok());
    for (uint64_t va : {uint64_t{0}, kZeroPageAddr, kCmdlineAddr, kKernelLoadAddr + 0x1234, 3 * kGiB + 5,
                        kIoapicAddr, kLapicAddr, 4 * kGiB - 1})
        CHECK(translate(mem, kPml4Addr, va) == va);
    // Nothing beyond 4 GiB: PDPT entry 4 is empty.
    CHECK(q(mem, kPdptAddr + 4 * 8) == 0);
    CHECK(q(mem, kPml4Addr + 8) == 0);
}

TEST_CASE("long-mode sregs and boot MSRs") {
    kvm_sregs cur{};
    cur.apic_base = 0xfee00900;
    auto s = long_mode_sregs(cur);
    CHECK(s.apic_base == 0xfee00900);  // kept from KVM's state
    CHECK(s.cr0 == 0x80000033);         // PG | NE | ET | MP | PE
    CHECK(s.cr4 == 0x20);               // PAE
    CHECK(s.cr3 == kPml4Addr);
    CHECK(s.efer == 0x500);             // LMA | LME
    CHECK(s.cs.selector == 0x10);
    CHECK(s.cs.l == 1);
    CHECK(s.cs.db == 0);
    CHECK(s.cs.type == 0xb);
    CHECK(s.cs.limit == 0xffffffff);
    for (const auto* seg : {&s.ds, &s.es, &s.fs, &s.gs, &s.ss}) {
        CHECK(seg->selector == 0x18);
        CHECK(seg->type == 3);
        CHECK(seg->db == 1);
        CHECK(seg->present == 1);
    }
    CHECK(s.tr.selector == 0x20);
    CHECK(s.tr.type == 11);  // busy 64-bit TSS, as VMX requires
    CHECK(s.ldt.unusable == 1);
    CHECK(s.gdt.base == kGdtAddr);
    CHECK(s.gdt.limit == kGdtEntries * 8 - 1);

    auto msrs = boot_msrs();
    bool misc = false, mtrr = false;
    for (const auto& m : msrs) {
        if (m.index == 0x1a0) misc = m.data == 1;
        if (m.index == 0x2ff) mtrr = m.data == 0x806;
    }
    CHECK(misc);
    CHECK(mtrr);
}

TEST_CASE("boot tables need RAM under them") {
    std::vector<uint8_t> small(0x8000);  // ends before the page tables
    auto mem = GuestMemory::wrap({MemoryRegion{0, small.size(), small.data()}});
    auto r = write_boot_tables(mem);
    REQUIRE(!r.ok());
    CHECK(r.error().message.find("page tables") != std::string::npos);
}
