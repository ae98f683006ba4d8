// The host passthrough backend: serves a host directory to the guest, confined to it.
//
// Split by concern:
//   passthrough_entry.cpp — name operations: lookup, forget, create/mkdir/mknod/symlink/link,
//                           unlink/rmdir/rename, readlink
//   passthrough_attr.cpp  — getattr/setattr/access/statfs and extended attributes
//   passthrough_io.cpp    — open files and directories: open/read/write/…/readdir, copy, syncfs
//   passthrough_locks.cpp — POSIX locks and flock (LockPolicy::Host)
//
// Policy (see also host_path.h):
//   - Unknown node ids get ESTALE, unknown file handles EBADF.
//   - LOOKUP of ".." in the root gives the root; every other ".." or "." is EINVAL (the guest
//     resolves those itself; only NFS-export style lookups would send them).
//   - FIFOs, sockets and device nodes are never opened on the host: ENXIO. MKNOD makes FIFOs,
//     sockets and the 0:0 whiteout character device; any other device node is EPERM.
//   - Extended attribute names are mapped by xattr_policy.h (trusted.* and LSM labels are
//     kept apart from the host's own).
//   - O_TMPFILE (FUSE_TMPFILE) opens an unnamed file in the directory; LINK names it.
//   - Inodes are keyed by (dev, ino, mount id) and hold an O_PATH fd. A file (anything but a
//     directory) that LOOKUP, READDIRPLUS or CREATE finds by name on its directory's own mount
//     is registered with that name instead, and opened on the first request that needs its
//     fd: one statx per name for a walk, `stat` or `unlink`. If its name no longer leads to
//     it by then (a host-side rename), that request gets ESTALE, and the guest's VFS looks the
//     path up again, which repoints it. Renames through the server repoint it at once.
//     Directories are opened at once: they are long-lived handles (working directories). A LOOKUP that crosses into a mount of a
//     pseudo filesystem (procfs, sysfs, devtmpfs, ...) does not enter it: the guest sees an
//     empty directory there that every change refuses with EACCES (mounts.h says why).
//   - Locks (host lock policy only): POSIX locks are OFD locks on one descriptor per (inode,
//     lock owner), flock locks are flock(2) on the handle; nothing ever waits
//     (passthrough_locks.cpp). Lock descriptors count against max_handles.
//   - New objects are created as the request's uid:gid (fs_creds.h); their permission bits are
//     mode & ~umask from the request, re-applied with chmod if the server's own umask removed
//     some of them.
#pragma once

#include <fcntl.h>

#include <memory>
#include <string>

#include "virtiofs/fs_api.h"
#include "virtiofs/fs_creds.h"
#include "virtiofs/host_path.h"
#include "virtiofs/lock_table.h"
#include "virtiofs/mounts.h"
#include "virtiofs/node_table.h"

namespace krunlet::fs {

struct PassthroughConfig {
    std::string root_dir;
    bool read_only = false;
    bool host_locks = false;  // serve GETLK/SETLK/SETLKW (else they are ENOSYS)
    size_t max_inodes = 65536;
    size_t max_handles = 65536;
};

class PassthroughFs final : public FileSystem {
public:
    static Result<std::unique_ptr<PassthroughFs>> create(const PassthroughConfig& cfg);

    void destroy() override;
    void mounted() override;  // samples the credentials (fs_creds.h)
    Result<Entry> lookup(const Caller& c, uint64_t parent, const Name& name) override;
    void forget(uint64_t node, uint64_t nlookup) override;
    Result<struct stat> getattr(uint64_t node, std::optional<uint64_t> fh) override;
    Result<struct stat> setattr(const Caller& c, uint64_t node, const SetAttrRequest& r) override;
    Result<size_t> readlink(uint64_t node, std::span<char> buf) override;
    Result<Entry> mknod(const Caller& c, uint64_t parent, const Name& name, uint32_t mode, uint32_t umask,
                        dev_t rdev) override;
    Result<Entry> mkdir(const Caller& c, uint64_t parent, const Name& name, uint32_t mode,
                        uint32_t umask) override;
    Result<Entry> symlink(const Caller& c, uint64_t parent, const Name& name,
                          std::string_view target_nul_terminated) override;
    Result<Entry> link(const Caller& c, uint64_t node, uint64_t newparent, const Name& newname) override;
    Result<Created> create(const Caller& c, uint64_t parent, const Name& name, uint32_t flags, uint32_t mode,
                           uint32_t umask) override;
    Result<Created> tmpfile(const Caller& c, uint64_t parent, uint32_t flags, uint32_t mode,
                            uint32_t umask) override;
    Result<void> unlink(uint64_t parent, const Name& name) override;
    Result<void> rmdir(uint64_t parent, const Name& name) override;
    Result<void> rename(uint64_t parent, const Name& name, uint64_t newparent, const Name& newname,
                        uint32_t flags) override;
    Result<OpenFile> open(const Caller& c, uint64_t node, uint32_t flags) override;
    Result<size_t> read(uint64_t node, uint64_t fh, uint64_t offset, std::span<const iovec> dst) override;
    Result<size_t> write(uint64_t node, uint64_t fh, uint64_t offset, std::span<const struct iovec> data) override;
    void release(uint64_t node, uint64_t fh) override;
    Result<void> flush(uint64_t node, uint64_t fh, uint64_t lock_owner) override;
    Result<void> fsync(uint64_t node, uint64_t fh, bool datasync) override;
    Result<void> fallocate(uint64_t node, uint64_t fh, uint32_t mode, uint64_t offset, uint64_t length) override;
    Result<uint64_t> lseek(uint64_t node, uint64_t fh, uint64_t offset, uint32_t whence) override;
    Result<size_t> copy_file_range(uint64_t node_in, uint64_t fh_in, uint64_t off_in, uint64_t node_out,
                                   uint64_t fh_out, uint64_t off_out, uint64_t len, uint64_t flags) override;
    Result<FileLock> getlk(uint64_t node, uint64_t fh, uint64_t owner, const FileLock& query) override;
    Result<void> setlk(uint64_t node, uint64_t fh, uint64_t owner, const FileLock& lk, bool flock,
                       bool wait) override;
    Result<void> syncfs() override;
    Result<OpenFile> opendir(const Caller& c, uint64_t node, uint32_t flags) override;
    Result<void> readdir(uint64_t node, uint64_t fh, uint64_t offset, DirSink& sink) override;
    void releasedir(uint64_t node, uint64_t fh) override;
    Result<void> fsyncdir(uint64_t node, uint64_t fh, bool datasync) override;
    Result<struct statvfs> statfs(uint64_t node) override;
    Result<void> access(const Caller& c, uint64_t node, uint32_t mask) override;
    Result<void> setxattr(uint64_t node, const Name& name, std::span<const uint8_t> value,
                          uint32_t flags) override;
    Result<size_t> getxattr(uint64_t node, const Name& name, std::span<uint8_t> buf) override;
    Result<size_t> listxattr(const Caller& c, uint64_t node, std::span<uint8_t> buf) override;
    Result<void> removexattr(uint64_t node, const Name& name) override;

