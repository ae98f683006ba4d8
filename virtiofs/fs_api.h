// The filesystem interface that the FUSE dispatcher drives (DESIGN.md §4).
//
// Arguments arrive decoded and bounds-checked; results are host-neutral (struct stat, byte
// counts). Errors are Result errors whose code is the positive errno the guest gets back. The
// dispatcher owns the FUSE wire format; backends never see it. Implementations:
//   PassthroughFs     — a host directory, confined (passthrough.h)
//   VirtualEntriesFs  — overlay that serves /init.krun and forwards the rest (virtual_entries.h)
// Every method may be called from several threads at once.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

#include "base/result.h"

namespace krunlet::fs {

inline constexpr uint64_t kRootNodeId = 1;  // FUSE_ROOT_ID
// Node ids 2..kFirstDynamicNodeId-1 are reserved for virtual entries; backends that hand out
// ids dynamically start at kFirstDynamicNodeId and never reuse an id (so generation is 0).
inline constexpr uint64_t kFirstDynamicNodeId = 16;

// An error with only an errno: the hot paths (ENOENT on LOOKUP) stay allocation-free.
inline Error fail(int code) { return Error{code, {}}; }

// A string from a request (a file name or an xattr name; guest-controlled) that is known to be
// followed by a NUL byte in memory, so it can go straight to system calls. Only the request
// decoder and the backends' own directory readers construct one. It is NOT validated: file
// names go through valid_name() (host_path.h) before any system call sees them.
class Name {
public:
    // `nul_terminated` must satisfy s.data()[s.size()] == '\0'.
    static Name trusted(std::string_view nul_terminated) { return Name(nul_terminated); }
    const char* c_str() const { return s_.data(); }
    std::string_view view() const { return s_; }
    bool operator==(std::string_view o) const { return s_ == o; }

private:
    explicit Name(std::string_view s) : s_(s) {}
    std::string_view s_;
};

// The identity from fuse_in_header (guest-controlled).
struct Caller {
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint32_t pid = 0;
};

struct Entry {
    uint64_t nodeid = 0;
    uint64_t generation = 0;
    struct stat attr {};
};

struct OpenFile {
    uint64_t fh = 0;
    uint32_t open_flags = 0;  // FOPEN_* bits the backend needs (the dispatcher adds cache policy)
};

struct Created {
    Entry entry;
    OpenFile file;
};

// A decoded fuse_setattr_in: only the fields present are set. Time nanoseconds may be UTIME_NOW.
struct SetAttrRequest {
    std::optional<uint64_t> fh;
    std::optional<mode_t> mode;
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    std::optional<uint64_t> size;
    std::optional<timespec> atime;
    std::optional<timespec> mtime;
};

// A byte-range lock as FUSE carries it (struct fuse_file_lock).
struct FileLock {
    uint64_t start = 0;
    uint64_t end = 0;   // inclusive; INT64_MAX (OFFSET_MAX) = to the end of the file, however long
    uint32_t type = 0;  // F_RDLCK, F_WRLCK or F_UNLCK
    uint32_t pid = 0;   // guest tgid: the locker (SETLK), or the holder (GETLK reply; 0 = not a guest process)
};

// Receives directory entries in stream order.
class DirSink {
public:
    // `next_offset` is the cookie that resumes right after this entry. Returns false when the
    // reply is full: the entry was not taken and is offered again by the next READDIR.
    virtual bool add(const Name& name, uint64_t ino, uint32_t dtype, uint64_t next_offset) = 0;

protected:
    ~DirSink() = default;
};

class FileSystem {
public:
    virtual ~FileSystem() = default;

    // DESTROY: forget every inode and handle except the root.
    virtual void destroy() = 0;
    // INIT: the guest mounted the filesystem. A backend samples here what may change between
    // setup and boot (the VMM's credentials: it may drop privileges after making devices).
    virtual void mounted() {}

    // Name lookups. A successful lookup/mknod/mkdir/symlink/link/create counts one reference
    // that forget() drops again. READDIRPLUS looks up every entry it returns.
    virtual Result<Entry> lookup(const Caller& c, uint64_t parent, const Name& name) = 0;
    virtual void forget(uint64_t node, uint64_t nlookup) = 0;

    virtual Result<struct stat> getattr(uint64_t node, std::optional<uint64_t> fh) = 0;
    virtual Result<struct stat> setattr(const Caller& c, uint64_t node, const SetAttrRequest& r) = 0;
    // Writes the link text into buf (truncated to buf.size()); returns its length.
    virtual Result<size_t> readlink(uint64_t node, std::span<char> buf) = 0;

