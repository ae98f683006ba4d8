// fuzz_fuse: the virtio-fs server (virtiofs/server.h) against a real
// directory, fed FUSE requests (<linux/fuse.h>, protocol 7.31-7.38).
//
// Structure-aware: the input is decoded into a sequence of up to 64 requests.
// The opcode, header fields and argument structs come from the input, but
// the header length is made consistent most of the time, node ids and file
// handles are mostly ones earlier replies handed out, names come from a
// small dictionary (plus raw bytes), and fields such as WRITE's size agree
// with the payload most of the time, so most requests are valid and reach
// the backend (the encoding is in fuse_requests.h). Most inputs start with
// a well-formed INIT. Each input gets a fresh Server (with a fuzzer-chosen
// config: read-only, cache policy, inode and handle limits, lock policy,
// cache timeouts) over a freshly
// reset seed tree (fuse_sandbox.h).
//
// Reply buffers are 1-4 iovecs carved out of one arena with poisoned gaps
// between them (ASan reports a write outside them at once; the gaps are
// also pattern-checked afterwards). Checked for every request:
//   - handle() never writes outside the iovecs or returns more than they hold;
//   - a reply comes for every request but FORGET/BATCH_FORGET/INTERRUPT (and
//     none for those), with out.len == returned, the request's unique, an
//     errno in range, and no body after an error;
//   - the thread's fsuid, fsgid and supplementary groups are restored;
//   - an OPEN/CREATE never succeeds on a FIFO, socket, device or symlink;
//   - READ never returns more than asked.
// And for every input: the inode/handle limits hold, a read-only share is
// left unchanged, no fd leaks once the Server is gone, and nothing outside
// the served directory changes (canary files, also checked at exit).
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/fuse.h>
#include <sanitizer/asan_interface.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <dirent.h>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fuse_requests.h"
#include "fuse_sandbox.h"
#include "fuzz_util.h"
#include "virtiofs/server.h"

using krunlet::fs::Server;
using krunlet::fs::ServerConfig;
using krunlet::fuzz::Args;
using krunlet::fuzz::FuseSandbox;
using krunlet::fuzz::Input;
using krunlet::fuzz::Known;
using krunlet::fuzz::RequestBuilder;

namespace {

constexpr size_t kMaxRequests = 64;
constexpr size_t kFullOut = (size_t{1} << 20) + 4096;  // what the Linux client posts
constexpr size_t kGap = 64;
constexpr uint8_t kGapByte = 0x5a;

// ---- reply buffers ------------------------------------------------------------------------------

class OutArena {
public:
    OutArena() : buf_(kFullOut + 8 * (kGap + 16)) {}

    // `total` bytes in up to four iovecs, each followed by a poisoned gap.
    std::vector<iovec> layout(size_t total, std::array<size_t, 3> cuts) {
        iov_.clear();
        gaps_.clear();
        size_t pos = kGap;
        size_t left = total;
        for (size_t k = 0; k <= cuts.size() && (left > 0 || k == 0); ++k) {
            size_t len = k < cuts.size() ? std::min(cuts[k], left) : left;
            if (len == 0 && k < cuts.size()) continue;
            // End each piece on an 8-byte boundary so ASan can poison exactly what follows it.
            size_t end = (pos + len + 7) & ~size_t{7};
            uint8_t* start = buf_.data() + end - len;
            std::fill(buf_.data() + pos, start, kGapByte);
            iov_.push_back(iovec{start, len});
            std::fill(buf_.data() + end, buf_.data() + end + kGap, kGapByte);
            gaps_.push_back({pos, static_cast<size_t>(start - buf_.data())});
            gaps_.push_back({end, end + kGap});
            ASAN_POISON_MEMORY_REGION(buf_.data() + end, kGap);
            pos = end + kGap;
            left -= len;
        }
        if (total == 0) iov_.clear();
        return iov_;
    }

    // After the call: unpoison, and check that nothing was written between the pieces.
    void check_gaps() {
        for (auto [a, b] : gaps_) {
            ASAN_UNPOISON_MEMORY_REGION(buf_.data() + a, b - a);
            for (size_t i = a; i < b; ++i) FUZZ_CHECK(buf_[i] == kGapByte, "handle() wrote outside its out buffers");
        }
    }

