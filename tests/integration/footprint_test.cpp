// Footprint (issue 7): guest RAM is reserved, not committed, and memory the guest frees goes
// back to the host through virtio-balloon free page reporting (lib/devices/balloon.h).
// One boot; the VMM's VmRSS is read from the host at markers the guest prints.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "vm_runner.h"

using krunlet::test::krunlet_run;
using krunlet::test::ScratchRootfs;

namespace {
struct Smaps {
    long own_kib = 0;            // resident outside guest RAM: the VMM's own footprint
    long kernel_kib = 0;         // resident pages of the guest kernel's file mapping
    long kernel_dirty_kib = 0;   // of those, the ones the guest wrote (private copies)
};

// From /proc/PID/smaps. Guest RAM is one address range of `guest_kib`, split into several
// mappings: 4 KiB-page and huge-page parts, and the kernel image's pages that
// krun_start_enter moved in from libkrunlet-kernel.so.1 (x86::KernelPages::kMove). Its last
// mapping is the process's largest (all RAM above the kernel), so the range ends there.
Smaps read_smaps(pid_t pid, long guest_kib) {
    struct Vma {
        unsigned long start = 0, end = 0;
        bool kernel = false;
        long rss = 0, dirty = 0;
    };
    std::vector<Vma> vmas;
    std::ifstream smaps("/proc/" + std::to_string(pid) + "/smaps");
    for (std::string line; std::getline(smaps, line);) {
        std::istringstream in(line);
        std::string first;
        in >> first;
        if (first.empty()) continue;
        if (first.back() != ':') {  // "START-END perms offset dev inode [name]"
            Vma v;
            std::sscanf(first.c_str(), "%lx-%lx", &v.start, &v.end);
            v.kernel = line.find("libkrunlet-kernel") != std::string::npos;
            vmas.push_back(v);
            continue;
        }
        long value = 0;
        if (vmas.empty() || !(in >> value)) continue;
        if (first == "Rss:") vmas.back().rss = value;
        if (first == "Private_Dirty:") vmas.back().dirty = value;
    }
    Smaps s;
    if (vmas.empty()) return s;
    auto largest = std::max_element(vmas.begin(), vmas.end(),
                                    [](const Vma& a, const Vma& b) { return a.end - a.start < b.end - b.start; });
    const unsigned long ram_end = largest->end, ram_start = ram_end - (unsigned long)guest_kib * 1024;
    for (const auto& v : vmas) {
        const bool in_ram = v.start >= ram_start && v.end <= ram_end;
        if (!in_ram) s.own_kib += v.rss;
        if (in_ram && v.kernel) {
            s.kernel_kib += v.rss;
            s.kernel_dirty_kib += v.dirty;
        }
    }
    return s;
}
}  // namespace

TEST_CASE("footprint: untouched guest RAM costs no host memory, and memory the guest frees is handed back") {
    ScratchRootfs fs;
    constexpr long kGuestMib = 1024;
    constexpr long kFillMib = 256;
    // Fill a tmpfs (guest page cache, so real guest pages) with kFillMib, free it, then give
    // the guest's page reporting (a 2 s delay, then batches of 4 MiB blocks) time to run.
    const std::string script = "echo booted; sleep 1; mkdir -p /mnt && mount -t tmpfs -o size=" + std::to_string(kFillMib + 64) +
                               "m none /mnt && dd if=/dev/zero of=/mnt/fill bs=1M count=" + std::to_string(kFillMib) +
                               " 2>/dev/null && echo filled && sleep 2 && rm /mnt/fill && umount /mnt && "
                               "echo freed && sleep 10 && echo done";
    long booted = -1, filled = -1, done = -1;
    Smaps at_boot;
    auto rss = [](pid_t pid) {
        return krunlet::test::proc_field_kib("/proc/" + std::to_string(pid) + "/status", "VmRSS");
    };
    // Each marker's RSS is read once, the first time the marker shows (the guest then sleeps).
    auto hook = [&](pid_t pid, const std::string& out) {
        if (booted < 0 && out.find("booted\n") != std::string::npos) {
            booted = rss(pid);
            at_boot = read_smaps(pid, kGuestMib * 1024);
        }
        if (filled < 0 && out.find("filled\n") != std::string::npos) filled = rss(pid);
        if (done < 0 && out.find("done\n") != std::string::npos) done = rss(pid);
    };
    auto r = krunlet_run(fs.path(), {"--memory", std::to_string(kGuestMib), "--net", "none"},
                         {"/bin/sh", "-c", script}, 300, hook);
    INFO("status=" << r.status << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err);
    REQUIRE(r.status == 0);
    REQUIRE(booted > 0);
    REQUIRE(filled > 0);
    REQUIRE(done > 0);
    // MAP_NORESERVE and no pre-faulting: a booted 1 GiB guest costs a small part of 1 GiB.
    CHECK(booted / 1024 < kGuestMib / 4);
    // The VMM's own memory, guest RAM aside: its code, heap and thread stacks. No copy of the
    // kernel image is among it (it was 12 MiB before KernelFile::release_pages).
    CHECK(at_boot.own_kib > 0);
    CHECK(at_boot.own_kib / 1024 < 10);
    // The kernel's pages were moved into guest RAM, not copied: they are the library's file
    // pages (shared with every other VMM), and the guest has written only part of them.
    CHECK(at_boot.kernel_kib > 4 * 1024);
    CHECK(at_boot.kernel_dirty_kib < at_boot.kernel_kib);
    // The fill is resident on the host ...
    CHECK(filled - booted > kFillMib * 1024 * 3 / 4);
    // ... and most of it is gone again once the guest freed it and reported the free pages.
    CHECK(filled - done > kFillMib * 1024 * 3 / 4);
    MESSAGE("footprint: VMM VmRSS " << booted / 1024 << " MiB after boot (" << kGuestMib << " MiB guest; "
                                    << at_boot.own_kib << " KiB outside guest RAM; kernel image "
                                    << at_boot.kernel_kib << " KiB resident, " << at_boot.kernel_dirty_kib
                                    << " KiB of it written by the guest), "
                                    << filled / 1024 << " MiB with " << kFillMib << " MiB filled, " << done / 1024
                                    << " MiB 10 s after it was freed");
}
