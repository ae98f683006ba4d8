// PassthroughFs: construction and the name operations (see passthrough.h for the policy).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <utility>

#include "virtiofs/fs_creds.h"
#include "virtiofs/passthrough.h"

namespace krunlet::fs {

Result<struct stat> stat_fd(int fd) {
    struct stat st {};
    // The fstat system call itself: glibc's fstat() is fstatat(fd, "", AT_EMPTY_PATH), whose
    // empty path the kernel still copies in and checks (about 0.1 µs of GETATTR's ~0.7 here).
    // An O_PATH fd of a symlink stats the link, as AT_SYMLINK_NOFOLLOW would.
    if (::syscall(SYS_fstat, fd, &st) != 0) return fail(errno);
    return st;
}

Result<std::unique_ptr<PassthroughFs>> PassthroughFs::create(const PassthroughConfig& cfg) {
    if (cfg.root_dir.empty())
        return make_error(EINVAL, "virtio-fs: root_dir is empty; set ServerConfig::root_dir to the directory to share");
    if (cfg.max_inodes < 1 || cfg.max_handles < 1)
        return make_error(EINVAL, "virtio-fs: max_inodes and max_handles must be at least 1");
    auto paths = HostPaths::create();
    if (!paths) return paths.error();
    auto mounts = Mounts::create();
    if (!mounts) return mounts.error();

    // root_dir is host configuration, not guest input: symlinks on the way to it are followed.
    UniqueFd root(::open(cfg.root_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root.valid()) {
        Error e = errno_error("virtio-fs: open root_dir '" + cfg.root_dir + "'");
        e.message += " (it must be an existing directory)";
        return e;
    }
    auto st = mounts->stat_fd(root.get());
    if (!st) return make_error(st.error().code, "virtio-fs: stat root_dir '" + cfg.root_dir + "': " +
                                                    std::strerror(st.error().code));

    std::unique_ptr<PassthroughFs> fs(
        new PassthroughFs(cfg, std::move(*paths), std::move(*mounts), FsCreds::can_switch()));
    fs->inodes_.set_root(std::move(root), st->st, st->mnt_id);
    return fs;
}

PassthroughFs::PassthroughFs(const PassthroughConfig& cfg, HostPaths paths, Mounts mounts, bool switch_creds)
    : paths_(std::move(paths)),
      mounts_(std::move(mounts)),
      inodes_(cfg.max_inodes, kFirstDynamicNodeId),
      handles_(cfg.max_handles),
      read_only_(cfg.read_only),
      host_locks_(cfg.host_locks),
      switch_creds_(switch_creds),
      own_ids_(FsCreds::current()) {}

void PassthroughFs::mounted() {
    // The VMM may have dropped privileges (krun_setuid) after this server was made and before
    // the guest mounted it; it does so before any vCPU runs, so INIT sees the final state.
    switch_creds_ = FsCreds::can_switch();
    own_ids_ = FsCreds::current();
}

void PassthroughFs::destroy() {
    handles_.clear();
    locks_.clear();
    inodes_.clear();
}

Result<InodeRef> PassthroughFs::any_node(uint64_t nodeid) {
    PendingName where;
    InodeRef n = inodes_.get(nodeid, &where);
    if (!n) return fail(ESTALE);
    if (where.parent) KRUNLET_CHECK(open_pending(n, where));
    return n;
}

Result<InodeRef> PassthroughFs::node(uint64_t nodeid) {
    auto n = any_node(nodeid);
    if (n && (*n)->refused_mount) return fail(EACCES);
    return n;
}

Result<InodeRef> PassthroughFs::dir_node(uint64_t nodeid) {
    auto n = any_node(nodeid);
    if (n && (*n)->type != S_IFDIR) return fail(ENOTDIR);
    if (n && (*n)->refused_mount) return fail(EACCES);
    return n;
}

Result<void> PassthroughFs::open_pending(const InodeRef& n, const PendingName& where) {
    // The name was validated when it was registered; a lookup that found the object under
    // another name since has moved `where` there (InodeTable::ref_existing).
    auto fd = paths_.open_child(where.parent->fd.get(), Name::trusted(where.name), O_PATH);
    if (!fd) return fail(fd.error().code == ENOENT ? ESTALE : fd.error().code);
    auto ms = mounts_.stat_fd(fd->get());
    if (!ms) return ms.error();
    // Only the object that was registered: after a rename on the host the name may now lead
    // to another one (or onto another mount, whose policy only register_node applies).
    if (ms->st.st_dev != n->dev || ms->st.st_ino != n->ino || ms->mnt_id != n->mnt_id) return fail(ESTALE);
    inodes_.adopt(n, std::move(*fd));
    return {};
}

Result<HandleRef> PassthroughFs::file(uint64_t fh) const {
    HandleRef h = handles_.get(fh);
    if (!h) return fail(EBADF);
    return h;
}

Result<void> PassthroughFs::check_writable() const {
    if (read_only_) return fail(EROFS);
    return {};
}

Result<Entry> PassthroughFs::lookup_in(const InodeRef& dir, const Name& name) {
    // One no-follow stat by name gives the attributes and the key. statx with
    // AT_SYMLINK_NOFOLLOW on a validated single component cannot leave `dir`; at a mount point
    // it reports the mounted root, the object the table knows by that key.
    auto st = mounts_.stat_at(dir->fd.get(), name.c_str());
    if (!st) return st.error();
    if (st->mnt_id == kUnknownMount) return open_and_register(*dir, name);
    // Known to the guest already: no new fd.
    if (InodeRef known = inodes_.ref_existing(InodeKey{st->st.st_dev, st->st.st_ino, st->mnt_id}, dir, name.view()))
        return Entry{known->nodeid, 0, known->refused_mount ? refused_mount_attr(st->st) : st->st};
    // New, and not a directory, on the directory's own mount: registered without opening it
    // (InodeTable::add_unopened). A walk, a `stat` of many files or an unlink then costs one
    // system call per name, and the first request that needs the fd opens it (any_node).
    // Directories are opened now: they outlive most names (a working directory, openat
    // bases), so a host-side rename later must not leave the guest with ESTALE. A mount
    // point needs an fd for its policy (register_node).
    if (st->mnt_id == dir->mnt_id && !S_ISDIR(st->st.st_mode)) {
        auto inode = inodes_.add_unopened(st->st, st->mnt_id, dir, std::string(name.view()));
        if (!inode) return inode.error();
        return Entry{(*inode)->nodeid, 0, st->st};
    }
    return open_and_register(*dir, name);
}

Result<Entry> PassthroughFs::open_and_register(const Inode& dir, const Name& name) {
    auto fd = paths_.open_child(dir.fd.get(), name, O_PATH);
    if (!fd) return fd.error();
    auto ms = mounts_.stat_fd(fd->get());
    if (!ms) return ms.error();
    return register_node(dir, std::move(*fd), *ms);
}

Result<Entry> PassthroughFs::register_node(const Inode& dir, UniqueFd fd, const MountedStat& ms) {
    bool refused = false;
    if (ms.mnt_id != dir.mnt_id && !mounts_.may_enter(fd.get(), ms)) {
        // A pseudo filesystem of the host: a directory becomes an empty one for the guest
        // (somewhere to mount its own), anything else is simply out of bounds.
        if (!S_ISDIR(ms.st.st_mode)) return fail(EACCES);
        refused = true;
    }
    auto inode = inodes_.add_lookup(std::move(fd), ms.st, ms.mnt_id, refused);
    if (!inode) return inode.error();
    return Entry{(*inode)->nodeid, 0, (*inode)->refused_mount ? refused_mount_attr(ms.st) : ms.st};
}

Result<Entry> PassthroughFs::finish_create(const Inode& dir, const Name& name, mode_t want_perm) {
    auto fd = paths_.open_child(dir.fd.get(), name, O_PATH);
    if (!fd) {
        undo_create(dir.fd.get(), name, nullptr);
        return fd.error();
    }
    auto ms = mounts_.stat_fd(fd->get());
    if (!ms) {
        undo_create(dir.fd.get(), name, nullptr);
        return ms.error();
    }
    struct stat& st = ms->st;
    // The server's own umask applies on top of the guest's; put back bits it removed. The
    // guest's umask was already applied to want_perm. Special bits (setgid inherited from the
    // parent directory, sticky) are kept as the kernel set them.
    if (!S_ISLNK(st.st_mode) && (st.st_mode & 0777) != (want_perm & 0777)) {
        mode_t fixed = (st.st_mode & 07000) | (want_perm & 0777);
        if (::fchmodat(paths_.proc_fd(), HostPaths::fd_name(fd->get()).c_str(), fixed, 0) != 0) {
            Error e = fail(errno);
            undo_create(dir.fd.get(), name, &st);
            return e;
        }
        st.st_mode = (st.st_mode & S_IFMT) | fixed;
    }
    const struct stat made = st;
    auto entry = register_node(dir, std::move(*fd), *ms);
    if (!entry) undo_create(dir.fd.get(), name, &made);
    return entry;
}

// A create-type request the guest sees fail (the server's inode or handle cap, its fd
// budget) must leave nothing behind on the host: the guest would otherwise find a name it
// was told was never made. The name was free a moment ago (O_EXCL, mkdirat, mknodat and
// symlinkat all fail on an existing one) and this share's requests run one at a time, so
// the object under it is ours unless a host process replaced it since; `made`, when the
// server got that far, proves the identity, and nothing else is removed.
void PassthroughFs::undo_create(int dirfd, const Name& name, const struct stat* made) {
    struct stat now{};
    if (::fstatat(dirfd, name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0) return;
    if (made != nullptr && (now.st_dev != made->st_dev || now.st_ino != made->st_ino)) return;
    if (made == nullptr && now.st_nlink > (S_ISDIR(now.st_mode) ? 2u : 1u)) return;  // linked since: not ours alone
    ::unlinkat(dirfd, name.c_str(), S_ISDIR(now.st_mode) ? AT_REMOVEDIR : 0);
}

Result<Entry> PassthroughFs::lookup(const Caller&, uint64_t parent, const Name& name) {
    auto dir = any_node(parent);
    if (!dir) return dir.error();
    if ((*dir)->type != S_IFDIR) return fail(ENOTDIR);
    if ((*dir)->refused_mount) return valid_name(name.view()) ? fail(ENOENT) : fail(EINVAL);  // empty
    if (parent == kRootNodeId && name == "..") {
        // The share's root is the guest's "/": its parent is itself. The root's count is pinned.
        auto st = stat_fd((*dir)->fd.get());
        if (!st) return st.error();
        return Entry{kRootNodeId, 0, *st};
    }
    if (!valid_name(name.view())) return fail(EINVAL);
    return lookup_in(*dir, name);
}

void PassthroughFs::forget(uint64_t node, uint64_t nlookup) {
    // The guest forgets an inode only when no file of it is open, so no owner should hold a
    // lock on it any more; a guest that forgets early loses them (as after its close).
    if (inodes_.forget(node, nlookup) && host_locks_) locks_.drop_node(node);
}

Result<size_t> PassthroughFs::readlink(uint64_t nodeid, std::span<char> buf) {
    auto n = any_node(nodeid);
    if (!n) return n.error();
    if ((*n)->type != S_IFLNK) return fail(EINVAL);
    ssize_t len = ::readlinkat((*n)->fd.get(), "", buf.data(), buf.size());
    if (len < 0) return fail(errno);
    return static_cast<size_t>(len);
}

Result<Entry> PassthroughFs::mknod(const Caller& c, uint64_t parent, const Name& name, uint32_t mode,
                                   uint32_t umask, dev_t rdev) {
    KRUNLET_CHECK(check_writable());
    auto dir = dir_node(parent);
    if (!dir) return dir.error();
    if (!valid_name(name.view())) return fail(EINVAL);
    mode_t type = mode & S_IFMT;
    if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK)
        return fail(EINVAL);
    // Of the device nodes only the 0:0 character device is made: overlayfs in the guest uses
    // it as a whiteout. Any other would leave a working door to a host device (a disk, /dev/mem)
    // in the share for whoever on the host opens it later. The guest has its own devtmpfs.
    if ((type == S_IFCHR || type == S_IFBLK) && (type != S_IFCHR || rdev != 0)) return fail(EPERM);
    mode_t perm = mode & 07777 & ~umask;
    auto creds = FsCreds::enter(switch_creds_, c.uid, c.gid, own_ids_);
    if (!creds) return fail(creds.error().code);
    if (::mknodat((*dir)->fd.get(), name.c_str(), type | perm, rdev) != 0) return fail(errno);
    return finish_create(**dir, name, perm);
}

Result<Entry> PassthroughFs::mkdir(const Caller& c, uint64_t parent, const Name& name, uint32_t mode,
                                   uint32_t umask) {
    KRUNLET_CHECK(check_writable());
    auto dir = dir_node(parent);
    if (!dir) return dir.error();
    if (!valid_name(name.view())) return fail(EINVAL);
    mode_t perm = mode & 07777 & ~umask;
    auto creds = FsCreds::enter(switch_creds_, c.uid, c.gid, own_ids_);
    if (!creds) return fail(creds.error().code);
    if (::mkdirat((*dir)->fd.get(), name.c_str(), perm) != 0) return fail(errno);
    return finish_create(**dir, name, perm);
}

Result<Entry> PassthroughFs::symlink(const Caller& c, uint64_t parent, const Name& name,
                                     std::string_view target) {
    KRUNLET_CHECK(check_writable());
    auto dir = dir_node(parent);
    if (!dir) return dir.error();
    if (!valid_name(name.view())) return fail(EINVAL);
    // The target is stored verbatim and never followed here; it only has to be a valid path.
    if (target.empty() || target.size() >= PATH_MAX) return fail(EINVAL);
    auto creds = FsCreds::enter(switch_creds_, c.uid, c.gid, own_ids_);
    if (!creds) return fail(creds.error().code);
    if (::symlinkat(target.data(), (*dir)->fd.get(), name.c_str()) != 0) return fail(errno);
    return finish_create(**dir, name, 0777);
}

Result<Entry> PassthroughFs::link(const Caller&, uint64_t nodeid, uint64_t newparent, const Name& newname) {
    KRUNLET_CHECK(check_writable());
    auto n = node(nodeid);
    if (!n) return n.error();
    auto dir = dir_node(newparent);
    if (!dir) return dir.error();
    if (!valid_name(newname.view())) return fail(EINVAL);
    if ((*n)->type == S_IFDIR) return fail(EPERM);
    int src = (*n)->fd.get();
    int dst = (*dir)->fd.get();
    // Linking an O_PATH fd by AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (ENOENT without it);
    // the /proc magic link works for everyone and, for a symlink, links the symlink itself.
    if (::linkat(src, "", dst, newname.c_str(), AT_EMPTY_PATH) != 0) {
        if (errno != ENOENT) return fail(errno);
        if (::linkat(AT_FDCWD, HostPaths::proc_path(src).c_str(), dst, newname.c_str(), AT_SYMLINK_FOLLOW) != 0)
            return fail(errno);
    }
    return lookup_in(*dir, newname);
}

Result<Created> PassthroughFs::create(const Caller& c, uint64_t parent, const Name& name, uint32_t flags,
                                      uint32_t mode, uint32_t umask) {
    KRUNLET_CHECK(check_writable());
    auto dir = dir_node(parent);
    if (!dir) return dir.error();
    if (!valid_name(name.view())) return fail(EINVAL);
    int oflags = sanitize_open_flags(flags);
    if (oflags < 0) return fail(EINVAL);
    mode_t perm = mode & 07777 & ~umask;

    auto creds = FsCreds::enter(switch_creds_, c.uid, c.gid, own_ids_);
    if (!creds) return fail(creds.error().code);
    // O_EXCL first: a plain O_CREAT would open whatever already sits under the name — a FIFO
    // or a device node included. Only a regular file that already exists is reopened.
    bool created = true;
    auto fd = paths_.open_child((*dir)->fd.get(), name, oflags | O_CREAT | O_EXCL, perm);
    if (!fd && fd.error().code == EEXIST && (flags & O_EXCL) == 0) {
        created = false;
        auto existing = paths_.open_child((*dir)->fd.get(), name, O_PATH);
        if (!existing) return existing.error();
        auto st = mounts_.stat_fd(existing->get());
        if (!st) return st.error();
        // A file bind-mounted here from a refused filesystem (a /proc file, a devtmpfs node)
        // is out of bounds, as LOOKUP says: never opened, let alone truncated.
        if (st->mnt_id != (*dir)->mnt_id && !mounts_.may_enter(existing->get(), *st)) return fail(EACCES);
        if (S_ISDIR(st->st.st_mode)) return fail(EISDIR);
        if (S_ISLNK(st->st.st_mode)) return fail(ELOOP);
        if (!S_ISREG(st->st.st_mode)) return fail(kSpecialFileError);
        fd = paths_.reopen(existing->get(), oflags);
    }
    if (!fd) return fd.error();
    return register_open(std::move(*fd), created, perm, &*dir, &name);
}

Result<Created> PassthroughFs::tmpfile(const Caller& c, uint64_t parent, uint32_t flags, uint32_t mode,
                                       uint32_t umask) {
    KRUNLET_CHECK(check_writable());
    auto dir = dir_node(parent);
    if (!dir) return dir.error();
    int oflags = sanitize_open_flags(flags);
    if (oflags < 0 || (oflags & O_ACCMODE) == O_RDONLY) return fail(EINVAL);  // open(2) says the same
    // O_EXCL keeps the file from ever being linked (open(2)); it is the guest's choice.
    oflags |= O_TMPFILE | O_CLOEXEC | (static_cast<int>(flags) & O_EXCL);
    mode_t perm = mode & 07777 & ~umask;
    auto creds = FsCreds::enter(switch_creds_, c.uid, c.gid, own_ids_);
    if (!creds) return fail(creds.error().code);
    // "." of the directory's own fd: no name is resolved, so nothing can lead outside.
    UniqueFd fd(::openat((*dir)->fd.get(), ".", oflags, perm));
    if (!fd.valid()) return fail(errno);
    return register_open(std::move(fd), true, perm);
}

Result<Created> PassthroughFs::register_open(UniqueFd fd, bool created, mode_t perm, const InodeRef* dir,
                                             const Name* name) {
    auto ms = mounts_.stat_fd(fd.get());
    if (!ms) return ms.error();
    struct stat& st = ms->st;
    // A CREATE that fails from here on removes the file it made (undo_create).
    auto failed = [&](Error e) -> Error {
        if (created && dir != nullptr && name != nullptr) undo_create((*dir)->fd.get(), *name, &st);
        return e;
    };
    if (created && (st.st_mode & 0777) != (perm & 0777)) {  // see finish_create
        mode_t fixed = (st.st_mode & 07000) | (perm & 0777);
        if (::fchmod(fd.get(), fixed) != 0) return failed(fail(errno));
        st.st_mode = (st.st_mode & S_IFMT) | fixed;
    }
    // The inode: known by the name it was just opened under, it needs no O_PATH fd of its own
    // until a request uses it without the handle (InodeTable::add_unopened); an unnamed file
    // (O_TMPFILE), or one bind-mounted onto the name, gets one now.
    const bool by_name = dir != nullptr && name != nullptr && ms->mnt_id == (*dir)->mnt_id;
    UniqueFd opath;
    if (!by_name) {
        auto r = paths_.reopen(fd.get(), O_PATH);
        if (!r) return failed(r.error());
        opath = std::move(*r);
    }

    auto h = std::make_shared<Handle>();
    h->fd = std::move(fd);
    auto fh = handles_.add(std::move(h));
    if (!fh) return failed(fh.error());
    auto inode = by_name ? inodes_.add_unopened(st, ms->mnt_id, *dir, std::string(name->view()))
                         : inodes_.add_lookup(std::move(opath), st, ms->mnt_id);
    if (!inode) {
        handles_.remove(*fh);
        return failed(inode.error());
    }
    return Created{Entry{(*inode)->nodeid, 0, st}, OpenFile{*fh, 0}};
}

Result<void> PassthroughFs::unlink(uint64_t parent, const Name& name) {
    KRUNLET_CHECK(check_writable());
    auto dir = dir_node(parent);
    if (!dir) return dir.error();
    if (!valid_name(name.view())) return fail(EINVAL);
    if (::unlinkat((*dir)->fd.get(), name.c_str(), 0) != 0) return fail(errno);
    return {};
}

Result<void> PassthroughFs::rmdir(uint64_t parent, const Name& name) {
    KRUNLET_CHECK(check_writable());
    auto dir = dir_node(parent);
    if (!dir) return dir.error();
    if (!valid_name(name.view())) return fail(EINVAL);
    if (::unlinkat((*dir)->fd.get(), name.c_str(), AT_REMOVEDIR) != 0) return fail(errno);
    return {};
}

Result<void> PassthroughFs::rename(uint64_t parent, const Name& name, uint64_t newparent, const Name& newname,
                                   uint32_t flags) {
    KRUNLET_CHECK(check_writable());
    auto from = dir_node(parent);
    if (!from) return from.error();
    auto to = dir_node(newparent);
    if (!to) return to.error();
    if (!valid_name(name.view()) || !valid_name(newname.view())) return fail(EINVAL);
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) != 0) return fail(EINVAL);
    if (::renameat2((*from)->fd.get(), name.c_str(), (*to)->fd.get(), newname.c_str(), flags) != 0)
        return fail(errno);
    // An object the table holds unopened is now found under the new name (and with EXCHANGE,
    // the other one under the old name). One stat per side keeps it reachable; were the name
    // stale, the guest would see ESTALE until its VFS looked the path up again.
    moved_to(*to, newname);
    if (flags & RENAME_EXCHANGE) moved_to(*from, name);
    return {};
}

void PassthroughFs::moved_to(const InodeRef& dir, const Name& name) {
    auto st = mounts_.stat_at(dir->fd.get(), name.c_str());
    if (st && st->mnt_id != kUnknownMount)
        inodes_.moved(InodeKey{st->st.st_dev, st->st.st_ino, st->mnt_id}, dir, name.view());
}

}  // namespace krunlet::fs
