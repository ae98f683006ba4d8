// Host CPU time per request through Server::handle(): LOOKUP, GETATTR, a 4 KiB READ, FLUSH,
// COPY_FILE_RANGE of 4 KiB, and (LockPolicy::Host) SETLK + unlock and GETLK.
// Usage: virtiofs_bench [iterations]   (prints microseconds of CPU per request)
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "virtiofs/server.h"

namespace {

using krunlet::fs::Server;

double cpu_now() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

struct Req {
    std::vector<uint8_t> bytes;
    Req(uint32_t opcode, uint64_t nodeid, const void* args, size_t n) : bytes(sizeof(fuse_in_header) + n) {
        fuse_in_header h{};
        h.len = static_cast<uint32_t>(bytes.size());
        h.opcode = opcode;
        h.unique = 1;
        h.nodeid = nodeid;
        std::memcpy(bytes.data(), &h, sizeof(h));
        if (n) std::memcpy(bytes.data() + sizeof(h), args, n);
    }
};

}  // namespace

int main(int argc, char** argv) {
    long iters = argc > 1 ? std::atol(argv[1]) : 200000;
    char tmpl[] = "/tmp/krunlet-vfs-bench-XXXXXX";
    if (!::mkdtemp(tmpl)) return 1;
    std::string dir = tmpl;
    std::string file = dir + "/data";
    {
        int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        std::vector<char> buf(1 << 20, 'x');
        for (int i = 0; i < 16; ++i)
            if (::write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) return 1;
        ::close(fd);
    }
    krunlet::fs::ServerConfig cfg;
    cfg.root_dir = dir;
    cfg.locks = krunlet::fs::LockPolicy::Host;  // INIT then offers locks; other ops are unaffected
    auto made = Server::create(cfg);
    if (!made) {
        std::fprintf(stderr, "%s\n", made.error().message.c_str());
        return 1;
    }
    Server& s = **made;
    std::vector<uint8_t> out((1 << 20) + 4096);
    iovec iov[2] = {{out.data(), sizeof(fuse_out_header)}, {out.data() + sizeof(fuse_out_header), out.size() - 16}};
    auto send = [&](const Req& r) {
        size_t n = s.handle(r.bytes, iov);
        fuse_out_header h;
        std::memcpy(&h, out.data(), sizeof(h));
        if (n < sizeof(h) || h.error != 0) {
            std::fprintf(stderr, "request failed: %d\n", h.error);
            std::exit(1);
        }
        return n;
    };

    fuse_init_in init{};
    init.major = 7;
    init.minor = 38;
    init.flags = 0xffffffffu;
    send(Req(FUSE_INIT, 0, &init, sizeof(init)));

    Req lookup(FUSE_LOOKUP, FUSE_ROOT_ID, "data", 5);
    send(lookup);
    fuse_entry_out e;
    std::memcpy(&e, out.data() + sizeof(fuse_out_header), sizeof(e));
    fuse_getattr_in ga{};
    Req getattr(FUSE_GETATTR, e.nodeid, &ga, sizeof(ga));
    fuse_open_in oi{};
    oi.flags = O_RDONLY;
    send(Req(FUSE_OPEN, e.nodeid, &oi, sizeof(oi)));
    fuse_open_out oo;
    std::memcpy(&oo, out.data() + sizeof(fuse_out_header), sizeof(oo));

    auto measure = [&](const char* what, auto&& make_req) {
        for (int i = 0; i < 1000; ++i) send(make_req(i));  // warm up
        double t0 = cpu_now();
        for (long i = 0; i < iters; ++i) send(make_req(i));
        double us = (cpu_now() - t0) / static_cast<double>(iters);
        std::printf("%-28s %8.2f us CPU/request  (%ld requests)\n", what, us, iters);
    };
    measure("LOOKUP (known inode)", [&](long) -> const Req& { return lookup; });
    measure("GETATTR", [&](long) -> const Req& { return getattr; });
    std::vector<Req> reads;
    for (int i = 0; i < 4096; ++i) {
        fuse_read_in ri{};
        ri.fh = oo.fh;
        ri.offset = static_cast<uint64_t>((i * 2654435761u) % 4096) * 4096;
        ri.size = 4096;
        reads.emplace_back(FUSE_READ, e.nodeid, &ri, sizeof(ri));
    }
    measure("READ 4 KiB (page cache)", [&](long i) -> const Req& { return reads[static_cast<size_t>(i) % reads.size()]; });

    fuse_flush_in fl{};
    fl.fh = oo.fh;
    fl.lock_owner = 77;
    Req flush(FUSE_FLUSH, e.nodeid, &fl, sizeof(fl));
    measure("FLUSH", [&](long) -> const Req& { return flush; });

    fuse_lk_in lk{};
    lk.fh = oo.fh;
    lk.owner = 77;
    lk.lk.start = 0;
    lk.lk.end = 4095;
    lk.lk.type = F_RDLCK;
    lk.lk.pid = 1;
    Req lock(FUSE_SETLK, e.nodeid, &lk, sizeof(lk));
    lk.lk.type = F_UNLCK;
    lk.lk.start = 0;
    lk.lk.end = INT64_MAX;  // the whole file: the owner's descriptor goes too
    Req unlock(FUSE_SETLK, e.nodeid, &lk, sizeof(lk));
    double t0 = cpu_now();
    for (long i = 0; i < iters; ++i) {
        send(lock);
        send(unlock);
    }
    std::printf("%-28s %8.2f us CPU/pair     (%ld pairs)\n", "SETLK + unlock (host locks)",
                (cpu_now() - t0) / static_cast<double>(iters), iters);
    send(lock);  // held during GETLK: the query below conflicts with nothing (read vs read)
    lk.owner = 78;
    lk.lk.type = F_RDLCK;
    lk.lk.end = 4095;
    Req getlk(FUSE_GETLK, e.nodeid, &lk, sizeof(lk));
    measure("GETLK (host locks)", [&](long) -> const Req& { return getlk; });
    send(unlock);

    std::string copy_name = "copy";
    ::close(::open((dir + "/" + copy_name).c_str(), O_WRONLY | O_CREAT, 0644));
    send(Req(FUSE_LOOKUP, FUSE_ROOT_ID, copy_name.c_str(), copy_name.size() + 1));
    fuse_entry_out ce{};
    std::memcpy(&ce, out.data() + sizeof(fuse_out_header), sizeof(ce));
    fuse_open_in wo{};
    wo.flags = O_RDWR;
    send(Req(FUSE_OPEN, ce.nodeid, &wo, sizeof(wo)));
    fuse_open_out cfh{};
    std::memcpy(&cfh, out.data() + sizeof(fuse_out_header), sizeof(cfh));
    fuse_copy_file_range_in cr{};
    cr.fh_in = oo.fh;
    cr.nodeid_out = ce.nodeid;
    cr.fh_out = cfh.fh;
    cr.len = 4096;
    Req copy(FUSE_COPY_FILE_RANGE, e.nodeid, &cr, sizeof(cr));
    measure("COPY_FILE_RANGE 4 KiB", [&](long) -> const Req& { return copy; });
    ::unlink((dir + "/" + copy_name).c_str());

    // Cold path: LOOKUP of an inode the table doesn't hold (opens an O_PATH fd), then FORGET.
    constexpr int kFiles = 1000;
    std::vector<Req> cold;
    for (int i = 0; i < kFiles; ++i) {
        std::string name = "n" + std::to_string(i);
        ::close(::open((dir + "/" + name).c_str(), O_WRONLY | O_CREAT, 0644));
        cold.emplace_back(FUSE_LOOKUP, FUSE_ROOT_ID, name.c_str(), name.size() + 1);
    }
    double cold_us = 0;
    long cold_n = 0;
    for (long round = 0; round < iters / kFiles + 1; ++round) {
        std::vector<uint64_t> ids;
        double t0 = cpu_now();
        for (const Req& r : cold) {
            send(r);
            fuse_entry_out ce;
            std::memcpy(&ce, out.data() + sizeof(fuse_out_header), sizeof(ce));
            fuse_forget_in fi{1};
            s.handle(Req(FUSE_FORGET, ce.nodeid, &fi, sizeof(fi)).bytes, iov);
        }
        cold_us += cpu_now() - t0;
        cold_n += kFiles;
    }
    std::printf("%-28s %8.2f us CPU/pair     (%ld pairs)\n", "LOOKUP (new inode) + FORGET", cold_us / static_cast<double>(cold_n), cold_n);

    for (int i = 0; i < kFiles; ++i) ::unlink((dir + "/n" + std::to_string(i)).c_str());
    ::unlink(file.c_str());
    ::rmdir(dir.c_str());
    return 0;
}
