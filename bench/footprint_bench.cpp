// krunlet-bench footprint PID GUEST_MIB
//
// One line about a running VMM's memory (krunlet's or QEMU's): how much of
// its resident memory is guest RAM and how much is its own. bench/compare.sh
// samples both VMMs this way. Guest RAM is found as an address range of
// GUEST_MIB in /proc/PID/smaps (tests/support/guest_ram.h); the VMM's own
// private pages are what it costs beyond the guest, since its libraries' clean
// pages are shared with every other process that maps them.
#include "footprint_bench.h"

#include <cstdio>

#include "guest_ram.h"

namespace krunlet::bench {

CLI::App* add_footprint_command(CLI::App& app, FootprintOptions& o) {
    auto* c = app.add_subcommand("footprint", "guest RAM and the VMM's own memory of a running VMM");
    c->add_option("pid", o.pid, "the VMM's process id")->required()->check(CLI::PositiveNumber);
    c->add_option("guest_mib", o.guest_mib, "its guest RAM in MiB (-m / --memory)")
        ->required()
        ->check(CLI::Range(1, 1 << 22));
    return c;
}

int run_footprint(const FootprintOptions& o) {
    const auto u = test::guest_ram_usage(o.pid, o.guest_mib * 1024);
    if (!u.found) {
        std::fprintf(stderr,
                     "krunlet-bench footprint: no address range of %ld MiB of anonymous mappings in "
                     "/proc/%d/smaps: is %d a VMM with that much guest RAM, and still running?\n",
                     o.guest_mib, static_cast<int>(o.pid), static_cast<int>(o.pid));
        return 1;
    }
    std::printf("footprint guest_ram_resident_kib=%ld own_rss_kib=%ld own_private_kib=%ld\n", u.guest_ram_kib,
                u.own_kib, u.own_private_kib);
    return 0;
}

}  // namespace krunlet::bench
