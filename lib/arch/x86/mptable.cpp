#include "arch/x86/mptable.h"

#include <cstring>
#include <string>
#include <vector>

#include "arch/x86/hex.h"

namespace krunlet::x86::mp {

namespace {

constexpr uint8_t kSpecRev14 = 4;
// An integrated (on-die) local APIC reports version 0x1X; KVM's is 0x14.
constexpr uint8_t kLapicVersion = 0x14;
// The 82093AA-compatible IOAPIC version KVM emulates.
constexpr uint8_t kIoapicVersion = 0x11;
// Processor entries carry a CPUID-style signature and feature word. Linux
// reads only the APIC id and flags from them, so a generic family-6 CPU with
// FPU (EDX bit 0) and APIC (EDX bit 9) is enough.
constexpr uint32_t kCpuSignature = 0x600;
constexpr uint32_t kCpuFeatures = (1u << 0) | (1u << 9);

uint8_t checksum(const uint8_t* p, size_t n) {
    uint8_t sum = 0;
    for (size_t i = 0; i < n; ++i) sum = static_cast<uint8_t>(sum + p[i]);
    return static_cast<uint8_t>(-sum);  // the value that makes the sum zero
}

// Appends the raw bytes of a wire struct.
template <class T>
void put(std::vector<uint8_t>& out, const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof v);
}

}  // namespace

Result<uint64_t> write_mptable(const GuestMemory& mem, uint32_t ncpus, uint64_t addr) {
    if (ncpus == 0 || ncpus > kMaxCpus)
        return make_error(EINVAL, "MP table: " + std::to_string(ncpus) + " vCPUs requested, 1 to " +
                                      std::to_string(kMaxCpus) + " supported: lower the vCPU count");
    if (addr + sizeof(FloatingPointer) > UINT32_MAX)
        return make_error(EINVAL, "MP table must lie below 4 GiB (32-bit pointers)");
    const uint8_t ioapic_id = static_cast<uint8_t>(ncpus);  // the first id after the CPUs'

    // The configuration table body, built in a host buffer then copied once.
    std::vector<uint8_t> cfg;
    cfg.resize(sizeof(ConfigHeader));
    uint16_t entries = 0;
    for (uint32_t i = 0; i < ncpus; ++i, ++entries) {
        ProcessorEntry e{};
        e.type = kEntryProcessor;
        e.lapic_id = static_cast<uint8_t>(i);
        e.lapic_version = kLapicVersion;
        e.cpu_flags = kCpuEnabled | (i == 0 ? kCpuBootstrap : 0);
        e.signature = kCpuSignature;
        e.features = kCpuFeatures;
        put(cfg, e);
    }
    BusEntry bus{};
    bus.type = kEntryBus;
    bus.bus_id = 0;
    std::memcpy(bus.bus_type, "ISA   ", sizeof bus.bus_type);
    put(cfg, bus);
    ++entries;
    IoApicEntry ioapic{};
    ioapic.type = kEntryIoApic;
    ioapic.id = ioapic_id;
    ioapic.version = kIoapicVersion;
    ioapic.flags = 1;  // usable
    ioapic.addr = static_cast<uint32_t>(kIoapicAddr);
    put(cfg, ioapic);
    ++entries;
    // ISA IRQ n -> IOAPIC pin n for all 24 pins, matching KVM's default GSI
    // routing, so irqfd GSI n is guest IRQ n.
    for (uint32_t irq = 0; irq < kIoapicPins; ++irq, ++entries) {
        IntEntry e{};
        e.type = kEntryIoInterrupt;
        e.irq_type = kIrqTypeInt;
        e.flags = 0;  // conforms to the bus: edge, active high for ISA
        e.src_bus = 0;
        e.src_irq = static_cast<uint8_t>(irq);
        e.dst_id = ioapic_id;
        e.dst_pin = static_cast<uint8_t>(irq);
        put(cfg, e);
    }
    // The PIC's output reaches the BSP's LINT0 as ExtINT (virtual wire mode);
    // NMI reaches LINT1 of every CPU. Same as vcpu_setup's LAPIC LVT setup.
    IntEntry extint{kEntryLocalInterrupt, kIrqTypeExtInt, 0, 0, 0, 0, 0};
    IntEntry nmi{kEntryLocalInterrupt, kIrqTypeNmi, 0, 0, 0, kAllLapics, 1};
    put(cfg, extint);
    put(cfg, nmi);
    entries += 2;

    ConfigHeader h{};
    std::memcpy(h.signature, "PCMP", 4);
    h.base_length = static_cast<uint16_t>(cfg.size());
    h.spec_rev = kSpecRev14;
    std::memcpy(h.oem_id, "KRUNLET ", sizeof h.oem_id);
    std::memcpy(h.product_id, "MICROVM     ", sizeof h.product_id);
    h.entry_count = entries;
    h.lapic_addr = static_cast<uint32_t>(kLapicAddr);
    std::memcpy(cfg.data(), &h, sizeof h);
    cfg[offsetof(ConfigHeader, checksum)] = checksum(cfg.data(), cfg.size());

    FloatingPointer fp{};
    std::memcpy(fp.signature, "_MP_", 4);
    fp.config_addr = static_cast<uint32_t>(addr + sizeof(FloatingPointer));
    fp.length = 1;
    fp.spec_rev = kSpecRev14;
    fp.checksum = checksum(reinterpret_cast<const uint8_t*>(&fp), sizeof fp);

    const uint64_t total = sizeof fp + cfg.size();
    if (total != table_size(ncpus) || total > kMpTableMaxSize)
        return make_error(EINVAL, "MP table size mismatch (internal error)");
    if (mem.translate(addr, total) == nullptr)
        return make_error(EINVAL, "MP table area at " + hex(addr) + " is not in guest RAM");
    mem.write_obj(addr, fp);
    mem.write(addr + sizeof fp, cfg.data(), cfg.size());
    return total;
}

}  // namespace krunlet::x86::mp