    size_t inode_count() const { return inodes_.size(); }
    size_t handle_count() const { return handles_.size(); }
    size_t lock_owner_count() const { return locks_.size(); }

private:
    PassthroughFs(const PassthroughConfig& cfg, HostPaths paths, Mounts mounts, bool switch_creds);

    // The inode behind a node id, with its fd open: ESTALE if unknown, or if it was
    // registered unopened and its name no longer leads to it (the guest's VFS then looks the
    // path up again and retries). node() and dir_node() also refuse a refused mount point with
    // EACCES, so every op that would use its fd stops there; only the ops that can answer for
    // an empty directory use any_node().
    Result<InodeRef> any_node(uint64_t nodeid);
    Result<InodeRef> node(uint64_t nodeid);
    Result<InodeRef> dir_node(uint64_t nodeid);  // plus ENOTDIR if not a directory
    // After a rename: if the object now named `name` in `dir` is held unopened, that is
    // where to open it from.
    void moved_to(const InodeRef& dir, const Name& name);
    // Opens an inode registered by InodeTable::add_unopened where `where` says it is.
    Result<void> open_pending(const InodeRef& n, const PendingName& where);
    Result<HandleRef> file(uint64_t fh) const;     // EBADF if unknown
    // Counts one lookup of `name` in `dir`: one stat by name, and an O_PATH open only for
    // directories and mount points the table does not hold yet (see lookup_in).
    Result<Entry> lookup_in(const InodeRef& dir, const Name& name);
    Result<Entry> open_and_register(const Inode& dir, const Name& name);
    // Counts one lookup of the object behind O_PATH fd `fd`, found in `dir`. Applies the mount
    // policy when `ms` lies on another mount than `dir`.
    Result<Entry> register_node(const Inode& dir, UniqueFd fd, const MountedStat& ms);
    // After a create: registers the new object and repairs its permission bits.
    Result<Entry> finish_create(const Inode& dir, const Name& name, mode_t want_perm);
    // Removes what a failing create-type request made under `name` (see the .cpp).
    void undo_create(int dirfd, const Name& name, const struct stat* made);
    // After create/tmpfile: registers the open file `fd` as a handle and its inode as one
    // lookup, repairing the permission bits of a new file (`created`). `dir` and `name`: where
    // it was opened, if it has a name.
    Result<Created> register_open(UniqueFd fd, bool created, mode_t perm, const InodeRef* dir = nullptr,
                                  const Name* name = nullptr);
    Result<UniqueFd> open_for_io(const Inode& inode, int flags) const;
    Result<void> check_writable() const;  // EROFS on a read-only share
    Result<void> set_flock(Handle& h, uint32_t type, bool wait);
    // The guest pid of the owner whose OFD lock `found` conflicted with `query` (0 if none of
    // ours holds it: a host process does).
    uint32_t holder_pid(uint64_t nodeid, uint64_t owner, const struct flock& query, const struct flock& found);

    HostPaths paths_;
    Mounts mounts_;
    InodeTable inodes_;
    HandleTable handles_;
    LockTable locks_{handles_};  // after handles_: it gives its budget back on destruction
    bool read_only_;
    bool host_locks_;
    bool switch_creds_;  // the process holds CAP_SETUID/CAP_SETGID (sampled at INIT)
    FsIds own_ids_;      // the server's fsuid/fsgid (likewise)
};

// The most one COPY_FILE_RANGE copies (the reply then reports a short count).
inline constexpr size_t kMaxCopyChunk = size_t{16} << 20;

// stat of the object behind an O_PATH fd, never following a symlink.
Result<struct stat> stat_fd(int fd);

// Flags the guest may pass to OPEN/CREATE, sanitised for the host: access mode plus
// O_APPEND/O_TRUNC/O_SYNC/O_DSYNC/O_NOATIME. O_DIRECT is dropped (guest buffers are not
// aligned for it), and so is anything that changes what gets opened (O_PATH, O_TMPFILE, ...).
int sanitize_open_flags(uint32_t guest_flags);

}  // namespace krunlet::fs
