// krunlet-bench fs-host: host CPU per FUSE request of krunlet's virtio-fs server and of QEMU's
// virtiofsd, on the real CPU, with no guest. This thread plays the guest: it encodes each
// request as the guest kernel does, posts it on the server's virtqueue in shared memory with a
// reply buffer of the size the kernel would give, kicks the queue's eventfd and sleeps on the
// interrupt eventfd until the replies are used. Both servers get the same request stream and
// serve it on their own thread (fs_host_servers.h); the requests travel through
// fs_host_channel.h. This file is the request script, the measurements and the table.
// A measurement is the serving side's CPU time (/proc/PID/task/TID/schedstat, sampled while
// it sleeps) over a batch of requests, divided by their count.
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "compare_table.h"
#include "fs_bench.h"
#include "fs_host_channel.h"
#include "fs_host_servers.h"
#include "fs_workload.h"
#include "virtq_driver.h"

namespace krunlet::bench {
namespace {

using namespace fs_host;

constexpr uint64_t kDataPages = 16384;      // the data file: 64 MiB, more than the CPU caches hold
constexpr uint64_t kCachedPages = 32;       // READ 4 KiB, data in CPU cache: the first 128 KiB

// The result of one engine's run: per metric, server CPU and round trip per request, in µs.
struct HostRun {
    std::map<std::string, double> cpu_us;
    std::map<std::string, double> rtt_us;
};

// Adds up the serving side's CPU and the wall time over the timed stretches of one metric.
class Meter {
public:
    explicit Meter(ServedFs& fs) : fs_(fs) {}
    Result<void> start() {
        auto c = fs_.cpu_s();
        if (!c.ok()) return c.error();
        cpu0_ = *c;
        t0_ = std::chrono::steady_clock::now();
        return ok_result();
    }
    Result<void> stop() {
        auto t = std::chrono::steady_clock::now();
        auto c = fs_.cpu_s();
        if (!c.ok()) return c.error();
        cpu_ += *c - cpu0_;
        wall_ += std::chrono::duration<double>(t - t0_).count();
        return ok_result();
    }
    void record(HostRun& run, const std::string& key, long n) const {
        run.cpu_us[key] = cpu_ * 1e6 / double(n);
        run.rtt_us[key] = wall_ * 1e6 / double(n);
    }

private:
    ServedFs& fs_;
    double cpu0_ = 0, cpu_ = 0, wall_ = 0;
    std::chrono::steady_clock::time_point t0_;
};

// `n` requests made by `make(i)`, sent `depth` at a time, timed as one stretch.
Result<void> timed(ServedFs& fs, Channel& h, HostRun& run, const std::string& key, long n, int depth,
                   const char* what, const std::function<Request(long)>& make) {
    Meter m(fs);
    KRUNLET_CHECK(m.start());
    KRUNLET_CHECK(in_batches(h, n, depth, what, make));
    KRUNLET_CHECK(m.stop());
    m.record(run, key, n);
    return ok_result();
}

std::string fs_type(const std::string& dir) {
    struct statfs st{};
    if (::statfs(dir.c_str(), &st) != 0) return "?";
    switch (st.f_type) {
        case 0x01021994: return "tmpfs";
        case 0xEF53: return "ext2/3/4";
        case 0x9123683E: return "btrfs";
        case 0x58465342: return "xfs";
        case 0x794c7630: return "overlayfs";
        default: {
            char b[32];
            std::snprintf(b, sizeof b, "0x%lx", long(st.f_type));
            return b;
        }
    }
}

Request forget(uint64_t node) {
    fuse_forget_in fo{1};
    Request rf(FUSE_FORGET, node);
    rf.obj(fo);
    return rf;
}

// READDIRPLUS of a directory of 500 empty files with a 32 KiB buffer (what the guest kernel
// asks for when a getdents64 buffer is that big), per entry returned. Each entry other than "."
// and ".." is a lookup on the server; the FORGETs that follow are not timed.
Result<void> bench_readdirplus(ServedFs& fs, Channel& h, const std::string& dir, long iters, HostRun& run) {
    constexpr int kFiles = 500;
    const std::string sub = dir + "/rd";
    if (::mkdir(sub.c_str(), 0755) != 0) return errno_error("mkdir " + sub);
    for (int i = 0; i < kFiles; ++i) {
        UniqueFd fd(::open((sub + "/f" + std::to_string(i)).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
        if (!fd.valid()) return errno_error("creating a file in " + sub);
    }
    Request lk(FUSE_LOOKUP, FUSE_ROOT_ID);
    KRUNLET_CHECK(h.call(lk.name("rd"), "LOOKUP rd"));
    const uint64_t dnode = h.reply<fuse_entry_out>().nodeid;
    Meter m(fs);
    long entries = 0;
    for (long round = 0; entries < iters / 5; ++round) {
        fuse_open_in oi{};
        oi.flags = O_RDONLY | O_DIRECTORY;
        Request od(FUSE_OPENDIR, dnode);
        KRUNLET_CHECK(h.call(od.obj(oi), "OPENDIR"));
        const uint64_t dfh = h.reply<fuse_open_out>().fh;
        std::vector<uint64_t> nodes;
        for (uint64_t off = 0;;) {
            fuse_read_in ri{};
            ri.fh = dfh;
            ri.offset = off;
            ri.size = 32 * 1024;
            Request rq(FUSE_READDIRPLUS, dnode);
            KRUNLET_CHECK(m.start());
            KRUNLET_CHECK(h.call(rq.obj(ri), "READDIRPLUS"));
            KRUNLET_CHECK(m.stop());
            const size_t len = h.reply_body_size();
            if (len == 0) break;
            // struct fuse_direntplus records, each padded to 8 bytes (<linux/fuse.h>).
            for (size_t pos = 0; pos + FUSE_NAME_OFFSET_DIRENTPLUS <= len;) {
                auto e = h.reply<fuse_entry_out>(pos);
                auto d = h.reply<fuse_dirent>(pos + sizeof(fuse_entry_out));
                // virtiofsd returns "." and ".." looked up too; only real entries count
                if (e.nodeid != 0 && e.nodeid != dnode && e.nodeid != FUSE_ROOT_ID) nodes.push_back(e.nodeid);
                ++entries;
                off = d.off;
                pos += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + d.namelen);
            }
        }
        fuse_release_in rel{};
        rel.fh = dfh;
        Request rd(FUSE_RELEASEDIR, dnode);
        KRUNLET_CHECK(h.call(rd.obj(rel), "RELEASEDIR"));
        KRUNLET_CHECK(in_batches(h, long(nodes.size()), int(Channel::kMaxDepth), "FORGET",
                                 [&](long i) { return forget(nodes[i]); }));
        if (round == 0 && nodes.size() != kFiles)
            return make_error(EIO, "READDIRPLUS returned " + std::to_string(nodes.size()) + " looked-up entries, not " +
                                       std::to_string(kFiles));
    }
    m.record(run, "readdirplus", entries);
    return remove_tree(sub);
}

// The measurements: their --only names and table labels. '*' marks the four requests issue 3's
// goal names (docs/bench.md).
struct Kind {
    const char* key;
    const char* label;
};
constexpr Kind kKinds[] = {
    {"lookup", "LOOKUP (known inode) *"}, {"getattr", "GETATTR *"},
    {"read", "READ 4 KiB *"},             {"create", "CREATE (new file, opened) *"},
    {"write", "WRITE 4 KiB"},             {"lookup_new", "LOOKUP (new inode)"},
    {"unlink", "UNLINK"},                 {"readdirplus", "READDIRPLUS, per entry"},
    {"read_cached", "READ 4 KiB, CPU-cached data"},
    {"unknown", "GETATTR of an unknown node"},
};

// The whole request script against one server whose root is `dir`, `depth` requests in flight;
// only the measurements in `only` (all if empty). create, lookup_new and unlink run together.
Result<HostRun> run_script(ServedFs& fs, const std::string& dir, long iters, int depth,
                           const std::set<std::string>& only) {
    auto want = [&](const char* k) { return only.empty() || only.count(k) != 0; };
    auto ch = Channel::create(fs);
    if (!ch.ok()) return ch.error();
    Channel& h = *ch;
    HostRun run;

    fuse_init_in init{};
    init.major = FUSE_KERNEL_VERSION;
    init.minor = FUSE_KERNEL_MINOR_VERSION;
    init.max_readahead = 128 * 1024;
    init.flags = 0xffffffffu;
    Request ri(FUSE_INIT, 0);
    KRUNLET_CHECK(h.call(ri.obj(init), "INIT"));

    auto lookup = [](long) {
        Request r(FUSE_LOOKUP, FUSE_ROOT_ID);
        r.name("data");
        return r;
    };
    Request first = lookup(0);
    KRUNLET_CHECK(h.call(first, "LOOKUP data"));
    const uint64_t node = h.reply<fuse_entry_out>().nodeid;
    fuse_open_in oi{};
    oi.flags = O_RDWR;
    Request open(FUSE_OPEN, node);
    KRUNLET_CHECK(h.call(open.obj(oi), "OPEN data"));
    const uint64_t fh = h.reply<fuse_open_out>().fh;
    KRUNLET_CHECK(in_batches(h, 1000, depth, "LOOKUP", lookup));  // warm-up

    if (want("lookup")) KRUNLET_CHECK(timed(fs, h, run, "lookup", iters, depth, "LOOKUP", lookup));
    if (want("getattr")) KRUNLET_CHECK(timed(fs, h, run, "getattr", iters, depth, "GETATTR", [&](long) {
        Request r(FUSE_GETATTR, node);
        r.obj(fuse_getattr_in{});
        return r;
    }));
    // A node id no server hands out: the reply is an error, after no work (krunlet: ESTALE from
    // its table) or a failing system call (virtiofsd: fstatat(-1) gives EBADF). What is left
    // is each server's fixed cost per request, its share of the wake-up included.
    if (want("unknown")) KRUNLET_CHECK(timed(fs, h, run, "unknown", iters, depth, "GETATTR (unknown node)", [&](long) {
        Request r(FUSE_GETATTR, uint64_t{1} << 62);
        r.obj(fuse_getattr_in{}).expect_failure();
        return r;
    }));
    // 4 KiB reads at pseudo-random page offsets of the 64 MiB file (host page cache warm), and
    // the same over only the file's first 32 pages, which stay in the CPU's caches: the
    // difference is the cost of bringing the data in from memory, the same for every server.
    auto read_at = [&](uint64_t page) {
        fuse_read_in r{};
        r.fh = fh;
        r.offset = page * 4096;
        r.size = 4096;
        Request rq(FUSE_READ, node);
        rq.obj(r);
        return rq;
    };
    if (want("read")) KRUNLET_CHECK(timed(fs, h, run, "read", iters, depth, "READ", [&](long i) {
        return read_at(uint64_t(i) * 2654435761u % kDataPages);
    }));
    if (want("read_cached")) KRUNLET_CHECK(timed(fs, h, run, "read_cached", iters, depth, "READ", [&](long i) {
        return read_at(uint64_t(i) * 2654435761u % kCachedPages);
    }));
    if (want("write")) KRUNLET_CHECK(timed(fs, h, run, "write", iters, depth, "WRITE", [&](long i) {
        fuse_write_in w{};
        w.fh = fh;
        w.offset = (uint64_t(i) % kDataPages) * 4096;
        w.size = 4096;
        Request rq(FUSE_WRITE, node);
        rq.obj(w).payload(4096, 0x44);
        return rq;
    }));

    // File operations, in batches: only the measured requests are timed; the cleanup that keeps
    // the directory small (RELEASE, FORGET) is not.
    const long batch = 250;  // holds 2 fds per file until cleanup: stays far below RLIMIT_NOFILE
    const long file_ops = want("create") || want("lookup_new") || want("unlink")
                              ? std::max(batch, iters / 5 / batch * batch) : 0;
    auto named = [](uint32_t opcode) {
        return [opcode](long i) {
            Request r(opcode, FUSE_ROOT_ID);
            r.name("c" + std::to_string(i));
            return r;
        };
    };
    Meter create(fs), lookup_new(fs), unlink(fs);
    std::vector<std::pair<uint64_t, uint64_t>> made(batch);  // node, fh
    std::vector<uint64_t> held(batch);
    for (long done = 0; done < file_ops; done += batch) {
        KRUNLET_CHECK(create.start());
        KRUNLET_CHECK(in_batches(
            h, batch, depth, "CREATE",
            [](long i) {
                fuse_create_in c{};
                c.flags = O_WRONLY | O_CREAT | O_EXCL;
                c.mode = S_IFREG | 0644;
                Request r(FUSE_CREATE, FUSE_ROOT_ID);
                r.obj(c).name("c" + std::to_string(i));
                return r;
            },
            [&](long i, size_t slot) {
                made[i] = {h.reply<fuse_entry_out>(0, slot).nodeid,
                           h.reply<fuse_open_out>(sizeof(fuse_entry_out), slot).fh};
            }));
        KRUNLET_CHECK(create.stop());
        KRUNLET_CHECK(in_batches(h, batch, depth, "RELEASE", [&](long i) {
            fuse_release_in rel{};
            rel.fh = made[i].second;
            Request r(FUSE_RELEASE, made[i].first);
            r.obj(rel);
            return r;
        }));
        KRUNLET_CHECK(in_batches(h, batch, depth, "FORGET", [&](long i) { return forget(made[i].first); }));
        // The cold lookup path: the server holds no inode for these names. The inodes stay
        // looked up for the UNLINK, as the guest's dentries hold them (virtiofsd answers an
        // UNLINK of a name it holds no inode for with EIO).
        KRUNLET_CHECK(lookup_new.start());
        KRUNLET_CHECK(in_batches(h, batch, depth, "LOOKUP (new inode)", named(FUSE_LOOKUP), [&](long i, size_t slot) {
            held[i] = h.reply<fuse_entry_out>(0, slot).nodeid;
        }));
        KRUNLET_CHECK(lookup_new.stop());
        KRUNLET_CHECK(unlink.start());
        KRUNLET_CHECK(in_batches(h, batch, depth, "UNLINK", named(FUSE_UNLINK)));
        KRUNLET_CHECK(unlink.stop());
        // The guest forgets an unlinked file's inode afterwards.
        KRUNLET_CHECK(in_batches(h, batch, depth, "FORGET", [&](long i) { return forget(held[i]); }));
    }
    if (file_ops > 0) {
        create.record(run, "create", file_ops);
        lookup_new.record(run, "lookup_new", file_ops);
        unlink.record(run, "unlink", file_ops);
    }
    // READDIRPLUS continues from the cookie the previous reply ended with: one at a time.
    if (want("readdirplus")) KRUNLET_CHECK(bench_readdirplus(fs, h, dir, iters, run));
    return run;
}

// A fresh directory with the 64 MiB data file, removed when the engine's run ends.
class RunDir {
public:
    static Result<RunDir> create(const std::string& base, const std::string& engine) {
        std::string tmpl = base + "/" + engine + "-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) return errno_error("mkdtemp " + tmpl);
        RunDir d(tmpl);
        const std::string data = tmpl + "/data";
        UniqueFd fd(::open(data.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (!fd.valid()) return errno_error("creating " + data);
        std::vector<uint8_t> mib(1 << 20, 0x33);
        for (uint64_t i = 0; i < kDataPages * 4096 / mib.size(); ++i)
            if (::write(fd.get(), mib.data(), mib.size()) != ssize_t(mib.size())) return errno_error("writing " + data);
        return d;
    }
    RunDir(RunDir&& o) noexcept : path_(std::exchange(o.path_, std::string())) {}
    RunDir(const RunDir&) = delete;
    RunDir& operator=(const RunDir&) = delete;
    RunDir& operator=(RunDir&&) = delete;
    ~RunDir() {
        if (!path_.empty()) (void)remove_tree(path_);
    }
    const std::string& path() const { return path_; }

private:
    explicit RunDir(std::string p) : path_(std::move(p)) {}
    std::string path_;
};

struct HostConfig {
    std::string base;  // where each run's directory is made
    long iterations;
    int depth;
    std::set<std::string> only;
    std::string virtiofsd;
};

Result<HostRun> run_krunlet(const HostConfig& c) {
    auto dir = RunDir::create(c.base, "krunlet");
    if (!dir.ok()) return dir.error();
    auto fs = KrunletFs::start(dir->path());
    if (!fs.ok()) return fs.error();
    return run_script(**fs, dir->path(), c.iterations, c.depth, c.only);
}

Result<HostRun> run_virtiofsd(const HostConfig& c) {
    auto dir = RunDir::create(c.base, "virtiofsd");
    if (!dir.ok()) return dir.error();
    auto fs = VirtiofsdFs::start(c.virtiofsd, dir->path());
    if (!fs.ok()) return fs.error();
    auto run = run_script(**fs, dir->path(), c.iterations, c.depth, c.only);
    if (!run.ok() && !(*fs)->stderr_tail().empty())
        return make_error(run.error().code, run.error().message + "; virtiofsd stderr:\n" + (*fs)->stderr_tail());
    return run;
}

// What the host kernel charges for the system call each request needs, with no server around
// it: READ's pread of 4 KiB at the same offsets into a shared mapping (the copy from the page
// cache is most of it) and GETATTR's fstat. No server can cost less per request than these.
Result<void> print_syscall_floor(const std::string& base, long n) {
    auto dir = RunDir::create(base, "floor");
    if (!dir.ok()) return dir.error();
    UniqueFd fd(::open((dir->path() + "/data").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return errno_error("open " + dir->path() + "/data");
    static constexpr uint16_t kNoQueues[] = {kQueueSize};
    auto mem = VirtqDriver::create_detached(kNoQueues, kQueueSize, kDriverRam);  // a memfd, like guest RAM
    if (!mem.ok()) return mem.error();
    uint8_t* buf = (*mem)->ram() + (kDriverRam / 2);
    // The READ rows' offsets, into 32 rotating pages as the replies use them.
    auto preads = [&](uint64_t pages) -> Result<double> {
        double t0 = thread_cpu_s();
        for (long i = 0; i < n; ++i) {
            const off_t off = off_t(uint64_t(i) * 2654435761u % pages) * 4096;
            if (::pread(fd.get(), buf + (i % 32) * 4096, 4096, off) != 4096) return errno_error("pread");
        }
        return (thread_cpu_s() - t0) * 1e6 / double(n);
    };
    auto cold = preads(kDataPages);
    if (!cold.ok()) return cold.error();
    auto cached = preads(kCachedPages);
    if (!cached.ok()) return cached.error();
    double t1 = thread_cpu_s();
    struct stat st{};
    for (long i = 0; i < n; ++i)
        if (::syscall(SYS_fstat, fd.get(), &st) != 0) return errno_error("fstat");
    double t2 = thread_cpu_s();
    std::printf("system call alone (this thread, no server): pread 4 KiB %.2f µs (data in CPU cache: %.2f µs), "
                "fstat %.2f µs\n",
                *cold, *cached, (t2 - t1) * 1e6 / double(n));
    return ok_result();
}

struct HostMetric {
    std::string label;
    MetricGetter<HostRun> get;
};

std::vector<HostMetric> host_metrics() {
    std::vector<HostMetric> m;
    auto getter = [](bool cpu, std::string key) -> MetricGetter<HostRun> {
        return [cpu, key](const HostRun& r) -> std::optional<double> {
            const auto& map = cpu ? r.cpu_us : r.rtt_us;
            auto it = map.find(key);
            if (it == map.end()) return std::nullopt;
            return it->second;
        };
    };
    for (const Kind& k : kKinds) m.push_back({std::string("server CPU µs, ") + k.label, getter(true, k.key)});
    for (const Kind& k : kKinds) m.push_back({std::string("round trip µs, ") + k.label, getter(false, k.key)});
    return m;
}

std::string default_base() {
    // tmpfs by default: the numbers are then the servers', not a disk file system's (on an
    // ext4 here, creating a file cost about 1 ms of CPU with or without a server).
    const char* tmp = std::getenv("TMPDIR");
    return tmp && *tmp ? tmp : ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

}  // namespace

CLI::App* add_fs_host_command(CLI::App& app, FsHostOptions& o) {
    auto* c = app.add_subcommand("fs-host",
                                 "CPU per FUSE request of krunlet's virtio-fs server and of virtiofsd, on this CPU "
                                 "(no guest)");
    c->add_option("--iterations", o.iterations, "requests per measurement (file operations: a fifth of it)")
        ->check(CLI::Range(1000L, 100000000L))->capture_default_str();
    c->add_option("--depth", o.depth,
                  "requests posted together before one kick (READDIRPLUS: always 1); 1 = a psync guest, "
                  "where each request costs the server a wake-up")
        ->check(CLI::Range(1, int(Channel::kMaxDepth)))->capture_default_str();
    c->add_option("--only", o.only,
                  "comma-separated measurements to run (lookup, getattr, read, create, write, lookup_new, unlink, "
                  "readdirplus, read_cached, unknown; create, lookup_new and unlink run together); default: all");
    c->add_option("--rounds", o.rounds, "runs per engine, alternating (ABBA); the table shows medians")
        ->check(CLI::Range(1, 100))->capture_default_str();
    c->add_option("--engines", o.engines, "krunlet, virtiofsd, or both")->capture_default_str();
    c->add_option("--virtiofsd", o.virtiofsd, "QEMU's C virtiofsd")->capture_default_str();
    c->add_option("--dir", o.dir,
                  "an existing directory to work in (default: $TMPDIR, else /dev/shm, else /tmp)");
    return c;
}

int run_fs_host(const FsHostOptions& o) {
    HostConfig cfg{o.dir.empty() ? default_base() : o.dir, o.iterations, o.depth, {}, o.virtiofsd};
    for (const auto& k : o.only.empty() ? std::vector<std::string>{} : split_engines(o.only)) {
        if (std::none_of(std::begin(kKinds), std::end(kKinds), [&](const Kind& kind) { return k == kind.key; })) {
            std::fprintf(stderr, "krunlet-bench fs-host: unknown measurement '%s' in --only (lookup, getattr, read, "
                                 "create, write, lookup_new, unlink, readdirplus)\n", k.c_str());
            return 1;
        }
        cfg.only.insert(k);
    }
    std::vector<BenchEngine<HostConfig, HostRun>> engines;
    for (const auto& e : split_engines(o.engines)) {
        if (e == "krunlet") {
            engines.push_back({"krunlet", "krunlet", run_krunlet, {}});
        } else if (e == "virtiofsd") {
            if (!is_file(cfg.virtiofsd)) {
                std::fprintf(stderr, "krunlet-bench fs-host: %s not found; install qemu-system-common, pass "
                                     "--virtiofsd PATH, or run --engines krunlet\n", cfg.virtiofsd.c_str());
                return 1;
            }
            if (::geteuid() != 0) {
                std::fprintf(stderr, "krunlet-bench fs-host: virtiofsd's chroot sandbox needs root; run as root or "
                                     "--engines krunlet\n");
                return 1;
            }
            engines.push_back({"virtiofsd", "virtiofsd", run_virtiofsd, {}});
        } else {
            std::fprintf(stderr, "krunlet-bench fs-host: unknown engine '%s' (krunlet, virtiofsd)\n", e.c_str());
            return 1;
        }
    }
    if (engines.empty()) {
        std::fprintf(stderr, "krunlet-bench fs-host: --engines names no engine\n");
        return 1;
    }
    std::printf("krunlet-bench fs-host: %s (%s), cache=auto, %s, %ld requests per measurement, %d in flight, "
                "%d round(s)\n",
                cfg.base.c_str(), fs_type(cfg.base).c_str(), ::geteuid() == 0 ? "as root" : "not root",
                o.iterations, o.depth, o.rounds);
    for (int round = 1; round <= o.rounds; ++round) {
        for (auto* e : abba_order(engines, round)) {
            auto r = e->run(cfg);
            if (!r.ok()) {
                std::fprintf(stderr, "krunlet-bench fs-host: %s: %s\n", e->name.c_str(), r.error().message.c_str());
                return 1;
            }
            e->runs.push_back(std::move(*r));
        }
    }
    print_compare_rows(TableLayout{44, 10, "krunlet", "virtiofsd"}, host_metrics(), run_pair(engines));
    if (auto f = print_syscall_floor(cfg.base, o.iterations); !f.ok())
        std::fprintf(stderr, "krunlet-bench fs-host: system call floor: %s\n", f.error().message.c_str());
    std::printf("ratio = krunlet / virtiofsd, the median of the per-round ratios; lower is better.\n"
                "server CPU: krunlet's serving thread (fs device + server); all of virtiofsd. Each engine serves on\n"
                "its own thread, woken by an eventfd kick per batch of --depth requests.\n"
                "* = the requests of issue 3's goal (server CPU <= 0.67x virtiofsd's).\n%s\n",
                virtiofsd_settings_summary());
    return 0;
}

}  // namespace krunlet::bench
