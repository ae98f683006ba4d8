// Test support: a temp directory and a minimal FUSE client that encodes real requests and
// drives Server::handle() the way the virtio-fs device does.
#pragma once

#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "virtiofs/server.h"

namespace vfstest {

using krunlet::fs::CachePolicy;
using krunlet::fs::Server;
using krunlet::fs::ServerConfig;

// A fresh directory under `base` (/tmp, or /dev/shm for tmpfs), removed (recursively) at
// the end of the test.
class TempDir {
public:
    explicit TempDir(const std::string& base = "/tmp") {
        std::string tmpl = base + "/krunlet-vfs-XXXXXX";
        char* p = ::mkdtemp(tmpl.data());
        REQUIRE(p != nullptr);
        path_ = p;
    }
    ~TempDir() {
        ::nftw(
            path_.c_str(),
            [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 64,
            FTW_DEPTH | FTW_PHYS);
    }
    const std::string& path() const { return path_; }
    std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

private:
    std::string path_;
};

inline void write_file(const std::string& path, std::string_view content, mode_t mode = 0644) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    ::close(fd);
}

inline std::string read_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "<missing>";
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) s.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return s;
}

inline struct stat lstat_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return st;
}

inline bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

// Request argument bytes, built front to back.
class Args {
public:
    template <class T>
    Args& obj(const T& v) {
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        b_.insert(b_.end(), p, p + sizeof(T));
        return *this;
    }
    Args& str(std::string_view s) {  // NUL-terminated, as the kernel sends names
        b_.insert(b_.end(), s.begin(), s.end());
        b_.push_back(0);
        return *this;
    }
    Args& raw(std::string_view s) {
        b_.insert(b_.end(), s.begin(), s.end());
        return *this;
    }
    Args& raw(const std::vector<uint8_t>& v) {
        b_.insert(b_.end(), v.begin(), v.end());
        return *this;
    }
    const std::vector<uint8_t>& bytes() const { return b_; }

private:
    std::vector<uint8_t> b_;
};

struct Reply {
    size_t returned = 0;  // what handle() returned
    fuse_out_header hdr{};
    std::vector<uint8_t> body;

    int error() const { return -hdr.error; }  // positive errno, 0 = success
    template <class T>
    T as(size_t off = 0) const {
        T v{};
        REQUIRE(off + sizeof(T) <= body.size());
        std::memcpy(&v, body.data() + off, sizeof(T));
        return v;
    }
    std::string text() const { return std::string(body.begin(), body.end()); }
};

// The out buffers are deliberately split at odd places (inside the header and inside the
// first reply struct) so every reply exercises the scatter writer.
class Client {
public:
    explicit Client(Server& s) : s_(s) {}

    uint32_t uid = 0;
    uint32_t gid = 0;
    size_t out_size = (size_t{1} << 20) + 4096;

    std::vector<uint8_t> request(uint32_t opcode, uint64_t nodeid, const Args& a) {
        fuse_in_header h{};
        h.len = static_cast<uint32_t>(sizeof(h) + a.bytes().size());
        h.opcode = opcode;
        h.unique = ++unique_;
        h.nodeid = nodeid;
        h.uid = uid;
        h.gid = gid;
        h.pid = 4242;
        std::vector<uint8_t> req(sizeof(h));
        std::memcpy(req.data(), &h, sizeof(h));
        req.insert(req.end(), a.bytes().begin(), a.bytes().end());
        return req;
    }

    Reply send_raw(const std::vector<uint8_t>& req, size_t out_total) {
        std::vector<uint8_t> out(out_total + 64, 0xAB);  // poisoned, with a guard tail
        std::vector<iovec> iov;
        size_t cuts[] = {5, 13};  // 5 | 8 | 13... : header and first struct straddle buffers
        size_t pos = 0;
        for (size_t c : cuts) {
            if (pos + c >= out_total) break;
            iov.push_back({out.data() + pos, c});
            pos += c;
        }
        iov.push_back({out.data() + pos, out_total - pos});
        if (out_total == 0) iov.clear();
        Reply r;
        r.returned = s_.handle(req, iov);
        for (size_t i = out_total; i < out.size(); ++i) REQUIRE_MESSAGE(out[i] == 0xAB, "wrote past the out buffers");
        REQUIRE(r.returned <= out_total);
        if (r.returned >= sizeof(fuse_out_header)) {
            std::memcpy(&r.hdr, out.data(), sizeof(r.hdr));
            REQUIRE(r.hdr.len == r.returned);
            r.body.assign(out.begin() + sizeof(fuse_out_header), out.begin() + static_cast<long>(r.returned));
        }
        return r;
    }

    Reply call(uint32_t opcode, uint64_t nodeid, const Args& a = Args()) {
        auto req = request(opcode, nodeid, a);
        Reply r = send_raw(req, out_size);
        if (r.returned != 0) CHECK(r.hdr.unique == unique_);
        return r;
    }

