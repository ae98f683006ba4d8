// PassthroughFs: open files and directories (open/read/write/... and readdir).
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <vector>

#include "virtiofs/passthrough.h"

namespace krunlet::fs {

namespace {

// The record getdents64(2) fills in (kernel ABI; glibc's struct dirent64 has a fixed-size name).
struct LinuxDirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

bool fits_off_t(uint64_t v) { return v <= static_cast<uint64_t>(INT64_MAX); }

// The listing of an empty directory: "." at cookie 0 and ".." at cookie 1 (its parent is the
// guest's business; ino 0 makes the guest fill it in). Cookie 2 is the end.
Result<void> read_empty_dir(uint64_t self_ino, uint64_t offset, DirSink& sink) {
    if (offset == 0 && !sink.add(Name::trusted("."), self_ino, DT_DIR, 1)) return {};
    if (offset <= 1) sink.add(Name::trusted(".."), 0, DT_DIR, 2);
    return {};
}

}  // namespace

int sanitize_open_flags(uint32_t guest_flags) {
    int flags = static_cast<int>(guest_flags);
    int acc = flags & O_ACCMODE;
    if (acc != O_RDONLY && acc != O_WRONLY && acc != O_RDWR) return -1;
    constexpr int kKeep = O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_NOATIME;
    return acc | (flags & kKeep) | O_NOCTTY | O_LARGEFILE;
}

Result<UniqueFd> PassthroughFs::open_for_io(const Inode& inode, int flags) const {
    switch (inode.type) {
        case S_IFREG:
            return paths_.reopen(inode.fd.get(), flags);
        case S_IFDIR:
            return fail(EISDIR);
        case S_IFLNK:
            return fail(ELOOP);  // what open(O_NOFOLLOW) says about a symlink
        default:
            return fail(kSpecialFileError);  // FIFO, socket, device: never opened on the host
    }
}

Result<OpenFile> PassthroughFs::open(const Caller&, uint64_t nodeid, uint32_t flags) {
    auto n = any_node(nodeid);  // a refused mount is a directory: open_for_io says EISDIR
    if (!n) return n.error();
    int oflags = sanitize_open_flags(flags);
    if (oflags < 0) return fail(EINVAL);
    // A read-only share refuses any open that asks to change the file. O_APPEND and O_CREAT
    // count too (stricter than a read-only mount, which lets O_RDONLY|O_APPEND through): the
    // guest's kernel never sends O_CREAT in OPEN, and no program means O_RDONLY|O_APPEND.
    if (read_only_ && ((oflags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND | O_CREAT)) != 0))
        return fail(EROFS);
    auto fd = open_for_io(**n, oflags);
    if (!fd) return fd.error();
    auto h = std::make_shared<Handle>();
    h->fd = std::move(*fd);
    auto fh = handles_.add(std::move(h));
    if (!fh) return fh.error();
    return OpenFile{*fh, 0};
}

Result<size_t> PassthroughFs::read(uint64_t, uint64_t fh, uint64_t offset, std::span<const iovec> dst) {
    auto h = file(fh);
    if (!h) return h.error();
    if ((*h)->dir) return fail(EISDIR);
    if (!fits_off_t(offset)) return fail(EINVAL);
    size_t want = 0;
    for (const iovec& v : dst) want += v.iov_len;
    if (want == 0) return size_t{0};
    const int fd = (*h)->fd.get();
    size_t cnt = std::min(dst.size(), static_cast<size_t>(IOV_MAX));

    // Common case: one preadv fills the reply or stops at end of file.
    ssize_t r;
    do {
        // One buffer (the usual 4 KiB page): pread skips copying an iovec array into the kernel.
        r = cnt == 1 ? ::pread(fd, dst[0].iov_base, dst[0].iov_len, static_cast<off_t>(offset))
                     : ::preadv(fd, dst.data(), static_cast<int>(cnt), static_cast<off_t>(offset));
    } while (r < 0 && errno == EINTR);
    if (r < 0) return fail(errno);
    size_t total = static_cast<size_t>(r);
    if (r == 0 || total == want) return total;

    // A short read that is not end of file (signals, or more pieces than IOV_MAX): carry on
    // from where it stopped, on a copy of the iovec list.
    std::vector<iovec> rest(dst.begin(), dst.end());
    size_t skip = total;
    size_t first = 0;
    while (true) {
        while (first < rest.size() && skip >= rest[first].iov_len) skip -= rest[first++].iov_len;
        if (first == rest.size()) break;
        rest[first].iov_base = static_cast<uint8_t*>(rest[first].iov_base) + skip;
        rest[first].iov_len -= skip;
        cnt = std::min(rest.size() - first, static_cast<size_t>(IOV_MAX));
        r = ::preadv(fd, rest.data() + first, static_cast<int>(cnt), static_cast<off_t>(offset + total));
        if (r < 0 && errno == EINTR) {
            skip = 0;
            continue;
        }
        if (r <= 0) break;  // EOF, or an error after some data: report what was read
        total += static_cast<size_t>(r);
        skip = static_cast<size_t>(r);
    }
    return total;
}

