#include "virtiofs/virtual_entries.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace krunlet::fs {

namespace {

// Passes a directory listing through, minus the shadowed real "init.krun".
class HideInit final : public DirSink {
public:
    explicit HideInit(DirSink& inner) : inner_(inner) {}
    bool add(const Name& name, uint64_t ino, uint32_t dtype, uint64_t next_offset) override {
        if (name == kInitName) return true;  // consumed: skipped for good
        return inner_.add(name, ino, dtype, next_offset);
    }

private:
    DirSink& inner_;
};

}  // namespace

VirtualEntriesFs::VirtualEntriesFs(std::unique_ptr<FileSystem> inner, std::span<const uint8_t> init_binary)
    : inner_(std::move(inner)), init_(init_binary), enabled_(!init_binary.empty()) {
    ::clock_gettime(CLOCK_REALTIME, &created_);
}

struct stat VirtualEntriesFs::init_stat() const {
    struct stat st {};
    st.st_ino = kInitIno;
    st.st_mode = S_IFREG | 0555;
    st.st_nlink = 1;
    st.st_uid = 0;
    st.st_gid = 0;
    st.st_size = static_cast<off_t>(init_.size());
    st.st_blksize = 4096;
    st.st_blocks = static_cast<blkcnt_t>((init_.size() + 511) / 512);
    st.st_atim = created_;
    st.st_mtim = created_;
    st.st_ctim = created_;
    return st;
}

void VirtualEntriesFs::destroy() { inner_->destroy(); }
void VirtualEntriesFs::mounted() { inner_->mounted(); }

Result<Entry> VirtualEntriesFs::lookup(const Caller& c, uint64_t parent, const Name& name) {
    if (is_init(parent)) return fail(ENOTDIR);
    if (names_init(parent, name)) return Entry{kInitNodeId, 0, init_stat()};  // no count: it never goes away
    return inner_->lookup(c, parent, name);
}

void VirtualEntriesFs::forget(uint64_t node, uint64_t nlookup) {
    if (is_init(node)) return;
    inner_->forget(node, nlookup);
}

Result<struct stat> VirtualEntriesFs::getattr(uint64_t node, std::optional<uint64_t> fh) {
    if (is_init(node)) return init_stat();
    return inner_->getattr(node, fh);
}

Result<struct stat> VirtualEntriesFs::setattr(const Caller& c, uint64_t node, const SetAttrRequest& r) {
    if (is_init(node)) return fail(EACCES);
    return inner_->setattr(c, node, r);
}

Result<size_t> VirtualEntriesFs::readlink(uint64_t node, std::span<char> buf) {
    if (is_init(node)) return fail(EINVAL);
    return inner_->readlink(node, buf);
}

Result<Entry> VirtualEntriesFs::mknod(const Caller& c, uint64_t parent, const Name& name, uint32_t mode,
                                      uint32_t umask, dev_t rdev) {
    if (is_init(parent)) return fail(ENOTDIR);
    if (names_init(parent, name)) return fail(EACCES);
    return inner_->mknod(c, parent, name, mode, umask, rdev);
}

Result<Entry> VirtualEntriesFs::mkdir(const Caller& c, uint64_t parent, const Name& name, uint32_t mode,
                                      uint32_t umask) {
    if (is_init(parent)) return fail(ENOTDIR);
    if (names_init(parent, name)) return fail(EACCES);
    return inner_->mkdir(c, parent, name, mode, umask);
}

Result<Entry> VirtualEntriesFs::symlink(const Caller& c, uint64_t parent, const Name& name,
                                        std::string_view target) {
    if (is_init(parent)) return fail(ENOTDIR);
    if (names_init(parent, name)) return fail(EACCES);
    return inner_->symlink(c, parent, name, target);
}

Result<Entry> VirtualEntriesFs::link(const Caller& c, uint64_t node, uint64_t newparent, const Name& newname) {
    if (is_init(node) || names_init(newparent, newname)) return fail(EACCES);
    if (is_init(newparent)) return fail(ENOTDIR);
    return inner_->link(c, node, newparent, newname);
}

