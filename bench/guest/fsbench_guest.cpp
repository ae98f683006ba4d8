// krunlet-fsbench-guest: the guest half of `krunlet-bench fs` (docs/bench.md).
//
//   krunlet-fsbench-guest [--pid1] [options] DIR
//
// Runs a fixed file-system workload on DIR (a directory on the virtio-fs share) and prints
// machine-readable lines on stdout, one write(2) each so nothing sits in a stdio buffer:
//
//   fsbench info KEY=VALUE              facts about the guest (kernel, cpus, RAM, cmdline, mount)
//   fsbench begin PHASE / end PHASE     bracket the timed part of a phase; the host samples the
//                                       server's CPU time when it reads them (see --settle-ms)
//   fsbench result PHASE K=V...         the phase's numbers
//   fsbench done | fsbench failed: MSG  the last line
//
// The host prepares DIR/randread.dat (every 4 KiB page starts with its page index as a
// little-endian u64, which the random reads check) and DIR/tree (the walk). Everything else is
// created here and removed again, so a second engine starts from the same state.
//
// It writes /proc/sys/vm/drop_caches before most phases: run it inside a guest, never on a shared
// host. Static, so it runs from any root filesystem; with --pid1 it is the QEMU guest's init: it
// mounts /proc, /sys and /dev, takes /dev/console, and restarts the machine at the end (the
// kernel's reboot=t plus QEMU's -no-reboot turn that into QEMU exiting).
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr uint64_t kPage = 4096;

struct Options {
    bool pid1 = false;
    bool help = false;
    std::string dir;
    uint64_t randread_count = 2000;
    bool randread_direct = false;
    uint64_t seq_mib = 256;
    uint64_t bs_kib = 1024;
    uint64_t files = 2000;
    uint64_t small_bytes = 1024;
    uint64_t tree_entries = 0;  // expected entry count of DIR/tree; 0 = not checked
    uint64_t settle_ms = 200;
    std::string phases = "randread,seqwrite,seqread,create,stat,unlink,walk";
};

// Every failure travels up as a message; main prints it as the last line.
struct Failure {
    std::string message;
};
using Status = std::unique_ptr<Failure>;  // null = success
Status fail(std::string msg) { return std::make_unique<Failure>(Failure{std::move(msg)}); }
Status fail_errno(const std::string& what) { return fail(what + ": " + std::strerror(errno)); }