    // Creation. `umask` is the caller's umask from the request (0 when absent).
    virtual Result<Entry> mknod(const Caller& c, uint64_t parent, const Name& name, uint32_t mode,
                                uint32_t umask, dev_t rdev) = 0;
    virtual Result<Entry> mkdir(const Caller& c, uint64_t parent, const Name& name, uint32_t mode,
                                uint32_t umask) = 0;
    virtual Result<Entry> symlink(const Caller& c, uint64_t parent, const Name& name,
                                  std::string_view target_nul_terminated) = 0;
    virtual Result<Entry> link(const Caller& c, uint64_t node, uint64_t newparent, const Name& newname) = 0;
    virtual Result<Created> create(const Caller& c, uint64_t parent, const Name& name, uint32_t flags,
                                   uint32_t mode, uint32_t umask) = 0;
    // O_TMPFILE: a new regular file without a name in directory `parent`, open with `flags`.
    // It counts one lookup like create(); LINK of its node id gives it a name.
    virtual Result<Created> tmpfile(const Caller& c, uint64_t parent, uint32_t flags, uint32_t mode,
                                    uint32_t umask) = 0;

    virtual Result<void> unlink(uint64_t parent, const Name& name) = 0;
    virtual Result<void> rmdir(uint64_t parent, const Name& name) = 0;
    // flags: RENAME_NOREPLACE / RENAME_EXCHANGE / RENAME_WHITEOUT (renameat2); 0 for RENAME.
    virtual Result<void> rename(uint64_t parent, const Name& name, uint64_t newparent, const Name& newname,
                                uint32_t flags) = 0;

    // Regular files. `flags` are the guest's open(2) flags.
    virtual Result<OpenFile> open(const Caller& c, uint64_t node, uint32_t flags) = 0;
    // Reads up to the total length of `dst` at `offset`; a short count means end of file.
    virtual Result<size_t> read(uint64_t node, uint64_t fh, uint64_t offset, std::span<const iovec> dst) = 0;
    // `data` may point into guest memory (the device leaves a WRITE payload where it is): it is
    // only ever handed to write(2), never parsed. guest-controlled
    virtual Result<size_t> write(uint64_t node, uint64_t fh, uint64_t offset, std::span<const struct iovec> data) = 0;
    virtual void release(uint64_t node, uint64_t fh) = 0;
    // The guest's close(2) of one descriptor; `lock_owner` is the closing process's POSIX lock
    // owner, whose locks on the file go with it.
    virtual Result<void> flush(uint64_t node, uint64_t fh, uint64_t lock_owner) = 0;
    virtual Result<void> fsync(uint64_t node, uint64_t fh, bool datasync) = 0;
    virtual Result<void> fallocate(uint64_t node, uint64_t fh, uint32_t mode, uint64_t offset,
                                   uint64_t length) = 0;
    virtual Result<uint64_t> lseek(uint64_t node, uint64_t fh, uint64_t offset, uint32_t whence) = 0;
    // Copies up to `len` bytes between two open files; returns the count copied (may be short).
    virtual Result<size_t> copy_file_range(uint64_t node_in, uint64_t fh_in, uint64_t off_in, uint64_t node_out,
                                           uint64_t fh_out, uint64_t off_out, uint64_t len, uint64_t flags) = 0;

    // Locks (only asked for when the server offers them in INIT). `owner` identifies the
    // guest's lock owner (a process's file table for POSIX locks). GETLK reports the first
    // lock that conflicts with `query`, or type F_UNLCK. SETLK never waits: `wait` (SETLKW)
    // only chooses the error for a conflict (see locks in passthrough.h). `flock` asks for
    // flock(2) semantics on the handle instead of a POSIX byte range.
    virtual Result<FileLock> getlk(uint64_t node, uint64_t fh, uint64_t owner, const FileLock& query) = 0;
    virtual Result<void> setlk(uint64_t node, uint64_t fh, uint64_t owner, const FileLock& lk, bool flock,
                               bool wait) = 0;

    // SYNCFS: push everything the share's filesystems hold to stable storage.
    virtual Result<void> syncfs() = 0;

    // Directories.
    virtual Result<OpenFile> opendir(const Caller& c, uint64_t node, uint32_t flags) = 0;
    virtual Result<void> readdir(uint64_t node, uint64_t fh, uint64_t offset, DirSink& sink) = 0;
    virtual void releasedir(uint64_t node, uint64_t fh) = 0;
    virtual Result<void> fsyncdir(uint64_t node, uint64_t fh, bool datasync) = 0;

    virtual Result<struct statvfs> statfs(uint64_t node) = 0;
    virtual Result<void> access(const Caller& c, uint64_t node, uint32_t mask) = 0;

    // Extended attributes. getxattr/listxattr with an empty `buf` return the size needed;
    // otherwise ERANGE when the value does not fit.
    virtual Result<void> setxattr(uint64_t node, const Name& name, std::span<const uint8_t> value,
                                  uint32_t flags) = 0;
    virtual Result<size_t> getxattr(uint64_t node, const Name& name, std::span<uint8_t> buf) = 0;
    // The caller matters for listings: trusted.* names are shown to root only, as Linux does.
    virtual Result<size_t> listxattr(const Caller& c, uint64_t node, std::span<uint8_t> buf) = 0;
    virtual Result<void> removexattr(uint64_t node, const Name& name) = 0;
};

}  // namespace krunlet::fs
