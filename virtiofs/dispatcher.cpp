// Dispatcher: routing, session ops (INIT/DESTROY/FORGET) and the name and attribute ops.
#include "virtiofs/dispatcher.h"

#include <algorithm>
#include <climits>
#include <ctime>

namespace krunlet::fs {

namespace {

// Ops that change the filesystem: a read-only share answers them with EROFS before decoding.
// OPEN for writing is refused by the backend, which sees the flags (and checks every op above
// again, so neither layer alone decides). Not here: FLUSH/FSYNC/FSYNCDIR/SYNCFS (they only
// push out what is already written) and locks (a read-only mount has them too).
bool is_mutating(uint32_t opcode) {
    switch (opcode) {
        case FUSE_SETATTR:
        case FUSE_SYMLINK:
        case FUSE_MKNOD:
        case FUSE_MKDIR:
        case FUSE_UNLINK:
        case FUSE_RMDIR:
        case FUSE_RENAME:
        case FUSE_RENAME2:
        case FUSE_LINK:
        case FUSE_WRITE:
        case FUSE_SETXATTR:
        case FUSE_REMOVEXATTR:
        case FUSE_CREATE:
        case FUSE_FALLOCATE:
        case FUSE_COPY_FILE_RANGE:
        case FUSE_TMPFILE:
            return true;
        default:
            return false;
    }
}

bool has_no_reply(uint32_t opcode) {
    return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT;
}

CacheTimes times_for(const DispatchConfig& cfg) {
    using std::chrono::nanoseconds;
    using std::chrono::seconds;
    auto split = [](nanoseconds t, uint64_t& sec, uint32_t& nsec) {
        auto whole = std::chrono::duration_cast<seconds>(t);
        sec = static_cast<uint64_t>(whole.count());
        nsec = static_cast<uint32_t>((t - whole).count());
    };
    CacheTimes ct;
    split(cfg.entry_timeout, ct.entry_sec, ct.entry_nsec);
    split(cfg.attr_timeout, ct.attr_sec, ct.attr_nsec);
    return ct;
}

// A time from fuse_setattr_in: seconds are signed on the wire in practice (times before 1970).
bool decode_time(uint64_t sec, uint32_t nsec, timespec& out) {
    if (nsec >= 1'000'000'000u) return false;
    out.tv_sec = static_cast<time_t>(static_cast<int64_t>(sec));
    out.tv_nsec = static_cast<long>(nsec);
    return true;
}

}  // namespace

Dispatcher::Dispatcher(FileSystem& fs, DispatchConfig cfg) : fs_(fs), cfg_(cfg), times_(times_for(cfg)) {}

size_t Dispatcher::dispatch(const fuse_in_header& h, std::span<const uint8_t> args, ReplyWriter& w,
                             std::span<const struct iovec> tail) {
    Req r{h, Caller{h.uid, h.gid, h.pid}, ArgReader(args), w, tail};
    int rc;
    if (!w.header_fits() && !has_no_reply(h.opcode)) {
        return 0;  // no way to answer: don't act either
    } else if (!tail.empty() && h.opcode != FUSE_WRITE) {
        rc = EINVAL;  // only a WRITE payload may stay in guest memory
    } else if (h.opcode != FUSE_INIT && !has_no_reply(h.opcode) && !initialized_.load(std::memory_order_acquire)) {
        rc = EIO;  // the protocol starts with INIT (and starts again after DESTROY)
    } else if (cfg_.read_only && is_mutating(h.opcode)) {
        rc = EROFS;
    } else {
        switch (h.opcode) {
            case FUSE_INIT: rc = op_init(r); break;
            case FUSE_DESTROY: rc = op_destroy(r); break;
            case FUSE_FORGET: rc = op_forget(r); break;
            case FUSE_BATCH_FORGET: rc = op_batch_forget(r); break;
            case FUSE_INTERRUPT: rc = kNoReply; break;  // requests are never queued; nothing to cancel
            case FUSE_LOOKUP: rc = op_lookup(r); break;
            case FUSE_GETATTR: rc = op_getattr(r); break;
            case FUSE_SETATTR: rc = op_setattr(r); break;
            case FUSE_READLINK: rc = op_readlink(r); break;
            case FUSE_SYMLINK: rc = op_symlink(r); break;
            case FUSE_MKNOD: rc = op_mknod(r); break;
            case FUSE_MKDIR: rc = op_mkdir(r); break;
            case FUSE_UNLINK: rc = op_unlink(r, false); break;
            case FUSE_RMDIR: rc = op_unlink(r, true); break;
            case FUSE_RENAME: rc = op_rename(r, false); break;
            case FUSE_RENAME2: rc = op_rename(r, true); break;
            case FUSE_LINK: rc = op_link(r); break;
            case FUSE_ACCESS: rc = op_access(r); break;
            case FUSE_OPEN: rc = op_open(r, false); break;
            case FUSE_OPENDIR: rc = op_open(r, true); break;
            case FUSE_CREATE: rc = op_create(r, false); break;
            case FUSE_TMPFILE: rc = op_create(r, true); break;
            case FUSE_READ: rc = op_read(r); break;
            case FUSE_WRITE: rc = op_write(r); break;
            case FUSE_RELEASE: rc = op_release(r, false); break;
            case FUSE_RELEASEDIR: rc = op_release(r, true); break;
            case FUSE_FLUSH: rc = op_flush(r); break;
            case FUSE_FSYNC: rc = op_fsync(r, false); break;
            case FUSE_FSYNCDIR: rc = op_fsync(r, true); break;
            case FUSE_READDIR: rc = op_readdir(r, false); break;
            case FUSE_READDIRPLUS: rc = op_readdir(r, true); break;
            case FUSE_FALLOCATE: rc = op_fallocate(r); break;
            case FUSE_LSEEK: rc = op_lseek(r); break;
            case FUSE_STATFS: rc = op_statfs(r); break;
            case FUSE_SETXATTR: rc = op_setxattr(r); break;
            case FUSE_GETXATTR: rc = op_getxattr(r, false); break;
            case FUSE_LISTXATTR: rc = op_getxattr(r, true); break;
            case FUSE_REMOVEXATTR: rc = op_removexattr(r); break;
            case FUSE_GETLK: rc = op_getlk(r); break;
            case FUSE_SETLK: rc = op_setlk(r, false); break;
            case FUSE_SETLKW: rc = op_setlk(r, true); break;
            case FUSE_COPY_FILE_RANGE: rc = op_copy_file_range(r); break;
            case FUSE_IOCTL: rc = op_ioctl(r); break;
            case FUSE_SYNCFS: rc = op_syncfs(r); break;
            // POLL: every file the guest opens through us is a regular file or a directory
            // (FIFOs, sockets and devices are the guest kernel's own), and those are always
            // ready. ENOSYS makes the 6.1 client stop asking and report exactly that
            // (DEFAULT_POLLMASK, fs/fuse/file.c fuse_file_poll) with no further round trips.
            case FUSE_POLL: rc = ENOSYS; break;
            default: rc = ENOSYS; break;  // bmap, DAX mappings, notify replies, ...
        }
    }
    if (rc == kNoReply) return 0;
    return w.finish(h.unique, rc);
}

int Dispatcher::reply_entry(Req& r, const Entry& e) {
    fuse_entry_out out;
    encode_entry(e, times_, out);
    return r.w.append_obj(out) ? 0 : kReplyTooBig;
}

int Dispatcher::reply_attr(Req& r, const struct stat& st) {
    fuse_attr_out out{};
    out.attr_valid = times_.attr_sec;
    out.attr_valid_nsec = times_.attr_nsec;
    encode_attr(st, out.attr);
    return r.w.append_obj(out) ? 0 : kReplyTooBig;
}

int Dispatcher::op_init(Req& r) {
    // fuse_init_in grew over time (16 bytes before 7.36); read what is there, ignore any tail.
    fuse_init_in in{};
    if (r.args.remaining() < offsetof(fuse_init_in, flags2)) return EINVAL;
    r.args.read_prefix(in, std::min(r.args.remaining(), sizeof(in)));
    if (r.w.remaining() < sizeof(fuse_init_out)) return kReplyTooBig;

    fuse_init_out out{};
    if (in.major > FUSE_KERNEL_VERSION) {
        // Newer major: answer with ours and expect the guest to retry INIT (see <linux/fuse.h>).
        out.major = FUSE_KERNEL_VERSION;
        out.minor = FUSE_KERNEL_MINOR_VERSION;
        r.w.append_obj(out);
        return 0;
    }
    if (in.major < FUSE_KERNEL_VERSION || in.minor < kMinFuseMinor) return EPROTO;

    uint32_t wanted = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_EXPORT_SUPPORT | FUSE_BIG_WRITES |
                      FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES;
    // Offering locks moves them from the guest kernel to us (server.h, LockPolicy).
    if (cfg_.locks == LockPolicy::Host) wanted |= FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS;
    out.major = FUSE_KERNEL_VERSION;
    out.minor = std::min<uint32_t>(in.minor, FUSE_KERNEL_MINOR_VERSION);
    out.max_readahead = in.max_readahead;
    out.flags = in.flags & wanted;   // only what the guest offered; no writeback cache yet
    out.max_background = 64;         // concurrent background requests (readahead, async I/O)
    out.congestion_threshold = 48;
    out.max_write = kMaxWrite;
    out.time_gran = 1;  // nanosecond timestamps
    out.max_pages = kMaxPages;
    r.w.append_obj(out);
    fs_.mounted();
    minor_.store(out.minor, std::memory_order_relaxed);
    initialized_.store(true, std::memory_order_release);
    return 0;
}

int Dispatcher::op_destroy(Req& r) {
    if (!r.args.at_end()) return EINVAL;
    fs_.destroy();
    initialized_.store(false, std::memory_order_release);
    return 0;
}

int Dispatcher::op_forget(Req& r) {
    fuse_forget_in in;
    if (r.args.read(in)) fs_.forget(r.h.nodeid, in.nlookup);
    return kNoReply;  // FORGET has no reply, not even for a malformed one
}

int Dispatcher::op_batch_forget(Req& r) {
    fuse_batch_forget_in in;
    if (!r.args.read(in)) return kNoReply;
    // guest-controlled count: it must be backed by the bytes actually sent, else drop it all.
    if (r.args.remaining() / sizeof(fuse_forget_one) < in.count) return kNoReply;
    for (uint32_t i = 0; i < in.count; ++i) {
        fuse_forget_one one;
        r.args.read(one);
        fs_.forget(one.nodeid, one.nlookup);
    }
    return kNoReply;
}

int Dispatcher::op_lookup(Req& r) {
    Name name = Name::trusted("");
    if (!r.args.read_cstr(name) || !r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_entry_out)) return kReplyTooBig;
    auto e = fs_.lookup(r.caller, r.h.nodeid, name);
    if (!e) {
        // A negative entry (nodeid 0) with a timeout lets the guest cache "no such file"
        // for as long as it caches positive entries; without one it is just ENOENT.
        bool cache_negative = times_.entry_sec != 0 || times_.entry_nsec != 0;
        if (e.error().code == ENOENT && cache_negative) return reply_entry(r, Entry{});
        return e.error().code;
    }
    return reply_entry(r, *e);
}

int Dispatcher::op_getattr(Req& r) {
    fuse_getattr_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_attr_out)) return kReplyTooBig;
    std::optional<uint64_t> fh;
    if (in.getattr_flags & FUSE_GETATTR_FH) fh = in.fh;
    auto st = fs_.getattr(r.h.nodeid, fh);
    if (!st) return st.error().code;
    return reply_attr(r, *st);
}

