#include "arch/x86/boot_params.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "arch/x86/hex.h"

namespace krunlet::x86 {

static_assert(sizeof(boot_params) == 4096, "the zero page is one page");
static_assert(offsetof(boot_params, hdr) == 0x1f1, "setup header offset (boot.rst)");
static_assert(offsetof(boot_params, e820_table) == 0x2d0, "e820 table offset (zero-page.rst)");

namespace {

// Setup header constants (Documentation/x86/boot.rst, "The Real-Mode Kernel Header").
constexpr uint16_t kBootFlag = 0xaa55;
constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
// Protocol 2.15 is what Linux 6.1's header.S advertises. Claiming it lets the
// kernel trust every field up to kernel_info_offset; the ones we do not fill
// are zero, which each field's description allows.
constexpr uint16_t kBootProtocolVersion = 0x020f;
// type_of_loader 0xff: "undefined" boot loader (no assigned id).
constexpr uint8_t kLoaderTypeUndefined = 0xff;
// A bzImage's "alignment unit required by the kernel" (CONFIG_PHYSICAL_ALIGN,
// 2 MiB on x86_64 by default and in Debian's config). A vmlinux is not
// relocated by us, so this only documents the alignment its load address has.
constexpr uint32_t kKernelAlignment = 0x200000;

// The legacy hole that is never RAM to the guest: the MP table KiB, the VGA
// window and the option ROM / BIOS area.
constexpr uint64_t kLowRamEnd = kMpTableAddr;

}  // namespace

// --- KernelCmdline ------------------------------------------------------------

Result<void> KernelCmdline::append(std::string_view words) {
    if (words.empty()) return {};
    if (words.find('\0') != std::string_view::npos)
        return make_error(EINVAL, "kernel command line word contains a NUL byte");
    size_t sep = line_.empty() ? 0 : 1;
    size_t new_len = line_.size() + sep + words.size();
    if (new_len > max_length())
        return make_error(E2BIG, "kernel command line would be " + std::to_string(new_len) +
                                     " bytes, over the kernel's limit of " + std::to_string(max_length()) +
                                     " (COMMAND_LINE_SIZE - 1): pass long values (environment, arguments) "
                                     "through the config file instead of the command line");
    if (sep) line_ += ' ';
    line_ += words;
    return {};
}

Result<void> KernelCmdline::append_virtio_mmio(uint64_t addr, uint32_t gsi, uint64_t size) {
    if (size == 0 || size % kKiB != 0)
        return make_error(EINVAL, "virtio-mmio window size " + hex(size) + " is not a multiple of 1 KiB");
    char buf[80];
    std::snprintf(buf, sizeof buf, "virtio_mmio.device=%lluK@0x%llx:%u", static_cast<unsigned long long>(size / kKiB),
                  static_cast<unsigned long long>(addr), gsi);
    return append(buf);
}

// --- e820 ----------------------------------------------------------------------

Result<std::vector<boot_e820_entry>> build_e820_map(const GuestMemory& mem) {
    std::vector<MemoryRegion> regions(mem.regions().begin(), mem.regions().end());
    std::sort(regions.begin(), regions.end(),
              [](const MemoryRegion& a, const MemoryRegion& b) { return a.gpa < b.gpa; });
    if (regions.empty() || regions.front().gpa != 0 || regions.front().size < kHighMemoryStart)
        return make_error(EINVAL, "guest RAM must start at address 0 with at least 1 MiB there "
                                  "(the x86 boot structures live below 1 MiB)");

    std::vector<boot_e820_entry> map;
    auto add = [&](uint64_t addr, uint64_t size, uint32_t type) {
        if (size == 0) return;
        // Merge with the previous entry when contiguous and of the same type.
        if (!map.empty() && map.back().type == type && map.back().addr + map.back().size == addr) {
            map.back().size += size;
            return;
        }
        map.push_back(boot_e820_entry{addr, size, type});
    };
    const MemoryRegion& low = regions.front();
    add(0, kLowRamEnd, kE820Ram);
    add(kLowRamEnd, kHighMemoryStart - kLowRamEnd, kE820Reserved);
    add(kHighMemoryStart, low.size - kHighMemoryStart, kE820Ram);
    for (size_t i = 1; i < regions.size(); ++i) {
        const auto& prev = regions[i - 1];
        if (regions[i].gpa < prev.gpa + prev.size)
            return make_error(EINVAL, "guest memory regions at " + hex(prev.gpa) + " and " + hex(regions[i].gpa) +
                                          " overlap");
        add(regions[i].gpa, regions[i].size, kE820Ram);
    }
    if (map.size() > E820_MAX_ENTRIES_ZEROPAGE)
        return make_error(E2BIG, "guest memory has too many regions for the zero page's e820 table");
    return map;
}

// --- zero page -------------------------------------------------------------------

Result<boot_params> build_boot_params(const GuestMemory& mem, const KernelCmdline& cmdline,
                                      const BootParamsConfig& cfg) {
    boot_params bp;
    std::memset(&bp, 0, sizeof bp);  // the protocol wants every unset field zero

    auto e820 = build_e820_map(mem);
    if (!e820) return e820.error();
    std::copy(e820->begin(), e820->end(), bp.e820_table);
    bp.e820_entries = static_cast<uint8_t>(e820->size());

    setup_header& h = bp.hdr;
    h.boot_flag = kBootFlag;
    h.header = kHdrSMagic;
    h.version = kBootProtocolVersion;
    h.type_of_loader = kLoaderTypeUndefined;
    // LOADED_HIGH: the protected-mode kernel sits at or above 1 MiB. No
    // KEEP_SEGMENTS: it only affected the 32-bit entry, and the 64-bit entry
    // loads its own segments. No CAN_USE_HEAP: there is no real-mode setup code.
    h.loadflags = LOADED_HIGH;
    h.kernel_alignment = kKernelAlignment;
    // cmd_line_ptr is 32 bits; ext_cmd_line_ptr (protocol 2.12+, in the zero
    // page proper) carries the upper half.
    h.cmd_line_ptr = static_cast<uint32_t>(cfg.cmdline_addr);
    bp.ext_cmd_line_ptr = static_cast<uint32_t>(cfg.cmdline_addr >> 32);
    // A "read" field for the kernel's own limit; filled so that anyone reading
    // this zero page (a debugger, a test) sees the limit we enforced.
    h.cmdline_size = static_cast<uint32_t>(cmdline.max_length());
    if (cfg.ramdisk_size != 0) {
        h.ramdisk_image = static_cast<uint32_t>(cfg.ramdisk_addr);
        h.ramdisk_size = static_cast<uint32_t>(cfg.ramdisk_size);
        bp.ext_ramdisk_image = static_cast<uint32_t>(cfg.ramdisk_addr >> 32);
        bp.ext_ramdisk_size = static_cast<uint32_t>(cfg.ramdisk_size >> 32);
    }
    return bp;
}

Result<void> write_boot_params(const GuestMemory& mem, const KernelCmdline& cmdline, const BootParamsConfig& cfg) {
    auto bp = build_boot_params(mem, cmdline, cfg);
    if (!bp) return bp.error();

    const uint64_t zp = cfg.zero_page_addr, cl = cfg.cmdline_addr, cl_len = cmdline.max_bytes();
    if (cl_len == 0 || cmdline.str().size() >= cl_len)
        return make_error(EINVAL, "kernel command line does not fit its own limit");
    if (zp < cl + cl_len && cl < zp + sizeof(boot_params))
        return make_error(EINVAL, "zero page at " + hex(zp) + " overlaps the command line at " + hex(cl));
    if (cfg.ramdisk_size != 0 && mem.translate(cfg.ramdisk_addr, cfg.ramdisk_size) == nullptr)
        return make_error(EINVAL, "initramfs at " + hex(cfg.ramdisk_addr) + " is not inside guest RAM");

    uint8_t* line = mem.translate(cl, cl_len);
    if (line == nullptr)
        return make_error(EINVAL, "command line area " + hex(cl) + "+" + hex(cl_len) + " is not in guest RAM");
    if (!mem.write_obj(zp, *bp))
        return make_error(EINVAL, "zero page at " + hex(zp) + " is not in guest RAM");
    // NUL-padded to the full length: the kernel copies COMMAND_LINE_SIZE bytes.
    std::memset(line, 0, cl_len);
    std::memcpy(line, cmdline.str().data(), cmdline.str().size());
    return {};
}

}  // namespace krunlet::x86
