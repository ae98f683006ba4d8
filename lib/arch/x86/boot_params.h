// The zero page (struct boot_params) and kernel command line for Linux's
// 64-bit boot protocol (Documentation/x86/boot.rst, "64-bit Boot Protocol",
// and Documentation/x86/zero-page.rst).
//
// A vmlinux carries no setup header, so the loader writes one from scratch:
// the fields below are what a 64-bit kernel entered at startup_64 reads.
#pragma once

#include <asm/bootparam.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "arch/x86/layout.h"
#include "base/result.h"
#include "memory/guest_memory.h"

namespace krunlet::x86 {

// e820 address range types (ACPI "Address Range Types"; Linux's E820_TYPE_*).
constexpr uint32_t kE820Ram = 1;
constexpr uint32_t kE820Reserved = 2;

// Builds the kernel command line one word at a time and refuses to grow past
// what the kernel will keep, instead of letting the kernel truncate it.
class KernelCmdline {
public:
    // `max_bytes` counts the terminating NUL, like COMMAND_LINE_SIZE.
    explicit KernelCmdline(size_t max_bytes = kCmdlineMaxBytes) : max_bytes_(max_bytes) {}

    // Appends `words` (one or more, space separated) after a space. Fails, and
    // leaves the line unchanged, if the result would not fit or if `words`
    // holds a NUL byte.
    Result<void> append(std::string_view words);
    // Appends "virtio_mmio.device=<size>K@0x<addr>:<gsi>", the form
    // drivers/virtio/virtio_mmio.c parses (needs VIRTIO_MMIO_CMDLINE_DEVICES).
    Result<void> append_virtio_mmio(uint64_t addr, uint32_t gsi, uint64_t size = kVirtioMmioStride);

    const std::string& str() const { return line_; }
    size_t max_length() const { return max_bytes_ == 0 ? 0 : max_bytes_ - 1; }
    size_t max_bytes() const { return max_bytes_; }

private:
    std::string line_;
    size_t max_bytes_;
};

struct BootParamsConfig {
    uint64_t zero_page_addr = kZeroPageAddr;
    uint64_t cmdline_addr = kCmdlineAddr;
    // Optional initramfs already placed in guest RAM (0/0: none).
    uint64_t ramdisk_addr = 0;
    uint64_t ramdisk_size = 0;
};

// The e820 map for `mem`: RAM [0, 639 KiB), reserved [639 KiB, 1 MiB) (MP
// table, then the legacy VGA/ROM area), RAM from 1 MiB to the end of the first
// region, and every further region as RAM. Sorted, non-overlapping, and
// covering exactly the guest RAM. Needs a first region at 0 of at least 1 MiB.
Result<std::vector<boot_e820_entry>> build_e820_map(const GuestMemory& mem);

// The zero page contents (pure: nothing is written to guest memory).
Result<boot_params> build_boot_params(const GuestMemory& mem, const KernelCmdline& cmdline,
                                      const BootParamsConfig& cfg = {});

// Writes the zero page at cfg.zero_page_addr and the command line (NUL-padded
// to cmdline.max_bytes(), since the kernel copies that many) at cfg.cmdline_addr.
Result<void> write_boot_params(const GuestMemory& mem, const KernelCmdline& cmdline,
                               const BootParamsConfig& cfg = {});

}  // namespace krunlet::x86
