#include "arch/x86/mptable.h"

#include <doctest/doctest.h>

#include <cstring>
#include <vector>

using namespace krunlet;
using namespace krunlet::x86;

namespace {

// Sum of bytes mod 256, computed here without the library's helper.
unsigned byte_sum(const uint8_t* p, size_t n) {
    unsigned s = 0;
    for (size_t i = 0; i < n; ++i) s += p[i];
    return s & 0xff;
}

struct Parsed {
    unsigned cpus = 0, bsps = 0, buses = 0, ioapics = 0, io_ints = 0, local_ints = 0;
    std::vector<uint8_t> cpu_ids;
    uint8_t ioapic_id = 0;
    uint32_t ioapic_addr = 0;
    std::vector<std::pair<uint8_t, uint8_t>> irq_to_pin;
    bool extint_on_lint0 = false, nmi_on_lint1 = false;
};

// Reads the table back from guest memory the way a guest would.
Parsed parse_table(const GuestMemory& mem, uint64_t addr) {
    Parsed out;
    const uint8_t* fp = mem.translate(addr, 16);
    REQUIRE(fp != nullptr);
    REQUIRE(std::memcmp(fp, "_MP_", 4) == 0);
    CHECK(fp[8] == 1);   // length in paragraphs
    CHECK(fp[9] == 4);   // spec 1.4
    CHECK(byte_sum(fp, 16) == 0);
    CHECK(fp[11] == 0);  // feature byte 1: config table present
    uint32_t cfg_addr;
    std::memcpy(&cfg_addr, fp + 4, 4);
    const uint8_t* hdr = mem.translate(cfg_addr, 44);
    REQUIRE(hdr != nullptr);
    REQUIRE(std::memcmp(hdr, "PCMP", 4) == 0);
    uint16_t base_len, count;
    std::memcpy(&base_len, hdr + 4, 2);
    std::memcpy(&count, hdr + 34, 2);
    uint32_t lapic;
    std::memcpy(&lapic, hdr + 36, 4);
    CHECK(lapic == kLapicAddr);
    const uint8_t* all = mem.translate(cfg_addr, base_len);
    REQUIRE(all != nullptr);
    CHECK(byte_sum(all, base_len) == 0);
    CHECK(cfg_addr + base_len <= kMpTableAddr + kMpTableMaxSize);

    size_t off = 44;
    for (unsigned i = 0; i < count; ++i) {
        REQUIRE(off < base_len);
        const uint8_t* e = all + off;
        switch (e[0]) {
            case 0:
                out.cpus++;
                out.cpu_ids.push_back(e[1]);
                CHECK((e[3] & 1) == 1);
                if (e[3] & 2) out.bsps++;
                if (e[3] & 2) CHECK(e[1] == 0);
                off += 20;
                break;
            case 1:
                out.buses++;
                CHECK(std::memcmp(e + 2, "ISA   ", 6) == 0);
                off += 8;
                break;
            case 2:
                out.ioapics++;
                out.ioapic_id = e[1];
                CHECK((e[3] & 1) == 1);
                std::memcpy(&out.ioapic_addr, e + 4, 4);
                off += 8;
                break;
            case 3:
                out.io_ints++;
                CHECK(e[1] == 0);  // INT
                CHECK(e[6] == out.ioapic_id);
                out.irq_to_pin.emplace_back(e[5], e[7]);
                off += 8;
                break;
            case 4:
                out.local_ints++;
                if (e[1] == 3 && e[7] == 0) out.extint_on_lint0 = true;
                if (e[1] == 1 && e[6] == 0xff && e[7] == 1) out.nmi_on_lint1 = true;
                off += 8;
                break;
            default:
                FAIL("unknown MP entry type " << int(e[0]));
        }
    }
    CHECK(off == base_len);
    return out;
}

GuestMemory make_ram() {
    auto m = GuestMemory::create(2 * kMiB, kMmioHoleStart, kMmioHoleEnd);
    REQUIRE(m.ok());
    return std::move(m).value();
}

}  // namespace

TEST_CASE("MP table for 1, 2 and 16 vCPUs") {
    for (uint32_t n : {1u, 2u, 16u}) {
        CAPTURE(n);
        auto mem = make_ram();
        auto size = mp::write_mptable(mem, n);
        REQUIRE(size.ok());
        CHECK(*size == mp::table_size(n));
        auto p = parse_table(mem, kMpTableAddr);
        CHECK(p.cpus == n);
        CHECK(p.bsps == 1);
        for (uint32_t i = 0; i < n; ++i) CHECK(p.cpu_ids[i] == i);
        CHECK(p.buses == 1);
        CHECK(p.ioapics == 1);
        CHECK(p.ioapic_id == n);
        CHECK(p.ioapic_addr == kIoapicAddr);
        CHECK(p.io_ints == 24);
        for (const auto& [irq, pin] : p.irq_to_pin) CHECK(irq == pin);
        CHECK(p.local_ints == 2);
        CHECK(p.extint_on_lint0);
        CHECK(p.nmi_on_lint1);
    }
}

TEST_CASE("MP table: vCPU count limits and placement") {
    auto mem = make_ram();
    CHECK(mp::kMaxCpus == 37);
    CHECK(mp::write_mptable(mem, mp::kMaxCpus).ok());
    CHECK(mp::table_size(mp::kMaxCpus) <= kMpTableMaxSize);
    auto too_many = mp::write_mptable(mem, mp::kMaxCpus + 1);
    REQUIRE(!too_many.ok());
    CHECK(too_many.error().message.find("lower the vCPU count") != std::string::npos);
    CHECK(!mp::write_mptable(mem, 0).ok());
    CHECK(!mp::write_mptable(mem, 1, 4 * kMiB).ok());  // outside RAM
}
