// krunlet-bench fs ROOTFS: prepares the workload in ROOTFS/krunlet-fsbench, runs the guest
// program under each engine (fs_engines.h) and prints one table: metric | krunlet |
// qemu+virtiofsd | ratio. With --rounds N every number is the median of N runs.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>
#include <vector>

#include "child_process.h"
#include "compare_table.h"
#include "fs_bench.h"
#include "fs_engines.h"
#include "fs_workload.h"

namespace krunlet::bench {
namespace {

constexpr double kMiB = 1048576.0;

struct Metric {
    std::string label;
    bool throughput;  // a guest-side rate; listed per round too
    MetricGetter<EngineRun> get;
};

std::optional<double> result(const EngineRun& r, const char* phase, const char* key) {
    auto p = r.results.find(phase);
    if (p == r.results.end()) return std::nullopt;
    auto k = p->second.find(key);
    if (k == p->second.end()) return std::nullopt;
    return k->second;
}

// The phase's unit of work: one read, one MiB, one file, one entry.
std::optional<double> units(const EngineRun& r, const char* phase) {
    std::string p = phase;
    if (p == "seqwrite" || p == "seqread") {
        auto b = result(r, phase, "bytes");
        return b ? std::optional<double>(*b / kMiB) : std::nullopt;
    }
    return result(r, phase, p == "walk" ? "entries" : "ops");
}

std::optional<double> cpu_per_unit(const EngineRun& r, const char* phase, bool with_vmm) {
    auto c = r.cpu.find(phase);
    auto u = units(r, phase);
    if (c == r.cpu.end() || !u || *u <= 0) return std::nullopt;
    double s = c->second.server_s + (with_vmm ? c->second.vmm_other_s : 0);
    return s * 1e6 / *u;
}

struct PhaseUnit {
    const char* phase;
    const char* unit;
};
constexpr PhaseUnit kPhases[] = {{"randread", "4 KiB read"}, {"seqwrite", "MiB written"}, {"seqread", "MiB read"},
                                 {"create", "create"},       {"stat", "stat"},             {"unlink", "unlink"},
                                 {"walk", "walked entry"}};

std::vector<Metric> metrics(const FsOptions& o) {
    std::vector<Metric> m;
    auto res = [](const char* p, const char* k) {
        return [p, k](const EngineRun& r) { return result(r, p, k); };
    };
    m.push_back({"randread 4 KiB QD1, IOPS", true, res("randread", "iops")});
    m.push_back({"randread latency, us", false, res("randread", "us_per_op")});
    m.push_back({"seq write " + std::to_string(o.seq_mib) + " MiB + fsync, MiB/s", true, res("seqwrite", "mib_per_s")});
    m.push_back({"seq read " + std::to_string(o.seq_mib) + " MiB (cold), MiB/s", true, res("seqread", "mib_per_s")});
    m.push_back({"create " + std::to_string(o.files) + " files, ops/s", true, res("create", "ops_per_s")});
    m.push_back({"stat (cold dentries), ops/s", true, res("stat", "ops_per_s")});
    m.push_back({"unlink (cold dentries), ops/s", true, res("unlink", "ops_per_s")});
    m.push_back({"walk " + std::to_string(o.tree_entries) + " entries, entries/s", true, res("walk", "entries_per_s")});
    for (const auto& p : kPhases)
        m.push_back({std::string("server CPU per ") + p.unit + ", us", false,
                     [p](const EngineRun& r) { return cpu_per_unit(r, p.phase, false); }});
    for (const auto& p : kPhases)
        m.push_back({std::string("host CPU outside vCPUs per ") + p.unit + ", us", false,
                     [p](const EngineRun& r) { return cpu_per_unit(r, p.phase, true); }});
    return m;
}

using Engine = BenchEngine<EngineConfig, EngineRun>;

void print_table(const FsOptions& o, const std::vector<Engine>& engines) {
    const auto pair = run_pair(engines);
    print_compare_rows(TableLayout{46, 14, "krunlet", "qemu+virtiofsd"}, metrics(o), pair);
    std::printf("ratio = krunlet / qemu+virtiofsd, the median of the per-round ratios; throughput rows: higher is "
                "better, us rows: lower is better.\n");
    std::printf("server CPU: krunlet = its \"virtio-N\" threads (each share is served on its own); "
                "qemu = all of virtiofsd.\nhost CPU outside vCPUs: adds each VMM's other non-vCPU threads "
                "(krunlet: event loop, balloon, network; QEMU: also relays virtio-mmio interrupts for "
                "virtiofsd).\n");

    if (pair.several_rounds()) {
        std::printf("\nper round, krunlet / qemu+virtiofsd (ABBA order):\n");
        for (const auto& m : metrics(o)) {
            if (!m.throughput && m.label.rfind("server CPU", 0) != 0) continue;
            print_round_row(44, m.label, m.get, *pair.krunlet, *pair.other);
        }
    }

    std::printf("\nCPU seconds inside each timed window (median), server / other VMM threads / vCPU threads:\n");
    for (const auto& e : engines) {
        std::printf("  %-15s", e.column.c_str());
        for (const auto& p : kPhases) {
            std::vector<double> s, v, c;
            for (const auto& r : e.runs)
                if (auto it = r.cpu.find(p.phase); it != r.cpu.end()) {
                    s.push_back(it->second.server_s);
                    v.push_back(it->second.vmm_other_s);
                    c.push_back(it->second.vcpu_s);
                }
            std::printf(" %s %s/%s/%s", p.phase, fmt_value(median(s)).c_str(), fmt_value(median(v)).c_str(),
                        fmt_value(median(c)).c_str());
        }
        print_wall_median(e.runs);
    }
}

void print_matched(const FsOptions& o, const std::vector<Engine>& engines) {
    std::printf("\nMatched: %d vCPU(s), %d MiB RAM, kernel %s, guest root on virtio-fs from %s,\n"
                "  cache mode auto (1 s entry/attr timeouts, close-to-open data), no writeback cache, readdirplus,\n"
                "  xattrs served, locks kept in the guest, one server thread, the same static guest program.\n",
                o.cpus, o.memory_mib, o.kernel.c_str(), o.rootfs.c_str());
    std::printf("Differs: console (krunlet hvc0, QEMU ttyS0), init (krunlet's /init.krun starts the program; in "
                "QEMU it is init), reboot=k vs reboot=t.\n");
    std::printf("%s\n", qemu_settings_summary().c_str());
    std::map<std::string, std::string> first;
    for (const auto& e : engines) {
        if (e.runs.empty()) continue;
        const auto& info = e.runs.front().info;
        auto get = [&](const char* k) {
            auto it = info.find(k);
            return it == info.end() ? std::string("?") : it->second;
        };
        std::printf("guest under %s: kernel %s, %s CPU(s), MemTotal %s KiB\n  root: %s\n  cmdline: %s\n",
                    e.column.c_str(), get("kernel").c_str(), get("cpus").c_str(), get("mem_total_kib").c_str(),
                    get("root_mount").c_str(), get("cmdline").c_str());
        for (const char* key : {"kernel", "cpus", "mem_total_kib"}) {
            if (!first.count(key))
                first[key] = get(key);
            else if (first[key] != get(key))
                std::printf("  WARNING: guest %s differs between engines (%s vs %s)\n", key, first[key].c_str(),
                            get(key).c_str());
        }
    }
}

// Every inode the guest holds is an open O_PATH descriptor in either server, and the walk can
// leave the guest holding the whole tree. virtiofsd raises its own RLIMIT_NOFILE (to about 1M);
// krunlet's server is held to the limit it inherits, so give both children the same room.
void raise_nofile(uint64_t tree_entries) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = 1 << 20;
    if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "r")) {
        unsigned long long v = 0;
        if (std::fscanf(f, "%llu", &v) == 1 && v > 0) want = std::min<rlim_t>(want, rlim_t(v));
        std::fclose(f);
    }
    rlimit up{want, want};
    if (rl.rlim_max >= want || ::setrlimit(RLIMIT_NOFILE, &up) != 0) {
        up = {std::min(want, rl.rlim_max), rl.rlim_max};
        (void)::setrlimit(RLIMIT_NOFILE, &up);
    }
    (void)::getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * tree_entries + 4096)
        std::fprintf(stderr, "krunlet-bench fs: warning: RLIMIT_NOFILE is %llu; krunlet's server may run out of "
                             "descriptors during the walk (run as root or raise the hard limit)\n",
                     (unsigned long long)rl.rlim_cur);
}

