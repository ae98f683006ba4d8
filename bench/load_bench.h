// krunlet-bench load: VM starts per second with the minimal reset guest of
// tests/unit/load/exit_guest.h, sequential and in parallel threads of one process, plus what
// each start/stop cycle leaves behind (fds, threads, RSS). Runs on any /dev/kvm, kvm_pvm too.
#pragma once

#include <CLI/CLI.hpp>

namespace krunlet::bench {

struct LoadOptions {
    int cycles = 200;   // per thread
    int parallel = 2;   // threads of the parallel run (1: sequential only)
    int warmup = 5;     // cycles before the baseline sample
};

CLI::App* add_load_command(CLI::App& app, LoadOptions& o);
int run_load(const LoadOptions& o);

}  // namespace krunlet::bench
