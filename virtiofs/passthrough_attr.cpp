// PassthroughFs: attributes, permission checks, statfs and extended attributes.
#include <fcntl.h>
#include <linux/limits.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <vector>

#include "virtiofs/passthrough.h"
#include "virtiofs/xattr_policy.h"

namespace krunlet::fs {

namespace {

// xattr names are not path components: they contain dots ("user.mime_type"). They only need to
// be non-empty and within the kernel's XATTR_NAME_MAX.
bool valid_xattr_name(const Name& name) { return !name.view().empty() && name.view().size() <= XATTR_NAME_MAX; }

}  // namespace

Result<struct stat> PassthroughFs::getattr(uint64_t nodeid, std::optional<uint64_t>) {
    // The O_PATH fd names the same inode as any open handle (even after an unlink), so the
    // handle the guest may pass adds nothing.
    auto n = any_node(nodeid);
    if (!n) return n.error();
    auto st = stat_fd((*n)->fd.get());
    if (st && (*n)->refused_mount) return refused_mount_attr(*st);
    return st;
}

Result<struct stat> PassthroughFs::setattr(const Caller&, uint64_t nodeid, const SetAttrRequest& r) {
    KRUNLET_CHECK(check_writable());
    auto n = node(nodeid);
    if (!n) return n.error();
    const Inode& inode = **n;
    const int fd = inode.fd.get();
    const auto fdname = HostPaths::fd_name(fd);
    // An fh from the guest is a hint: if it names an open file we use that descriptor (as
    // ftruncate/fchmod on the guest's open file would), otherwise the inode itself.
    HandleRef h = r.fh ? handles_.get(*r.fh) : nullptr;

    // The order follows chmod, chown, truncate, utimes: chown may clear setuid bits that a
    // chmod in the same request set, exactly as separate calls would.
    if (r.mode) {
        mode_t m = *r.mode & 07777;
        if (inode.type == S_IFLNK) return fail(EOPNOTSUPP);  // Linux has no lchmod
        int rc = h ? ::fchmod(h->fd.get(), m) : ::fchmodat(paths_.proc_fd(), fdname.c_str(), m, 0);
        if (rc != 0) return fail(errno);
    }
    if (r.uid || r.gid) {
        uid_t uid = r.uid ? *r.uid : static_cast<uid_t>(-1);
        gid_t gid = r.gid ? *r.gid : static_cast<gid_t>(-1);
        if (::fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return fail(errno);
    }
    if (r.size) {
        if (*r.size > static_cast<uint64_t>(INT64_MAX)) return fail(EFBIG);
        auto len = static_cast<off_t>(*r.size);
        if (h) {
            if (::ftruncate(h->fd.get(), len) != 0) return fail(errno);
        } else {
            if (inode.type == S_IFDIR) return fail(EISDIR);
            if (inode.type != S_IFREG) return fail(EINVAL);  // never open a FIFO/device to truncate it
            auto wfd = paths_.reopen(fd, O_WRONLY);
            if (!wfd) return wfd.error();
            if (::ftruncate(wfd->get(), len) != 0) return fail(errno);
        }
    }
    if (r.atime || r.mtime) {
        timespec ts[2];
        ts[0] = r.atime ? *r.atime : timespec{0, UTIME_OMIT};
        ts[1] = r.mtime ? *r.mtime : timespec{0, UTIME_OMIT};
        int rc;
        if (h)
            rc = ::futimens(h->fd.get(), ts);
        else if (inode.type == S_IFLNK)
            rc = ::utimensat(fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
        else
            rc = ::utimensat(paths_.proc_fd(), fdname.c_str(), ts, 0);
        if (rc != 0) return fail(errno);
    }
    return stat_fd(fd);
}

Result<void> PassthroughFs::access(const Caller& c, uint64_t nodeid, uint32_t mask) {
    auto n = any_node(nodeid);
    if (!n) return n.error();
    if ((mask & ~static_cast<uint32_t>(R_OK | W_OK | X_OK)) != 0) return fail(EINVAL);
    auto st = stat_fd((*n)->fd.get());
    if (!st) return st.error();
    if (mask == F_OK) return {};
    if ((mask & W_OK) && read_only_) return fail(EROFS);
    if ((*n)->refused_mount) {
        if (mask & W_OK) return fail(EACCES);  // nothing in it can be changed
        *st = refused_mount_attr(*st);
    }
    // access(2) on the host would check the server's real uid, not the guest's, so the classic
    // owner/group/other rule is evaluated here with the request's ids. The guest's
    // supplementary groups are unknown to FUSE; ACLs are not consulted.
    mode_t mode = st->st_mode;
    if (c.uid == 0) {
        // root may read and write anything; executing needs one x bit on non-directories.
        if ((mask & X_OK) && !S_ISDIR(mode) && (mode & 0111) == 0) return fail(EACCES);
        return {};
    }
    uint32_t granted;
    if (c.uid == st->st_uid)
        granted = (mode >> 6) & 7;
    else if (c.gid == st->st_gid)
        granted = (mode >> 3) & 7;
    else
        granted = mode & 7;
    if ((mask & granted) != mask) return fail(EACCES);
    return {};
}

Result<struct statvfs> PassthroughFs::statfs(uint64_t nodeid) {
    auto n = any_node(nodeid);
    if (!n) return n.error();
    // A refused mount says nothing about itself: the share's root filesystem answers.
    InodeRef target = (*n)->refused_mount ? inodes_.root() : *n;
    struct statvfs sv {};
    if (::fstatvfs(target->fd.get(), &sv) != 0) return fail(errno);
    return sv;
}

// The xattr system calls take a path; "/proc/self/fd/N" resolves to the object of our O_PATH fd
// (a symlink included, without following it) on every kernel, unlike the *xattrat calls of 6.13.
// Every name goes through xattr_policy.h first: the guest never reaches the host's trusted.*
// or LSM labels.

Result<void> PassthroughFs::setxattr(uint64_t nodeid, const Name& name, std::span<const uint8_t> value,
                                     uint32_t flags) {
    KRUNLET_CHECK(check_writable());
    auto n = node(nodeid);
    if (!n) return n.error();
    if (!valid_xattr_name(name) || value.size() > XATTR_SIZE_MAX) return fail(EINVAL);
    if ((flags & ~static_cast<uint32_t>(XATTR_CREATE | XATTR_REPLACE)) != 0) return fail(EINVAL);
    auto host = xattr::to_host(name.view());
    if (!host) return host.error();
    if (::setxattr(HostPaths::proc_path((*n)->fd.get()).c_str(), host->c_str(), value.data(), value.size(),
                   static_cast<int>(flags)) != 0)
        return fail(errno);
    return {};
}

Result<size_t> PassthroughFs::getxattr(uint64_t nodeid, const Name& name, std::span<uint8_t> buf) {
    auto n = any_node(nodeid);
    if (!n) return n.error();
    if (!valid_xattr_name(name)) return fail(EINVAL);
    auto host = xattr::to_host(name.view());
    if (!host) return host.error();
    if ((*n)->refused_mount) return fail(ENODATA);
    ssize_t len = ::getxattr(HostPaths::proc_path((*n)->fd.get()).c_str(), host->c_str(),
                             buf.empty() ? nullptr : buf.data(), buf.size());
    if (len < 0) return fail(errno);
    return static_cast<size_t>(len);
}

Result<size_t> PassthroughFs::listxattr(const Caller& c, uint64_t nodeid, std::span<uint8_t> buf) {
    auto n = any_node(nodeid);
    if (!n) return n.error();
    if ((*n)->refused_mount) return size_t{0};
    // The guest's list differs from the host's (names mapped back, host-only names hidden), so
    // the whole host list is read even for a size query. Its size is asked first; a list that
    // grew in between is read again at the largest size Linux allows.
    const auto path = HostPaths::proc_path((*n)->fd.get());
    ssize_t size = ::listxattr(path.c_str(), nullptr, 0);
    if (size < 0) return fail(errno);
    if (size == 0) return size_t{0};
    std::vector<char> host(static_cast<size_t>(size));
    ssize_t len = ::listxattr(path.c_str(), host.data(), host.size());
    if (len < 0 && errno == ERANGE) {
        host.resize(XATTR_LIST_MAX);
        len = ::listxattr(path.c_str(), host.data(), host.size());
    }
    if (len < 0) return fail(errno);
    return xattr::to_guest_list(std::span<const char>(host.data(), static_cast<size_t>(len)),
                                std::span<char>(reinterpret_cast<char*>(buf.data()), buf.size()), c.uid == 0);
}

Result<void> PassthroughFs::removexattr(uint64_t nodeid, const Name& name) {
    KRUNLET_CHECK(check_writable());
    auto n = node(nodeid);
    if (!n) return n.error();
    if (!valid_xattr_name(name)) return fail(EINVAL);
    auto host = xattr::to_host(name.view());
    if (!host) return host.error();
    if (::removexattr(HostPaths::proc_path((*n)->fd.get()).c_str(), host->c_str()) != 0) return fail(errno);
    return {};
}

}  // namespace krunlet::fs
