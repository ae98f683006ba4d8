// krunlet-bench fs ROOTFS: the guest file-system benchmark, krunlet against QEMU microvm +
// virtiofsd (docs/bench.md). krunlet-bench fs-host: the server's CPU per request on the host.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace krunlet::bench {

struct FsOptions {
    std::string rootfs;
    std::string engines = "krunlet,qemu";
    int rounds = 1;
    int cpus = 1;
    int memory_mib = 512;
    uint64_t randread_mib = 64;
    uint64_t randread_count = 2000;
    bool randread_direct = false;
    uint64_t seq_mib = 256;
    uint64_t bs_kib = 1024;
    uint64_t files = 2000;
    uint64_t small_bytes = 1024;
    uint64_t tree_entries = 50000;
    uint64_t settle_ms = 200;
    int timeout_s = 1200;
    bool keep = false;
    bool verbose = false;
    std::string krunlet;  // defaults next to krunlet-bench
    std::string guest;
    std::string kernel;
    std::string qemu = "qemu-system-x86_64";
    std::string virtiofsd = "/usr/lib/qemu/virtiofsd";
};

// Registers `fs` on `app` with its options bound to `o`; run_fs() runs it.
CLI::App* add_fs_command(CLI::App& app, FsOptions& o, const std::string& bin_dir);
int run_fs(const FsOptions& o);

struct FsHostOptions {
    long iterations = 100000;
    std::string dir;  // default: a fresh directory under $TMPDIR, /dev/shm or /tmp
};
CLI::App* add_fs_host_command(CLI::App& app, FsHostOptions& o);
int run_fs_host(const FsHostOptions& o);

}  // namespace krunlet::bench
