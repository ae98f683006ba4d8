// krunlet-bench fs-host: host CPU per FUSE request of krunlet's virtio-fs server, on the real
// CPU with no guest. Requests are encoded as the guest kernel sends them and go straight to
// krunlet::fs::Server::handle(), so the numbers leave out the virtqueue work of the fs device
// (descriptor walk and the copy of the request) and the guest-to-host notification.
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "base/fd.h"
#include "fs_bench.h"
#include "fs_workload.h"
#include "virtiofs/server.h"

namespace krunlet::bench {
namespace {

using fs::Server;

double thread_cpu_us() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) * 1e6 + double(ts.tv_nsec) / 1e3;
}

// Request bytes: fuse_in_header, then the op's argument structs and strings.
class Request {
public:
    Request(uint32_t opcode, uint64_t nodeid) : bytes_(sizeof(fuse_in_header)) {
        fuse_in_header h{};
        h.opcode = opcode;
        h.nodeid = nodeid;
        h.pid = 1;
        std::memcpy(bytes_.data(), &h, sizeof h);
    }
    template <class T>
    Request& obj(const T& v) {
        auto p = reinterpret_cast<const uint8_t*>(&v);
        bytes_.insert(bytes_.end(), p, p + sizeof v);
        return *this;
    }
    Request& name(const std::string& s) {  // NUL-terminated, as the kernel sends names
        bytes_.insert(bytes_.end(), s.begin(), s.end());
        bytes_.push_back(0);
        return *this;
    }
    Request& payload(size_t n, uint8_t fill) {
        bytes_.insert(bytes_.end(), n, fill);
        return *this;
    }
    // Fixes up len and unique; call after the last append.
    const std::vector<uint8_t>& finish(uint64_t unique) {
        fuse_in_header h;
        std::memcpy(&h, bytes_.data(), sizeof h);
        h.len = uint32_t(bytes_.size());
        h.unique = unique;
        std::memcpy(bytes_.data(), &h, sizeof h);
        return bytes_;
    }

private:
    std::vector<uint8_t> bytes_;
};

class Harness {
public:
    explicit Harness(Server& s) : s_(s), out_((size_t{1} << 20) + 4096) {}

    // Sends one request; a reply with an error ends the benchmark (it would measure nothing).
    Result<void> call(Request& r, const char* what) {
        const auto& bytes = r.finish(++unique_);
        iovec iov{out_.data(), out_.size()};
        size_t n = s_.handle(bytes, std::span<const iovec>(&iov, 1));
        fuse_in_header ih;
        std::memcpy(&ih, bytes.data(), sizeof ih);
        if (ih.opcode == FUSE_FORGET) return ok_result();  // no reply by design
        if (n < sizeof(fuse_out_header)) return make_error(EIO, std::string(what) + ": no reply");
        fuse_out_header oh;
        std::memcpy(&oh, out_.data(), sizeof oh);
        body_ = n - sizeof oh;
        if (oh.error != 0) return make_error(-oh.error, std::string(what) + " failed: " + std::strerror(-oh.error));
        return ok_result();
    }
    size_t reply_body_size() const { return body_; }
    template <class T>
    T reply(size_t off = 0) const {
        T v;
        std::memcpy(&v, out_.data() + sizeof(fuse_out_header) + off, sizeof v);
        return v;
    }

private:
    Server& s_;
    std::vector<uint8_t> out_;
    uint64_t unique_ = 0;
    size_t body_ = 0;  // bytes after the fuse_out_header in the last reply
};

void report(const char* what, double us, long n, const char* per = "request") {
    std::printf("%-34s %8.2f us CPU/%s  (%ld)\n", what, us / double(n), per, n);
}