int Dispatcher::op_setattr(Req& r) {
    fuse_setattr_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_attr_out)) return kReplyTooBig;
    SetAttrRequest req;
    if (in.valid & FATTR_FH) req.fh = in.fh;
    if (in.valid & FATTR_MODE) req.mode = in.mode;
    if (in.valid & FATTR_UID) req.uid = in.uid;
    if (in.valid & FATTR_GID) req.gid = in.gid;
    if (in.valid & FATTR_SIZE) req.size = in.size;
    if (in.valid & FATTR_ATIME) {
        timespec t{0, UTIME_NOW};
        if (!(in.valid & FATTR_ATIME_NOW) && !decode_time(in.atime, in.atimensec, t)) return EINVAL;
        req.atime = t;
    }
    if (in.valid & FATTR_MTIME) {
        timespec t{0, UTIME_NOW};
        if (!(in.valid & FATTR_MTIME_NOW) && !decode_time(in.mtime, in.mtimensec, t)) return EINVAL;
        req.mtime = t;
    }
    // FATTR_CTIME cannot be set on Linux (the host kernel updates it); FATTR_LOCKOWNER only
    // matters for mandatory locks; FATTR_KILL_SUIDGID needs HANDLE_KILLPRIV_V2, not offered.
    auto st = fs_.setattr(r.caller, r.h.nodeid, req);
    if (!st) return st.error().code;
    return reply_attr(r, *st);
}

