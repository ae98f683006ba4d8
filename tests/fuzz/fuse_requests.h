// Request encoding for fuzz_fuse: turns fuzzer bytes into FUSE request arguments
// (<linux/fuse.h>, protocol 7.31-7.38) that are mostly valid.
//
// Node ids and file handles are mostly ones earlier replies handed out
// (Known), names come from a small dictionary of the seed tree's entries
// plus hostile ones ("..", "a/b", 256 bytes, an embedded NUL) or raw bytes,
// and fields that must agree with each other (WRITE's size and payload,
// SETXATTR's size and value) agree most of the time. Every struct can come
// out cut short or with junk after it, and every choice has an escape to
// raw input bytes, so the invalid cases stay reachable.
#pragma once

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "fuse_client.h"
#include "fuzz_util.h"

namespace krunlet::fuzz {

using vfstest::Args;

// What earlier replies told the fuzzer: node ids (with their file type) and file handles.
struct Known {
    std::vector<uint64_t> nodes{FUSE_ROOT_ID};
    std::map<uint64_t, uint32_t> modes{{FUSE_ROOT_ID, S_IFDIR | 0755}};
    std::vector<uint64_t> fhs;

    void remember(uint64_t nodeid, uint32_t mode) {
        if (nodeid == 0) return;
        modes[nodeid] = mode;
        if (std::find(nodes.begin(), nodes.end(), nodeid) != nodes.end()) return;
        if (nodes.size() < 64)
            nodes.push_back(nodeid);
        else
            nodes[1 + nodeid % 63] = nodeid;
    }
    void remember_fh(uint64_t f) {
        if (fhs.size() < 32)
            fhs.push_back(f);
        else
            fhs[f % 32] = f;
    }
};

// Names in the seed tree (fuse_sandbox.h), and hostile ones.
inline const std::vector<std::string>& names() {
    static const std::vector<std::string>* v = new std::vector<std::string>{
        "hello", "dir", "inner", "sub", "link", "escape", "abs", "fifo", "null", "big", "exec", "hello2",
        "up", "new", "x", "init.krun", ".", "..", "", "a/b", "../canary", std::string(255, 'n'),
        std::string(256, 'm'), std::string("nul\0in", 6)};
    return *v;
}
// Symlink targets (several lead outside the share) and xattr names of every namespace.
inline const std::array<const char*, 8> kTargets = {"hello", "../canary", "/etc/passwd", "dir/../..",
                                                    "",      "dir",       "fifo",        "../../../../../../../../etc"};
inline const std::array<const char*, 8> kXattrs = {"user.fuzz",          "user.new",
                                                   "trusted.t",          "security.capability",
                                                   "system.posix_acl_access", "security.selinux",
                                                   "",                   "bogus"};

// The opcodes requests are drawn from (weighted by repetition); make_seeds.py mirrors this order.
inline constexpr std::array<uint32_t, 57> kOps = {
    FUSE_LOOKUP,      FUSE_LOOKUP,       FUSE_LOOKUP,     FUSE_GETATTR,       FUSE_SETATTR,    FUSE_SETATTR,
    FUSE_READLINK,    FUSE_SYMLINK,      FUSE_MKNOD,      FUSE_MKDIR,         FUSE_UNLINK,     FUSE_RMDIR,
    FUSE_RENAME,      FUSE_RENAME2,      FUSE_LINK,       FUSE_OPEN,          FUSE_OPEN,       FUSE_OPEN,
    FUSE_OPENDIR,     FUSE_CREATE,       FUSE_CREATE,     FUSE_READ,          FUSE_READ,       FUSE_WRITE,
    FUSE_WRITE,       FUSE_RELEASE,      FUSE_RELEASEDIR, FUSE_FLUSH,         FUSE_FSYNC,      FUSE_FSYNCDIR,
    FUSE_READDIR,     FUSE_READDIRPLUS,  FUSE_READDIRPLUS, FUSE_STATFS,       FUSE_SETXATTR,   FUSE_GETXATTR,
    FUSE_LISTXATTR,   FUSE_REMOVEXATTR,  FUSE_ACCESS,     FUSE_FORGET,        FUSE_BATCH_FORGET, FUSE_INTERRUPT,
    FUSE_FALLOCATE,   FUSE_LSEEK,        FUSE_COPY_FILE_RANGE, FUSE_INIT,     FUSE_DESTROY,    FUSE_TMPFILE,
    0,                FUSE_SETUPMAPPING, FUSE_IOCTL,      CUSE_INIT,          FUSE_GETLK,      FUSE_SETLK,
    FUSE_SETLK,       FUSE_SETLKW,       FUSE_SYNCFS};

class RequestBuilder {
public:
    RequestBuilder(Input& in, const Known& known) : in_(in), known_(known) {}