int fail(const std::string& msg) {
    std::fprintf(stderr, "krunlet-bench fs: %s\n", msg.c_str());
    return 1;
}

}  // namespace

CLI::App* add_fs_command(CLI::App& app, FsOptions& o, const std::string& bin_dir) {
    o.krunlet = bin_dir + "/krunlet";
    o.guest = bin_dir + "/krunlet-fsbench-guest";
    o.kernel = bin_dir + "/../lib/krunlet/vmlinux";
    auto* c = app.add_subcommand("fs", "guest file-system benchmark: krunlet against QEMU microvm + virtiofsd");
    c->add_option("rootfs", o.rootfs,
                  "directory shared as the guest's root by both engines; the workload goes into "
                  "ROOTFS/krunlet-fsbench (use an empty directory on tmpfs)")
        ->required();
    add_vm_engine_options(c, o);
    c->add_option("--randread-mib", o.randread_mib, "size of the random-read file")
        ->check(CLI::Range(1, 65536))->capture_default_str();
    c->add_option("--randread-count", o.randread_count, "4 KiB random reads, each of a distinct page")
        ->check(CLI::Range(1, 1 << 24))->capture_default_str();
    c->add_flag("--randread-direct", o.randread_direct, "random reads with O_DIRECT instead of a dropped page cache");
    c->add_option("--seq-mib", o.seq_mib, "sequential write/read file size")
        ->check(CLI::Range(1, 65536))->capture_default_str();
    c->add_option("--bs-kib", o.bs_kib, "sequential I/O block size")->check(CLI::Range(4, 1024))->capture_default_str();
    c->add_option("--files", o.files, "small files to create, stat and unlink")
        ->check(CLI::Range(1, 1000000))->capture_default_str();
    c->add_option("--small-bytes", o.small_bytes, "bytes written into each small file")
        ->check(CLI::Range(0, 1 << 20))->capture_default_str();
    c->add_option("--tree-entries", o.tree_entries, "entries of the tree that is walked")
        ->check(CLI::Range(11, 10000000))->capture_default_str();
    c->add_option("--settle-ms", o.settle_ms, "guest pause around each phase marker (lets the host sample CPU)")
        ->check(CLI::Range(0, 10000))->capture_default_str();
    add_vm_run_options(c, o, "ROOTFS/krunlet-fsbench");
    c->add_option("--guest", o.guest, "the static guest program")->capture_default_str();
    c->add_option("--kernel", o.kernel, "guest vmlinux (for QEMU; krunlet uses its own, next to libkrun)")
        ->capture_default_str();
    c->add_option("--qemu", o.qemu, "qemu-system-x86_64")->capture_default_str();
    c->add_option("--virtiofsd", o.virtiofsd, "QEMU's C virtiofsd")->capture_default_str();
    return c;
}