Result<Created> VirtualEntriesFs::create(const Caller& c, uint64_t parent, const Name& name, uint32_t flags,
                                         uint32_t mode, uint32_t umask) {
    if (is_init(parent)) return fail(ENOTDIR);
    if (names_init(parent, name)) return fail(EACCES);
    return inner_->create(c, parent, name, flags, mode, umask);
}

Result<Created> VirtualEntriesFs::tmpfile(const Caller& c, uint64_t parent, uint32_t flags, uint32_t mode,
                                          uint32_t umask) {
    if (is_init(parent)) return fail(ENOTDIR);
    return inner_->tmpfile(c, parent, flags, mode, umask);
}

Result<void> VirtualEntriesFs::unlink(uint64_t parent, const Name& name) {
    if (is_init(parent)) return fail(ENOTDIR);
    if (names_init(parent, name)) return fail(EACCES);
    return inner_->unlink(parent, name);
}

Result<void> VirtualEntriesFs::rmdir(uint64_t parent, const Name& name) {
    if (is_init(parent)) return fail(ENOTDIR);
    if (names_init(parent, name)) return fail(EACCES);
    return inner_->rmdir(parent, name);
}

Result<void> VirtualEntriesFs::rename(uint64_t parent, const Name& name, uint64_t newparent, const Name& newname,
                                      uint32_t flags) {
    if (is_init(parent) || is_init(newparent)) return fail(ENOTDIR);
    if (names_init(parent, name) || names_init(newparent, newname)) return fail(EACCES);
    return inner_->rename(parent, name, newparent, newname, flags);
}

Result<OpenFile> VirtualEntriesFs::open(const Caller& c, uint64_t node, uint32_t flags) {
    if (!is_init(node)) return inner_->open(c, node, flags);
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) return fail(EACCES);
    // Stateless: every read is a copy out of the blob, so the handle number carries nothing.
    // The content never changes, so the guest may keep its page cache across opens.
    return OpenFile{0, FOPEN_KEEP_CACHE};
}

Result<size_t> VirtualEntriesFs::read(uint64_t node, uint64_t fh, uint64_t offset, std::span<const iovec> dst) {
    if (!is_init(node)) return inner_->read(node, fh, offset, dst);
    if (offset >= init_.size()) return size_t{0};
    std::span<const uint8_t> src = init_.subspan(static_cast<size_t>(offset));
    size_t done = 0;
    for (const iovec& v : dst) {
        if (done == src.size()) break;
        size_t n = std::min(v.iov_len, src.size() - done);
        std::memcpy(v.iov_base, src.data() + done, n);
        done += n;
    }
    return done;
}

Result<size_t> VirtualEntriesFs::write(uint64_t node, uint64_t fh, uint64_t offset, std::span<const struct iovec> data) {
    if (is_init(node)) return fail(EACCES);
    return inner_->write(node, fh, offset, data);
}

void VirtualEntriesFs::release(uint64_t node, uint64_t fh) {
    if (is_init(node)) return;
    inner_->release(node, fh);
}

Result<void> VirtualEntriesFs::flush(uint64_t node, uint64_t fh, uint64_t lock_owner) {
    if (is_init(node)) return {};
    return inner_->flush(node, fh, lock_owner);
}

Result<void> VirtualEntriesFs::fsync(uint64_t node, uint64_t fh, bool datasync) {
    if (is_init(node)) return {};
    return inner_->fsync(node, fh, datasync);
}

Result<void> VirtualEntriesFs::fallocate(uint64_t node, uint64_t fh, uint32_t mode, uint64_t offset,
                                         uint64_t length) {
    if (is_init(node)) return fail(EACCES);
    return inner_->fallocate(node, fh, mode, offset, length);
}

