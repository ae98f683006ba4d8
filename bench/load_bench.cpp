#include "load_bench.h"

#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "exit_guest.h"
#include "kvm/kvm.h"
#include "process_usage.h"

namespace krunlet::bench {

namespace {

using Clock = std::chrono::steady_clock;

struct LoadRun {
    int threads = 0;
    int vms = 0;
    double seconds = 0;
    load::ProcessUsage before, after;
};

// `threads` threads each start and stop `cycles` VMs back to back; nullopt with a message on
// stderr when a VM did not end by its guest's reset.
std::optional<LoadRun> run_cycles(const VmConfig& config, int threads, int cycles) {
    LoadRun r;
    r.threads = threads;
    r.vms = threads * cycles;
    std::mutex mu;
    std::string error;  // the first failure
    r.before = load::sample_process_usage();
    auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&] {
            for (int i = 0; i < cycles; ++i) {
                auto out = load::run_exit_guest(config);
                if (out.ok()) continue;
                std::lock_guard lock(mu);
                if (error.empty()) error = out.error().message;
                return;
            }
        });
    }
    for (auto& th : pool) th.join();
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    r.after = load::sample_process_usage();
    if (!error.empty()) {
        std::fprintf(stderr, "krunlet-bench load: %s\n", error.c_str());
        return std::nullopt;
    }
    return r;
}

void print_row(const char* mode, const LoadRun& r) {
    auto per = [&](double a, double b) { return (a - b) / r.vms; };
    std::printf("%-12s %7d %5d %9.3f %10.1f %10.3f %9.4f %9.4f %11.2f\n", mode, r.threads, r.vms, r.seconds,
                r.vms / r.seconds, 1e3 * r.seconds * r.threads / r.vms, per(double(r.after.fds), double(r.before.fds)),
                per(double(r.after.threads), double(r.before.threads)),
                per(double(r.after.rss_kib), double(r.before.rss_kib)));
}

}  // namespace

CLI::App* add_load_command(CLI::App& app, LoadOptions& o) {
    auto* c = app.add_subcommand("load", "VM starts per second with a minimal guest, and per-cycle fd/thread/RSS drift");
    c->add_option("--cycles", o.cycles, "start/stop cycles per thread")->check(CLI::Range(1, 1000000));
    c->add_option("--parallel", o.parallel, "threads of the parallel run (1: sequential only)")
        ->check(CLI::Range(1, 256));
    c->add_option("--warmup", o.warmup, "cycles before the measurements")->check(CLI::Range(0, 100000));
    return c;
}

int run_load(const LoadOptions& o) {
    if (const char* why = load::kvm_unavailable()) {
        std::fprintf(stderr, "krunlet-bench load: %s\n", why);
        return 1;
    }
    load::allow_kvm_pvm();  // before any thread
    const auto elf = load::exit_guest_elf();
    const VmConfig config = load::exit_guest_config(elf);
    if (o.warmup > 0 && !run_cycles(config, 1, o.warmup)) return 1;

    std::printf("krunlet-bench load: %d cycles per thread, guest = 3-instruction i8042 reset, %s\n", o.cycles,
                Kvm::is_kvm_pvm() ? "/dev/kvm is kvm_pvm" : "/dev/kvm");
    std::printf("%-12s %7s %5s %9s %10s %10s %9s %9s %11s\n", "mode", "threads", "VMs", "seconds", "starts/s",
                "ms/cycle", "fd/cycle", "thr/cycle", "RSS KiB/cyc");
    auto seq = run_cycles(config, 1, o.cycles);
    if (!seq) return 1;
    print_row("sequential", *seq);
    if (o.parallel > 1) {
        auto par = run_cycles(config, o.parallel, o.cycles);
        if (!par) return 1;
        print_row("parallel", *par);
    }
    std::printf("ms/cycle is the wall time of one start/stop as one thread sees it; drift columns are\n"
                "(after - before) / VMs of /proc/self fd and task counts and VmRSS.\n");
    return 0;
}

}  // namespace krunlet::bench
