// Where a VMM's memory is: guest RAM against the VMM's own, from
// /proc/PID/smaps. Shared by the integration tests (footprint, vsock flood)
// and `krunlet-bench footprint` (bench/compare.sh), which reads QEMU's too.
#pragma once

#include <sys/types.h>

namespace krunlet::test {

// Where a VMM's memory is, from /proc/PID/smaps. Guest RAM is one address range of the
// guest's size, split into several mappings: 4 KiB-page and huge-page parts, and the kernel
// image's pages that krun_start_enter moved in from libkrunlet-kernel.so.1
// (x86::KernelPages::kMove). Its last mapping, all RAM above the kernel, is the largest
// anonymous one that ends a run of adjacent mappings covering exactly the guest's size.
struct GuestRamUsage {
    bool found = false;            // false while the VM is being built or torn down
    long guest_ram_kib = 0;        // resident guest RAM, the kernel image's pages included
    long own_kib = 0;              // resident outside guest RAM: the VMM's own footprint
    long own_private_kib = 0;      // of that, private pages (shared libraries' clean pages not counted)
    long kernel_kib = 0;           // resident pages of the kernel image's mappings
    long kernel_dirty_kib = 0;     // of those, pages the guest wrote (private copies)
};
GuestRamUsage guest_ram_usage(pid_t pid, long guest_ram_kib);

}  // namespace krunlet::test
