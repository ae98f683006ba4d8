// Registration and host checks behind vm_bench_options.h.
#include "vm_bench_options.h"

#include <climits>
#include <cstdlib>
#include <unistd.h>

#include "child_process.h"
#include "compare_table.h"

namespace krunlet::bench {

void add_vm_engine_options(CLI::App* c, VmBenchOptions& o) {
    c->add_option("--engines", o.engines, "comma-separated: krunlet, qemu")->capture_default_str();
    c->add_option("--rounds", o.rounds, "runs per engine, in ABBA order; the table shows medians")
        ->check(CLI::Range(1, 100))->capture_default_str();
    c->add_option("--cpus", o.cpus, "guest vCPUs (both engines)")->check(CLI::Range(1, 16))->capture_default_str();
    c->add_option("--memory", o.memory_mib, "guest RAM in MiB (both engines)")
        ->check(CLI::Range(128, 65536))->capture_default_str();
}

void add_vm_run_options(CLI::App* c, VmBenchOptions& o, const std::string& kept_dir) {
    c->add_option("--timeout", o.timeout_s, "seconds per VM run")->check(CLI::Range(10, 86400))->capture_default_str();
    c->add_flag("--keep", o.keep, "keep " + kept_dir + " afterwards");
    c->add_flag("-v,--verbose", o.verbose, "copy the guest consoles to stderr");
    c->add_option("--krunlet", o.krunlet, "the krunlet CLI")->capture_default_str();
}

std::optional<std::string> kvm_unusable(const std::string& rerun) {
    if (::access("/sys/module/kvm_pvm", F_OK) == 0)
        return "this machine's /dev/kvm is kvm_pvm, which cannot run a Linux guest (DESIGN.md §6): run inside "
               "the KVM test host, tests/kvm-host/run.sh " + rerun;
    if (::access("/dev/kvm", R_OK | W_OK) != 0) return std::string("/dev/kvm is missing or not accessible");
    return std::nullopt;
}

std::optional<std::string> resolve_vm_paths(VmBenchOptions& o, bool krunlet, bool qemu,
                                            const std::string& guest_target) {
    if (!is_file(o.guest)) return "guest program " + o.guest + " not found: build the " + guest_target + " target";
    char real[PATH_MAX];
    if (::realpath(o.rootfs.c_str(), real) == nullptr) return "ROOTFS " + o.rootfs + " does not exist";
    o.rootfs = real;
    if (krunlet && ::access(o.krunlet.c_str(), X_OK) != 0) return "krunlet CLI " + o.krunlet + " not found (--krunlet)";
    if (qemu) {
        if (!is_file(o.kernel)) return "guest kernel " + o.kernel + " not found (--kernel)";
        std::string q = find_program(o.qemu);
        if (q.empty()) return o.qemu + " not found: apt-get install qemu-system-x86, or pass --qemu";
        o.qemu = q;
    }
    // Resolved for the report too, which names the kernel QEMU would boot.
    if (::realpath(o.kernel.c_str(), real) != nullptr) o.kernel = real;
    return std::nullopt;
}

}  // namespace krunlet::bench
