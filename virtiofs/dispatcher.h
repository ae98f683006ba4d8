// The FUSE op dispatcher: decodes one request's arguments, calls the filesystem interface and
// encodes the reply (FUSE protocol 7.31–7.38, <linux/fuse.h>).
//
//   dispatcher.cpp     — routing, INIT/DESTROY, FORGET, and the name/attribute ops
//   dispatcher_io.cpp  — open files, directories, xattrs, statfs
//   dispatcher_misc.cpp — locks, COPY_FILE_RANGE, IOCTL, POLL, SYNCFS
//
// Rules every handler follows:
//   - arguments are read through ArgReader only; a request whose arguments are short, or that
//     carries bytes after its last argument, gets EINVAL;
//   - before anything with a side effect happens, the handler checks that its reply fits the
//     guest's buffers (else EOVERFLOW), so an effect is never lost for want of reply space;
//   - errors travel as positive errnos and leave as -errno in fuse_out_header.error.
#pragma once

#include <linux/fuse.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>

#include "virtiofs/fs_api.h"
#include "virtiofs/fuse_wire.h"
#include "virtiofs/server.h"

namespace krunlet::fs {

// The oldest protocol this server speaks: 7.31 came with Linux 5.4, the first kernel with a
// virtio-fs client, and fixes every struct size this code reads.
inline constexpr uint32_t kMinFuseMinor = 31;
// Largest WRITE payload: 1 MiB minus room for fuse_in_header + fuse_write_in (and slack), so a
// full WRITE stays under the 1 MiB + header request limit.
inline constexpr uint32_t kMaxWrite = (1u << 20) - 4096;
inline constexpr uint16_t kMaxPages = 256;  // 1 MiB in 4 KiB pages, per READ/WRITE
// Errno for a reply that would not fit into the buffers the guest supplied.
inline constexpr int kReplyTooBig = EOVERFLOW;

struct DispatchConfig {
    bool read_only = false;
    CachePolicy cache = CachePolicy::Auto;
    std::chrono::nanoseconds entry_timeout{0};  // validated: 0 to kMaxCacheTimeout
    std::chrono::nanoseconds attr_timeout{0};
    LockPolicy locks = LockPolicy::Guest;
};

class Dispatcher {
public:
    Dispatcher(FileSystem& fs, DispatchConfig cfg);

    // One request whose header the caller has validated. `args` are the bytes after the header,
    // without extension headers (guest-controlled). Returns the reply length (0: no reply).
    // `tail`: the request's bytes after `args` that were left in guest memory (only a WRITE
    // payload; see Server::handle).
    size_t dispatch(const fuse_in_header& h, std::span<const uint8_t> args, ReplyWriter& w,
                    std::span<const struct iovec> tail = {});

    static constexpr int kNoReply = -1;

private:
    struct Req {
        const fuse_in_header& h;
        Caller caller;
        ArgReader args;
        ReplyWriter& w;
        std::span<const struct iovec> tail;  // a WRITE payload left in guest memory
    };
    // Each handler returns 0 (reply built in r.w), a positive errno, or kNoReply.
    int op_init(Req& r);
    int op_destroy(Req& r);
    int op_forget(Req& r);
    int op_batch_forget(Req& r);
    int op_lookup(Req& r);
    int op_getattr(Req& r);
    int op_setattr(Req& r);
    int op_readlink(Req& r);
    int op_symlink(Req& r);
    int op_mknod(Req& r);
    int op_mkdir(Req& r);
    int op_unlink(Req& r, bool dir);
    int op_rename(Req& r, bool v2);
    int op_link(Req& r);
    int op_access(Req& r);
    // dispatcher_io.cpp
    int op_open(Req& r, bool dir);
    int op_create(Req& r, bool tmpfile);  // CREATE, or TMPFILE when `tmpfile`
    int op_read(Req& r);
    int op_write(Req& r);
    int op_release(Req& r, bool dir);
    int op_flush(Req& r);
    int op_fsync(Req& r, bool dir);
    int op_readdir(Req& r, bool plus);
    int op_fallocate(Req& r);
    int op_lseek(Req& r);
    int op_statfs(Req& r);
    int op_setxattr(Req& r);
    int op_getxattr(Req& r, bool list);
    int op_removexattr(Req& r);
    // dispatcher_misc.cpp
    int op_getlk(Req& r);
    int op_setlk(Req& r, bool wait);
    int op_copy_file_range(Req& r);
    int op_ioctl(Req& r);
    int op_syncfs(Req& r);

    // Shared encoders (fail with kReplyTooBig if the reply does not fit).
    int reply_entry(Req& r, const Entry& e);
    int reply_attr(Req& r, const struct stat& st);

    FileSystem& fs_;
    DispatchConfig cfg_;
    CacheTimes times_;
    std::atomic<bool> initialized_{false};
    std::atomic<uint32_t> minor_{0};
};

}  // namespace krunlet::fs
