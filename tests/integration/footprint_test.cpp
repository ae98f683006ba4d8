// Footprint (issue 7): guest RAM is reserved, not committed, and memory the guest frees goes
// back to the host through virtio-balloon free page reporting (lib/devices/balloon.h).
// One boot; the VMM's VmRSS is read from the host at markers the guest prints.
#include <doctest/doctest.h>

#include <string>

#include "vm_runner.h"

using krunlet::test::krunlet_run;
using krunlet::test::ScratchRootfs;


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
    krunlet::test::GuestRamUsage at_boot;
    auto rss = [](pid_t pid) {
        return krunlet::test::proc_field_kib("/proc/" + std::to_string(pid) + "/status", "VmRSS");
    };
    // Each marker's RSS is read once, the first time the marker shows (the guest then sleeps).
    auto hook = [&](pid_t pid, const std::string& out) {
        if (booted < 0 && out.find("booted\n") != std::string::npos) {
            booted = rss(pid);
            at_boot = krunlet::test::guest_ram_usage(pid, kGuestMib * 1024);
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
    CHECK(at_boot.found);
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
