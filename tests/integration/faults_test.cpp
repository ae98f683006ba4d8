// Faults (issue 6): a guest that runs out of memory, a VMM killed with SIGKILL while the guest
// writes through to the share, and a VMM started with a low RLIMIT_NOFILE whose guest opens
// files until it is refused, and a guest that rewrites live queues and fills every virtio-mmio
// register with garbage. The guest halves are krunlet-faultprobe (tests/guest/faultprobe.cpp)
// and krunlet-mmioabuse (tests/guest/mmio_abuse.cpp), which print only what they verified. Each case is one boot (~3 s inside the KVM test host),
// so each checks as much as it can; times are reported, never asserted.
#include <doctest/doctest.h>
#include <dirent.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "vm_runner.h"

using krunlet::test::krunlet_run;
using krunlet::test::run_process;
using krunlet::test::ScratchRootfs;

namespace {
#define FAULT_RUN_INFO(r) INFO("status=" << (r).status << "\nstdout:\n" << (r).out << "\nstderr:\n" << (r).err)

constexpr const char* kTimeoutNote = "test: killed after timeout";

// Copies krunlet-faultprobe into the rootfs as /faultprobe.
void install_probe(const ScratchRootfs& fs) {
    const std::string bin = std::string(KRUNLET_BIN_DIR) + "/krunlet-faultprobe";
    REQUIRE_MESSAGE(::access(bin.c_str(), X_OK) == 0, bin << " is missing: build the krunlet-faultprobe target");
    REQUIRE(run_process({"/bin/cp", bin, fs.path() + "/faultprobe"}).status == 0);
}

// The complete lines of `out` (a line still being written is left out).
std::vector<std::string> complete_lines(const std::string& out) {
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1)
        lines.push_back(out.substr(start, nl - start));
    return lines;
}

// The number after `prefix` on the last complete line that starts with it, or -1.
long last_number(const std::string& out, const std::string& prefix) {
    long n = -1;
    for (const auto& line : complete_lines(out))
        if (line.rfind(prefix, 0) == 0) n = std::atol(line.c_str() + prefix.size());
    return n;
}

// A field of /proc/PID/status in KiB ("VmHWM", "VmRSS"), or -1 once the process is gone.
long proc_status_kib(pid_t pid, const std::string& field) {
    return krunlet::test::proc_field_kib("/proc/" + std::to_string(pid) + "/status", field);
}

// The first complete line of `out` that starts with `prefix`, or "".
std::string first_line(const std::string& out, const std::string& prefix) {
    for (const auto& line : complete_lines(out))
        if (line.starts_with(prefix)) return line;
    return {};
}

// Host processes whose command line holds `marker` (none should outlive the VMM).
std::string processes_with(const std::string& marker) {
    return run_process({"/bin/sh", "-c", "ps -eo pid,args | grep -F -- '" + marker + "' | grep -v grep || true"}).out;
}

// Record n as krunlet-faultprobe writes it: 64 bytes, "rec %08u " then a filler that depends
// on n, then a newline.
std::string expected_record(unsigned n) {
    char head[32];
    int len = std::snprintf(head, sizeof head, "rec %08u ", n);
    std::string r(head, size_t(len));
    while (r.size() < 63) r.push_back(char('a' + (n + r.size()) % 26));
    r.push_back('\n');
    return r;
}
}  // namespace

