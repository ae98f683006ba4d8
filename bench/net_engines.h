// The two engines of `krunlet-bench net`, each booting one guest that runs
// `krunlet-vsockstress bench` (tests/guest/vsock_stress_bench.cpp) once:
//   krunlet: `krunlet run --vsock-port P:UNIX_PATH ROOTFS -- GUEST bench ...`: the guest's
//            vsock port P reaches the host server's unix socket through krunlet's user-space
//            vsock device and its unix bridge; TCP goes through krunlet's virtio-net + libslirp.
//   qemu:    QEMU microvm with vhost-vsock-device (the in-kernel vsock of the test host; the
//            host server listens on AF_VSOCK) and -netdev user (QEMU's libslirp), the same
//            kernel, the same static program as the init of a small initramfs.
// Both read the guest console line by line and sample the host CPU at every phase marker.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/result.h"

namespace krunlet::bench {

struct NetEngineConfig {
    std::string rootfs;                   // krunlet's root; holds the guest program (kGuestPath)
    std::string initramfs;                // QEMU's: the guest program as /init
    std::vector<std::string> bench_args;  // "bench" and its options, ports excluded
    uint32_t vsock_port = 0;              // the guest connects to (CID 2, this port)
    std::string vsock_unix;               // krunlet: the server's unix socket for that port
    uint16_t tcp_port = 0;                // the guest connects to 10.0.2.2:this
    int cpus = 1;
    int memory_mib = 512;
    std::string kernel;
    int timeout_s = 1200;
    bool verbose = false;
    std::string krunlet;
    std::string qemu;
};

// Host CPU seconds in one phase's window.
struct NetPhaseCpu {
    double vmm_other_s = 0;  // the VMM's threads other than vCPUs (krunlet: event loop = vsock + slirp)
    double vhost_s = 0;      // qemu: the vhost kernel threads (vhost-vsock's data path); krunlet: 0
    double vcpu_s = 0;       // the VMM's vCPU threads (guest time included)
    double outside_vcpus() const { return vmm_other_s + vhost_s; }
};

struct NetEngineRun {
    std::map<std::string, std::map<std::string, double>> results;  // phase -> key -> value
    std::map<std::string, NetPhaseCpu> cpu;
    std::map<std::string, std::string> info;
    double wall_s = 0;
};

// Where the guest program sits inside krunlet's ROOTFS.
inline constexpr const char* kNetGuestDir = "/krunlet-netbench";
inline constexpr const char* kNetGuestPath = "/krunlet-netbench/vsockstress";

Result<NetEngineRun> run_net_krunlet(const NetEngineConfig& cfg);
Result<NetEngineRun> run_net_qemu(const NetEngineConfig& cfg);

// A newc initramfs holding /init (the guest program), /dev/console, /proc, /sys.
Result<void> write_net_initramfs(const std::string& path, const std::string& guest_binary);

std::string net_qemu_settings_summary();

}  // namespace krunlet::bench