int Dispatcher::op_readlink(Req& r) {
    if (!r.args.at_end()) return EINVAL;
    char buf[PATH_MAX];
    auto n = fs_.readlink(r.h.nodeid, std::span<char>(buf, sizeof(buf)));
    if (!n) return n.error().code;
    return r.w.append(buf, *n) ? 0 : kReplyTooBig;
}

int Dispatcher::op_symlink(Req& r) {
    // Argument order on the wire: the new entry's name, then the link target.
    Name name = Name::trusted(""), target = Name::trusted("");
    if (!r.args.read_cstr(name) || !r.args.read_cstr(target) || !r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_entry_out)) return kReplyTooBig;
    auto e = fs_.symlink(r.caller, r.h.nodeid, name, target.view());
    if (!e) return e.error().code;
    return reply_entry(r, *e);
}

int Dispatcher::op_mknod(Req& r) {
    fuse_mknod_in in;
    Name name = Name::trusted("");
    if (!r.args.read(in) || !r.args.read_cstr(name) || !r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_entry_out)) return kReplyTooBig;
    auto e = fs_.mknod(r.caller, r.h.nodeid, name, in.mode, in.umask, decode_dev(in.rdev));
    if (!e) return e.error().code;
    return reply_entry(r, *e);
}

int Dispatcher::op_mkdir(Req& r) {
    fuse_mkdir_in in;
    Name name = Name::trusted("");
    if (!r.args.read(in) || !r.args.read_cstr(name) || !r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_entry_out)) return kReplyTooBig;
    auto e = fs_.mkdir(r.caller, r.h.nodeid, name, in.mode, in.umask);
    if (!e) return e.error().code;
    return reply_entry(r, *e);
}

