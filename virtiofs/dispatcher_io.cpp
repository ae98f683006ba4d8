// Dispatcher: open files and directories, READDIR(PLUS), statfs and extended attributes.
#include <linux/limits.h>
#include <sys/uio.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "virtiofs/dispatcher.h"

namespace krunlet::fs {

namespace {

constexpr size_t kMaxReadIov = IOV_MAX;
constexpr size_t kMaxRead = size_t{kMaxPages} * 4096;

// Encodes directory entries straight into the reply: fuse_dirent records for READDIR,
// fuse_direntplus (entry + dirent) for READDIRPLUS, each padded to 8 bytes with zeros.
class ReplyDirSink final : public DirSink {
public:
    ReplyDirSink(ReplyWriter& w, size_t limit, bool plus, FileSystem& fs, const Caller& caller, uint64_t dir,
                 CacheTimes times)
        : w_(w), limit_(limit), plus_(plus), fs_(fs), caller_(caller), dir_(dir), times_(times) {}

    bool add(const Name& name, uint64_t ino, uint32_t dtype, uint64_t next_offset) override {
        size_t len = name.view().size();
        size_t need = plus_ ? direntplus_size(len) : dirent_size(len);
        if (need > limit_ - used_) {
            rejected_ = true;
            return false;
        }
        if (plus_) {
            // Each entry with a node id counts as a LOOKUP the guest will FORGET. "." and ".."
            // (and entries that vanished meanwhile) go out with node id 0: the guest then lists
            // the name without instantiating an inode for it.
            fuse_entry_out eo{};
            bool dots = name == "." || name == "..";
            auto e = dots ? Result<Entry>(fail(EINVAL)) : fs_.lookup(caller_, dir_, name);
            if (e) {
                encode_entry(*e, times_, eo);
            } else {
                eo.attr.ino = ino;
                eo.attr.mode = (dtype & 017) << 12;
            }
            w_.append_obj(eo);
        }
        fuse_dirent d{};
        d.ino = ino;
        d.off = next_offset;
        d.namelen = static_cast<uint32_t>(len);
        d.type = dtype;
        w_.append(&d, offsetof(fuse_dirent, name));
        w_.append(name.view().data(), len);
        size_t header = plus_ ? offsetof(fuse_direntplus, dirent.name) : offsetof(fuse_dirent, name);
        w_.append_zeros(need - header - len);
        used_ += need;
        ++count_;
        return true;
    }

    size_t count() const { return count_; }
    bool rejected() const { return rejected_; }

private:
    ReplyWriter& w_;
    size_t limit_;
    bool plus_;
    FileSystem& fs_;
    const Caller& caller_;
    uint64_t dir_;
    CacheTimes times_;
    size_t used_ = 0;
    size_t count_ = 0;
    bool rejected_ = false;
};

}  // namespace

int Dispatcher::op_open(Req& r, bool dir) {
    fuse_open_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_open_out)) return kReplyTooBig;
    auto f = dir ? fs_.opendir(r.caller, r.h.nodeid, in.flags) : fs_.open(r.caller, r.h.nodeid, in.flags);
    if (!f) return f.error().code;
    fuse_open_out out{};
    out.fh = f->fh;
    out.open_flags = f->open_flags | policy_open_flags(cfg_.cache, dir);
    r.w.append_obj(out);
    return 0;
}

int Dispatcher::op_create(Req& r, bool tmpfile) {
    fuse_create_in in;
    Name name = Name::trusted("");
    if (!r.args.read(in) || !r.args.read_cstr(name) || !r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_entry_out) + sizeof(fuse_open_out)) return kReplyTooBig;
    // TMPFILE carries the name of the kernel's placeholder dentry ("/" on 6.1); it names
    // nothing, so it is parsed (the request must be well formed) and then ignored.
    auto c = tmpfile ? fs_.tmpfile(r.caller, r.h.nodeid, in.flags, in.mode, in.umask)
                     : fs_.create(r.caller, r.h.nodeid, name, in.flags, in.mode, in.umask);
    if (!c) return c.error().code;
    reply_entry(r, c->entry);
    fuse_open_out out{};
    out.fh = c->file.fh;
    out.open_flags = c->file.open_flags | policy_open_flags(cfg_.cache, false);
    r.w.append_obj(out);
    return 0;
}

int Dispatcher::op_read(Req& r) {
    fuse_read_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    // The data goes straight from the host file into the guest's buffers. A reply area smaller
    // than the request (a guest bug) just gets a shorter read.
    size_t size = std::min({static_cast<size_t>(in.size), kMaxRead, r.w.remaining()});
    iovec iov[kMaxReadIov];
    size_t n = r.w.peek_iovecs(size, iov, kMaxReadIov);
    auto got = fs_.read(r.h.nodeid, in.fh, in.offset, std::span<const iovec>(iov, n));
    if (!got) return got.error().code;
    r.w.advance(*got);
    return 0;
}

int Dispatcher::op_write(Req& r) {
    fuse_write_in in;
    if (!r.args.read(in)) return EINVAL;
    // The payload must be exactly in.size bytes: more or fewer means the request is garbled.
    // It follows the arguments, or it was left in guest memory (r.tail).
    iovec contiguous{};
    std::span<const iovec> data = r.tail;
    if (r.tail.empty()) {
        std::span<const uint8_t> bytes;
        if (!r.args.take(in.size, bytes)) return EINVAL;
        contiguous = iovec{const_cast<uint8_t*>(bytes.data()), bytes.size()};  // only read by pwritev
        data = std::span(&contiguous, 1);
    } else {
        size_t tail_bytes = 0;
        for (const iovec& v : r.tail) tail_bytes += v.iov_len;
        if (tail_bytes != in.size) return EINVAL;
    }
    if (!r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_write_out)) return kReplyTooBig;
    auto n = fs_.write(r.h.nodeid, in.fh, in.offset, data);
    if (!n) return n.error().code;
    fuse_write_out out{};
    out.size = static_cast<uint32_t>(*n);  // <= in.size
    r.w.append_obj(out);
    return 0;
}

