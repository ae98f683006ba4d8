#include "arch/x86/boot_params.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>

using namespace krunlet;
using namespace krunlet::x86;

namespace {

// A copy of a packed field (doctest binds its operands by reference).
template <class T>
T u(T v) {
    return v;
}

GuestMemory make_ram(uint64_t bytes) {
    auto m = GuestMemory::create(bytes, kMmioHoleStart, kMmioHoleEnd);
    REQUIRE_MESSAGE(m.ok(), (m.ok() ? "" : m.error().message));
    return std::move(m).value();
}

// The e820 type covering `addr`, or 0 when no entry does.
uint32_t type_at(const std::vector<boot_e820_entry>& map, uint64_t addr) {
    for (const auto& e : map)
        if (addr >= e.addr && addr - e.addr < e.size) return e.type;
    return 0;
}

// Sorted, non-overlapping, and the union is exactly the guest RAM regions.
void check_map_covers_ram(const std::vector<boot_e820_entry>& map, const GuestMemory& mem) {
    REQUIRE(!map.empty());
    for (size_t i = 1; i < map.size(); ++i) {
        CHECK(map[i - 1].addr < map[i].addr);
        CHECK(map[i - 1].addr + map[i - 1].size <= map[i].addr);
    }
    uint64_t e820_total = 0;
    for (const auto& e : map) {
        CHECK(e.size > 0);
        CHECK(mem.translate(e.addr, e.size) != nullptr);  // inside one RAM region
        e820_total += e.size;
    }
    CHECK(e820_total == mem.total_size());  // no gaps inside regions
}

}  // namespace

TEST_CASE("guest RAM regions start 2 MiB-aligned in host memory, so KVM can map huge pages") {
    // Below and above the MMIO hole: two regions, both aligned, both usable to their last byte.
    const uint64_t bytes = (kMmioHoleStart >> 20) * (1 << 20) + 6 * (1 << 20);
    GuestMemory mem = make_ram(bytes);
    REQUIRE(mem.regions().size() == 2);
    for (const auto& r : mem.regions()) {
        CHECK(reinterpret_cast<uintptr_t>(r.host) % (2 << 20) == 0);
        const uint8_t b = 0x5a;
        CHECK(mem.write(r.gpa + r.size - 1, &b, 1));
        uint8_t back = 0;
        CHECK(mem.read(r.gpa + r.size - 1, &back, 1));
        CHECK(back == b);
    }
}

TEST_CASE("e820 for 64 MiB: low RAM, reserved legacy area, high RAM") {
    auto mem = make_ram(64 * kMiB);
    auto map = build_e820_map(mem);
    REQUIRE(map.ok());
    check_map_covers_ram(*map, mem);
    REQUIRE(map->size() == 3);
    CHECK(u((*map)[0].addr) == 0);
    CHECK(u((*map)[0].size) == kMpTableAddr);
    CHECK(u((*map)[0].type) == kE820Ram);
    CHECK(u((*map)[1].addr) == kMpTableAddr);
    CHECK(u((*map)[1].addr) + (*map)[1].size == kHighMemoryStart);
    CHECK(u((*map)[1].type) == kE820Reserved);
    CHECK(u((*map)[2].addr) == kHighMemoryStart);
    CHECK(u((*map)[2].addr) + (*map)[2].size == 64 * kMiB);
    CHECK(u((*map)[2].type) == kE820Ram);
    // The MP table, VGA window and BIOS area are reserved; the boot structures are RAM.
    CHECK(type_at(*map, kMpTableAddr) == kE820Reserved);
    CHECK(type_at(*map, kMpTableAddr + kMpTableMaxSize - 1) == kE820Reserved);
    CHECK(type_at(*map, 0xa0000) == kE820Reserved);
    CHECK(type_at(*map, 0xfffff) == kE820Reserved);
    CHECK(type_at(*map, kZeroPageAddr) == kE820Ram);
    CHECK(type_at(*map, kKernelLoadAddr) == kE820Ram);
    CHECK(type_at(*map, 64 * kMiB) == 0);
}

TEST_CASE("e820 for 2 GiB stays below the MMIO hole") {
    auto mem = make_ram(2 * kGiB);
    auto map = build_e820_map(mem);
    REQUIRE(map.ok());
    check_map_covers_ram(*map, mem);
    REQUIRE(map->size() == 3);
    CHECK(u(map->back().addr) + map->back().size == 2 * kGiB);
}

TEST_CASE("e820 for 4 GiB continues above 4 GiB") {
    auto mem = make_ram(4 * kGiB);
    REQUIRE(mem.regions().size() == 2);
    auto map = build_e820_map(mem);
    REQUIRE(map.ok());
    check_map_covers_ram(*map, mem);
    REQUIRE(map->size() == 4);
    CHECK(u((*map)[2].addr) + (*map)[2].size == kMmioHoleStart);
    CHECK(u((*map)[3].addr) == kMmioHoleEnd);
    CHECK(u((*map)[3].size) == 4 * kGiB - kMmioHoleStart);
    CHECK(u((*map)[3].type) == kE820Ram);
    // Nothing in the hole.
    CHECK(type_at(*map, kMmioHoleStart) == 0);
    CHECK(type_at(*map, kIoapicAddr) == 0);
    CHECK(type_at(*map, kMmioHoleEnd - 1) == 0);
}