    // The first `n` reply bytes, gathered from the pieces.
    std::vector<uint8_t> gather(size_t n) const {
        std::vector<uint8_t> out;
        for (const iovec& v : iov_) {
            if (out.size() >= n) break;
            size_t k = std::min(n - out.size(), v.iov_len);
            const auto* p = static_cast<const uint8_t*>(v.iov_base);
            out.insert(out.end(), p, p + k);
        }
        return out;
    }

private:
    std::vector<uint8_t> buf_;
    std::vector<iovec> iov_;
    std::vector<std::pair<size_t, size_t>> gaps_;
};

const std::vector<uint8_t>& init_binary() {
    static const std::vector<uint8_t>* b = [] {
        auto* v = new std::vector<uint8_t>(3000);
        for (size_t i = 0; i < v->size(); ++i) (*v)[i] = static_cast<uint8_t>(i * 13 + 7);
        return v;
    }();
    return *b;
}

// The process's supplementary group count before any request ran.
int baseline_groups() {
    static const int n = ::getgroups(0, nullptr);
    return n;
}

// ---- the session ----------------------------------------------------------------------------

class Session {
public:
    Session(Input& in, Server& s, OutArena& arena) : in_(in), s_(s), arena_(arena) {}

    void run() {
        if ((in_.u8() & 0x0f) != 0) send(FUSE_INIT, 0, rb_.init_args(true), 0);
        for (size_t i = 0; i < kMaxRequests && !in_.empty(); ++i) one_request();
    }

private:
    // ---- one request ----
    void one_request() {
        const uint32_t op = rb_.opcode();
        const uint64_t nodeid = op == FUSE_INIT ? 0 : rb_.node();
        const Args args = rb_.build(op);
        const uint8_t header_mode = in_.u8();
        send(op, nodeid, args, header_mode);
    }

    // The request bytes: header fields from the input (header mode `f`), len mostly consistent.
    std::vector<uint8_t> encode(uint32_t op, uint64_t nodeid, const Args& args, uint8_t f, fuse_in_header& h) {
        h = fuse_in_header{};
        h.opcode = op;
        h.nodeid = nodeid;
        h.unique = (f & 0x80) && in_.u8() == 0xff ? in_.u64() : ++unique_;
        if (f & 0x08) {
            static constexpr std::array<uint32_t, 4> kIds = {0, 1000, 65534, 4242};
            h.uid = in_.u8() < 0xf0 ? in_.pick(kIds) : in_.u32();
            h.gid = in_.u8() < 0xf0 ? in_.pick(kIds) : in_.u32();
        }
        h.pid = 4242;
        std::vector<uint8_t> ext;
        if (f & 0x04) {
            h.total_extlen = static_cast<uint16_t>(in_.u8() % 4);
            ext.assign(8u * h.total_extlen, 0);
            if (in_.u8() == 0xff) ext.clear();  // claims extensions it does not carry
        }
        std::vector<uint8_t> req(sizeof h);
        req.insert(req.end(), args.bytes().begin(), args.bytes().end());
        req.insert(req.end(), ext.begin(), ext.end());
        h.len = static_cast<uint32_t>(req.size());
        if ((f & 0x03) == 0x03) h.len = in_.u8() < 0x80 ? h.len + static_cast<int8_t>(in_.u8()) : in_.u32();
        std::memcpy(req.data(), &h, sizeof h);
        if ((f & 0x30) == 0x30 && in_.u8() == 0xff) req.resize(in_.u8() % sizeof h);  // not even a header
        return req;
    }

    // Reply space: usually what the Linux client gives, sometimes much less; 1-4 pieces.
    std::vector<iovec> out_buffers(uint8_t f) {
        size_t total = kFullOut;
        switch ((f >> 4) & 3) {
            case 1: total = in_.u16() % 8192; break;
            case 2: total = in_.u8() % 96; break;
            default: break;
        }
        std::array<size_t, 3> cuts{};
        uint8_t nc = in_.u8() % 4;
        for (size_t k = 0; k < nc; ++k) cuts[k] = in_.u8() % 48;
        if (nc == 0) cuts = {total, 0, 0};
        return arena_.layout(total, cuts);
    }