Result<size_t> PassthroughFs::write(uint64_t, uint64_t fh, uint64_t offset, std::span<const struct iovec> data) {
    if (read_only_) return fail(EROFS);
    auto h = file(fh);
    if (!h) return h.error();
    if ((*h)->dir) return fail(EISDIR);
    size_t want = 0;
    for (const iovec& v : data) want += v.iov_len;
    if (!fits_off_t(offset) || !fits_off_t(offset + want)) return fail(EFBIG);
    const int fd = (*h)->fd.get();
    if (want == 0) return size_t{0};

    // Common case: one call writes it all. One buffer (a 4 KiB page, or a payload the guest
    // sent in one piece) goes to pwrite, which copies no iovec array into the kernel.
    ssize_t r;
    do {
        r = data.size() == 1 ? ::pwrite(fd, data[0].iov_base, data[0].iov_len, static_cast<off_t>(offset))
                             : ::pwritev(fd, data.data(), static_cast<int>(std::min<size_t>(data.size(), IOV_MAX)),
                                         static_cast<off_t>(offset));
    } while (r < 0 && errno == EINTR);
    if (r < 0) return fail(errno);
    size_t total = static_cast<size_t>(r);
    if (r == 0 || total == want) return total;

    // A short write (signals, more pieces than IOV_MAX): carry on from where it stopped, on a
    // private copy of the iovec array.
    std::vector<struct iovec> rest(data.begin(), data.end());
    size_t first = 0;
    auto advance = [&](size_t left) {
        while (left > 0 && first < rest.size()) {
            iovec& v = rest[first];
            size_t step = std::min(left, v.iov_len);
            v.iov_base = static_cast<uint8_t*>(v.iov_base) + step;
            v.iov_len -= step;
            left -= step;
            if (v.iov_len == 0) ++first;
        }
    };
    advance(total);
    while (total < want) {
        int count = static_cast<int>(std::min<size_t>(rest.size() - first, IOV_MAX));
        ssize_t n = ::pwritev(fd, rest.data() + first, count, static_cast<off_t>(offset + total));
        if (n < 0) {
            if (errno == EINTR) continue;
            break;  // a short write (e.g. ENOSPC midway) reports the part written
        }
        if (n == 0) break;
        total += static_cast<size_t>(n);
        advance(static_cast<size_t>(n));
    }
    return total;
}

void PassthroughFs::release(uint64_t, uint64_t fh) {
    HandleRef h = handles_.remove(fh);
    // The descriptor may outlive this call while another request still uses it; a flock lock
    // must not: the guest's file is closed now.
    if (h && h->flocked.load(std::memory_order_relaxed)) ::flock(h->fd.get(), LOCK_UN);
}

