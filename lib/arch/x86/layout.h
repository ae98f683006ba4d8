// The x86_64 guest physical memory map: where krunlet puts the boot structures,
// the kernel and the devices. One table, used by every file in lib/arch/x86
// and by the VMM builder.
//
//   guest physical            what                              e820
//   ------------------------  --------------------------------  --------
//   0x0000_0000-0x0000_04ff   real-mode IVT + BIOS data area    RAM (*)
//   0x0000_0500-0x0000_052f   GDT: null, null, code 0x10,       RAM (*)
//                             data 0x18, TSS 0x20 (16 bytes)
//   0x0000_0600-0x0000_0607   IDT (empty: limit 0)              RAM (*)
//   0x0000_7000-0x0000_7fff   zero page (struct boot_params)    RAM (*)
//   0x0000_8000-0x0000_8fff   boot stack, rsp = 0x8ff0          RAM (*)
//   0x0000_9000               PML4                              RAM (*)
//   0x0000_a000               PDPT                              RAM (*)
//   0x0000_b000-0x0000_efff   4 PDs, 2 MiB pages: 0-4 GiB       RAM (*)
//   0x0002_0000-0x0002_0fff   kernel command line               RAM (*)
//   0x0009_fc00-0x0009_ffff   MP table (last KiB of base mem)   reserved
//   0x000a_0000-0x000f_ffff   legacy VGA/option ROM/BIOS area   reserved
//   0x0010_0000-              free RAM                          RAM
//   0x0100_0000-              kernel (vmlinux PT_LOAD paddr)    RAM
//   ...-min(RAM, 0xc000_0000) end of low RAM
//   0xc000_0000-0xffff_ffff   MMIO hole, no RAM:
//     0xd000_0000 + n*0x1000    virtio-mmio device n, GSI 5 + n
//     0xfec0_0000               IOAPIC
//     0xfee0_0000               LAPIC
//     0xfffb_c000               KVM identity-map page (VMX)
//     0xfffb_d000-0xfffb_ffff   KVM real-mode TSS (VMX, 3 pages)
//   0x1_0000_0000-            RAM that did not fit below the hole RAM
//
//   (*) The kernel reads the zero page and command line, then drops the loader's
//   GDT and page tables, in its first microseconds; after that this is plain RAM.
//   Linux itself keeps the first 64 KiB out of its allocator (X86_RESERVE_LOW).
//
// Why 4 GiB of identity map: the 64-bit boot protocol (Documentation/x86/boot.rst,
// "64-bit Boot Protocol") only needs the kernel, the zero page and the command
// line mapped, but mapping all of 0-4 GiB costs just 4 more page-table pages and
// keeps any future placement below the hole (an initrd near the top of low RAM,
// a bigger kernel) reachable without thought.
#pragma once

#include <cstdint>

