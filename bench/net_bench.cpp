// krunlet-bench net ROOTFS: starts the host server (net_server.h), runs the guest benchmark
// under each engine (net_engines.h) in ABBA order and prints one table: metric | krunlet |
// qemu | ratio. With --rounds N every number is the median of N runs.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <vector>

#include "child_process.h"
#include "compare_table.h"
#include "fs_workload.h"
#include "net_bench.h"
#include "net_engines.h"
#include "net_server.h"

namespace krunlet::bench {
namespace {

constexpr double kMiB = 1048576.0;

struct Metric {
    std::string label;
    MetricGetter<NetEngineRun> get;
};

std::optional<double> result(const NetEngineRun& r, const std::string& phase, const char* key) {
    auto p = r.results.find(phase);
    if (p == r.results.end()) return std::nullopt;
    auto k = p->second.find(key);
    if (k == p->second.end()) return std::nullopt;
    return k->second;
}

// Host CPU outside the vCPUs per unit of the phase's work, in µs.
std::optional<double> cpu_per(const NetEngineRun& r, const std::string& phase, const char* unit_key, double scale) {
    auto c = r.cpu.find(phase);
    auto u = result(r, phase, unit_key);
    if (c == r.cpu.end() || !u || *u <= 0) return std::nullopt;
    return c->second.outside_vcpus() * 1e6 / (*u / scale);
}

std::vector<Metric> metrics(const NetOptions& o) {
    std::vector<Metric> m;
    auto res = [](std::string p, const char* k) { return [p, k](const NetEngineRun& r) { return result(r, p, k); }; };
    const std::string rr = std::to_string(o.rr_size) + " B";
    for (const char* t : {"vsock", "tcp"}) {
        std::string T = std::string(t) == "tcp" ? "TCP (slirp)" : "vsock";
        std::string p = t;
        m.push_back({T + " guest->host, MiB/s", res(p + "_up", "mib_per_s")});
        m.push_back({T + " host->guest, MiB/s", res(p + "_down", "mib_per_s")});
        m.push_back({T + " round trip " + rr + ", us", res(p + "_rr", "us_per_rt")});
        m.push_back({T + " connections/s", res(p + "_conn", "conns_per_s")});
    }
    for (const char* t : {"vsock", "tcp"}) {
        std::string T = std::string(t) == "tcp" ? "TCP" : "vsock";
        std::string p = t;
        m.push_back({"host CPU per MiB " + T + " g->h, us",
                     [p](const NetEngineRun& r) { return cpu_per(r, p + "_up", "bytes", kMiB); }});
        m.push_back({"host CPU per MiB " + T + " h->g, us",
                     [p](const NetEngineRun& r) { return cpu_per(r, p + "_down", "bytes", kMiB); }});
        m.push_back({"host CPU per " + T + " round trip, us",
                     [p](const NetEngineRun& r) { return cpu_per(r, p + "_rr", "round_trips", 1); }});
        m.push_back({"host CPU per " + T + " connection, us",
                     [p](const NetEngineRun& r) { return cpu_per(r, p + "_conn", "conns", 1); }});
    }
    return m;
}

using Engine = BenchEngine<NetEngineConfig, NetEngineRun>;

void print_table(const NetOptions& o, const std::vector<Engine>& engines) {
    const auto pair = run_pair(engines);
    print_compare_rows(TableLayout{40, 12, "krunlet", "qemu"}, metrics(o), pair);
    std::printf("ratio = krunlet / qemu, the median of the per-round ratios; MiB/s and connections/s: higher is "
                "better, us: lower is better.\n");
    std::printf("host CPU = the VMM's threads other than its vCPUs (krunlet: its event loop serves vsock and slirp; "
                "qemu: its main loop, which runs slirp)\n  plus, for qemu, the vhost-%s kernel threads of "
                "vhost-vsock. The host server process is not counted (the same code for both).\n",
                "<pid>");
    if (pair.several_rounds()) {
        std::printf("\nper round, krunlet / qemu (ABBA order):\n");
        for (const auto& m : metrics(o)) {
            print_round_row(38, m.label, m.get, *pair.krunlet, *pair.other);
        }
    }
    std::printf("\nCPU seconds inside each timed window (median), VMM other threads / vhost / vCPU threads:\n");
    for (const auto& e : engines) {
        std::printf("  %-8s", e.name.c_str());
        for (const char* p : {"vsock_up", "vsock_down", "vsock_rr", "vsock_conn", "tcp_up", "tcp_down", "tcp_rr",
                              "tcp_conn"}) {
            std::vector<double> a, b, c;
            for (const auto& r : e.runs)
                if (auto it = r.cpu.find(p); it != r.cpu.end()) {
                    a.push_back(it->second.vmm_other_s);
                    b.push_back(it->second.vhost_s);
                    c.push_back(it->second.vcpu_s);
                }
            std::printf(" %s %s/%s/%s", p, fmt_value(median(a)).c_str(), fmt_value(median(b)).c_str(), fmt_value(median(c)).c_str());
        }
        print_wall_median(e.runs);
    }
    std::printf("\n%s\n", net_qemu_settings_summary().c_str());
    for (const auto& e : engines) {
        if (e.runs.empty()) continue;
        const auto& info = e.runs.front().info;
        auto get = [&](const char* key) {
            auto it = info.find(key);
            return it == info.end() ? std::string("?") : it->second;
        };
        std::printf("guest under %s: kernel %s, %s CPU(s), MemTotal %s KiB\n  cmdline: %s\n", e.name.c_str(),
                    get("kernel").c_str(), get("cpus").c_str(), get("mem_total_kib").c_str(), get("cmdline").c_str());
    }
}

int fail(const std::string& msg) {
    std::fprintf(stderr, "krunlet-bench net: %s\n", msg.c_str());
    return 1;
}

// The guest program into ROOTFS/krunlet-netbench, which must be new or hold only an earlier
// copy (nothing else of the user's is ever removed).
Result<void> install_guest(const std::string& from, const std::string& dir, const std::string& to) {
    if (::mkdir(dir.c_str(), 0755) != 0) {
        if (errno != EEXIST) return errno_error("mkdir " + dir);
        DIR* d = ::opendir(dir.c_str());
        if (d == nullptr) return errno_error("opening " + dir);
        std::string stranger;
        while (dirent* e = ::readdir(d)) {
            std::string n = e->d_name;
            if (n != "." && n != ".." && n != "vsockstress") stranger = n;
        }
        ::closedir(d);
        if (!stranger.empty())
            return make_error(EEXIST, dir + " holds " + stranger + ", which krunlet-bench did not put there; "
                                                                   "remove it or pick another ROOTFS");
    }
    std::ifstream in(from, std::ios::binary);
    std::ofstream out(to, std::ios::binary | std::ios::trunc);
    out << in.rdbuf();
    if (!in || !out) return make_error(EIO, "copying " + from + " to " + to);
    out.close();
    if (::chmod(to.c_str(), 0755) != 0) return errno_error("chmod " + to);
    return ok_result();
}

// ROOTFS/krunlet-netbench holds the guest program for krunlet; a temp directory holds the
// server's unix socket and QEMU's initramfs. Both go away at the end (unless --keep).
struct Scratch {
    std::string guest_dir, tmp;
    bool keep = false;
    ~Scratch() {
        if (!keep && !guest_dir.empty()) (void)remove_tree(guest_dir);
        if (!tmp.empty()) (void)remove_tree(tmp);
    }
};

}  // namespace

CLI::App* add_net_command(CLI::App& app, NetOptions& o, const std::string& bin_dir) {
    o.krunlet = bin_dir + "/krunlet";
    o.guest = bin_dir + "/krunlet-vsockstress";
    o.kernel = bin_dir + "/../lib/krunlet/vmlinux";
    auto* c = app.add_subcommand("net", "vsock and TCP (slirp) between guest and host: krunlet against QEMU "
                                        "microvm with vhost-vsock and -netdev user");
    c->add_option("rootfs", o.rootfs, "krunlet's guest root directory (an empty directory is enough); the guest "
                                      "program goes into ROOTFS/krunlet-netbench")
        ->required();
    add_vm_engine_options(c, o);
    c->add_option("--mib", o.mib, "MiB per throughput phase")->check(CLI::Range(1, 65536))->capture_default_str();
    c->add_option("--rr-count", o.rr_count, "round trips per latency phase")
        ->check(CLI::Range(1, 10000000))->capture_default_str();
    c->add_option("--rr-size", o.rr_size, "bytes per round-trip message")->check(CLI::Range(1, 65536))->capture_default_str();
    c->add_option("--conn-count", o.conn_count, "connections per connection-rate phase")
        ->check(CLI::Range(1, 1000000))->capture_default_str();
    c->add_option("--settle-ms", o.settle_ms, "guest pause around each phase marker (lets the host sample CPU)")
        ->check(CLI::Range(0, 10000))->capture_default_str();
    c->add_option("--vsock-port", o.vsock_port, "vsock port the guest connects to")
        ->check(CLI::Range(1024, 65535))->capture_default_str();
    add_vm_run_options(c, o, "ROOTFS/krunlet-netbench");
    c->add_option("--guest", o.guest, "the static guest program (krunlet-vsockstress)")->capture_default_str();
    c->add_option("--kernel", o.kernel, "guest vmlinux for QEMU (krunlet uses its own, next to libkrun)")
        ->capture_default_str();
    c->add_option("--qemu", o.qemu, "qemu-system-x86_64")->capture_default_str();
    return c;
}

int run_net(const NetOptions& opts) {
    NetOptions o = opts;
    std::vector<Engine> engines;
    bool want_qemu = false;
    for (const std::string& e : split_engines(o.engines)) {
        if (e == "krunlet")
            engines.push_back({e, e, run_net_krunlet, {}});
        else if (e == "qemu") {
            engines.push_back({e, e, run_net_qemu, {}});
            want_qemu = true;
        } else
            return fail("--engines: unknown engine \"" + e + "\" (krunlet, qemu)");
    }
    if (auto why = kvm_unusable("build/bin/krunlet-bench net ...")) return fail(*why);
    bool want_krunlet = false;
    for (const auto& e : engines) want_krunlet |= e.name == "krunlet";
    if (auto why = resolve_vm_paths(o, want_krunlet, want_qemu, "krunlet-vsockstress")) return fail(*why);
    if (want_qemu && ::access("/dev/vhost-vsock", R_OK | W_OK) != 0)
        return fail("/dev/vhost-vsock is missing: QEMU's vsock needs the vhost_vsock module (the KVM test host "
                    "loads it; tests/kvm-host/prepare.sh), or run with --engines krunlet");

    Scratch scratch;
    scratch.keep = o.keep;
    const char* tmpdir = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/krunlet-netbench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return fail("mkdtemp " + tmpl + ": " + std::strerror(errno));
    scratch.tmp = tmpl;
    if (auto r = install_guest(o.guest, o.rootfs + kNetGuestDir, o.rootfs + kNetGuestPath); !r.ok())
        return fail(r.error().message);
    scratch.guest_dir = o.rootfs + kNetGuestDir;
    NetEngineConfig cfg;
    cfg.rootfs = o.rootfs;
    cfg.initramfs = scratch.tmp + "/initramfs.cpio";
    if (want_qemu)
        if (auto r = write_net_initramfs(cfg.initramfs, o.guest); !r.ok()) return fail(r.error().message);
    cfg.vsock_port = o.vsock_port;
    cfg.vsock_unix = scratch.tmp + "/vsock.sock";
    auto server = NetServer::start(cfg.vsock_unix, want_qemu ? o.vsock_port : 0);
    if (!server.ok()) return fail("host server: " + server.error().message);
    cfg.tcp_port = (*server)->tcp_port();
    cfg.cpus = o.cpus;
    cfg.memory_mib = o.memory_mib;
    cfg.kernel = o.kernel;
    cfg.timeout_s = o.timeout_s;
    cfg.verbose = o.verbose;
    cfg.krunlet = o.krunlet;
    cfg.qemu = o.qemu;
    auto num = [](uint64_t v) { return std::to_string(v); };
    cfg.bench_args = {"bench", "--mib", num(o.mib), "--rr-count", num(o.rr_count), "--rr-size", num(o.rr_size),
                      "--conn-count", num(o.conn_count), "--settle-ms", num(o.settle_ms)};

    for (int round = 1; round <= o.rounds; ++round) {
        for (Engine* e : abba_order(engines, round)) {
            std::fprintf(stderr, "krunlet-bench net: round %d/%d: %s...\n", round, o.rounds, e->name.c_str());
            auto run = e->run(cfg);
            auto errors = (*server)->take_errors();
            if (!run.ok()) return fail(run.error().message);
            if (!errors.empty()) return fail(e->name + ": the host server saw " + std::to_string(errors.size()) +
                                             " failed connection(s), the first: " + errors.front());
            std::fprintf(stderr, "krunlet-bench net: %s finished in %.1f s\n", e->name.c_str(), run->wall_s);
            e->runs.push_back(std::move(run).value());
        }
    }
    std::printf("krunlet-bench net: %d round(s); %llu MiB per stream phase, %llu round trips of %llu B, %llu "
                "connections; %d vCPU(s), %d MiB\n",
                o.rounds, (unsigned long long)o.mib, (unsigned long long)o.rr_count, (unsigned long long)o.rr_size,
                (unsigned long long)o.conn_count, o.cpus, o.memory_mib);
    print_table(o, engines);
    return 0;
}

}  // namespace krunlet::bench