void emit(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void emit(const char* fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = std::min(size_t(n), sizeof buf - 1);
    for (size_t off = 0; off < len;) {
        ssize_t w = ::write(1, buf + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        off += size_t(w);
    }
}

double now_s() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

void sleep_ms(uint64_t ms) {
    timespec ts{time_t(ms / 1000), long(ms % 1000) * 1000000L};
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// 1 = page cache, 2 = dentries and inodes (the guest then sends FORGETs and must LOOKUP
// again), 3 = both. Dirty data is written first: drop_caches only drops clean pages.
Status drop_caches(int what) {
    ::sync();
    int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return fail_errno("opening /proc/sys/vm/drop_caches (run as root with /proc mounted)");
    char c[2] = {char('0' + what), '\n'};
    ssize_t w = ::write(fd, c, 2);
    int saved = errno;
    ::close(fd);
    errno = saved;
    if (w != 2) return fail_errno("writing /proc/sys/vm/drop_caches");
    return nullptr;
}

// The timed part of a phase. The markers are printed outside it, each followed by a pause, so
// the host has read a marker and sampled the server's CPU before the guest moves on.
class Window {
public:
    Window(const char* name, const Options& o) : name_(name), settle_(o.settle_ms) {
        emit("fsbench begin %s\n", name_);
        sleep_ms(settle_);
        t0_ = now_s();
    }
    double finish() {
        double s = now_s() - t0_;
        emit("fsbench end %s\n", name_);
        sleep_ms(settle_);
        return s;
    }

private:
    const char* name_;
    uint64_t settle_;
    double t0_ = 0;
};

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }
    int close() { return ::close(std::exchange(fd_, -1)); }

private:
    int fd_;
};

// A page-aligned buffer, as O_DIRECT needs.
struct AlignedBuf {
    explicit AlignedBuf(size_t n)
        : p(static_cast<uint8_t*>(std::aligned_alloc(kPage, (n + kPage - 1) / kPage * kPage))) {}
    ~AlignedBuf() { std::free(p); }
    AlignedBuf(const AlignedBuf&) = delete;
    AlignedBuf& operator=(const AlignedBuf&) = delete;
    uint8_t* p;
};

// ---- phases -----------------------------------------------------------------------------

// 4 KiB random reads, one at a time, each of a distinct page of a file whose cache was dropped.
// POSIX_FADV_RANDOM makes the guest read exactly the page asked for (no readahead), so every
// pread is one FUSE READ of 4 KiB.
Status phase_randread(const Options& o) {
    std::string path = o.dir + "/randread.dat";
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | (o.randread_direct ? O_DIRECT : 0)));
    if (fd.get() < 0) return fail_errno("opening " + path + " (krunlet-bench prepares it on the host)");
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) return fail_errno("fstat " + path);
    uint64_t pages = uint64_t(st.st_size) / kPage;
    if (o.randread_count > pages)
        return fail("--randread-count " + std::to_string(o.randread_count) + " is more than the " +
                    std::to_string(pages) + " pages of " + path + ": every read must miss the cache; "
                    "use a bigger file (krunlet-bench --randread-mib) or fewer reads");
    std::vector<uint64_t> order(pages);
    std::iota(order.begin(), order.end(), 0);
    uint64_t x = 0x9e3779b97f4a7c15ull;  // xorshift64, fixed seed: both engines read the same pages
    for (uint64_t i = pages - 1; i > 0; --i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::swap(order[i], order[x % (i + 1)]);
    }
    if (::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_RANDOM) != 0) return fail("posix_fadvise(RANDOM) failed");
    if (auto s = drop_caches(1)) return s;
    AlignedBuf buf(kPage);
    if (buf.p == nullptr) return fail("out of memory for a 4 KiB buffer");
    Window w("randread", o);
    for (uint64_t i = 0; i < o.randread_count; ++i) {
        uint64_t page = order[i];
        ssize_t n = ::pread(fd.get(), buf.p, kPage, off_t(page * kPage));
        if (n != ssize_t(kPage)) return fail_errno("pread of page " + std::to_string(page) + " of " + path);
        uint64_t tag;
        std::memcpy(&tag, buf.p, sizeof tag);
        if (tag != page)
            return fail("page " + std::to_string(page) + " of " + path + " holds the data of page " +
                        std::to_string(tag));
    }
    double s = w.finish();
    emit("fsbench result randread ops=%" PRIu64 " seconds=%.6f iops=%.1f us_per_op=%.2f direct=%d\n", o.randread_count,
         s, double(o.randread_count) / s, s * 1e6 / double(o.randread_count), o.randread_direct ? 1 : 0);
    return nullptr;
}

Status write_all(int fd, const uint8_t* p, size_t n, const std::string& what) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return fail_errno("writing " + what);
        p += w;
        n -= size_t(w);
    }
    return nullptr;
}

// Sequential write of seq_mib MiB in bs_kib chunks; fsync and close are inside the timing.
Status phase_seqwrite(const Options& o) {
    std::string path = o.dir + "/seq.dat";
    size_t bs = o.bs_kib * 1024;
    AlignedBuf buf(bs);
    if (buf.p == nullptr) return fail("out of memory for a " + std::to_string(bs) + "-byte buffer");
    for (size_t i = 0; i < bs; ++i) buf.p[i] = uint8_t(i * 131 + 7);
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) return fail_errno("creating " + path);
    uint64_t total = o.seq_mib << 20;
    Window w("seqwrite", o);
    for (uint64_t done = 0; done < total;) {
        size_t n = size_t(std::min<uint64_t>(bs, total - done));
        if (auto s = write_all(fd.get(), buf.p, n, path)) return s;
        done += n;
    }
    if (::fsync(fd.get()) != 0) return fail_errno("fsync " + path);
    if (fd.close() != 0) return fail_errno("close " + path);
    double s = w.finish();
    emit("fsbench result seqwrite bytes=%" PRIu64 " seconds=%.6f mib_per_s=%.2f\n", total, s,
         double(total) / 1048576.0 / s);
    return nullptr;
}

