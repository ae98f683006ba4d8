// `krunlet-bench footprint`: a running VMM's memory, guest RAM against its own.
#pragma once

#include <sys/types.h>

#include <CLI/CLI.hpp>

namespace krunlet::bench {

struct FootprintOptions {
    pid_t pid = 0;
    long guest_mib = 0;
};

CLI::App* add_footprint_command(CLI::App& app, FootprintOptions& o);
int run_footprint(const FootprintOptions& o);

}  // namespace krunlet::bench