Result<void> PassthroughFs::flush(uint64_t nodeid, uint64_t fh, uint64_t lock_owner) {
    auto h = file(fh);
    if (!h) return h.error();
    // POSIX: closing any descriptor of a file drops all the closing process's locks on it.
    if (host_locks_) locks_.drop(nodeid, lock_owner);
    // FLUSH is the guest's close(2). Closing a duplicate gives the host filesystem the same
    // close-time hook (NFS writes back, POSIX locks of this process drop) while the handle
    // itself stays open until RELEASE.
    int dupfd = ::fcntl((*h)->fd.get(), F_DUPFD_CLOEXEC, 0);
    if (dupfd < 0) return fail(errno);
    if (::close(dupfd) != 0 && errno != EINTR) return fail(errno);
    return {};
}

Result<void> PassthroughFs::fsync(uint64_t, uint64_t fh, bool datasync) {
    auto h = file(fh);
    if (!h) return h.error();
    int rc = datasync ? ::fdatasync((*h)->fd.get()) : ::fsync((*h)->fd.get());
    if (rc != 0) return fail(errno);
    return {};
}

Result<void> PassthroughFs::fallocate(uint64_t, uint64_t fh, uint32_t mode, uint64_t offset, uint64_t length) {
    if (read_only_) return fail(EROFS);
    auto h = file(fh);
    if (!h) return h.error();
    if (!fits_off_t(offset) || !fits_off_t(length)) return fail(EFBIG);
    if (::fallocate((*h)->fd.get(), static_cast<int>(mode), static_cast<off_t>(offset),
                    static_cast<off_t>(length)) != 0)
        return fail(errno);
    return {};
}

Result<uint64_t> PassthroughFs::lseek(uint64_t, uint64_t fh, uint64_t offset, uint32_t whence) {
    auto h = file(fh);
    if (!h) return h.error();
    // A directory fd's position is its readdir cursor; leave it alone.
    if ((*h)->dir) return fail(EINVAL);
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END && whence != SEEK_DATA &&
        whence != SEEK_HOLE)
        return fail(EINVAL);
    // I/O uses pread/pwrite, so moving the shared file position changes nothing else.
    off_t r = ::lseek((*h)->fd.get(), static_cast<off_t>(offset), static_cast<int>(whence));
    if (r < 0) return fail(errno);
    return static_cast<uint64_t>(r);
}

