// Virtual entries: files the server makes up rather than finds on the host.
//
// Today there is one, /init.krun: the guest's init program (DESIGN.md §1), a read-only regular
// file (mode 0555, owner root) whose bytes are the embedded init binary. VirtualEntriesFs sits
// in front of the host backend:
//   - LOOKUP of "init.krun" in the root answers the virtual file; a real file of that name in
//     the shared directory is shadowed (never opened, listed, changed or removed);
//   - LOOKUP/GETATTR/OPEN/READ/LSEEK/FLUSH/FSYNC/RELEASE/ACCESS work on it;
//   - every mutating op that names it (SETATTR, WRITE, open for writing, FALLOCATE, xattrs,
//     UNLINK/RENAME/LINK/create of that name in the root) gets EACCES;
//   - READDIR of the root does not list "init.krun" at all;
//   - COPY_FILE_RANGE from it is EOPNOTSUPP (the guest then copies with READ), into it EACCES;
//     GETLK on it finds no lock, SETLK gets ENOLCK (no host file to lock).
// Everything else is forwarded unchanged to the inner filesystem.
#pragma once

#include <memory>
#include <span>

#include "virtiofs/fs_api.h"

namespace krunlet::fs {

inline constexpr uint64_t kInitNodeId = 2;  // reserved (below kFirstDynamicNodeId)
inline constexpr std::string_view kInitName = "init.krun";
// st_ino the guest sees for /init.krun: far above what real filesystems hand out, so tools that
// compare (st_dev, st_ino) never mistake it for a host file.
inline constexpr uint64_t kInitIno = 0xffff'ffff'ffff'fff0ull;

class VirtualEntriesFs final : public FileSystem {
public:
    // `init_binary` is not copied and must outlive this object; empty = no virtual entry.
    VirtualEntriesFs(std::unique_ptr<FileSystem> inner, std::span<const uint8_t> init_binary);

    FileSystem& inner() { return *inner_; }

    void destroy() override;
    void mounted() override;
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

private:
    bool is_init(uint64_t node) const { return enabled_ && node == kInitNodeId; }
    bool names_init(uint64_t parent, const Name& name) const {
        return enabled_ && parent == kRootNodeId && name == kInitName;
    }
    struct stat init_stat() const;

    std::unique_ptr<FileSystem> inner_;
    std::span<const uint8_t> init_;
    bool enabled_;
    struct timespec created_ {};  // the virtual file's atime/mtime/ctime
};

}  // namespace krunlet::fs