// Times `n` calls of `one(i)` on this thread's CPU clock.
Result<double> timed(long n, const std::function<Result<void>(long)>& one) {
    double t0 = thread_cpu_us();
    for (long i = 0; i < n; ++i) KRUNLET_CHECK(one(i));
    return thread_cpu_us() - t0;
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

// READDIRPLUS of a directory of 500 empty files with a 32 KiB buffer (what the guest kernel
// asks for when a getdents64 buffer is that big), per entry returned. Each entry other than "."
// and ".." is a lookup on the server, which opens an inode for it; the FORGETs that follow are
// not timed.
Result<void> bench_readdirplus(Harness& h, const std::string& dir, long iters) {
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
    double us = 0;
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
            double t0 = thread_cpu_us();
            KRUNLET_CHECK(h.call(rq.obj(ri), "READDIRPLUS"));
            us += thread_cpu_us() - t0;
            const size_t len = h.reply_body_size();
            if (len == 0) break;
            // struct fuse_direntplus records, each padded to 8 bytes (<linux/fuse.h>).
            for (size_t pos = 0; pos + FUSE_NAME_OFFSET_DIRENTPLUS <= len;) {
                auto e = h.reply<fuse_entry_out>(pos);
                auto d = h.reply<fuse_dirent>(pos + sizeof(fuse_entry_out));
                if (e.nodeid != 0) nodes.push_back(e.nodeid);
                ++entries;
                off = d.off;
                pos += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + d.namelen);
            }
        }
        fuse_release_in rel{};
        rel.fh = dfh;
        Request rd(FUSE_RELEASEDIR, dnode);
        KRUNLET_CHECK(h.call(rd.obj(rel), "RELEASEDIR"));
        for (uint64_t n : nodes) {
            fuse_forget_in fo{1};
            Request rf(FUSE_FORGET, n);
            KRUNLET_CHECK(h.call(rf.obj(fo), "FORGET"));
        }
        if (round == 0 && nodes.size() != kFiles)
            return make_error(EIO, "READDIRPLUS returned " + std::to_string(nodes.size()) + " looked-up entries, not " +
                                       std::to_string(kFiles));
    }
    report("READDIRPLUS, per entry (+ lookup)", us, entries, "entry  ");
    return remove_tree(sub);
}