Result<size_t> PassthroughFs::copy_file_range(uint64_t, uint64_t fh_in, uint64_t off_in, uint64_t, uint64_t fh_out,
                                              uint64_t off_out, uint64_t len, uint64_t flags) {
    if (read_only_) return fail(EROFS);
    if (flags != 0) return fail(EINVAL);  // copy_file_range(2) defines none
    auto in = file(fh_in);
    if (!in) return in.error();
    auto out = file(fh_out);
    if (!out) return out.error();
    if ((*in)->dir || (*out)->dir) return fail(EISDIR);
    if (!fits_off_t(off_in) || !fits_off_t(off_out)) return fail(EINVAL);
    // One request copies at most kMaxCopyChunk: a short count is allowed (the guest's caller
    // loops) and keeps the device's thread from disappearing into a multi-GiB copy.
    auto n = static_cast<size_t>(std::min<uint64_t>(len, kMaxCopyChunk));
    auto pin = static_cast<off_t>(off_in);
    auto pout = static_cast<off_t>(off_out);
    ssize_t r;
    do {
        r = ::copy_file_range((*in)->fd.get(), &pin, (*out)->fd.get(), &pout, n, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        // ENOSYS would make the guest give up on COPY_FILE_RANGE for good; EOPNOTSUPP (and
        // EXDEV, between submounts) make it fall back to a plain copy for this call only.
        return fail(errno == ENOSYS ? EOPNOTSUPP : errno);
    }
    return static_cast<size_t>(r);
}

Result<void> PassthroughFs::syncfs() {
    // One descriptor per filesystem the guest has reached (submounts included).
    int first_error = 0;
    for (const InodeRef& n : inodes_.one_per_device()) {
        auto fd = paths_.reopen(n->fd.get(), O_RDONLY | (n->type == S_IFDIR ? O_DIRECTORY : 0));
        if (!fd) {
            if (first_error == 0) first_error = fd.error().code;
            continue;
        }
        if (::syncfs(fd->get()) != 0 && first_error == 0) first_error = errno;
    }
    if (first_error != 0) return fail(first_error);
    return {};
}

Result<OpenFile> PassthroughFs::opendir(const Caller&, uint64_t nodeid, uint32_t) {
    auto n = any_node(nodeid);
    if (!n) return n.error();
    if ((*n)->type != S_IFDIR) return fail(ENOTDIR);
    auto h = std::make_shared<Handle>();
    if ((*n)->refused_mount) {
        // Nothing is opened on the host: the handle lists "." and ".." only.
        h->dir = std::make_unique<DirStream>();
        h->dir->empty_ino = (*n)->ino;
    } else {
        auto fd = paths_.reopen((*n)->fd.get(), O_RDONLY | O_DIRECTORY);
        if (!fd) return fd.error();
        h->fd = std::move(*fd);
        h->dir = std::make_unique<DirStream>();
    }
    auto fh = handles_.add(std::move(h));
    if (!fh) return fh.error();
    return OpenFile{*fh, 0};
}

Result<void> PassthroughFs::readdir(uint64_t, uint64_t fh, uint64_t offset, DirSink& sink) {
    auto h = file(fh);
    if (!h) return h.error();
    if (!(*h)->dir) return fail(ENOTDIR);
    DirStream& ds = *(*h)->dir;
    const int fd = (*h)->fd.get();
    std::lock_guard lock(ds.mu);
    if (!(*h)->fd.valid()) return read_empty_dir(ds.empty_ino, offset, sink);

    if (offset != ds.cursor) {
        // Offsets are the filesystem's opaque d_off cookies (or 0 to rewind); the guest only
        // hands back ones we gave it, and the host kernel validates them either way.
        if (!fits_off_t(offset)) return fail(EINVAL);
        if (::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) return fail(errno);
        ds.cursor = offset;
        ds.pending.clear();
        ds.pending_pos = 0;
    }

    size_t emitted = 0;
    // Hands the records in [pos, len) to the sink; false once the reply is full, with `pos`
    // at the first record not taken.
    auto hand_out = [&](const char* records, size_t len, size_t& pos) {
        while (pos < len) {
            const auto* d = reinterpret_cast<const LinuxDirent64*>(records + pos);
            Name name = Name::trusted(std::string_view(d->d_name));
            if (!sink.add(name, d->d_ino, d->d_type, static_cast<uint64_t>(d->d_off))) return false;
            ++emitted;
            ds.cursor = static_cast<uint64_t>(d->d_off);
            pos += d->d_reclen;
        }
        return true;
    };
    if (!hand_out(ds.pending.data(), ds.pending.size(), ds.pending_pos)) return {};
    ds.pending.clear();
    ds.pending_pos = 0;

    alignas(LinuxDirent64) char buf[4096];
    while (true) {
        long got = ::syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (got < 0) {
            // Entries already handed out (and, for READDIRPLUS, looked up) must reach the
            // guest; the error comes back on the next call.
            if (emitted > 0) return {};
            return fail(errno);
        }
        if (got == 0) return {};  // end of directory
        size_t pos = 0;
        if (!hand_out(buf, static_cast<size_t>(got), pos)) {
            ds.pending.assign(buf + pos, buf + got);  // the next READDIR starts with these
            return {};
        }
    }
}

void PassthroughFs::releasedir(uint64_t, uint64_t fh) { handles_.remove(fh); }

Result<void> PassthroughFs::fsyncdir(uint64_t, uint64_t fh, bool datasync) {
    auto h = file(fh);
    if (!h) return h.error();
    if (!(*h)->dir) return fail(ENOTDIR);
    if (!(*h)->fd.valid()) return {};  // a refused mount's empty directory: nothing to sync
    int rc = datasync ? ::fdatasync((*h)->fd.get()) : ::fsync((*h)->fd.get());
    if (rc != 0) return fail(errno);
    return {};
}

}  // namespace krunlet::fs
