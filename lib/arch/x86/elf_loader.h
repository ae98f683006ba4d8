// Loading an uncompressed x86_64 Linux kernel (vmlinux, ELF64) into guest RAM.
//
// The image is not guest-controlled, but it can be any file a user names, so
// every header field is bounds-checked before use and a bad file gets an error
// that says what is wrong with it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace krunlet::x86 {

struct KernelImage {
    // Guest-physical address of the 64-bit entry point (startup_64), where the
    // boot vCPU starts in long mode with rsi = zero page.
    uint64_t entry = 0;
    // Guest-physical range covered by the PT_LOAD segments (bss included).
    uint64_t load_start = 0;
    uint64_t load_end = 0;
    // The PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY), entered in 32-bit
    // protected mode with paging off and rbx = hvm_start_info. Informational:
    // krunlet boots through `entry`.
    std::optional<uint32_t> pvh_entry;
};

// How a segment's bytes reach guest RAM.
enum class KernelPages {
    kCopy,  // memcpy; the ELF bytes are left as they were
    // The ELF bytes are a private file mapping that nothing will read again
    // (krun_start_enter's kernel): every whole page of a read-only segment
    // (no PF_W: text and rodata) is moved into guest RAM
    // (GuestMemory::adopt_pages), so it is not copied and stays the file's
    // page cache, shared by all VMMs, until the guest writes it. Writable
    // segments and pages that cannot move (alignment) are copied. The ELF
    // bytes have holes afterwards.
    kMove,
};

// Checks the ELF header and program headers, puts each PT_LOAD segment at
// its physical address (p_paddr) and zeroes its bss tail (p_memsz > p_filesz).
// Segments must lie inside one guest RAM region each, at or above 1 MiB (the
// boot structures live below), and must not overlap one another.
Result<KernelImage> load_elf_kernel(std::span<const uint8_t> elf, const GuestMemory& mem,
                                    KernelPages how = KernelPages::kCopy);

// Only the header checks and the entry/PVH lookup, without copying.
Result<KernelImage> inspect_elf_kernel(std::span<const uint8_t> elf);

}  // namespace krunlet::x86