int run_fs(const FsOptions& opts) {
    FsOptions o = opts;
    std::vector<Engine> engines;
    for (const std::string& e : split_engines(o.engines)) {
        if (e == "krunlet")
            engines.push_back({e, "krunlet", run_krunlet, {}});
        else if (e == "qemu")
            engines.push_back({e, "qemu+virtiofsd", run_qemu, {}});
        else
            return fail("--engines: unknown engine \"" + e + "\" (krunlet, qemu)");
    }
    if (auto why = kvm_unusable("krunlet-bench fs ...")) return fail(*why);
    if (o.randread_count > o.randread_mib * 256)
        return fail("--randread-count " + std::to_string(o.randread_count) + " exceeds the " +
                    std::to_string(o.randread_mib * 256) + " pages of --randread-mib " +
                    std::to_string(o.randread_mib) +
                    ": every read must be of a page not yet read");
    bool want_krunlet = false, want_qemu = false;
    for (const auto& e : engines) (e.name == "krunlet" ? want_krunlet : want_qemu) = true;
    if (auto why = resolve_vm_paths(o, want_krunlet, want_qemu, "krunlet-fsbench-guest")) return fail(*why);
    if (want_qemu && ::access(o.virtiofsd.c_str(), X_OK) != 0)
        return fail("virtiofsd " + o.virtiofsd + " not found (Debian's qemu-system-common has it), or pass --virtiofsd");
    raise_nofile(o.tree_entries);

    std::fprintf(stderr, "krunlet-bench fs: preparing %s%s (%llu MiB random-read file, %llu-entry tree)...\n",
                 o.rootfs.c_str(), WorkDir::kGuestDir, (unsigned long long)o.randread_mib,
                 (unsigned long long)o.tree_entries);
    auto work = WorkDir::prepare(o.rootfs, {o.randread_mib, o.tree_entries, o.guest});
    if (!work.ok()) return fail(work.error().message);
    if (o.keep) work->keep();
    std::fprintf(stderr, "krunlet-bench fs: prepared in %.1f s\n", work->prepare_seconds());

    EngineConfig cfg;
    cfg.rootfs = o.rootfs;
    cfg.cpus = o.cpus;
    cfg.memory_mib = o.memory_mib;
    cfg.kernel = o.kernel;
    cfg.timeout_s = o.timeout_s;
    cfg.verbose = o.verbose;
    cfg.krunlet = o.krunlet;
    cfg.qemu = o.qemu;
    cfg.virtiofsd = o.virtiofsd;
    auto num = [](uint64_t v) { return std::to_string(v); };
    cfg.guest_args = {"--randread-count", num(o.randread_count), "--seq-mib", num(o.seq_mib),
                      "--bs-kib", num(o.bs_kib), "--files", num(o.files), "--small-bytes", num(o.small_bytes),
                      "--tree-entries", num(o.tree_entries), "--settle-ms", num(o.settle_ms)};
    if (o.randread_direct) cfg.guest_args.push_back("--randread-direct");
    cfg.guest_args.push_back(WorkDir::kGuestDir);

    for (int round = 1; round <= o.rounds; ++round) {
        for (Engine* ep : abba_order(engines, round)) {
            Engine& e = *ep;
            if (auto r = work->reset(); !r.ok()) return fail(r.error().message);
            std::fprintf(stderr, "krunlet-bench fs: round %d/%d: %s...\n", round, o.rounds, e.column.c_str());
            auto run = e.run(cfg);
            if (!run.ok()) return fail(run.error().message);
            std::fprintf(stderr, "krunlet-bench fs: %s finished in %.1f s\n", e.column.c_str(), run->wall_s);
            e.runs.push_back(std::move(run).value());
        }
    }
    std::printf("krunlet-bench fs: %d round(s); %llu random 4 KiB reads of a %llu MiB file%s; %llu MiB sequential in "
                "%llu KiB blocks; %llu files of %llu bytes; %llu-entry tree\n",
                o.rounds, (unsigned long long)o.randread_count, (unsigned long long)o.randread_mib,
                o.randread_direct ? " (O_DIRECT)" : " (page cache dropped, POSIX_FADV_RANDOM)",
                (unsigned long long)o.seq_mib, (unsigned long long)o.bs_kib, (unsigned long long)o.files,
                (unsigned long long)o.small_bytes, (unsigned long long)o.tree_entries);
    print_table(o, engines);
    print_matched(o, engines);
    return 0;
}

}  // namespace krunlet::bench
