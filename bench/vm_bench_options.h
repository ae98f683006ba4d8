// The options every engine-against-engine guest benchmark (`krunlet-bench fs`, `net`) takes:
// both boot the same guest under krunlet and QEMU with matched vCPUs and RAM, run the engines
// in ABBA rounds and report medians, so the knobs for that are declared and registered once.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

namespace krunlet::bench {

struct VmBenchOptions {
    std::string rootfs;
    std::string engines = "krunlet,qemu";
    int rounds = 1;
    int cpus = 1;
    int memory_mib = 512;
    int timeout_s = 1200;
    bool keep = false;
    bool verbose = false;
    std::string krunlet;  // defaults next to krunlet-bench
    std::string guest;
    std::string kernel;
    std::string qemu = "qemu-system-x86_64";
};

// --engines, --rounds, --cpus, --memory: registered first, as the benchmark's main knobs.
void add_vm_engine_options(CLI::App* c, VmBenchOptions& o);

// --timeout, --keep (which keeps `kept_dir`), -v/--verbose and --krunlet: registered after
// the benchmark's own workload options.
void add_vm_run_options(CLI::App* c, VmBenchOptions& o, const std::string& kept_dir);

// Why the guest benchmarks cannot run here, or nullopt: kvm_pvm cannot run a Linux guest
// (DESIGN.md §6), and without /dev/kvm nothing boots. `rerun` is the command line to suggest
// inside the KVM test host.
std::optional<std::string> kvm_unusable(const std::string& rerun);

// Checks the programs and paths the chosen engines need and makes them absolute (the VMMs run
// with other working directories): the guest program (`guest_target` is the build target
// that makes it), ROOTFS, the krunlet CLI when `krunlet` runs, and the kernel and QEMU when
// `qemu` runs. Returns what is wrong, naming the option or package that fixes it.
std::optional<std::string> resolve_vm_paths(VmBenchOptions& o, bool krunlet, bool qemu,
                                            const std::string& guest_target);

}  // namespace krunlet::bench
