// PassthroughFs: POSIX locks and flock under LockPolicy::Host (server.h; lock_table.h has the
// owner descriptors).
//
// No lock call here ever waits. The virtio-fs device answers requests one after another on
// one thread, and Server::handle() must return the reply, so a waiting SETLKW would stall
// every other request of the guest — including the unlock that would end the wait. The 6.1
// FUSE client (fs/fuse/file.c, fuse_setlk) hands our errno unchanged to the guest's
// fcntl(F_SETLKW) or flock() (only EINTR becomes a restart, and only with a signal pending).
// So a conflicting SETLKW is answered ENOLCK: an errno fcntl(F_SETLKW) and a blocking flock()
// are both documented to return, where EAGAIN would claim a non-blocking call was made.
// A conflicting SETLK gets EAGAIN, as fcntl(F_SETLK) and flock(LOCK_NB) return.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <mutex>

#include "virtiofs/passthrough.h"

namespace krunlet::fs {

namespace {

constexpr uint64_t kOffsetMax = INT64_MAX;  // FUSE's "to the end of the file" (OFFSET_MAX)

// fuse_file_lock → struct flock over [start, end]; false for a malformed lock (guest-controlled).
bool to_flock(const FileLock& lk, struct flock& fl) {
    if (lk.type != F_RDLCK && lk.type != F_WRLCK && lk.type != F_UNLCK) return false;
    if (lk.start > kOffsetMax || lk.end > kOffsetMax || lk.end < lk.start) return false;
    fl = {};
    fl.l_type = static_cast<short>(lk.type);
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(lk.start);
    fl.l_len = lk.end == kOffsetMax ? 0 : static_cast<off_t>(lk.end - lk.start + 1);
    return true;
}

FileLock from_flock(const struct flock& fl) {
    FileLock lk;
    lk.type = static_cast<uint32_t>(fl.l_type);
    lk.start = static_cast<uint64_t>(fl.l_start);
    lk.end = fl.l_len == 0 ? kOffsetMax : static_cast<uint64_t>(fl.l_start + fl.l_len - 1);
    return lk;
}

bool same_lock(const struct flock& a, const struct flock& b) {
    return a.l_type == b.l_type && a.l_start == b.l_start && a.l_len == b.l_len && a.l_pid == b.l_pid;
}

// Whether a descriptor opened with `access` may hold a lock of `type` (fcntl(2): EBADF).
bool access_allows(int access, uint32_t type) {
    if (type == F_RDLCK) return access != O_WRONLY;
    if (type == F_WRLCK) return access != O_RDONLY;
    return true;
}

int ofd_call(int fd, int cmd, struct flock& fl) {
    int rc;
    do {
        rc = ::fcntl(fd, cmd, &fl);
    } while (rc != 0 && errno == EINTR);
    return rc;
}

int conflict_error(bool wait) { return wait ? ENOLCK : EAGAIN; }

}  // namespace

Result<void> PassthroughFs::set_flock(Handle& h, uint32_t type, bool wait) {
    int op = type == F_RDLCK ? LOCK_SH : type == F_WRLCK ? LOCK_EX : type == F_UNLCK ? LOCK_UN : -1;
    if (op < 0) return fail(EINVAL);
    int rc;
    do {
        rc = ::flock(h.fd.get(), op | LOCK_NB);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) return fail(errno == EWOULDBLOCK ? conflict_error(wait) : errno);
    h.flocked.store(op != LOCK_UN, std::memory_order_relaxed);
    return {};
}

Result<void> PassthroughFs::setlk(uint64_t nodeid, uint64_t fh, uint64_t owner, const FileLock& lk, bool flock,
                                  bool wait) {
    if (!host_locks_) return fail(ENOSYS);
    auto h = file(fh);
    if (!h) return h.error();
    if (!(*h)->fd.valid()) return fail(ENOLCK);  // a refused mount's empty directory
    if (flock) return set_flock(**h, lk.type, wait);

    struct flock fl {};
    if (!to_flock(lk, fl)) return fail(EINVAL);
    const int hfd = (*h)->fd.get();
    int access = ::fcntl(hfd, F_GETFL);
    if (access < 0) return fail(errno);
    access &= O_ACCMODE;
    if (!access_allows(access, lk.type)) return fail(EBADF);  // as the host's fcntl would say

    LockOwnerRef lo;
    std::unique_lock<std::mutex> guard;
    bool created = false;
    do {  // again if another request of this owner dropped the entry meanwhile
        lo = locks_.find(nodeid, owner);
        created = !lo;
        if (!lo) {
            if (lk.type == F_UNLCK) return {};  // this owner holds nothing on the file
            // A new open file description of the handle's file, with the handle's access
            // (never O_TRUNC or O_CREAT): it only ever carries this owner's locks.
            auto fd = paths_.reopen(hfd, access);
            if (!fd) return fd.error();
            auto ins = locks_.insert(nodeid, owner, std::move(*fd), access);
            if (!ins) return ins.error();
            lo = *ins;
        }
        guard = std::unique_lock(lo->mu);
    } while (lo->dropped);
    // A descriptor made for an attempt that failed goes again (a guest polling a lock it
    // can't get keeps none). Otherwise it stays until FLUSH, even with nothing locked: a
    // whole-file lock/unlock loop then costs no reopen per lock.
    auto forget_if_empty = [&] {
        if (!created || lo->may_hold) return;
        lo->dropped = true;
        locks_.drop(nodeid, owner);
    };

    if (!access_allows(lo->access, lk.type)) {
        // The owner's descriptor came from a handle without this access (a read lock first,
        // then a write lock through another descriptor of the same process). It can be
        // swapped for a read-write one only while it carries no lock; locks can't move
        // between descriptors without a moment in which another owner could take them.
        if (lo->may_hold) return fail(ENOLCK);
        auto fd = paths_.reopen(hfd, O_RDWR);
        if (!fd) {
            forget_if_empty();
            return fd.error();
        }
        lo->fd = std::move(*fd);
        lo->access = O_RDWR;
    }
    if (ofd_call(lo->fd.get(), F_OFD_SETLK, fl) != 0) {
        int err = errno;
        forget_if_empty();
        if (err == EAGAIN || err == EACCES) return fail(conflict_error(wait));
        return fail(err);
    }
    if (lk.type != F_UNLCK) {
        lo->may_hold = true;
        lo->pid = lk.pid;
    } else if (fl.l_start == 0 && fl.l_len == 0) {
        lo->may_hold = false;  // everything released
    }
    return {};
}

Result<FileLock> PassthroughFs::getlk(uint64_t nodeid, uint64_t fh, uint64_t owner, const FileLock& query) {
    if (!host_locks_) return fail(ENOSYS);
    auto h = file(fh);
    if (!h) return h.error();
    struct flock q {};
    if (!to_flock(query, q) || query.type == F_UNLCK) return fail(EINVAL);
    FileLock none = query;
    none.type = F_UNLCK;
    none.pid = 0;
    if (!(*h)->fd.valid()) return none;

    // Through the owner's own descriptor the owner's locks don't count as conflicts (as with
    // F_GETLK); an owner without one holds no locks, and the handle's descriptor carries none.
    struct flock found = q;
    if (LockOwnerRef lo = locks_.find(nodeid, owner)) {
        std::lock_guard guard(lo->mu);
        if (ofd_call(lo->fd.get(), F_OFD_GETLK, found) != 0) return fail(errno);
    } else if (ofd_call((*h)->fd.get(), F_OFD_GETLK, found) != 0) {
        return fail(errno);
    }
    if (found.l_type == F_UNLCK) return none;

    FileLock out = from_flock(found);
    // l_pid is -1 for an OFD lock: ours (a guest owner) or a host process's OFD lock; a host
    // process's classic lock has a host pid, which means nothing in the guest (0 = unknown).
    if (found.l_pid == -1) out.pid = holder_pid(nodeid, owner, q, found);
    return out;
}

uint32_t PassthroughFs::holder_pid(uint64_t nodeid, uint64_t owner, const struct flock& query,
                                   const struct flock& found) {
    // Ask again through each other owner's descriptor, which hides that owner's locks: if the
    // conflict is gone, that owner held it. If another lock shows instead, the owner probably
    // held it (or the querier's own lock surfaced): kept as a fallback guess.
    uint32_t guess = 0;
    for (const LockOwnerRef& other : locks_.others(nodeid, owner)) {
        std::lock_guard guard(other->mu);
        if (!other->may_hold) continue;
        struct flock probe = query;
        if (ofd_call(other->fd.get(), F_OFD_GETLK, probe) != 0) continue;
        if (probe.l_type == F_UNLCK) return other->pid;
        if (!same_lock(probe, found) && guess == 0) guess = other->pid;
    }
    return guess;
}

}  // namespace krunlet::fs