namespace krunlet::x86 {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;
constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kHugePageSize = 2 * kMiB;  // a transparent huge page (PMD level)

// --- boot structures (below 1 MiB) ---
constexpr uint64_t kGdtAddr = 0x500;
constexpr uint64_t kGdtEntries = 6;  // null, null, code, data, 16-byte TSS
constexpr uint64_t kIdtAddr = 0x600;
constexpr uint64_t kZeroPageAddr = 0x7000;
constexpr uint64_t kBootStackTop = 0x8ff0;  // 16-byte aligned, below the PML4
constexpr uint64_t kPml4Addr = 0x9000;
constexpr uint64_t kPdptAddr = 0xa000;
constexpr uint64_t kPdAddr = 0xb000;
constexpr uint64_t kIdentityMapBytes = 4 * kGiB;
constexpr uint64_t kPdCount = kIdentityMapBytes / kGiB;  // one PD maps 1 GiB

// The command line area. x86's COMMAND_LINE_SIZE is 2048 in Linux 6.1
// (arch/x86/include/asm/setup.h): the kernel copies exactly that many bytes
// from cmd_line_ptr (copy_bootdata in head64.c) and keeps at most 2047
// characters. A vmlinux has no setup header, so its cmdline_size field cannot
// be read from the image; 2048 is the limit krunlet's own kernel is built
// with. The area is a full page so the kernel's fixed-size copy stays in it.
constexpr uint64_t kCmdlineAddr = 0x20000;
constexpr uint64_t kCmdlineAreaSize = kPageSize;
constexpr uint64_t kCmdlineMaxBytes = 2048;  // including the terminating NUL

// The MP table sits in the last KiB of base memory (639 KiB), one of the
// places Linux scans for the "_MP_" floating pointer (mpparse.c).
constexpr uint64_t kMpTableAddr = 0x9fc00;
constexpr uint64_t kMpTableMaxSize = 0x400;
constexpr uint64_t kBaseMemoryEnd = 0xa0000;   // 640 KiB
constexpr uint64_t kHighMemoryStart = 0x100000;  // 1 MiB: legacy area ends

// --- kernel ---
constexpr uint64_t kKernelLoadAddr = 0x1000000;  // vmlinux's LOAD_PHYSICAL_ADDR

// --- MMIO hole and devices ---
constexpr uint64_t kMmioHoleStart = 0xc0000000;
constexpr uint64_t kMmioHoleEnd = 0x100000000;
constexpr uint64_t kVirtioMmioBase = 0xd0000000;
constexpr uint64_t kVirtioMmioStride = 0x1000;  // a 4 KiB window per device
// Device n uses GSI kVirtioFirstGsi + n. GSIs 0-4 stay with the legacy devices
// (PIT 0, keyboard 1, cascade 2, COM2/COM1 3-4); the IOAPIC has 24 pins, and
// the MP table routes ISA IRQ n to pin n for all of them.
constexpr uint32_t kVirtioFirstGsi = 5;
constexpr uint32_t kIoapicPins = 24;
constexpr uint32_t kMaxVirtioDevices = kIoapicPins - kVirtioFirstGsi;
constexpr uint64_t kIoapicAddr = 0xfec00000;
constexpr uint64_t kLapicAddr = 0xfee00000;
constexpr uint64_t kKvmIdentityMapAddr = 0xfffbc000;
constexpr uint64_t kKvmTssAddr = 0xfffbd000;

constexpr uint64_t virtio_mmio_addr(uint32_t n) { return kVirtioMmioBase + n * kVirtioMmioStride; }
constexpr uint32_t virtio_mmio_gsi(uint32_t n) { return kVirtioFirstGsi + n; }

// --- GDT selectors the 64-bit boot protocol asks for (__BOOT_CS, __BOOT_DS) ---
constexpr uint16_t kBootCodeSelector = 0x10;
constexpr uint16_t kBootDataSelector = 0x18;
constexpr uint16_t kBootTssSelector = 0x20;

// The map above must not collide with itself.
static_assert(kGdtAddr + kGdtEntries * 8 <= kIdtAddr);
static_assert(kIdtAddr + 8 <= kZeroPageAddr);
static_assert(kZeroPageAddr + kPageSize <= kBootStackTop);
static_assert(kBootStackTop < kPml4Addr);
static_assert(kPml4Addr + kPageSize == kPdptAddr && kPdptAddr + kPageSize == kPdAddr);
static_assert(kPdAddr + kPdCount * kPageSize <= kCmdlineAddr);
static_assert(kCmdlineMaxBytes <= kCmdlineAreaSize);
static_assert(kCmdlineAddr + kCmdlineAreaSize <= kMpTableAddr);
static_assert(kMpTableAddr + kMpTableMaxSize == kBaseMemoryEnd);
static_assert(kHighMemoryStart <= kKernelLoadAddr);
static_assert(virtio_mmio_addr(kMaxVirtioDevices) <= kIoapicAddr);
static_assert(kMmioHoleStart <= kVirtioMmioBase && kKvmTssAddr + 3 * kPageSize <= kMmioHoleEnd);
static_assert(kIdentityMapBytes >= kMmioHoleEnd);

}  // namespace krunlet::x86