    void send(uint32_t op, uint64_t nodeid, const Args& args, uint8_t f) {
        fuse_in_header h;
        const std::vector<uint8_t> req = encode(op, nodeid, args, f, h);
        const std::vector<iovec> iov = out_buffers(f);
        size_t cap = 0;
        for (const iovec& v : iov) cap += v.iov_len;

        const size_t returned = s_.handle(req, iov);
        if (krunlet::fuzz::tracing()) {
            int err = 0;
            if (returned >= sizeof(fuse_out_header)) std::memcpy(&err, arena_.gather(16).data() + 4, sizeof err);
            std::fprintf(stderr, "fuse: op %u node %llu in %zu (len %u) out %zu -> %zu bytes, error %d\n", op,
                         static_cast<unsigned long long>(nodeid), req.size(), h.len, cap, returned, err);
        }
        arena_.check_gaps();
        check_creds();
        FUZZ_CHECK(returned <= cap, "handle() claims more bytes than the out buffers hold");

        // The envelope rules (server.h): who gets a reply, and what its header says.
        const bool whole_header = req.size() >= sizeof h;
        const bool no_reply = op == FUSE_FORGET || op == FUSE_BATCH_FORGET || op == FUSE_INTERRUPT;
        if (no_reply && whole_header) {
            FUZZ_CHECK(returned == 0, "a reply to FORGET/BATCH_FORGET/INTERRUPT");
            return;
        }
        if (cap < sizeof(fuse_out_header)) {
            FUZZ_CHECK(returned == 0, "a reply that does not fit a header");
            return;
        }
        FUZZ_CHECK(returned >= sizeof(fuse_out_header), "no reply to opcode " + std::to_string(op));
        std::vector<uint8_t> reply = arena_.gather(std::min<size_t>(returned, 256 * 1024));
        fuse_out_header out{};
        std::memcpy(&out, reply.data(), sizeof out);
        FUZZ_CHECK(out.len == returned, "out.len != returned length");
        FUZZ_CHECK(out.error <= 0 && out.error > -4096, "errno out of range: " + std::to_string(out.error));
        FUZZ_CHECK(out.unique == (whole_header ? h.unique : 0), "reply carries the wrong unique");
        if (out.error != 0) {
            FUZZ_CHECK(returned == sizeof out, "an error reply with a body");
            return;
        }
        if (whole_header && h.len == req.size()) learn(op, nodeid, args, reply);
    }

    // ---- what successful replies tell us ----
    template <class T>
    bool body(const std::vector<uint8_t>& reply, size_t off, T& v) {
        if (reply.size() < sizeof(fuse_out_header) + off + sizeof v) return false;
        std::memcpy(&v, reply.data() + sizeof(fuse_out_header) + off, sizeof v);
        return true;
    }
    static bool special(uint32_t mode) { return !S_ISREG(mode) && !S_ISDIR(mode); }

    void learn(uint32_t op, uint64_t nodeid, const Args& args, const std::vector<uint8_t>& reply) {
        fuse_entry_out e{};
        fuse_open_out o{};
        fuse_attr_out at{};
        switch (op) {
            case FUSE_LOOKUP:
            case FUSE_MKNOD:
            case FUSE_MKDIR:
            case FUSE_SYMLINK:
            case FUSE_LINK:
                if (body(reply, 0, e)) known_.remember(e.nodeid, e.attr.mode);
                break;
            case FUSE_CREATE:
            case FUSE_TMPFILE:
                if (body(reply, 0, e) && body(reply, sizeof e, o)) {
                    FUZZ_CHECK(!special(e.attr.mode), "CREATE opened a special file (mode " + std::to_string(e.attr.mode) + ")");
                    known_.remember(e.nodeid, e.attr.mode);
                    known_.remember_fh(o.fh);
                }
                break;
            case FUSE_OPEN:
            case FUSE_OPENDIR:
                if (body(reply, 0, o)) {
                    auto m = known_.modes.find(nodeid);
                    if (op == FUSE_OPEN && m != known_.modes.end())
                        FUZZ_CHECK(!special(m->second), "OPEN succeeded on a special file (mode " +
                                                            std::to_string(m->second) + ")");
                    known_.remember_fh(o.fh);
                }
                break;
            case FUSE_GETATTR:
            case FUSE_SETATTR:
                if (body(reply, 0, at) && known_.modes.count(nodeid)) known_.modes[nodeid] = at.attr.mode;
                break;
            case FUSE_READ: {
                fuse_read_in r{};
                if (args.bytes().size() >= sizeof r) {
                    std::memcpy(&r, args.bytes().data(), sizeof r);
                    FUZZ_CHECK(reply.size() - sizeof(fuse_out_header) <= r.size, "READ returned more than asked");
                }
                break;
            }
            case FUSE_READDIRPLUS: {
                // fuse_direntplus records: an entry_out, a dirent, the name, padding to 8.
                size_t off = sizeof(fuse_out_header);
                while (off + sizeof(fuse_direntplus) <= reply.size()) {
                    fuse_direntplus d;
                    std::memcpy(&d, reply.data() + off, sizeof d);
                    size_t rec = FUSE_DIRENTPLUS_SIZE(&d);  // the kernel's own record size
                    FUZZ_CHECK(d.dirent.namelen > 0 && d.dirent.namelen <= 255, "direntplus with a bad name length");
                    known_.remember(d.entry_out.nodeid, d.entry_out.attr.mode);
                    off += rec;
                }
                break;
            }
            case FUSE_INIT: {
                fuse_init_out i{};
                if (body(reply, 0, i)) FUZZ_CHECK(i.major == FUSE_KERNEL_VERSION, "INIT answered another major version");
                break;
            }
            default: break;
        }
    }