    // ---- convenience wrappers -------------------------------------------------------------
    Reply init(uint32_t minor = 38, uint32_t flags = 0xffffffffu) {
        fuse_init_in in{};
        in.major = 7;
        in.minor = minor;
        in.max_readahead = 128 * 1024;
        in.flags = flags;
        return call(FUSE_INIT, 0, Args().obj(in));
    }
    Reply lookup(uint64_t parent, std::string_view name) { return call(FUSE_LOOKUP, parent, Args().str(name)); }
    // Looks up a name that must exist; returns its node id.
    uint64_t node(uint64_t parent, std::string_view name) {
        Reply r = lookup(parent, name);
        REQUIRE_MESSAGE(r.error() == 0, "lookup " << name << " failed: " << r.error());
        auto e = r.as<fuse_entry_out>();
        REQUIRE(e.nodeid != 0);
        return e.nodeid;
    }
    Reply getattr(uint64_t node) { return call(FUSE_GETATTR, node, Args().obj(fuse_getattr_in{})); }
    Reply open(uint64_t node, uint32_t flags, uint32_t opcode = FUSE_OPEN) {
        fuse_open_in in{};
        in.flags = flags;
        return call(opcode, node, Args().obj(in));
    }
    uint64_t open_fh(uint64_t node, uint32_t flags, uint32_t opcode = FUSE_OPEN) {
        Reply r = open(node, flags, opcode);
        REQUIRE_MESSAGE(r.error() == 0, "open failed: " << r.error());
        return r.as<fuse_open_out>().fh;
    }
    Reply read(uint64_t node, uint64_t fh, uint64_t off, uint32_t size, uint32_t opcode = FUSE_READ) {
        fuse_read_in in{};
        in.fh = fh;
        in.offset = off;
        in.size = size;
        return call(opcode, node, Args().obj(in));
    }
    Reply write(uint64_t node, uint64_t fh, uint64_t off, std::string_view data) {
        fuse_write_in in{};
        in.fh = fh;
        in.offset = off;
        in.size = static_cast<uint32_t>(data.size());
        return call(FUSE_WRITE, node, Args().obj(in).raw(data));
    }
    Reply release(uint64_t node, uint64_t fh, uint32_t opcode = FUSE_RELEASE) {
        fuse_release_in in{};
        in.fh = fh;
        return call(opcode, node, Args().obj(in));
    }
    void forget(uint64_t node, uint64_t n) {
        fuse_forget_in in{};
        in.nlookup = n;
        Reply r = call(FUSE_FORGET, node, Args().obj(in));
        CHECK(r.returned == 0);
    }
    Reply mkdir(uint64_t parent, std::string_view name, uint32_t mode, uint32_t umask = 0) {
        fuse_mkdir_in in{};
        in.mode = mode;
        in.umask = umask;
        return call(FUSE_MKDIR, parent, Args().obj(in).str(name));
    }
    Reply mknod(uint64_t parent, std::string_view name, uint32_t mode, uint32_t rdev = 0, uint32_t umask = 0) {
        fuse_mknod_in in{};
        in.mode = mode;
        in.rdev = rdev;
        in.umask = umask;
        return call(FUSE_MKNOD, parent, Args().obj(in).str(name));
    }
    Reply create(uint64_t parent, std::string_view name, uint32_t flags, uint32_t mode, uint32_t umask = 0) {
        fuse_create_in in{};
        in.flags = flags;
        in.mode = mode;
        in.umask = umask;
        return call(FUSE_CREATE, parent, Args().obj(in).str(name));
    }
    Reply symlink(uint64_t parent, std::string_view name, std::string_view target) {
        return call(FUSE_SYMLINK, parent, Args().str(name).str(target));
    }
    Reply setattr(uint64_t node, const fuse_setattr_in& in) { return call(FUSE_SETATTR, node, Args().obj(in)); }

private:
    Server& s_;
    uint64_t unique_ = 100;
};

// A server for `cfg` with INIT already done.
inline std::unique_ptr<Server> make_server(const ServerConfig& cfg) {
    auto s = Server::create(cfg);
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
    Client c(**s);
    REQUIRE(c.init().error() == 0);
    return std::move(*s);
}

// A server on `dir` with INIT already done.
inline std::unique_ptr<Server> make_server(const std::string& dir, CachePolicy cache = CachePolicy::Never,
                                           bool read_only = false, std::span<const uint8_t> init = {},
                                           size_t max_inodes = 65536, size_t max_handles = 65536) {
    ServerConfig cfg;
    cfg.root_dir = dir;
    cfg.cache = cache;
    cfg.read_only = read_only;
    cfg.init_binary = init;
    cfg.max_inodes = max_inodes;
    cfg.max_handles = max_handles;
    auto s = Server::create(cfg);
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
    Client c(**s);
    REQUIRE(c.init().error() == 0);
    return std::move(*s);
}

}  // namespace vfstest