// Reads back the file seqwrite left, with a cold page cache, then removes it.
Status phase_seqread(const Options& o) {
    std::string path = o.dir + "/seq.dat";
    size_t bs = o.bs_kib * 1024;
    AlignedBuf buf(bs);
    if (buf.p == nullptr) return fail("out of memory for a " + std::to_string(bs) + "-byte buffer");
    if (auto s = drop_caches(1)) return s;
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return fail_errno("opening " + path + " (seqread reads what seqwrite wrote)");
    uint64_t total = 0;
    Window w("seqread", o);
    for (;;) {
        ssize_t n = ::read(fd.get(), buf.p, bs);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail_errno("reading " + path);
        if (n == 0) break;
        total += uint64_t(n);
    }
    double s = w.finish();
    if (total != o.seq_mib << 20)
        return fail("read " + std::to_string(total) + " bytes of " + path + ", wrote " +
                    std::to_string(o.seq_mib << 20));
    // Spot-check the data: the first bytes of the last chunk.
    if (::pread(fd.get(), buf.p, 64, off_t(total - bs)) != 64) return fail_errno("re-reading " + path);
    for (size_t i = 0; i < 64; ++i)
        if (buf.p[i] != uint8_t(i * 131 + 7)) return fail(path + " does not hold what seqwrite wrote");
    emit("fsbench result seqread bytes=%" PRIu64 " seconds=%.6f mib_per_s=%.2f\n", total, s,
         double(total) / 1048576.0 / s);
    return nullptr;
}

std::string small_name(uint64_t i) {
    char n[32];
    std::snprintf(n, sizeof n, "f%06" PRIu64, i);
    return n;
}

Status open_small_dir(const Options& o, int& out) {
    std::string path = o.dir + "/small";
    out = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (out < 0) return fail_errno("opening " + path + " (create makes it)");
    return nullptr;
}

void emit_ops(const char* phase, uint64_t ops, double s) {
    emit("fsbench result %s ops=%" PRIu64 " seconds=%.6f ops_per_s=%.1f us_per_op=%.2f\n", phase, ops, s,
         double(ops) / s, s * 1e6 / double(ops));
}

