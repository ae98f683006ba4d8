// 200 start/stop cycles of a Vm in one process (issue 6): after them, the process holds
// exactly the fds and threads it held before, and about the same memory. The guest is the
// three-instruction reset payload of exit_guest.h, so this runs on kvm_pvm too.
//
// Each cycle runs on the test's main thread: Vm::run filters only the VM's own threads
// (vCPU, event loop) unless VmRunOptions::sandbox_caller is set, so the caller stays free
// to start the next VM. The filters themselves stay on: the default KRUNLET_SECCOMP=kill
// is required below.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "exit_guest.h"
#include "process_usage.h"
#include "sandbox/seccomp.h"

using namespace krunlet;
using namespace krunlet::load;

namespace {

constexpr int kSkipCode = 77;  // ctest SKIP_RETURN_CODE (CMakeLists.txt)
constexpr int kWarmupCycles = 5;
constexpr int kCycles = 200;

// VmRSS may end a little above the baseline without a leak: glibc keeps freed heap in its
// per-thread arenas (each new vCPU/event-loop thread may get one, up to 8 per core, and they
// are not trimmed to zero), and pages of the binary and its libraries first touched on a
// rarer path stay resident. A leak of even one guest RAM mapping (32 MiB, of which the
// touched pages stay resident) or 40 KiB per cycle (200 cycles) crosses 8 MiB.
constexpr int64_t kRssToleranceKib = 8 * 1024;

}  // namespace

TEST_CASE("200 Vm start/stop cycles leave no fd, thread or memory behind") {
    auto mode = sandbox::seccomp_mode_from_env();
    REQUIRE_MESSAGE(mode.ok(), (mode.ok() ? "" : mode.error().message));
    REQUIRE_MESSAGE(*mode == sandbox::SeccompMode::kKill, "unset KRUNLET_SECCOMP: the filters must be on");

    const auto elf = exit_guest_elf();
    const VmConfig config = exit_guest_config(elf);
    auto cycle = [&](int i) {
        auto out = run_exit_guest(config);
        REQUIRE_MESSAGE(out.ok(), "cycle " << i << ": " << (out.ok() ? "" : out.error().message));
        CHECK(out->exit_code == kExitGuestCode);
        CHECK_FALSE(out->status_from_guest);
        CHECK_MESSAGE(out->reason.find("reset") != std::string::npos, out->reason);
        CHECK(out->trace.first_run_ns != 0);  // the guest really ran
    };

    // Warm-up: one-time state (the kick handler, libseccomp's and libc's lazily built tables,
    // malloc arenas) lands before the baseline.
    for (int i = 0; i < kWarmupCycles; ++i) cycle(i);
    const ProcessUsage base = sample_process_usage();
    REQUIRE(base.fds > 0);  // /proc is readable
    REQUIRE(base.threads > 0);
    REQUIRE(base.rss_kib > 0);

    ProcessUsage peak = base;
    for (int i = 0; i < kCycles; ++i) {
        cycle(kWarmupCycles + i);
        ProcessUsage u = sample_process_usage();
        peak.fds = std::max(peak.fds, u.fds);
        peak.threads = std::max(peak.threads, u.threads);
        peak.rss_kib = std::max(peak.rss_kib, u.rss_kib);
    }
    const ProcessUsage after = sample_process_usage();

    MESSAGE("baseline: " << base.fds << " fds, " << base.threads << " threads, " << base.rss_kib
                         << " KiB RSS; after " << kCycles << " cycles: " << after.fds << " fds, " << after.threads
                         << " threads, " << after.rss_kib << " KiB RSS (peak between cycles " << peak.fds << " fds, "
                         << peak.threads << " threads, " << peak.rss_kib << " KiB)");
    CHECK(after.fds == base.fds);
    CHECK(after.threads == base.threads);
    CHECK(after.rss_kib - base.rss_kib <= kRssToleranceKib);
}

int main(int argc, char** argv) {
    if (const char* why = kvm_unavailable()) {
        std::printf("load_unit: SKIPPED: %s (load kvm_intel/kvm_amd, or run inside tests/kvm-host/run.sh)\n", why);
        return kSkipCode;
    }
    allow_kvm_pvm();  // before doctest or any VM starts a thread
    doctest::Context ctx(argc, argv);
    return ctx.run();
}
