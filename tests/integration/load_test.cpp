// Load (issue 6): 20 microVMs of 128 MiB each start at once. Every one writes its own token
// into a volume that all of them share and exits with its own code, so a VMM that mixed up
// another VM's exit status, lost a write at power-off or failed under the crowd shows up as
// a wrong code or a wrong file. The wall time for all 20 and the test host's peak memory are
// reported for the notes, never asserted (the KVM test host is emulated and shared).
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <latch>
#include <sstream>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "vm_runner.h"

using krunlet::test::krunlet_run;
using krunlet::test::proc_field_kib;
using krunlet::test::RunResult;
using krunlet::test::ScratchRootfs;

namespace {

constexpr int kVms = 20;
constexpr int kGuestMib = 128;
// Per VM. 20 guests share the test host's one emulated vCPU, and a CI run may share the
// machine, so this is a watchdog against a hang, far above the expected minutes.
constexpr int kWatchdogS = 1200;

std::string read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// What the sampler saw while the VMs ran: the host's used memory (MemTotal - MemAvailable,
// so page cache that can be dropped is not counted), the krunlet VMMs' summed VmRSS, and how
// many VMMs were alive at once. Samples, so a short peak can be missed: numbers for the notes.
struct Peaks {
    long mem_total_kib = 0;
    long used_before_kib = 0;
    std::atomic<long> used_kib{0};
    std::atomic<long> vmm_rss_kib{0};
    std::atomic<int> vmms{0};
};

void sample(Peaks& p) {
    long avail = proc_field_kib("/proc/meminfo", "MemAvailable");
    if (avail >= 0) p.used_kib = std::max(p.used_kib.load(), p.mem_total_kib - avail);
    long rss = 0;
    int alive = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string dir = e.path().string();
        if (read_text(dir + "/comm") != "krunlet\n") continue;
        if (long k = proc_field_kib(dir + "/status", "VmRSS"); k >= 0) {
            rss += k;
            ++alive;
        }
    }
    p.vmm_rss_kib = std::max(p.vmm_rss_kib.load(), rss);
    p.vmms = std::max(p.vmms.load(), alive);
}

}  // namespace

TEST_CASE("load: 20 microVMs of 128 MiB start at once; each writes its own file and exits with its own code") {
    // One rootfs for all 20: each VM gets its own virtio-fs server over the same directory, as
    // containers of one image would. The shared volume is a directory inside it, so that the
    // rootfs's cleanup removes it too; the guests write only through the volume.
    ScratchRootfs fs;
    const std::string out_dir = fs.path() + "/load-out";
    REQUIRE(std::filesystem::create_directory(out_dir));
    // The mount point exists before any VM starts, as podman creates a container's mount points
    // before it runs. Left to the guests, 20 inits race to mkdir /out in the one shared root: a
    // guest whose lookup missed it keeps that negative dentry for the cache's entry timeout (1 s
    // under the default `auto` policy), its mkdir then gets EEXIST from another VM's directory,
    // and its mount fails with ENOENT (seen in CI: 2 of 20).
    REQUIRE(std::filesystem::create_directory(fs.path() + "/out"));

    const std::string run_id = std::to_string(::getpid()) + "-" +
                               std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    auto token = [&](int i) { return "load-token-" + run_id + "-vm" + std::to_string(i); };
    auto exit_code = [](int i) { return 10 + i; };

    Peaks peaks;
    peaks.mem_total_kib = proc_field_kib("/proc/meminfo", "MemTotal");
    peaks.used_before_kib = peaks.mem_total_kib - proc_field_kib("/proc/meminfo", "MemAvailable");
    peaks.used_kib = peaks.used_before_kib;

    std::vector<RunResult> results(kVms);
    std::latch go(kVms + 1);
    const auto t0 = std::chrono::steady_clock::now();
    {
        std::jthread sampler([&peaks](std::stop_token stop) {
            while (!stop.stop_requested()) {
                sample(peaks);
                std::this_thread::sleep_for(std::chrono::milliseconds(250));
            }
        });
        // One thread per VM, since krunlet_run waits for its child; the latch releases them
        // together so that all 20 are started before any is waited for. Assertions stay on
        // this thread.
        std::vector<std::jthread> vms;
        for (int i = 0; i < kVms; ++i) {
            vms.emplace_back([&, i] {
                // Quiet: the workload prints nothing, and the kernel console is already quiet.
                const std::string script = "echo " + token(i) + " > /out/vm-" + std::to_string(i) + " && exit " +
                                           std::to_string(exit_code(i)) + "; exit 1";
                go.arrive_and_wait();
                // An exception would end the whole binary from this thread: turn it into a failed run.
                try {
                    results[size_t(i)] = krunlet_run(fs.path(),
                                                     {"--memory", std::to_string(kGuestMib), "--net", "none",
                                                      "--volume", out_dir + ":/out"},
                                                     {"/bin/sh", "-c", script}, kWatchdogS);
                } catch (const std::exception& e) {
                    results[size_t(i)].err = std::string("test: could not run krunlet: ") + e.what();
                }
            });
        }
        go.arrive_and_wait();
    }  // joins the VM threads, then stops and joins the sampler
    const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    double slowest_s = 0, fastest_s = 1e9;
    for (int i = 0; i < kVms; ++i) {
        const RunResult& r = results[size_t(i)];
        slowest_s = std::max(slowest_s, r.seconds);
        fastest_s = std::min(fastest_s, r.seconds);
        INFO("VM " << i << ": status=" << r.status << " after " << r.seconds << " s\nstdout:\n"
                   << r.out << "\nstderr:\n"
                   << r.err);
        CHECK(r.err.find("killed after timeout") == std::string::npos);
        CHECK(r.status == exit_code(i));
        CHECK(read_text(out_dir + "/vm-" + std::to_string(i)) == token(i) + "\n");
    }
    // Nothing but the 20 files: no VM wrote under another's name or left anything else behind.
    size_t entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(out_dir)) ++entries;
    CHECK(entries == size_t(kVms));

    MESSAGE(kVms << " VMs of " << kGuestMib << " MiB at once: all done after " << wall_s << " s wall (each VM "
                 << fastest_s << "-" << slowest_s << " s); up to " << peaks.vmms.load()
                 << " VMMs alive at once (sampled every 250 ms); host memory used " << peaks.used_before_kib / 1024
                 << " MiB before, peak " << peaks.used_kib.load() / 1024 << " MiB of " << peaks.mem_total_kib / 1024
                 << " MiB; peak summed VMM VmRSS " << peaks.vmm_rss_kib.load() / 1024 << " MiB");
}
