// krunlet-bench fs ROOTFS: the guest file-system benchmark, krunlet against QEMU microvm +
// virtiofsd (docs/bench.md). krunlet-bench fs-host: the server's CPU per request on the host.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "vm_bench_options.h"

namespace krunlet::bench {

struct FsOptions : VmBenchOptions {
    uint64_t randread_mib = 64;
    uint64_t randread_count = 2000;
    bool randread_direct = false;
    uint64_t seq_mib = 256;
    uint64_t bs_kib = 1024;
    uint64_t files = 2000;
    uint64_t small_bytes = 1024;
    uint64_t tree_entries = 50000;
    uint64_t settle_ms = 200;
    std::string virtiofsd = "/usr/lib/qemu/virtiofsd";
};

// Registers `fs` on `app` with its options bound to `o`; run_fs() runs it.
CLI::App* add_fs_command(CLI::App& app, FsOptions& o, const std::string& bin_dir);
int run_fs(const FsOptions& o);

struct FsHostOptions {
    long iterations = 20000;
    int depth = 1;
    std::string only;  // comma-separated measurement names; empty = all
    int rounds = 3;
    std::string engines = "krunlet,virtiofsd";
    std::string virtiofsd = "/usr/lib/qemu/virtiofsd";
    std::string dir;  // default: $TMPDIR, /dev/shm or /tmp; each run makes its own directory in it
};
CLI::App* add_fs_host_command(CLI::App& app, FsHostOptions& o);
int run_fs_host(const FsHostOptions& o);

}  // namespace krunlet::bench