int Dispatcher::op_unlink(Req& r, bool dir) {
    Name name = Name::trusted("");
    if (!r.args.read_cstr(name) || !r.args.at_end()) return EINVAL;
    auto res = dir ? fs_.rmdir(r.h.nodeid, name) : fs_.unlink(r.h.nodeid, name);
    return res ? 0 : res.error().code;
}

int Dispatcher::op_rename(Req& r, bool v2) {
    uint64_t newdir = 0;
    uint32_t flags = 0;
    if (v2) {
        fuse_rename2_in in;
        if (!r.args.read(in)) return EINVAL;
        newdir = in.newdir;
        flags = in.flags;
    } else {
        fuse_rename_in in;
        if (!r.args.read(in)) return EINVAL;
        newdir = in.newdir;
    }
    Name from = Name::trusted(""), to = Name::trusted("");
    if (!r.args.read_cstr(from) || !r.args.read_cstr(to) || !r.args.at_end()) return EINVAL;
    auto res = fs_.rename(r.h.nodeid, from, newdir, to, flags);
    return res ? 0 : res.error().code;
}

int Dispatcher::op_link(Req& r) {
    // The header names the new parent; the argument names the existing inode.
    fuse_link_in in;
    Name name = Name::trusted("");
    if (!r.args.read(in) || !r.args.read_cstr(name) || !r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_entry_out)) return kReplyTooBig;
    auto e = fs_.link(r.caller, in.oldnodeid, r.h.nodeid, name);
    if (!e) return e.error().code;
    return reply_entry(r, *e);
}

int Dispatcher::op_access(Req& r) {
    fuse_access_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    auto res = fs_.access(r.caller, r.h.nodeid, in.mask);
    return res ? 0 : res.error().code;
}

}  // namespace krunlet::fs
