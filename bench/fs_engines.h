// The two engines of krunlet-bench fs, each running the guest workload once:
//   krunlet:        `krunlet run` with its in-process virtio-fs server;
//   qemu+virtiofsd: QEMU microvm with vhost-user-fs and QEMU's C virtiofsd, the same kernel,
//                   the same root directory, our guest program as init.
// Both read the guest's console line by line and sample the host CPU of the server (and of
// the VMM's other threads) at every phase marker (bench/guest/fsbench_guest.cpp).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/result.h"

namespace krunlet::bench {

struct EngineConfig {
    std::string rootfs;                   // the guest's root directory (shared by both)
    std::vector<std::string> guest_args;  // krunlet-fsbench-guest's options and DIR
    int cpus = 1;
    int memory_mib = 512;
    std::string kernel;  // the guest vmlinux (QEMU boots it through its PVH note)
    int timeout_s = 1200;
    bool verbose = false;  // copy the guest console to stderr
    std::string krunlet;    // paths of the programs
    std::string qemu;
    std::string virtiofsd;
};

// Host CPU seconds spent during one phase's timed window.
struct PhaseCpu {
    double server_s = 0;     // krunlet: every non-vCPU thread; qemu: all of virtiofsd
    double vmm_other_s = 0;  // qemu's non-vCPU threads (the virtio-mmio interrupt relay); krunlet: 0
    double vcpu_s = 0;       // the VMM's vCPU threads (guest time included)
};

struct EngineRun {
    std::map<std::string, std::map<std::string, double>> results;  // phase -> key -> value
    std::map<std::string, PhaseCpu> cpu;                            // phase -> CPU in its window
    std::map<std::string, std::string> info;                        // the guest's info lines
    double wall_s = 0;                                              // the whole VM run, boot included
};

Result<EngineRun> run_krunlet(const EngineConfig& cfg);
Result<EngineRun> run_qemu(const EngineConfig& cfg);

// What the QEMU side is started with, for the report (and --help).
std::string qemu_settings_summary();

}  // namespace krunlet::bench