int Dispatcher::op_release(Req& r, bool dir) {
    fuse_release_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    if (dir)
        fs_.releasedir(r.h.nodeid, in.fh);
    else
        fs_.release(r.h.nodeid, in.fh);
    return 0;
}

int Dispatcher::op_flush(Req& r) {
    fuse_flush_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    auto res = fs_.flush(r.h.nodeid, in.fh, in.lock_owner);
    return res ? 0 : res.error().code;
}

int Dispatcher::op_fsync(Req& r, bool dir) {
    fuse_fsync_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    bool datasync = (in.fsync_flags & FUSE_FSYNC_FDATASYNC) != 0;
    auto res = dir ? fs_.fsyncdir(r.h.nodeid, in.fh, datasync) : fs_.fsync(r.h.nodeid, in.fh, datasync);
    return res ? 0 : res.error().code;
}

int Dispatcher::op_readdir(Req& r, bool plus) {
    fuse_read_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    size_t limit = std::min(static_cast<size_t>(in.size), r.w.remaining());
    ReplyDirSink sink(r.w, limit, plus, fs_, r.caller, r.h.nodeid, times_);
    auto res = fs_.readdir(r.h.nodeid, in.fh, in.offset, sink);
    if (!res) return res.error().code;  // the backend only fails before the first entry
    // An empty reply means "end of directory"; say so only when it is true.
    if (sink.count() == 0 && sink.rejected()) return kReplyTooBig;
    return 0;
}

int Dispatcher::op_fallocate(Req& r) {
    fuse_fallocate_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    auto res = fs_.fallocate(r.h.nodeid, in.fh, in.mode, in.offset, in.length);
    return res ? 0 : res.error().code;
}

int Dispatcher::op_lseek(Req& r) {
    fuse_lseek_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_lseek_out)) return kReplyTooBig;
    auto off = fs_.lseek(r.h.nodeid, in.fh, in.offset, in.whence);
    if (!off) return off.error().code;
    fuse_lseek_out out{};
    out.offset = *off;
    r.w.append_obj(out);
    return 0;
}

int Dispatcher::op_statfs(Req& r) {
    if (!r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_statfs_out)) return kReplyTooBig;
    auto sv = fs_.statfs(r.h.nodeid);
    if (!sv) return sv.error().code;
    fuse_statfs_out out{};
    out.st.blocks = sv->f_blocks;
    out.st.bfree = sv->f_bfree;
    out.st.bavail = sv->f_bavail;
    out.st.files = sv->f_files;
    out.st.ffree = sv->f_ffree;
    out.st.bsize = static_cast<uint32_t>(sv->f_bsize);
    out.st.namelen = static_cast<uint32_t>(sv->f_namemax);
    out.st.frsize = static_cast<uint32_t>(sv->f_frsize);
    r.w.append_obj(out);
    return 0;
}

int Dispatcher::op_setxattr(Req& r) {
    // FUSE_SETXATTR_EXT is not negotiated, so the guest sends the 8-byte layout (size, flags).
    fuse_setxattr_in in;
    Name name = Name::trusted("");
    std::span<const uint8_t> value;
    if (!r.args.read_prefix(in, FUSE_COMPAT_SETXATTR_IN_SIZE) || !r.args.read_cstr(name) ||
        !r.args.take(in.size, value) || !r.args.at_end())
        return EINVAL;
    auto res = fs_.setxattr(r.h.nodeid, name, value, in.flags);
    return res ? 0 : res.error().code;
}

int Dispatcher::op_getxattr(Req& r, bool list) {
    fuse_getxattr_in in;
    Name name = Name::trusted("");
    if (!r.args.read(in)) return EINVAL;
    if (!list && !r.args.read_cstr(name)) return EINVAL;
    if (!r.args.at_end()) return EINVAL;

    if (in.size == 0) {
        // Size query: the answer is a fuse_getxattr_out, not the value.
        if (r.w.remaining() < sizeof(fuse_getxattr_out)) return kReplyTooBig;
        auto n = list ? fs_.listxattr(r.caller, r.h.nodeid, {}) : fs_.getxattr(r.h.nodeid, name, {});
        if (!n) return n.error().code;
        fuse_getxattr_out out{};
        out.size = static_cast<uint32_t>(*n);
        r.w.append_obj(out);
        return 0;
    }
    // Values and name lists are at most 64 KiB (XATTR_SIZE_MAX / XATTR_LIST_MAX) on Linux.
    size_t cap = std::min({static_cast<size_t>(in.size), size_t{XATTR_SIZE_MAX}, r.w.remaining()});
    if (cap == 0) return kReplyTooBig;
    std::vector<uint8_t> buf(cap);
    auto n = list ? fs_.listxattr(r.caller, r.h.nodeid, buf) : fs_.getxattr(r.h.nodeid, name, buf);
    if (!n) return n.error().code;
    r.w.append(buf.data(), std::min(*n, cap));
    return 0;
}

int Dispatcher::op_removexattr(Req& r) {
    Name name = Name::trusted("");
    if (!r.args.read_cstr(name) || !r.args.at_end()) return EINVAL;
    auto res = fs_.removexattr(r.h.nodeid, name);
    return res ? 0 : res.error().code;
}

}  // namespace krunlet::fs