TEST_CASE("faults: a guest that exhausts its RAM is OOM-killed (137); the VMM's RSS stays bounded by guest RAM") {
    ScratchRootfs fs;
    install_probe(fs);
    constexpr int kGuestMib = 128;
    constexpr int kWatchdogS = 300;
    // The workload execs the probe, so the OOM killer's SIGKILL is the workload's own death.
    const std::string script =
        "awk '/MemTotal/ {print \"memtotal\", int($2/1024)}' /proc/meminfo; exec /faultprobe eat 4";
    long hwm_kib = -1, rss_kib = -1;
    auto hook = [&](pid_t pid, const std::string&) {
        // VmHWM is the peak, so the last reading before exit is close to the true peak.
        if (long v = proc_status_kib(pid, "VmHWM"); v > hwm_kib) hwm_kib = v;
        if (long v = proc_status_kib(pid, "VmRSS"); v > rss_kib) rss_kib = v;
    };
    auto r = krunlet_run(fs.path(), {"--memory", std::to_string(kGuestMib), "--net", "none"},
                         {"/bin/sh", "-c", script}, kWatchdogS, hook);
    FAULT_RUN_INFO(r);
    CHECK(r.err.find(kTimeoutNote) == std::string::npos);
    CHECK(r.status == 137);  // 128 + SIGKILL, from the guest's OOM killer
    const long memtotal = last_number(r.out, "memtotal ");
    const long ate = last_number(r.out, "ate ");
    CHECK(memtotal > kGuestMib / 2);
    CHECK(memtotal <= kGuestMib);
    // It really ran out: it had dirtied at least half of the guest's RAM when it was killed, and
    // never saw malloc fail (overcommit leaves the decision to the OOM killer).
    CHECK(ate >= memtotal / 2);
    CHECK(r.out.find("malloc-failed") == std::string::npos);
    // The host is unharmed: the VMM's peak RSS is the guest's RAM plus the VMM's own modest
    // overhead, not whatever the workload asked for.
    REQUIRE(hwm_kib > 0);
    CHECK(hwm_kib / 1024 < kGuestMib + 64);
    MESSAGE("OOM: guest MemTotal " << memtotal << " MiB, workload dirtied " << ate << " MiB before the kill; VMM peak RSS "
                                   << hwm_kib / 1024 << " MiB (last VmRSS " << rss_kib / 1024 << " MiB) for "
                                   << kGuestMib << " MiB of guest RAM; exit 137 after " << r.seconds << " s");
}

TEST_CASE("faults: SIGKILL of the VMM while the guest appends with fsync loses no acknowledged record") {
    ScratchRootfs fs;
    install_probe(fs);
    constexpr long kAckedBeforeKill = 200;
    const std::string marker = "krunlet-faults-append-marker-" + std::to_string(::getpid());
    long acked_at_kill = -1;
    double kill_at_s = 0;
    auto t0 = std::chrono::steady_clock::now();
    auto hook = [&](pid_t pid, const std::string& out) {
        if (acked_at_kill >= 0) return;
        long acked = last_number(out, "ack ");
        if (acked < kAckedBeforeKill) return;
        acked_at_kill = acked;
        kill_at_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        ::kill(pid, SIGKILL);
    };
    auto r = krunlet_run(fs.path(), {"--net", "none"},
                         {"/bin/sh", "-c", "exec /faultprobe append /records.log 1000000", marker}, 300, hook);
    FAULT_RUN_INFO(r);
    REQUIRE(acked_at_kill >= kAckedBeforeKill);
    CHECK(r.status == 137);
    CHECK(r.err.find(kTimeoutNote) == std::string::npos);
    // Every acknowledgement the host saw, in order and without gaps (the probe prints "ack N"
    // only after record N's fsync returned).
    long acked = 0;
    bool in_order = true;
    for (const auto& line : complete_lines(r.out)) {
        if (line.rfind("ack ", 0) != 0) continue;
        in_order = in_order && std::atol(line.c_str() + 4) == acked + 1;
        ++acked;
    }
    CHECK(in_order);
    CHECK(acked >= acked_at_kill);
    CHECK(r.out.find("failed") == std::string::npos);

    const std::string data = fs.read_file("records.log");
    INFO("host file: " << data.size() << " bytes, " << acked << " records acknowledged");
    REQUIRE(data.size() >= size_t(acked) * 64);
    long bad = 0;
    for (long n = 1; n <= acked; ++n)
        if (data.compare(size_t(n - 1) * 64, 64, expected_record(unsigned(n))) != 0) ++bad;
    CHECK(bad == 0);
    // Past the acknowledged ones, whole records may follow (written, not yet acknowledged), and
    // at most a torn tail of the next one; never anything else.
    long extra = 0;
    size_t off = size_t(acked) * 64;
    for (; off + 64 <= data.size(); off += 64, ++extra)
        if (data.compare(off, 64, expected_record(unsigned(acked + extra + 1))) != 0) break;
    const std::string tail = data.substr(off);
    CHECK(tail.size() < 64);
    CHECK(expected_record(unsigned(acked + extra + 1)).compare(0, tail.size(), tail) == 0);

    // SIGKILL takes the whole VMM with it: no process of this run remains.
    CHECK(processes_with(marker).empty());
    MESSAGE("kill -9: " << acked << " records acknowledged (" << acked_at_kill << " when the kill was sent at "
                        << kill_at_s << " s, " << double(acked_at_kill) / kill_at_s
                        << " fsync'ed records/s including boot), all intact on the host; " << extra
                        << " more whole records and " << tail.size() << " tail bytes past them");
}

