// Dispatcher: locks (GETLK/SETLK/SETLKW), COPY_FILE_RANGE, IOCTL and SYNCFS.
#include <algorithm>

#include "virtiofs/dispatcher.h"

namespace krunlet::fs {

namespace {

FileLock decode_lock(const fuse_file_lock& in) {
    FileLock lk;
    lk.start = in.start;
    lk.end = in.end;
    lk.type = in.type;
    lk.pid = in.pid;
    return lk;
}

}  // namespace

int Dispatcher::op_getlk(Req& r) {
    // Only a guest we offered FUSE_POSIX_LOCKS sends lock requests; for the rest the guest
    // kernel keeps the locks, and a stray request must not touch host files.
    if (cfg_.locks != LockPolicy::Host) return ENOSYS;
    fuse_lk_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_lk_out)) return kReplyTooBig;
    auto lk = fs_.getlk(r.h.nodeid, in.fh, in.owner, decode_lock(in.lk));
    if (!lk) return lk.error().code;
    fuse_lk_out out{};
    out.lk.start = lk->start;
    out.lk.end = lk->end;
    out.lk.type = lk->type;
    out.lk.pid = lk->pid;
    r.w.append_obj(out);
    return 0;
}

int Dispatcher::op_setlk(Req& r, bool wait) {
    if (cfg_.locks != LockPolicy::Host) return ENOSYS;
    fuse_lk_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    bool flock = (in.lk_flags & FUSE_LK_FLOCK) != 0;
    auto res = fs_.setlk(r.h.nodeid, in.fh, in.owner, decode_lock(in.lk), flock, wait);
    return res ? 0 : res.error().code;
}

int Dispatcher::op_copy_file_range(Req& r) {
    // The header names the source inode; the argument names the destination.
    fuse_copy_file_range_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    if (r.w.remaining() < sizeof(fuse_write_out)) return kReplyTooBig;
    auto n = fs_.copy_file_range(r.h.nodeid, in.fh_in, in.off_in, in.nodeid_out, in.fh_out, in.off_out, in.len,
                                 in.flags);
    if (!n) return n.error().code;
    fuse_write_out out{};
    out.size = static_cast<uint32_t>(std::min<uint64_t>(*n, in.len));  // the guest checks size <= len
    r.w.append_obj(out);
    return 0;
}

int Dispatcher::op_ioctl(Req& r) {
    // No ioctl is passed to host files: what one does depends on the host filesystem and the
    // server's privileges (FS_IOC_SETFLAGS could make a file immutable on the host). The
    // answer is the one a filesystem without ioctls gives. (The 6.1 client would turn ENOSYS
    // into ENOTTY too, fs/fuse/ioctl.c; this says it directly.)
    fuse_ioctl_in in;
    std::span<const uint8_t> data;
    if (!r.args.read(in) || !r.args.take(in.in_size, data) || !r.args.at_end()) return EINVAL;
    return ENOTTY;
}

int Dispatcher::op_syncfs(Req& r) {
    fuse_syncfs_in in;
    if (!r.args.read(in) || !r.args.at_end()) return EINVAL;
    auto res = fs_.syncfs();
    return res ? 0 : res.error().code;
}

}  // namespace krunlet::fs