Result<void> bench(const std::string& dir, long iters) {
    const std::string data = dir + "/data";
    {
        UniqueFd fd(::open(data.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (!fd.valid()) return errno_error("creating " + data);
        std::vector<uint8_t> mib(1 << 20, 0x33);
        for (int i = 0; i < 64; ++i)
            if (::write(fd.get(), mib.data(), mib.size()) != ssize_t(mib.size())) return errno_error("writing " + data);
    }
    fs::ServerConfig cfg;
    cfg.root_dir = dir;
    cfg.cache = fs::CachePolicy::Auto;  // what krunlet uses for the root filesystem
    auto made = Server::create(cfg);
    if (!made.ok()) return made.error();
    Harness h(**made);

    fuse_init_in init{};
    init.major = FUSE_KERNEL_VERSION;
    init.minor = FUSE_KERNEL_MINOR_VERSION;
    init.max_readahead = 128 * 1024;
    init.flags = 0xffffffffu;
    Request ri(FUSE_INIT, 0);
    KRUNLET_CHECK(h.call(ri.obj(init), "INIT"));

    Request lookup(FUSE_LOOKUP, FUSE_ROOT_ID);
    lookup.name("data");
    KRUNLET_CHECK(h.call(lookup, "LOOKUP data"));
    const uint64_t node = h.reply<fuse_entry_out>().nodeid;
    fuse_open_in oi{};
    oi.flags = O_RDWR;
    Request open(FUSE_OPEN, node);
    KRUNLET_CHECK(h.call(open.obj(oi), "OPEN data"));
    const uint64_t fh = h.reply<fuse_open_out>().fh;

    std::printf("krunlet-bench fs-host: Server::handle() on %s (%s), cache=auto, %s\n", dir.c_str(),
                fs_type(dir).c_str(), ::geteuid() == 0 ? "as root" : "not root");
    for (int warm = 0; warm < 1000; ++warm) KRUNLET_CHECK(h.call(lookup, "LOOKUP"));

    auto t = timed(iters, [&](long) { return h.call(lookup, "LOOKUP"); });
    if (!t.ok()) return t.error();
    report("LOOKUP (inode already known)", *t, iters);

    Request getattr(FUSE_GETATTR, node);
    getattr.obj(fuse_getattr_in{});
    t = timed(iters, [&](long) { return h.call(getattr, "GETATTR"); });
    if (!t.ok()) return t.error();
    report("GETATTR", *t, iters);

    // 4 KiB reads at pseudo-random page offsets of the 64 MiB file (host page cache warm).
    t = timed(iters, [&](long i) {
        fuse_read_in r{};
        r.fh = fh;
        r.offset = (uint64_t(i) * 2654435761u % 16384) * 4096;
        r.size = 4096;
        Request rq(FUSE_READ, node);
        return h.call(rq.obj(r), "READ");
    });
    if (!t.ok()) return t.error();
    report("READ 4 KiB", *t, iters);

    t = timed(iters, [&](long i) {
        fuse_write_in w{};
        w.fh = fh;
        w.offset = (uint64_t(i) % 16384) * 4096;
        w.size = 4096;
        Request rq(FUSE_WRITE, node);
        rq.obj(w).payload(4096, 0x44);
        return h.call(rq, "WRITE");
    });
    if (!t.ok()) return t.error();
    report("WRITE 4 KiB", *t, iters);

    // File operations, in batches: only the measured request is inside the timing; the cleanup
    // that keeps the directory small (RELEASE, FORGET, unlink) is not.
    const long batch = 250;  // holds 2 fds per file until cleanup: stays far below RLIMIT_NOFILE
    const long file_ops = std::max(batch, iters / 5 / batch * batch);
    double create_us = 0, lookup_new_us = 0, unlink_us = 0;
    for (long done = 0; done < file_ops; done += batch) {
        std::vector<std::pair<uint64_t, uint64_t>> made_nodes;  // node, fh
        double t0 = thread_cpu_us();
        for (long i = 0; i < batch; ++i) {
            fuse_create_in c{};
            c.flags = O_WRONLY | O_CREAT | O_EXCL;
            c.mode = S_IFREG | 0644;
            Request rq(FUSE_CREATE, FUSE_ROOT_ID);
            rq.obj(c).name("c" + std::to_string(i));
            KRUNLET_CHECK(h.call(rq, "CREATE"));
            made_nodes.emplace_back(h.reply<fuse_entry_out>().nodeid,
                                    h.reply<fuse_open_out>(sizeof(fuse_entry_out)).fh);
        }
        create_us += thread_cpu_us() - t0;
        for (auto [n, f] : made_nodes) {
            fuse_release_in rel{};
            rel.fh = f;
            Request rr(FUSE_RELEASE, n);
            KRUNLET_CHECK(h.call(rr.obj(rel), "RELEASE"));
            fuse_forget_in fo{1};
            Request rf(FUSE_FORGET, n);
            KRUNLET_CHECK(h.call(rf.obj(fo), "FORGET"));
        }
        // The cold lookup path: the server has no inode for these names and opens one each.
        t0 = thread_cpu_us();
        for (long i = 0; i < batch; ++i) {
            Request rq(FUSE_LOOKUP, FUSE_ROOT_ID);
            rq.name("c" + std::to_string(i));
            KRUNLET_CHECK(h.call(rq, "LOOKUP (new inode)"));
            fuse_forget_in fo{1};
            Request rf(FUSE_FORGET, h.reply<fuse_entry_out>().nodeid);
            KRUNLET_CHECK(h.call(rf.obj(fo), "FORGET"));
        }
        lookup_new_us += thread_cpu_us() - t0;
        t0 = thread_cpu_us();
        for (long i = 0; i < batch; ++i) {
            Request rq(FUSE_UNLINK, FUSE_ROOT_ID);
            rq.name("c" + std::to_string(i));
            KRUNLET_CHECK(h.call(rq, "UNLINK"));
        }
        unlink_us += thread_cpu_us() - t0;
    }
    KRUNLET_CHECK(bench_readdirplus(h, dir, iters));
    report("CREATE (new file, opened)", create_us, file_ops);
    report("LOOKUP (new inode) + FORGET", lookup_new_us, file_ops, "pair   ");
    report("UNLINK", unlink_us, file_ops);
    std::printf("Each figure includes building the request (a few hundred ns); READ and WRITE hit the host "
                "page cache.\n");
    return ok_result();
}

}  // namespace

CLI::App* add_fs_host_command(CLI::App& app, FsHostOptions& o) {
    auto* c = app.add_subcommand("fs-host",
                                 "CPU per FUSE request of krunlet's virtio-fs server, on this CPU (no guest)");
    c->add_option("--iterations", o.iterations, "requests per measurement (file operations: a fifth of it)")
        ->check(CLI::Range(1000L, 100000000L))->capture_default_str();
    c->add_option("--dir", o.dir,
                  "an existing directory to work in (default: a new one under $TMPDIR, else /dev/shm, else /tmp)");
    return c;
}

int run_fs_host(const FsHostOptions& o) {
    std::string dir = o.dir;
    bool made_dir = false;
    if (dir.empty()) {
        // tmpfs by default: the numbers are then the server's, not a disk file system's (on an
        // ext4 here, creating a file cost about 1 ms of CPU with or without the server).
        const char* tmp = std::getenv("TMPDIR");
        std::string base = tmp && *tmp ? tmp : ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        std::string tmpl = base + "/krunlet-fs-host-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) {
            std::perror(("mkdtemp " + tmpl).c_str());
            return 1;
        }
        dir = tmpl;
        made_dir = true;
    } else {
        std::string sub = dir + "/krunlet-fs-host";
        if (::mkdir(sub.c_str(), 0755) != 0) {
            std::perror(("krunlet-bench fs-host: mkdir " + sub).c_str());
            return 1;
        }
        dir = sub;
        made_dir = true;
    }
    auto r = bench(dir, o.iterations);
    if (made_dir) (void)remove_tree(dir);
    if (!r.ok()) {
        std::fprintf(stderr, "krunlet-bench fs-host: %s\n", r.error().message.c_str());
        return 1;
    }
    return 0;
}

}  // namespace krunlet::bench