TEST_CASE("faults: a low RLIMIT_NOFILE is refused with the fix, or gives the guest ENFILE while the VMM goes on") {
    ScratchRootfs fs;
    install_probe(fs);
    ::mkdir((fs.path() + "/many").c_str(), 0755);
    const std::string krunlet = std::string(KRUNLET_BIN_DIR) + "/krunlet";
    auto limited = [&](long nofile, const std::vector<std::string>& args) {
        std::vector<std::string> argv{"/usr/bin/prlimit", "--nofile=" + std::to_string(nofile) + ":" +
                                                              std::to_string(nofile),
                                      krunlet, "run", "--net", "none", fs.path(), "--"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_process(argv, 300);
    };

    // 256 (soft and hard) leaves the virtio-fs server too little beside the VMM's own reserve:
    // krunlet refuses before booting, says why, and names the limit that would do.
    auto refused = limited(256, {"/bin/true"});
    long minimum = -1;
    {
        FAULT_RUN_INFO(refused);
        CHECK(refused.status != 0);
        CHECK(refused.err.find("RLIMIT_NOFILE 256") != std::string::npos);
        CHECK(refused.err.find("ulimit -n") != std::string::npos);
        const std::string at_least = "raise it to at least ";
        if (auto p = refused.err.find(at_least); p != std::string::npos)
            minimum = std::atol(refused.err.c_str() + p + at_least.size());
        REQUIRE(minimum > 256);
    }

    // Just above that minimum the VM boots with small inode and handle tables. The guest raises
    // its own limit past 2000 and creates files until the server refuses; it must get a clean
    // error, its held files keep working, closing them frees the tables, and the VMM still
    // carries console output and the workload's exit code afterwards.
    const long nofile = minimum + 128;
    const std::string script =
        "/faultprobe openmany /many 2000; echo probe-status=$?; ls /many | wc -l | sed 's/^/listed /'; "
        "echo after-limit; exit 7";
    auto r = limited(nofile, {"/bin/sh", "-c", script});
    FAULT_RUN_INFO(r);
    CHECK(r.err.find(kTimeoutNote) == std::string::npos);
    CHECK(r.status == 7);
    const long opened = last_number(r.out, "opened ");
    CHECK(opened >= 10);
    CHECK(opened < 2000);
    const bool enfile = r.out.find("errno=23 ENFILE") != std::string::npos;
    const bool emfile = r.out.find("errno=24 EMFILE") != std::string::npos;
    CHECK((enfile || emfile));
    CHECK(r.out.find("write-held ok") != std::string::npos);
    CHECK(r.out.find("unlink-failed 0") != std::string::npos);
    CHECK(r.out.find("reopen ok") != std::string::npos);
    CHECK(r.out.find("probe-status=0") != std::string::npos);
    CHECK(r.out.find("after-limit") != std::string::npos);
    // On the host: the file made after the limit holds its data, and of the held files (all
    // unlinked by the guest) none is left; only the refused name may be, and the guest and the
    // host must agree on that.
    CHECK(fs.read_file("many/after-close") == "reopened\n");
    long left = 0;
    if (DIR* d = ::opendir((fs.path() + "/many").c_str())) {
        while (const dirent* e = ::readdir(d))
            if (e->d_name[0] == 'f') ++left;
        ::closedir(d);
    }
    const bool refused_on_host = ::access((fs.path() + "/many/f" + std::to_string(opened)).c_str(), F_OK) == 0;
    const bool refused_in_guest = r.out.find("refused-name-later exists") != std::string::npos;
    CHECK((refused_in_guest || r.out.find("refused-name-later absent") != std::string::npos));
    CHECK(refused_on_host == refused_in_guest);
    CHECK(left == (refused_on_host ? 1 : 0));
    CHECK(last_number(r.out, "listed ") == 1 + left);
    // A CREATE refused with ENFILE at the server's inode/handle cap removes the file it had
    // already made on the host (PassthroughFs::undo_create): open(2) failed in the guest.
    CHECK_MESSAGE(!refused_on_host, "a create refused with ENFILE left many/f" << opened << " on the host");
    const std::string got = enfile ? "ENFILE" : emfile ? "EMFILE" : "neither";
    MESSAGE("RLIMIT_NOFILE: 256 refused (minimum " << minimum << "); at " << nofile << " the guest held " << opened
                                                   << " files, then got " << got << "; refused name left on the host: "
                                                   << std::string(refused_on_host ? "yes" : "no") << "; exit 7 after " << r.seconds
                                                   << " s");
}

TEST_CASE("faults: live-queue rewrites and garbage in every virtio-mmio register leave devices NEEDS_RESET, the host up") {
    ScratchRootfs fs;
    const std::string bin = std::string(KRUNLET_BIN_DIR) + "/krunlet-mmioabuse";
    REQUIRE_MESSAGE(::access(bin.c_str(), X_OK) == 0, bin << " is missing: build the krunlet-mmioabuse target");
    REQUIRE(run_process({"/bin/cp", bin, fs.path() + "/mmioabuse"}).status == 0);
    // Log level 4 makes the VMM print each transport's counters when the VM ends; the default
    // network is on, so virtio-net is among the targets.
    auto r = krunlet_run(fs.path(), {"--log-level", "4"}, {"/mmioabuse"}, 300);
    FAULT_RUN_INFO(r);
    CHECK(r.err.find(kTimeoutNote) == std::string::npos);
    // The tool ends by pulsing the i8042 reset line: a guest reset, which is exit 124, not a
    // VMM death by signal (128+n) and not the guest's status.
    CHECK(r.status == 124);
    CHECK(r.out.find("error ") == std::string::npos);
    CHECK(r.out.find("done") != std::string::npos);

    // The devices the guest found, by virtio id (console 3, fs 26, vsock 19, net 1, rng 4).
    std::vector<unsigned> types;
    for (const auto& line : complete_lines(r.out))
        if (unsigned t = 0; std::sscanf(line.c_str(), "device %u base=", &t) == 1) types.push_back(t);
    for (unsigned want : {1u, 3u, 4u, 19u, 26u})
        CHECK_MESSAGE(std::find(types.begin(), types.end(), want) != types.end(), "no virtio device type " << want);
    for (unsigned t : types) {
        if (t == 3) continue;  // the console is hit after the last line it can carry
        const std::string id = std::to_string(t) + " ";
        INFO("device type " << t);
        // A rewrite of a queue in use: refused, and the device asks for a reset (§2.1.2).
        const std::string live = first_line(r.out, "live " + id);
        CHECK(live.find("queue=none") == std::string::npos);
        CHECK(live.ends_with("needs_reset=yes"));
        const std::string garbage = first_line(r.out, "garbage " + id);
        CHECK(garbage.starts_with("garbage " + id + "accesses=3000"));
        // Some bring-ups reached DRIVER_OK, so the device read rings of random descriptors
        // (and either ran with them or found the garbage and asked for a reset).
        unsigned accesses = 0, bringups = 0, live_n = 0, faulted = 0;
        CHECK(std::sscanf(garbage.c_str() + garbage.find("accesses="), "accesses=%u bringups=%u live=%u faulted=%u",
                          &accesses, &bringups, &live_n, &faulted) == 4);
        CHECK(live_n + faulted > bringups / 4);
        // After all that the window still answers, a reset takes, and negotiation works again.
        CHECK(first_line(r.out, "recover " + id) == "recover " + id + "magic=ok status_after_reset=0x0 features_ok=yes");
    }
    // virtio-fs had requests in flight when its queue was rewritten.
    CHECK(last_number(r.out, "fs-io writes=") > 0);
    // The VMM's own account: every transport, the console included, went to NEEDS_RESET at
    // least once and counted the refused accesses.
    unsigned reported = 0;
    for (const auto& line : complete_lines(r.err)) {
        unsigned type = 0;
        unsigned long long bad = 0, needs_reset = 0;
        auto at = line.find("krunlet: device type ");
        if (at == std::string::npos) continue;
        if (std::sscanf(line.c_str() + at, "krunlet: device type %u", &type) != 1) continue;
        auto b = line.find("bad accesses "), n = line.find("needs-reset ");
        REQUIRE(b != std::string::npos);
        REQUIRE(n != std::string::npos);
        bad = std::strtoull(line.c_str() + b + 13, nullptr, 10);
        needs_reset = std::strtoull(line.c_str() + n + 12, nullptr, 10);
        INFO(line);
        CHECK(needs_reset >= 1);
        CHECK(bad >= 100);
        ++reported;
    }
    CHECK(reported == types.size());
    MESSAGE("MMIO abuse: " << types.size() << " devices, each NEEDS_RESET, host VMM exit 124 after " << r.seconds << " s");
}