    // The next request's opcode: mostly from kOps, sometimes any 32-bit value.
    uint32_t opcode() {
        const uint8_t pick = in_.u8();
        return pick < 0xf8 ? kOps[pick % kOps.size()] : in_.u32();
    }

    // A node id: mostly one a reply handed out (the root included), else 0..3 or anything.
    uint64_t node() {
        uint8_t s = in_.u8();
        if (s < 0xe0) return known_.nodes[s % known_.nodes.size()];
        if (s < 0xf0) return s & 3;
        return in_.u64();
    }

private:
    uint64_t fh() {
        uint8_t s = in_.u8();
        if (s < 0xe0 && !known_.fhs.empty()) return known_.fhs[s % known_.fhs.size()];
        return s < 0xf0 ? s & 3 : in_.u64();
    }
    std::string name() {
        uint8_t s = in_.u8();
        return s < 0xe8 ? names()[s % names().size()] : in_.str8();
    }
    void add_name(Args& a, const std::string& n) {
        if (in_.u8() == 0xff)
            a.raw(n);  // no terminating NUL
        else
            a.str(n);
    }
    uint64_t offset() {
        uint8_t s = in_.u8();
        return s < 0xe0 ? in_.u16() : in_.u64();
    }
    uint32_t size_field() {
        static constexpr std::array<uint32_t, 6> kSizes = {4096, 65536, 1u << 20, 0, 17, 131072};
        uint8_t s = in_.u8();
        return s < 0xe0 ? kSizes[s % kSizes.size()] : in_.u32();
    }
    template <class T>
    T raw() {
        T v{};
        auto b = in_.bytes(sizeof v);
        std::memcpy(&v, b.data(), b.size());
        return v;
    }
    // A struct argument, usually whole, sometimes cut short or with junk after it.
    template <class T>
    void add_struct(Args& a, const T& v) {
        std::vector<uint8_t> b(sizeof v);
        std::memcpy(b.data(), &v, sizeof v);
        uint8_t s = in_.u8();
        if (s == 0xfe) b.resize(in_.u8() % sizeof v);
        if (s == 0xff) b.resize(sizeof v + 1 + in_.u8() % 16);
        a.raw(b);
    }
    template <size_t N>
    uint32_t choose(const std::array<uint32_t, N>& choices) {
        uint8_t s = in_.u8();
        return s < 0xf0 ? choices[s % N] : in_.u32();
    }

public:
    // FUSE_INIT's arguments. `good`: major 7 for sure (the session opener); the minor is
    // mostly one this server speaks (31..38), flags mostly "everything".
    Args init_args(bool good) {
        fuse_init_in in{};
        in.major = good || in_.u8() < 0xf0 ? FUSE_KERNEL_VERSION : in_.u32();
        uint8_t m = in_.u8();
        in.minor = m < 0xf0 ? 31 + m % 8 : in_.u32();
        in.max_readahead = 128 * 1024;
        in.flags = in_.u8() < 0xc0 ? 0xffffffffu : in_.u32();
        in.flags2 = in_.u8() < 0xc0 ? 0 : in_.u32();
        Args a;
        if (in.minor < 36 && in_.u8() < 0x80) {
            a.raw(std::string(reinterpret_cast<const char*>(&in), 16));  // the pre-7.36 size
        } else {
            a.obj(in);
        }
        return a;
    }

