#include "arch/x86/vcpu_setup.h"

#include <cstring>

namespace krunlet::x86 {

namespace {

// Control register and EFER bits (SDM vol. 3A, 2.5 and 2.2.1).
constexpr uint64_t kCr0Pe = 1ull << 0;   // protected mode
constexpr uint64_t kCr0Mp = 1ull << 1;   // WAIT honours TS
constexpr uint64_t kCr0Et = 1ull << 4;   // x87 present (hard-wired 1)
constexpr uint64_t kCr0Ne = 1ull << 5;   // native x87 error reporting
constexpr uint64_t kCr0Pg = 1ull << 31;  // paging
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kEferLme = 1ull << 8;
constexpr uint64_t kEferLma = 1ull << 10;

// Page-table entry bits.
constexpr uint64_t kPtePresent = 1ull << 0;
constexpr uint64_t kPteWrite = 1ull << 1;
constexpr uint64_t kPteLarge = 1ull << 7;  // 2 MiB page in a PD entry

// GDT access bytes and flag nibbles (SDM vol. 3A, 3.4.5).
constexpr uint8_t kAccessCode = 0x9b;  // present, DPL 0, code, execute/read, accessed
constexpr uint8_t kAccessData = 0x93;  // present, DPL 0, data, read/write, accessed
constexpr uint8_t kAccessTss = 0x8b;   // present, DPL 0, system, 64-bit TSS (busy)
constexpr uint8_t kFlagsCode64 = 0xa;  // G = 1, L = 1 (64-bit code; D must be 0)
constexpr uint8_t kFlagsData = 0xc;    // G = 1, D/B = 1
constexpr uint32_t kFlatLimit = 0xfffff;  // 4 GiB in 4 KiB units
constexpr uint32_t kTssLimit = 0x67;      // a 104-byte 64-bit TSS

// MSR indices (SDM vol. 4).
constexpr uint32_t kMsrSysenterCs = 0x174;
constexpr uint32_t kMsrSysenterEsp = 0x175;
constexpr uint32_t kMsrSysenterEip = 0x176;
constexpr uint32_t kMsrMiscEnable = 0x1a0;
constexpr uint32_t kMsrMtrrDefType = 0x2ff;
constexpr uint32_t kMsrStar = 0xc0000081;
constexpr uint32_t kMsrLstar = 0xc0000082;
constexpr uint32_t kMsrCstar = 0xc0000083;
constexpr uint32_t kMsrSyscallMask = 0xc0000084;
constexpr uint32_t kMsrKernelGsBase = 0xc0000102;
constexpr uint64_t kMiscEnableFastString = 1ull << 0;
constexpr uint64_t kMtrrEnable = 1ull << 11;
constexpr uint64_t kMtrrTypeWriteBack = 6;

// LAPIC LVT registers (offsets into the 4 KiB register page) and delivery modes.
constexpr size_t kApicLvtLint0 = 0x350;
constexpr size_t kApicLvtLint1 = 0x360;
constexpr uint32_t kApicModeNmi = 4;
constexpr uint32_t kApicModeExtInt = 7;

// x87 control word and MXCSR after FNINIT / reset: all exceptions masked.
constexpr uint16_t kFpuControlWord = 0x37f;
constexpr uint32_t kMxcsrDefault = 0x1f80;

// An 8-byte segment descriptor.
constexpr uint64_t descriptor(uint8_t access, uint8_t flags, uint32_t base, uint32_t limit) {
    return (uint64_t{limit} & 0xffff) | ((uint64_t{base} & 0xffffff) << 16) | (uint64_t{access} << 40) |
           ((uint64_t{limit} >> 16 & 0xf) << 48) | (uint64_t{flags} << 52) | ((uint64_t{base} >> 24) << 56);
}

// The same segment as KVM wants it in kvm_sregs.
kvm_segment segment(uint16_t selector, uint8_t access, uint8_t flags, uint32_t limit) {
    kvm_segment s{};
    s.base = 0;
    bool g = flags & 0x8;
    s.limit = g ? (limit << 12) | 0xfff : limit;
    s.selector = selector;
    s.type = access & 0xf;
    s.s = (access >> 4) & 1;
    s.dpl = (access >> 5) & 3;
    s.present = (access >> 7) & 1;
    s.avl = flags & 1;
    s.l = (flags >> 1) & 1;
    s.db = (flags >> 2) & 1;
    s.g = g;
    return s;
}

}  // namespace

Result<void> write_boot_tables(const GuestMemory& mem) {
    // GDT: 0x00 null, 0x08 unused, 0x10 __BOOT_CS, 0x18 __BOOT_DS, 0x20 TSS
    // (a 16-byte system descriptor in long mode; its upper half, base[63:32],
    // is zero). The TSS is never used (no privilege change, no IST), but VMX
    // requires TR to hold a valid busy TSS in long mode.
    uint64_t gdt[kGdtEntries] = {
        0,
        0,
        descriptor(kAccessCode, kFlagsCode64, 0, kFlatLimit),
        descriptor(kAccessData, kFlagsData, 0, kFlatLimit),
        descriptor(kAccessTss, 0, 0, kTssLimit),
        0,
    };
    static_assert(kBootCodeSelector / 8 == 2 && kBootDataSelector / 8 == 3 && kBootTssSelector / 8 == 4);
    if (!mem.write(kGdtAddr, gdt, sizeof gdt)) return make_error(EINVAL, "boot GDT is not in guest RAM");
    // IDT: empty (limit 0). Interrupts stay off until the kernel loads its own;
    // an exception before that is a triple fault, i.e. KVM_EXIT_SHUTDOWN.
    const uint64_t idt = 0;
    if (!mem.write_obj(kIdtAddr, idt)) return make_error(EINVAL, "boot IDT is not in guest RAM");

    // PML4[0] -> PDPT; PDPT[i] -> PD i; PD i maps [i GiB, i+1 GiB) with 2 MiB pages.
    uint8_t* pml4 = mem.translate(kPml4Addr, kPageSize);
    uint8_t* pdpt = mem.translate(kPdptAddr, kPageSize);
    uint8_t* pds = mem.translate(kPdAddr, kPdCount * kPageSize);
    if (pml4 == nullptr || pdpt == nullptr || pds == nullptr)
        return make_error(EINVAL, "boot page tables are not in guest RAM");
    std::memset(pml4, 0, kPageSize);
    std::memset(pdpt, 0, kPageSize);
    uint64_t e = kPdptAddr | kPtePresent | kPteWrite;
    std::memcpy(pml4, &e, sizeof e);
    for (uint64_t i = 0; i < kPdCount; ++i) {
        e = (kPdAddr + i * kPageSize) | kPtePresent | kPteWrite;
        std::memcpy(pdpt + i * 8, &e, sizeof e);
        for (uint64_t j = 0; j < 512; ++j) {
            e = (i * kGiB + j * 2 * kMiB) | kPtePresent | kPteWrite | kPteLarge;
            std::memcpy(pds + (i * 512 + j) * 8, &e, sizeof e);
        }
    }
    return {};
}

kvm_sregs long_mode_sregs(const kvm_sregs& current) {
    kvm_sregs s = current;  // keeps apic_base and the interrupt bitmap
    kvm_segment code = segment(kBootCodeSelector, kAccessCode, kFlagsCode64, kFlatLimit);
    kvm_segment data = segment(kBootDataSelector, kAccessData, kFlagsData, kFlatLimit);
    s.cs = code;
    s.ds = s.es = s.fs = s.gs = s.ss = data;
    s.tr = segment(kBootTssSelector, kAccessTss, 0, kTssLimit);
    s.ldt = kvm_segment{};
    s.ldt.type = 2;  // LDT, marked unusable: there is none
    s.ldt.unusable = 1;
    s.gdt.base = kGdtAddr;
    s.gdt.limit = kGdtEntries * 8 - 1;
    s.idt.base = kIdtAddr;
    s.idt.limit = 0;
    s.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Pg;
    s.cr3 = kPml4Addr;
    s.cr4 = kCr4Pae;
    s.efer = kEferLme | kEferLma;
    return s;
}

std::vector<kvm_msr_entry> boot_msrs() {
    auto msr = [](uint32_t index, uint64_t data) {
        kvm_msr_entry e{};
        e.index = index;
        e.data = data;
        return e;
    };
    // The syscall/sysenter MSRs start at zero (the kernel programs them in
    // syscall_init). Fast strings on, as every BIOS leaves it: without it
    // rep movs/stos run a byte at a time. MTRRs on with write-back default,
    // or Linux treats all RAM as uncached.
    return {
        msr(kMsrSysenterCs, 0),
        msr(kMsrSysenterEsp, 0),
        msr(kMsrSysenterEip, 0),
        msr(kMsrStar, 0),
        msr(kMsrLstar, 0),
        msr(kMsrCstar, 0),
        msr(kMsrSyscallMask, 0),
        msr(kMsrKernelGsBase, 0),
        msr(kMsrMiscEnable, kMiscEnableFastString),
        msr(kMsrMtrrDefType, kMtrrEnable | kMtrrTypeWriteBack),
    };
}

Result<void> set_boot_registers(const Vcpu& vcpu, uint64_t entry, uint64_t zero_page, uint64_t stack) {
    auto cur = vcpu.get_sregs();
    if (!cur) return cur.error();
    KRUNLET_CHECK(vcpu.set_sregs(long_mode_sregs(*cur)));

    kvm_regs r{};
    r.rflags = 2;  // bit 1 is reserved-one; IF = 0 as the protocol requires
    r.rip = entry;
    r.rsp = stack;
    r.rbp = stack;
    r.rsi = zero_page;
    KRUNLET_CHECK(vcpu.set_regs(r));

    kvm_fpu f{};
    f.fcw = kFpuControlWord;
    f.mxcsr = kMxcsrDefault;
    return vcpu.set_fpu(f);
}

Result<void> setup_common_vcpu_state(const Vcpu& vcpu) {
    auto msrs = boot_msrs();
    KRUNLET_CHECK(vcpu.set_msrs(msrs));

    // LINT0 delivers the PIC's ExtINT and LINT1 the NMI, as on a PC in
    // virtual wire mode (MP spec 3.6.2.2, and the MP table's local interrupt
    // entries). Only the delivery-mode field (bits 8-10) changes.
    auto lapic = vcpu.get_lapic();
    if (!lapic) return lapic.error();
    auto set_mode = [&](size_t reg, uint32_t mode) {
        uint32_t v;
        std::memcpy(&v, lapic->regs + reg, sizeof v);
        v = (v & ~0x700u) | (mode << 8);
        std::memcpy(lapic->regs + reg, &v, sizeof v);
    };
    set_mode(kApicLvtLint0, kApicModeExtInt);
    set_mode(kApicLvtLint1, kApicModeNmi);
    return vcpu.set_lapic(*lapic);
}

Result<void> setup_boot_vcpu(const Vcpu& vcpu, std::span<const kvm_cpuid_entry2> cpuid, uint64_t entry,
                             uint64_t zero_page) {
    KRUNLET_CHECK(vcpu.set_cpuid2(cpuid));
    KRUNLET_CHECK(setup_common_vcpu_state(vcpu));
    return set_boot_registers(vcpu, entry, zero_page);
}

Result<void> setup_ap_vcpu(const Vcpu& vcpu, std::span<const kvm_cpuid_entry2> cpuid) {
    KRUNLET_CHECK(vcpu.set_cpuid2(cpuid));
    return setup_common_vcpu_state(vcpu);
}

}  // namespace krunlet::x86