TEST_CASE("e820 refuses RAM that does not start at 0 or is under 1 MiB") {
    std::vector<uint8_t> buf(512 * 1024);
    auto small = GuestMemory::wrap({MemoryRegion{0, buf.size(), buf.data()}});
    auto r = build_e820_map(small);
    REQUIRE(!r.ok());
    CHECK(r.error().message.find("1 MiB") != std::string::npos);
    std::vector<uint8_t> buf2(2 * kMiB);
    auto shifted = GuestMemory::wrap({MemoryRegion{kMiB, buf2.size(), buf2.data()}});
    CHECK(!build_e820_map(shifted).ok());
}

TEST_CASE("zero page header fields and command line placement") {
    auto mem = make_ram(128 * kMiB);
    KernelCmdline cl;
    REQUIRE(cl.append("console=hvc0 quiet").ok());
    BootParamsConfig cfg;
    cfg.ramdisk_addr = 64 * kMiB;
    cfg.ramdisk_size = 0x12345;
    // Dirty the areas first: the writer must clear what it owns.
    std::memset(mem.translate(kZeroPageAddr, kPageSize), 0xcc, kPageSize);
    std::memset(mem.translate(kCmdlineAddr, kCmdlineAreaSize), 'x', kCmdlineAreaSize);
    REQUIRE(write_boot_params(mem, cl, cfg).ok());

    auto bp = mem.read_obj<boot_params>(kZeroPageAddr);
    REQUIRE(bp.has_value());
    CHECK(u(bp->hdr.boot_flag) == 0xaa55);
    CHECK(u(bp->hdr.header) == 0x53726448);  // "HdrS"
    CHECK(u(bp->hdr.version) >= 0x020c);
    CHECK(u(bp->hdr.type_of_loader) == 0xff);
    CHECK((bp->hdr.loadflags & LOADED_HIGH) != 0);
    CHECK((bp->hdr.loadflags & KASLR_FLAG) == 0);
    CHECK(u(bp->hdr.cmd_line_ptr) == kCmdlineAddr);
    CHECK(u(bp->ext_cmd_line_ptr) == 0);
    CHECK(u(bp->hdr.cmdline_size) == kCmdlineMaxBytes - 1);
    CHECK(u(bp->hdr.kernel_alignment) == 0x200000);
    CHECK(u(bp->hdr.ramdisk_image) == 64 * kMiB);
    CHECK(u(bp->hdr.ramdisk_size) == 0x12345);
    CHECK(u(bp->sentinel) == 0);
    CHECK(u(bp->e820_entries) == 3);
    CHECK(u(bp->e820_table[2].addr) == kHighMemoryStart);
    CHECK(u(bp->e820_table[2].size) == 128 * kMiB - kHighMemoryStart);
    // Fields we never set stay zero (the protocol's rule for unused fields).
    CHECK(u(bp->acpi_rsdp_addr) == 0);
    CHECK(u(bp->hdr.setup_data) == 0);

    const char* line = reinterpret_cast<const char*>(mem.translate(kCmdlineAddr, kCmdlineMaxBytes));
    CHECK(std::string(line) == "console=hvc0 quiet");
    // The kernel copies COMMAND_LINE_SIZE bytes: all of them past the text are NUL.
    CHECK(std::all_of(line + cl.str().size(), line + kCmdlineMaxBytes, [](char c) { return c == 0; }));
}

TEST_CASE("zero page: bad placements are refused") {
    auto mem = make_ram(16 * kMiB);
    KernelCmdline cl;
    BootParamsConfig overlap;
    overlap.cmdline_addr = kZeroPageAddr + 0x100;
    CHECK(!write_boot_params(mem, cl, overlap).ok());
    BootParamsConfig outside;
    outside.cmdline_addr = 32 * kMiB;
    CHECK(!write_boot_params(mem, cl, outside).ok());
    BootParamsConfig bad_initrd;
    bad_initrd.ramdisk_addr = 15 * kMiB;
    bad_initrd.ramdisk_size = 2 * kMiB;
    CHECK(!write_boot_params(mem, cl, bad_initrd).ok());
}

TEST_CASE("command line builder: words, virtio_mmio entries, overflow") {
    KernelCmdline cl;
    CHECK(cl.str().empty());
    REQUIRE(cl.append("reboot=k").ok());
    REQUIRE(cl.append("panic=-1 nomodule").ok());
    REQUIRE(cl.append("").ok());
    CHECK(cl.str() == "reboot=k panic=-1 nomodule");
    REQUIRE(cl.append_virtio_mmio(virtio_mmio_addr(0), virtio_mmio_gsi(0)).ok());
    REQUIRE(cl.append_virtio_mmio(virtio_mmio_addr(3), virtio_mmio_gsi(3)).ok());
    CHECK(cl.str() ==
          "reboot=k panic=-1 nomodule virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0003000:8");
    CHECK(!cl.append_virtio_mmio(0xd0000000, 5, 100).ok());
    CHECK(!cl.append(std::string_view("a\0b", 3)).ok());

    KernelCmdline small(16);  // 15 characters + NUL
    REQUIRE(small.append("0123456789").ok());
    REQUIRE(small.append("abcd").ok());  // exactly 15
    CHECK(small.str().size() == 15);
    auto r = small.append("x");
    REQUIRE(!r.ok());
    CHECK(r.error().code == E2BIG);
    CHECK(r.error().message.find("config file") != std::string::npos);
    CHECK(small.str() == "0123456789 abcd");  // unchanged after the refusal

    KernelCmdline full;
    std::string word(100, 'w');
    int added = 0;
    while (full.append(word).ok()) ++added;
    CHECK(added == 20);  // 20 * 101 - 1 = 2019 <= 2047 < 2120
    CHECK(full.str().size() <= kCmdlineMaxBytes - 1);
}