    // The arguments of one request with opcode `op` (everything after fuse_in_header).
    Args build(uint32_t op) {
        Args a;
        switch (op) {
            case FUSE_LOOKUP:
            case FUSE_UNLINK:
            case FUSE_RMDIR:
                add_name(a, name());
                break;
            case FUSE_REMOVEXATTR: add_name(a, in_.u8() < 0xf0 ? kXattrs[in_.u8() % kXattrs.size()] : in_.str8()); break;
            case FUSE_GETATTR: {
                auto g = raw<fuse_getattr_in>();
                g.getattr_flags &= in_.u8() < 0xf0 ? FUSE_GETATTR_FH : ~0u;
                g.fh = fh();
                add_struct(a, g);
                break;
            }
            case FUSE_SETATTR: {
                auto s = raw<fuse_setattr_in>();
                static constexpr std::array<uint32_t, 8> kValid = {
                    FATTR_MODE, FATTR_SIZE, FATTR_UID | FATTR_GID, FATTR_ATIME | FATTR_MTIME, FATTR_ATIME_NOW | FATTR_MTIME_NOW,
                    FATTR_FH | FATTR_SIZE, FATTR_MODE | FATTR_UID, FATTR_CTIME | FATTR_KILL_SUIDGID};
                s.valid = choose(kValid);
                s.fh = fh();
                if (in_.u8() < 0xe0) s.size = in_.u16();
                if (in_.u8() < 0xe0) s.mode = static_cast<uint32_t>(in_.u8() < 0x80 ? 0755 : 04777) | S_IFREG;
                if (in_.u8() < 0xe0) {
                    s.uid = in_.u8() < 0x80 ? 0 : 1000;
                    s.gid = s.uid;
                }
                add_struct(a, s);
                break;
            }
            case FUSE_SYMLINK:
                add_name(a, name());
                add_name(a, in_.u8() < 0xf0 ? kTargets[in_.u8() % kTargets.size()] : in_.str8());
                break;
            case FUSE_MKNOD: {
                static constexpr std::array<uint32_t, 7> kModes = {S_IFREG | 0644, S_IFIFO | 0600, S_IFSOCK | 0644,
                                                                   S_IFCHR | 0666, S_IFBLK | 0600, S_IFDIR | 0755, 0};
                fuse_mknod_in m{};
                m.mode = choose(kModes);
                m.rdev = in_.u8() < 0xe0 ? 0x103 : in_.u32();  // 1:3 in the kernel's new_encode_dev layout
                m.umask = in_.u8() < 0xe0 ? 022 : in_.u32();
                add_struct(a, m);
                add_name(a, name());
                break;
            }
            case FUSE_MKDIR: {
                fuse_mkdir_in m{};
                m.mode = in_.u8() < 0xe0 ? 0755 : in_.u32();
                m.umask = in_.u8() < 0xe0 ? 022 : in_.u32();
                add_struct(a, m);
                add_name(a, name());
                break;
            }
            case FUSE_RENAME: {
                fuse_rename_in r{};
                r.newdir = node();
                add_struct(a, r);
                add_name(a, name());
                add_name(a, name());
                break;
            }
            case FUSE_RENAME2: {
                fuse_rename2_in r{};
                r.newdir = node();
                static constexpr std::array<uint32_t, 4> kFlags = {0, 1 /*NOREPLACE*/, 2 /*EXCHANGE*/, 4 /*WHITEOUT*/};
                r.flags = choose(kFlags);
                add_struct(a, r);
                add_name(a, name());
                add_name(a, name());
                break;
            }
            case FUSE_LINK: {
                fuse_link_in l{};
                l.oldnodeid = node();
                add_struct(a, l);
                add_name(a, name());
                break;
            }
            case FUSE_OPEN:
            case FUSE_OPENDIR: {
                static constexpr std::array<uint32_t, 8> kFlags = {
                    O_RDONLY, O_WRONLY, O_RDWR, O_RDWR | O_TRUNC, O_WRONLY | O_APPEND, O_RDONLY | O_DIRECTORY,
                    O_PATH, O_RDONLY | O_NOFOLLOW | O_NONBLOCK};
                fuse_open_in o{};
                o.flags = choose(kFlags);
                o.open_flags = in_.u8() < 0xf0 ? 0 : in_.u32();
                add_struct(a, o);
                break;
            }
            case FUSE_CREATE:
            case FUSE_TMPFILE: {
                static constexpr std::array<uint32_t, 6> kFlags = {O_RDWR | O_CREAT, O_WRONLY | O_CREAT | O_EXCL,
                                                                   O_RDWR | O_CREAT | O_TRUNC, O_RDONLY, O_RDWR,
                                                                   O_WRONLY | O_CREAT | O_APPEND};
                fuse_create_in c{};
                c.flags = choose(kFlags);
                c.mode = in_.u8() < 0xe0 ? (S_IFREG | 0644) : in_.u32();
                c.umask = in_.u8() < 0xe0 ? 022 : in_.u32();
                add_struct(a, c);
                add_name(a, name());
                break;
            }
            case FUSE_READ:
            case FUSE_READDIR:
            case FUSE_READDIRPLUS: {
                fuse_read_in r{};
                r.fh = fh();
                r.offset = offset();
                r.size = size_field();
                r.flags = in_.u8() < 0xf0 ? 0 : in_.u32();
                add_struct(a, r);
                break;
            }
            case FUSE_WRITE: {
                fuse_write_in w{};
                w.fh = fh();
                w.offset = offset();
                std::vector<uint8_t> data;
                uint8_t s = in_.u8();
                if (s == 0xff) {
                    data.assign((size_t{1} << 20) - 4096 + in_.u8() % 3 * 2048, 'w');  // around max_write
                } else {
                    auto b = in_.bytes(s);
                    data.assign(b.begin(), b.end());
                }
                w.size = in_.u8() < 0xf0 ? static_cast<uint32_t>(data.size()) : in_.u32();
                w.write_flags = in_.u8() < 0xf0 ? 0 : in_.u32();
                add_struct(a, w);
                a.raw(data);
                break;
            }
            case FUSE_RELEASE:
            case FUSE_RELEASEDIR: {
                fuse_release_in r{};
                r.fh = fh();
                r.flags = in_.u8() < 0xf0 ? 0 : in_.u32();
                r.release_flags = in_.u8() < 0xf0 ? 0 : in_.u32();
                add_struct(a, r);
                break;
            }
            case FUSE_FLUSH: {
                fuse_flush_in f{};
                f.fh = fh();
                add_struct(a, f);
                break;
            }
            case FUSE_FSYNC:
            case FUSE_FSYNCDIR: {
                fuse_fsync_in f{};
                f.fh = fh();
                f.fsync_flags = in_.u8() & 1;
                add_struct(a, f);
                break;
            }
            case FUSE_SETXATTR: {
                fuse_setxattr_in x{};
                std::string value = in_.u8() < 0xf0 ? in_.str8() : std::string(70000, 'v');
                x.size = in_.u8() < 0xf0 ? static_cast<uint32_t>(value.size()) : in_.u32();
                static constexpr std::array<uint32_t, 3> kFlags = {0, 1 /*CREATE*/, 2 /*REPLACE*/};
                x.flags = choose(kFlags);
                if (in_.u8() < 0x80)
                    a.raw(std::string(reinterpret_cast<const char*>(&x), FUSE_COMPAT_SETXATTR_IN_SIZE));
                else
                    add_struct(a, x);
                add_name(a, in_.u8() < 0xf0 ? kXattrs[in_.u8() % kXattrs.size()] : in_.str8());
                a.raw(value);
                break;
            }
            case FUSE_GETXATTR:
            case FUSE_LISTXATTR: {
                fuse_getxattr_in g{};
                static constexpr std::array<uint32_t, 5> kSizes = {0, 4, 64, 65536, 1};
                g.size = choose(kSizes);
                add_struct(a, g);
                if (op == FUSE_GETXATTR) add_name(a, in_.u8() < 0xf0 ? kXattrs[in_.u8() % kXattrs.size()] : in_.str8());
                break;
            }
            case FUSE_ACCESS: {
                fuse_access_in x{};
                x.mask = in_.u8() < 0xf0 ? in_.u8() & 7 : in_.u32();
                add_struct(a, x);
                break;
            }
            case FUSE_FORGET: {
                fuse_forget_in f{};
                f.nlookup = in_.u8() < 0xf0 ? in_.u8() % 3 : in_.u64();
                add_struct(a, f);
                break;
            }
            case FUSE_BATCH_FORGET: {
                fuse_batch_forget_in b{};
                uint32_t n = in_.u8() % 8;
                b.count = in_.u8() < 0xf0 ? n : in_.u32();
                add_struct(a, b);
                for (uint32_t k = 0; k < n; ++k) {
                    fuse_forget_one o{};
                    o.nodeid = node();
                    o.nlookup = in_.u8() % 3;
                    a.obj(o);
                }
                break;
            }
            case FUSE_FALLOCATE: {
                fuse_fallocate_in f{};
                f.fh = fh();
                f.offset = offset();
                f.length = in_.u8() < 0xe0 ? in_.u16() : in_.u64();
                static constexpr std::array<uint32_t, 4> kModes = {0, 1 /*KEEP_SIZE*/, 3 /*PUNCH_HOLE|KEEP_SIZE*/,
                                                                   0x10 /*ZERO_RANGE*/};
                f.mode = choose(kModes);
                add_struct(a, f);
                break;
            }
            case FUSE_LSEEK: {
                fuse_lseek_in l{};
                l.fh = fh();
                l.offset = offset();
                l.whence = in_.u8() < 0xf0 ? in_.u8() % 5 : in_.u32();
                add_struct(a, l);
                break;
            }
            case FUSE_GETLK:
            case FUSE_SETLK:
            case FUSE_SETLKW: {
                fuse_lk_in l{};
                l.fh = fh();
                l.owner = in_.u8() < 0xe0 ? in_.u8() % 4 : in_.u64();  // a few owners that conflict
                l.lk.start = offset();
                l.lk.end = in_.u8() < 0xe0 ? l.lk.start + in_.u16() : in_.u64();
                static constexpr std::array<uint32_t, 3> kTypes = {F_RDLCK, F_WRLCK, F_UNLCK};
                l.lk.type = choose(kTypes);
                l.lk.pid = 4242;
                l.lk_flags = in_.u8() < 0xc0 ? 0 : in_.u8() < 0xf0 ? FUSE_LK_FLOCK : in_.u32();
                add_struct(a, l);
                break;
            }
            case FUSE_COPY_FILE_RANGE: {
                fuse_copy_file_range_in c{};
                c.fh_in = fh();
                c.off_in = offset();
                c.nodeid_out = node();
                c.fh_out = fh();
                c.off_out = offset();
                c.len = in_.u8() < 0xe0 ? in_.u16() : in_.u64();
                c.flags = in_.u8() < 0xf0 ? 0 : in_.u64();
                add_struct(a, c);
                break;
            }
            case FUSE_IOCTL: {
                fuse_ioctl_in io{};
                io.fh = fh();
                io.flags = in_.u8() < 0xf0 ? 0 : in_.u32();
                io.cmd = in_.u32();
                io.arg = in_.u64();
                auto data = in_.bytes(in_.u8() % 32);
                io.in_size = in_.u8() < 0xf0 ? static_cast<uint32_t>(data.size()) : in_.u32();
                io.out_size = in_.u16();
                add_struct(a, io);
                a.raw(std::vector<uint8_t>(data.begin(), data.end()));
                break;
            }
            case FUSE_SYNCFS: {
                fuse_syncfs_in sy{};
                add_struct(a, sy);
                break;
            }
            case FUSE_INIT: return init_args(false);
            case FUSE_READLINK:
            case FUSE_STATFS:
            case FUSE_DESTROY:
                break;
            default: a.raw(in_.str8()); break;  // INTERRUPT, unknown opcodes: raw bytes
        }
        return a;
    }

private:
    Input& in_;
    const Known& known_;
};

}  // namespace krunlet::fuzz
