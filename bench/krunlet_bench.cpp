// krunlet-bench: performance measurements (docs/bench.md).
//
//   krunlet-bench boot [--runs N] ROOTFS     boot-time fields of N boots (boot_bench.cpp)
//   krunlet-bench fs [options] ROOTFS        guest file-system benchmark, krunlet against
//                                            QEMU microvm + virtiofsd (fs_bench.cpp)
//   krunlet-bench fs-host [--iterations N]   host CPU per FUSE request of the virtio-fs
//                                            server, no guest (fs_host_bench.cpp)
//   krunlet-bench net [options] ROOTFS       vsock and TCP (slirp) guest <-> host, krunlet
//                                            against QEMU vhost-vsock + -netdev user (net_bench.cpp)
//   krunlet-bench net-host [options]         host CPU per MiB of the vsock device and its unix
//                                            bridge, with a scripted guest (net_host_bench.cpp)
//   krunlet-bench load [options]             VM starts/s and per-cycle fd/thread/RSS drift with a
//                                            minimal guest, also on kvm_pvm (load_bench.cpp)
//   krunlet-bench footprint PID GUEST_MIB    a running VMM's guest RAM and own memory, from smaps
//                                            (footprint_bench.cpp; used by bench/compare.sh)
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <string>

#include "boot_bench.h"
#include "footprint_bench.h"
#include "fs_bench.h"
#include "load_bench.h"
#include "net_bench.h"

namespace {

// Programs and the guest kernel are found next to krunlet-bench (build/bin, build/lib).
std::string self_dir() {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return ".";
    std::string p(buf, size_t(n));
    return p.substr(0, p.rfind('/'));
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"krunlet-bench: performance measurements (docs/bench.md)"};
    app.require_subcommand(1);
    const std::string bin = self_dir();

    int runs = 10;
    std::string rootfs;
    std::string krunlet = bin + "/krunlet";
    auto* b = app.add_subcommand("boot", "boot ROOTFS N times with /bin/true");
    b->add_option("--runs", runs, "number of boots")->check(CLI::Range(1, 100000));
    b->add_option("--krunlet", krunlet, "path of the krunlet CLI");
    b->add_option("rootfs", rootfs, "container root filesystem")->required();

    krunlet::bench::FsOptions fs;
    auto* f = krunlet::bench::add_fs_command(app, fs, bin);
    krunlet::bench::FsHostOptions host;
    auto* h = krunlet::bench::add_fs_host_command(app, host);
    krunlet::bench::NetOptions net;
    auto* n = krunlet::bench::add_net_command(app, net, bin);
    krunlet::bench::NetHostOptions net_host;
    auto* nh = krunlet::bench::add_net_host_command(app, net_host);
    krunlet::bench::LoadOptions load;
    auto* l = krunlet::bench::add_load_command(app, load);
    krunlet::bench::FootprintOptions footprint;
    auto* fp = krunlet::bench::add_footprint_command(app, footprint);

    CLI11_PARSE(app, argc, argv);
    if (b->parsed()) return krunlet::bench::run_boot(runs, rootfs, krunlet);
    if (f->parsed()) return krunlet::bench::run_fs(fs);
    if (h->parsed()) return krunlet::bench::run_fs_host(host);
    if (n->parsed()) return krunlet::bench::run_net(net);
    if (nh->parsed()) return krunlet::bench::run_net_host(net_host);
    if (l->parsed()) return krunlet::bench::run_load(load);
    if (fp->parsed()) return krunlet::bench::run_footprint(footprint);
    return 2;
}