// create: open(O_CREAT|O_EXCL) + write small_bytes + close, for every file.
Status phase_create(const Options& o) {
    std::string path = o.dir + "/small";
    if (::mkdir(path.c_str(), 0755) != 0)
        return fail_errno("mkdir " + path + " (a leftover of an interrupted run? krunlet-bench removes it)");
    int dfd_raw;
    if (auto s = open_small_dir(o, dfd_raw)) return s;
    Fd dfd(dfd_raw);
    std::vector<uint8_t> data(o.small_bytes, 'x');
    Window w("create", o);
    for (uint64_t i = 0; i < o.files; ++i) {
        std::string n = small_name(i);
        Fd fd(::openat(dfd.get(), n.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
        if (fd.get() < 0) return fail_errno("creating " + path + "/" + n);
        if (auto s = write_all(fd.get(), data.data(), data.size(), path + "/" + n)) return s;
        if (fd.close() != 0) return fail_errno("close " + path + "/" + n);
    }
    emit_ops("create", o.files, w.finish());
    return nullptr;
}

// stat: the guest's dentries were dropped, so each lstat is a LOOKUP on the server.
Status phase_stat(const Options& o) {
    int dfd_raw;
    if (auto s = open_small_dir(o, dfd_raw)) return s;
    Fd dfd(dfd_raw);
    if (auto s = drop_caches(2)) return s;
    Window w("stat", o);
    for (uint64_t i = 0; i < o.files; ++i) {
        std::string n = small_name(i);
        struct stat st{};
        if (::fstatat(dfd.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return fail_errno("lstat small/" + n);
        if (uint64_t(st.st_size) != o.small_bytes)
            return fail("small/" + n + " has " + std::to_string(st.st_size) + " bytes, create wrote " +
                        std::to_string(o.small_bytes));
    }
    emit_ops("stat", o.files, w.finish());
    return nullptr;
}

// unlink, again with cold dentries (each is LOOKUP + UNLINK on the server).
Status phase_unlink(const Options& o) {
    int dfd_raw;
    if (auto s = open_small_dir(o, dfd_raw)) return s;
    Fd dfd(dfd_raw);
    if (auto s = drop_caches(2)) return s;
    Window w("unlink", o);
    for (uint64_t i = 0; i < o.files; ++i) {
        std::string n = small_name(i);
        if (::unlinkat(dfd.get(), n.c_str(), 0) != 0) return fail_errno("unlink small/" + n);
    }
    emit_ops("unlink", o.files, w.finish());
    return nullptr;
}

// ---- walk ----------------------------------------------------------------------------------

struct WalkCount {
    uint64_t entries = 0;
    uint64_t dirs = 0;
};

// getdents64 + lstat of every entry, depth first, never following symlinks. A level is read
// to its end before its subdirectories are entered, so one buffer per level suffices.
Status walk(int dfd, const std::string& path, WalkCount& c, int depth) {
    if (depth > 64) return fail(path + ": the tree is deeper than 64 levels");
    std::vector<char> buf(32 * 1024);
    std::vector<std::string> subdirs;
    for (;;) {
        long n = ::getdents64(dfd, buf.data(), buf.size());
        if (n < 0) return fail_errno("getdents64 " + path);
        if (n == 0) break;
        for (long off = 0; off < n;) {
            auto* d = reinterpret_cast<struct dirent64*>(buf.data() + off);
            off += d->d_reclen;
            const char* name = d->d_name;
            if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
            struct stat st{};
            if (::fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return fail_errno("lstat " + path + "/" + name);
            ++c.entries;
            if (S_ISDIR(st.st_mode)) subdirs.emplace_back(name);
        }
    }
    for (const auto& name : subdirs) {
        ++c.dirs;
        Fd sub(::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (sub.get() < 0) return fail_errno("opening " + path + "/" + name);
        if (auto s = walk(sub.get(), path + "/" + name, c, depth + 1)) return s;
    }
    return nullptr;
}

// The tree the host prepared, with every dentry and page dropped first.
Status phase_walk(const Options& o) {
    std::string path = o.dir + "/tree";
    Fd root(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (root.get() < 0) return fail_errno("opening " + path + " (krunlet-bench prepares it on the host)");
    if (auto s = drop_caches(3)) return s;  // the open fd keeps only the tree's root cached
    WalkCount c;
    Window w("walk", o);
    if (auto s = walk(root.get(), path, c, 0)) return s;
    double s = w.finish();
    if (o.tree_entries != 0 && c.entries != o.tree_entries)
        return fail("the walk of " + path + " found " + std::to_string(c.entries) + " entries, the host made " +
                    std::to_string(o.tree_entries));
    emit("fsbench result walk entries=%" PRIu64 " dirs=%" PRIu64 " seconds=%.6f entries_per_s=%.1f us_per_entry=%.2f\n",
         c.entries, c.dirs, s, double(c.entries) / s, s * 1e6 / double(c.entries));
    return nullptr;
}

// ---- setup, options, main -------------------------------------------------------------------

std::string read_small_file(const char* path) {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0 && s.size() < 65536) s.append(buf, size_t(n));
    ::close(fd);
    return s;
}

// What the host compares between engines: same kernel, vCPUs, RAM; and how the root is mounted.
void emit_info() {
    utsname u{};
    ::uname(&u);
    std::string mem = read_small_file("/proc/meminfo");
    uint64_t mem_kib = 0;
    if (auto p = mem.find("MemTotal:"); p != std::string::npos)
        mem_kib = std::strtoull(mem.c_str() + p + 9, nullptr, 10);
    emit("fsbench info kernel=%s cpus=%ld mem_total_kib=%" PRIu64 "\n", u.release, ::sysconf(_SC_NPROCESSORS_ONLN),
         mem_kib);
    std::string cmdline = read_small_file("/proc/cmdline");
    while (!cmdline.empty() && cmdline.back() == '\n') cmdline.pop_back();
    emit("fsbench info cmdline=%s\n", cmdline.c_str());
    std::string mounts = read_small_file("/proc/mounts");
    for (size_t pos = 0; pos < mounts.size();) {
        size_t end = mounts.find('\n', pos);
        if (end == std::string::npos) end = mounts.size();
        std::string line = mounts.substr(pos, end - pos);
        if (line.find(" / virtiofs ") != std::string::npos) emit("fsbench info root_mount=%s\n", line.c_str());
        pos = end + 1;
    }
}

// As init: the mounts every later step needs, and the console as stdio.
void setup_pid1() {
    ::mkdir("/proc", 0555);
    ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    ::mkdir("/sys", 0555);
    ::mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    ::mkdir("/dev", 0755);
    ::mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    int fd = ::open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd >= 0) {
        for (int i = 0; i < 3; ++i) ::dup2(fd, i);
        if (fd > 2) ::close(fd);
    }
}

[[noreturn]] void finish_pid1() {
    ::sync();
    // With reboot=t the kernel triple-faults, and QEMU's -no-reboot makes that an exit. A
    // power-off would need ACPI, which this kernel has not.
    ::reboot(RB_AUTOBOOT);
    for (;;) ::pause();
}

bool parse_u64(const char* s, uint64_t& out) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-') return false;
    out = v;
    return true;
}

const char kUsage[] =
    "usage: krunlet-fsbench-guest [--pid1] [--randread-count N] [--randread-direct] [--seq-mib N]\n"
    "         [--bs-kib N] [--files N] [--small-bytes N] [--tree-entries N] [--settle-ms N]\n"
    "         [--phases randread,seqwrite,seqread,create,stat,unlink,walk] DIR\n";

Status parse_args(int argc, char** argv, Options& o) {
    struct U64Opt {
        const char* name;
        uint64_t* dst;
        uint64_t min, max;
    } u64s[] = {
        {"--randread-count", &o.randread_count, 1, 1ull << 32}, {"--seq-mib", &o.seq_mib, 1, 1ull << 20},
        {"--bs-kib", &o.bs_kib, 4, 1024},                         {"--files", &o.files, 1, 1000000},
        {"--small-bytes", &o.small_bytes, 0, 1 << 20},            {"--tree-entries", &o.tree_entries, 0, 1ull << 32},
        {"--settle-ms", &o.settle_ms, 0, 10000},
    };
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--pid1") { o.pid1 = true; continue; }
        if (a == "--randread-direct") { o.randread_direct = true; continue; }
        if (a == "--help" || a == "-h") { o.help = true; continue; }
        if (a == "--phases") {
            if (++i >= argc) return fail("--phases needs a value");
            o.phases = argv[i];
            continue;
        }
        bool matched = false;
        for (auto& u : u64s) {
            if (a != u.name) continue;
            matched = true;
            if (++i >= argc || !parse_u64(argv[i], *u.dst) || *u.dst < u.min || *u.dst > u.max)
                return fail(a + " needs a whole number from " + std::to_string(u.min) + " to " + std::to_string(u.max));
        }
        if (matched) continue;
        if (a.rfind("--", 0) == 0) return fail("unknown option " + a + "\n" + kUsage);
        if (!o.dir.empty()) return fail("more than one DIR: " + o.dir + " and " + a + "\n" + kUsage);
        o.dir = a;
    }
    if (o.dir.empty() && !o.help) return fail(std::string("no DIR given\n") + kUsage);
    return nullptr;
}

bool wants(const Options& o, const char* phase) {
    std::string list = "," + o.phases + ",";
    return list.find(std::string(",") + phase + ",") != std::string::npos;
}

Status run(const Options& o) {
    static const char* const kKnown[] = {"randread", "seqwrite", "seqread", "create", "stat", "unlink", "walk"};
    for (size_t pos = 0; pos <= o.phases.size();) {
        size_t end = o.phases.find(',', pos);
        if (end == std::string::npos) end = o.phases.size();
        std::string p = o.phases.substr(pos, end - pos);
        bool known = false;
        for (const char* k : kKnown) known = known || p == k;
        if (!known) return fail("unknown phase \"" + p + "\" in --phases");
        pos = end + 1;
    }
    if (wants(o, "seqread") && !wants(o, "seqwrite"))
        return fail("seqread reads the file seqwrite writes: add seqwrite");
    if ((wants(o, "stat") || wants(o, "unlink")) && !wants(o, "create"))
        return fail("stat and unlink work on the files create makes: add create");
    emit_info();
    if (wants(o, "randread"))
        if (auto s = phase_randread(o)) return s;
    if (wants(o, "seqwrite"))
        if (auto s = phase_seqwrite(o)) return s;
    if (wants(o, "seqread"))
        if (auto s = phase_seqread(o)) return s;
    if (wants(o, "seqwrite") && ::unlink((o.dir + "/seq.dat").c_str()) != 0) return fail_errno("removing seq.dat");
    if (wants(o, "create"))
        if (auto s = phase_create(o)) return s;
    if (wants(o, "stat"))
        if (auto s = phase_stat(o)) return s;
    if (wants(o, "unlink"))
        if (auto s = phase_unlink(o)) return s;
    if (wants(o, "create")) {
        // Without the unlink phase the files are still there: remove them untimed.
        for (uint64_t i = 0; !wants(o, "unlink") && i < o.files; ++i)
            ::unlink((o.dir + "/small/" + small_name(i)).c_str());
        if (::rmdir((o.dir + "/small").c_str()) != 0) return fail_errno("removing " + o.dir + "/small");
    }
    if (wants(o, "walk"))
        if (auto s = phase_walk(o)) return s;
    return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    Status s = parse_args(argc, argv, o);
    if (o.help && !s) {
        emit("%s", kUsage);
        return 0;
    }
    if (o.pid1 || ::getpid() == 1) setup_pid1();
    if (!s) s = run(o);
    if (s)
        emit("fsbench failed: %s\n", s->message.c_str());
    else
        emit("fsbench done\n");
    if (o.pid1 || ::getpid() == 1) finish_pid1();
    return s ? 1 : 0;
}
