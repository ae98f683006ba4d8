// krunlet-bench net ROOTFS: vsock and TCP between guest and host, krunlet against QEMU
// microvm with vhost-vsock and -netdev user (docs/bench.md). krunlet-bench net-host: the host
// CPU the vsock device and its unix bridge spend per MiB, with a scripted guest driver.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "vm_bench_options.h"

namespace krunlet::bench {

struct NetOptions : VmBenchOptions {
    uint64_t mib = 64;
    uint64_t rr_count = 2000;
    uint64_t rr_size = 1;
    uint64_t conn_count = 200;
    uint64_t settle_ms = 200;
    uint32_t vsock_port = 5201;
};

CLI::App* add_net_command(CLI::App& app, NetOptions& o, const std::string& bin_dir);
int run_net(const NetOptions& o);

struct NetHostOptions {
    uint64_t mib = 256;    // per direction
    int rounds = 3;
    uint64_t conns = 1000;  // connection setups timed
};
CLI::App* add_net_host_command(CLI::App& app, NetHostOptions& o);
int run_net_host(const NetHostOptions& o);

}  // namespace krunlet::bench