Result<uint64_t> VirtualEntriesFs::lseek(uint64_t node, uint64_t fh, uint64_t offset, uint32_t whence) {
    if (!is_init(node)) return inner_->lseek(node, fh, offset, whence);
    // The guest resolves SEEK_SET/CUR/END itself; only the data/hole queries reach a server.
    // The blob has no holes: data everywhere before the end, one implicit hole at the end.
    uint64_t size = init_.size();
    if (whence == SEEK_DATA) {
        if (offset >= size) return fail(ENXIO);
        return offset;
    }
    if (whence == SEEK_HOLE) {
        if (offset >= size) return fail(ENXIO);
        return size;
    }
    return fail(EINVAL);
}

Result<size_t> VirtualEntriesFs::copy_file_range(uint64_t node_in, uint64_t fh_in, uint64_t off_in,
                                                 uint64_t node_out, uint64_t fh_out, uint64_t off_out, uint64_t len,
                                                 uint64_t flags) {
    if (is_init(node_out)) return fail(EACCES);
    if (is_init(node_in)) return fail(EOPNOTSUPP);  // no host fd: the guest falls back to READ
    return inner_->copy_file_range(node_in, fh_in, off_in, node_out, fh_out, off_out, len, flags);
}

Result<FileLock> VirtualEntriesFs::getlk(uint64_t node, uint64_t fh, uint64_t owner, const FileLock& query) {
    if (!is_init(node)) return inner_->getlk(node, fh, owner, query);
    FileLock none = query;
    none.type = F_UNLCK;
    none.pid = 0;
    return none;
}

Result<void> VirtualEntriesFs::setlk(uint64_t node, uint64_t fh, uint64_t owner, const FileLock& lk, bool flock,
                                     bool wait) {
    if (is_init(node)) return fail(ENOLCK);
    return inner_->setlk(node, fh, owner, lk, flock, wait);
}

Result<void> VirtualEntriesFs::syncfs() { return inner_->syncfs(); }

Result<OpenFile> VirtualEntriesFs::opendir(const Caller& c, uint64_t node, uint32_t flags) {
    if (is_init(node)) return fail(ENOTDIR);
    return inner_->opendir(c, node, flags);
}

Result<void> VirtualEntriesFs::readdir(uint64_t node, uint64_t fh, uint64_t offset, DirSink& sink) {
    if (is_init(node)) return fail(ENOTDIR);
    if (enabled_ && node == kRootNodeId) {
        HideInit filtered(sink);
        return inner_->readdir(node, fh, offset, filtered);
    }
    return inner_->readdir(node, fh, offset, sink);
}

void VirtualEntriesFs::releasedir(uint64_t node, uint64_t fh) {
    if (is_init(node)) return;
    inner_->releasedir(node, fh);
}

Result<void> VirtualEntriesFs::fsyncdir(uint64_t node, uint64_t fh, bool datasync) {
    if (is_init(node)) return fail(ENOTDIR);
    return inner_->fsyncdir(node, fh, datasync);
}

Result<struct statvfs> VirtualEntriesFs::statfs(uint64_t node) {
    return inner_->statfs(is_init(node) ? kRootNodeId : node);
}

Result<void> VirtualEntriesFs::access(const Caller& c, uint64_t node, uint32_t mask) {
    if (!is_init(node)) return inner_->access(c, node, mask);
    if (mask & W_OK) return fail(EACCES);
    return {};
}

Result<void> VirtualEntriesFs::setxattr(uint64_t node, const Name& name, std::span<const uint8_t> value,
                                        uint32_t flags) {
    if (is_init(node)) return fail(EACCES);
    return inner_->setxattr(node, name, value, flags);
}

Result<size_t> VirtualEntriesFs::getxattr(uint64_t node, const Name& name, std::span<uint8_t> buf) {
    if (is_init(node)) return fail(ENODATA);
    return inner_->getxattr(node, name, buf);
}

Result<size_t> VirtualEntriesFs::listxattr(const Caller& c, uint64_t node, std::span<uint8_t> buf) {
    if (is_init(node)) return size_t{0};
    return inner_->listxattr(c, node, buf);
}

Result<void> VirtualEntriesFs::removexattr(uint64_t node, const Name& name) {
    if (is_init(node)) return fail(EACCES);
    return inner_->removexattr(node, name);
}

}  // namespace krunlet::fs