    // The server switches fsuid/fsgid/groups per request; they must be back afterwards.
    void check_creds() {
        FUZZ_CHECK(::setfsuid(static_cast<uid_t>(-1)) == static_cast<int>(::geteuid()), "fsuid not restored");
        FUZZ_CHECK(::setfsgid(static_cast<gid_t>(-1)) == static_cast<int>(::getegid()), "fsgid not restored");
        gid_t groups[64];
        int n = ::getgroups(64, groups);
        FUZZ_CHECK(n == baseline_groups(), "supplementary groups not restored");
    }

    Input& in_;
    Server& s_;
    OutArena& arena_;
    uint64_t unique_ = 0;
    Known known_;
    RequestBuilder rb_{in_, known_};
};

// ---- per-input checks ---------------------------------------------------------------------------

size_t open_fds() {
    size_t n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (::readdir(d) != nullptr) ++n;
        ::closedir(d);
    }
    return n;
}

// Everything about the tree a read-only share must not change (atime aside).
std::string tree_fingerprint(const std::string& root) {
    static std::string* acc;
    std::string out;
    acc = &out;
    ::nftw(
        root.c_str(),
        [](const char* p, const struct stat* st, int, struct FTW*) {
            char line[512];
            std::snprintf(line, sizeof line, "%s %o %u %u %lld %lld.%ld %lld.%ld\n", p, st->st_mode, st->st_uid,
                          st->st_gid, static_cast<long long>(st->st_size), static_cast<long long>(st->st_mtim.tv_sec),
                          st->st_mtim.tv_nsec, static_cast<long long>(st->st_ctim.tv_sec), st->st_ctim.tv_nsec);
            *acc += line;
            return 0;
        },
        16, FTW_PHYS);
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static OutArena* arena = new OutArena();  // reused: a 1 MiB allocation per request would dominate
    FuseSandbox& box = FuseSandbox::get();
    box.reset();
    Input in(data, size);

    const uint8_t c = in.u8();
    ServerConfig cfg;
    cfg.root_dir = box.share();
    cfg.read_only = (c & 0x0f) == 0x0f;
    cfg.cache = static_cast<krunlet::fs::CachePolicy>((c >> 4) % 3);
    static constexpr std::array<size_t, 4> kLimits = {65536, 65536, 8, 2};
    cfg.max_inodes = kLimits[(c >> 6) & 3];
    const uint8_t c2 = in.u8();
    cfg.max_handles = kLimits[c2 & 3];
    // Host locks (OFD locks/flock on the share's files) unless bit 2 asks for guest-kept ones.
    cfg.locks = (c2 & 4) ? krunlet::fs::LockPolicy::Guest : krunlet::fs::LockPolicy::Host;
    if (c2 & 8) cfg.entry_timeout = std::chrono::milliseconds(1500);
    if (c2 & 16) cfg.attr_timeout = std::chrono::nanoseconds(0);
    cfg.init_binary = init_binary();
    const std::string before = cfg.read_only ? tree_fingerprint(box.share()) : "";
    const size_t fds = open_fds();
    (void)baseline_groups();
    {
        auto server = Server::create(cfg);
        FUZZ_CHECK(server.ok(), "Server::create: " + (server.ok() ? "" : server.error().message));
        Session session(in, **server, *arena);
        session.run();
        auto st = (*server)->stats();
        FUZZ_CHECK(st.inodes <= cfg.max_inodes, "more live inodes than max_inodes");
        FUZZ_CHECK(st.handles + st.lock_owners <= cfg.max_handles,
                   "more open handles (lock owners included) than max_handles");
    }
    FUZZ_CHECK(open_fds() == fds, "file descriptors leaked after the Server was destroyed");
    if (cfg.read_only) FUZZ_CHECK(tree_fingerprint(box.share()) == before, "a read-only share was modified");
    box.check_fence();
    return 0;
}
