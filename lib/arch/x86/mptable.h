// The Intel MultiProcessor Specification 1.4 table that tells a Linux guest
// without ACPI how many CPUs it has and how ISA IRQs reach the IOAPIC.
//
// Layout written at kMpTableAddr (the last KiB of base memory, one of the
// places Linux's mpparse.c scans):
//   MP floating pointer (16 bytes, "_MP_")
//   MP configuration table header (44 bytes, "PCMP"), then its entries:
//     one processor entry per vCPU (APIC id = vCPU index, BSP flag on 0)
//     one bus entry: bus 0 is "ISA"
//     one IOAPIC entry: id = number of vCPUs, at kIoapicAddr
//     24 I/O interrupt entries: ISA IRQ n -> IOAPIC pin n (bus-default polarity
//       and trigger, i.e. edge/active-high for ISA)
//     2 local interrupt entries: ExtINT -> LINT0 of the BSP, NMI -> LINT1 of all
#pragma once

#include <cstdint>

#include "arch/x86/layout.h"
#include "base/result.h"
#include "memory/guest_memory.h"

namespace krunlet::x86::mp {

// The wire structures (MP spec 1.4, chapter 4). Packed, little-endian.
#pragma pack(push, 1)
struct FloatingPointer {
    char signature[4];      // "_MP_"
    uint32_t config_addr;   // physical address of the configuration table
    uint8_t length;         // in 16-byte units: 1
    uint8_t spec_rev;       // 4 = version 1.4
    uint8_t checksum;       // all 16 bytes sum to 0
    uint8_t features[5];    // [0] = 0: a configuration table is present
};
struct ConfigHeader {
    char signature[4];      // "PCMP"
    uint16_t base_length;   // header + all base entries, bytes
    uint8_t spec_rev;
    uint8_t checksum;       // base_length bytes sum to 0
    char oem_id[8];
    char product_id[12];
    uint32_t oem_table_addr;
    uint16_t oem_table_size;
    uint16_t entry_count;
    uint32_t lapic_addr;
    uint16_t ext_length;
    uint8_t ext_checksum;
    uint8_t reserved;
};
struct ProcessorEntry {
    uint8_t type;           // 0
    uint8_t lapic_id;
    uint8_t lapic_version;
    uint8_t cpu_flags;      // bit 0 enabled, bit 1 bootstrap processor
    uint32_t signature;     // CPUID leaf 1 EAX (stepping/model/family)
    uint32_t features;      // CPUID leaf 1 EDX
    uint32_t reserved[2];
};
struct BusEntry {
    uint8_t type;           // 1
    uint8_t bus_id;
    char bus_type[6];       // space padded, e.g. "ISA   "
};
struct IoApicEntry {
    uint8_t type;           // 2
    uint8_t id;
    uint8_t version;
    uint8_t flags;          // bit 0 usable
    uint32_t addr;
};
struct IntEntry {           // I/O interrupt (type 3) and local interrupt (type 4)
    uint8_t type;
    uint8_t irq_type;       // 0 INT, 1 NMI, 2 SMI, 3 ExtINT
    uint16_t flags;         // polarity (bits 0-1) and trigger (bits 2-3); 0 = bus default
    uint8_t src_bus;
    uint8_t src_irq;
    uint8_t dst_id;         // IOAPIC id (type 3) or LAPIC id, 0xff = all (type 4)
    uint8_t dst_pin;        // IOAPIC INTIN# or LAPIC LINTIN#
};
#pragma pack(pop)

static_assert(sizeof(FloatingPointer) == 16);
static_assert(sizeof(ConfigHeader) == 44);
static_assert(sizeof(ProcessorEntry) == 20);
static_assert(sizeof(BusEntry) == 8);
static_assert(sizeof(IoApicEntry) == 8);
static_assert(sizeof(IntEntry) == 8);

constexpr uint8_t kEntryProcessor = 0;
constexpr uint8_t kEntryBus = 1;
constexpr uint8_t kEntryIoApic = 2;
constexpr uint8_t kEntryIoInterrupt = 3;
constexpr uint8_t kEntryLocalInterrupt = 4;
constexpr uint8_t kIrqTypeInt = 0;
constexpr uint8_t kIrqTypeNmi = 1;
constexpr uint8_t kIrqTypeExtInt = 3;
constexpr uint8_t kCpuEnabled = 1;
constexpr uint8_t kCpuBootstrap = 2;
constexpr uint8_t kAllLapics = 0xff;

// Bytes the table takes for `ncpus` vCPUs (floating pointer included).
constexpr uint64_t table_size(uint32_t ncpus) {
    return sizeof(FloatingPointer) + sizeof(ConfigHeader) + uint64_t{ncpus} * sizeof(ProcessorEntry) +
           sizeof(BusEntry) + sizeof(IoApicEntry) + kIoapicPins * sizeof(IntEntry) + 2 * sizeof(IntEntry);
}
// The most vCPUs whose table fits in the KiB at kMpTableAddr (37).
constexpr uint32_t kMaxCpus = static_cast<uint32_t>(
    (kMpTableMaxSize - table_size(0)) / sizeof(ProcessorEntry));
static_assert(kMaxCpus >= 16, "krun allows up to 16 vCPUs");

// Writes the table for `ncpus` vCPUs at `addr` (at most kMpTableMaxSize
// bytes). Returns the bytes written.
Result<uint64_t> write_mptable(const GuestMemory& mem, uint32_t ncpus, uint64_t addr = kMpTableAddr);

}  // namespace krunlet::x86::mp
