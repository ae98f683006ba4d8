#include "virtiofs/fuse_wire.h"

#include <sys/sysmacros.h>

#include <algorithm>

namespace krunlet::fs {

// The layouts this server relies on (FUSE protocol 7.31+, as in <linux/fuse.h>). A header that
// changed any of them would change the wire format, so fail the build instead.
static_assert(sizeof(fuse_in_header) == 40);
static_assert(sizeof(fuse_out_header) == 16);
static_assert(sizeof(fuse_attr) == 88);
static_assert(sizeof(fuse_entry_out) == 128);
static_assert(sizeof(fuse_attr_out) == 104);
static_assert(sizeof(fuse_init_in) == 64);
static_assert(sizeof(fuse_init_out) == 64);
static_assert(sizeof(fuse_forget_in) == 8);
static_assert(sizeof(fuse_forget_one) == 16);
static_assert(sizeof(fuse_batch_forget_in) == 8);
static_assert(sizeof(fuse_getattr_in) == 16);
static_assert(sizeof(fuse_setattr_in) == 88);
static_assert(sizeof(fuse_mknod_in) == 16);
static_assert(sizeof(fuse_mkdir_in) == 8);
static_assert(sizeof(fuse_rename_in) == 8);
static_assert(sizeof(fuse_rename2_in) == 16);
static_assert(sizeof(fuse_link_in) == 8);
static_assert(sizeof(fuse_open_in) == 8);
static_assert(sizeof(fuse_create_in) == 16);
static_assert(sizeof(fuse_open_out) == 16);
static_assert(sizeof(fuse_release_in) == 24);
static_assert(sizeof(fuse_flush_in) == 24);
static_assert(sizeof(fuse_read_in) == 40);
static_assert(sizeof(fuse_write_in) == 40);
static_assert(sizeof(fuse_write_out) == 8);
static_assert(sizeof(fuse_statfs_out) == 80);
static_assert(sizeof(fuse_fsync_in) == 16);
static_assert(sizeof(fuse_setxattr_in) == 16);
static_assert(FUSE_COMPAT_SETXATTR_IN_SIZE == 8);
static_assert(sizeof(fuse_getxattr_in) == 8);
static_assert(sizeof(fuse_getxattr_out) == 8);
static_assert(sizeof(fuse_access_in) == 8);
static_assert(sizeof(fuse_interrupt_in) == 8);
static_assert(sizeof(fuse_fallocate_in) == 32);
static_assert(sizeof(fuse_lseek_in) == 24);
static_assert(sizeof(fuse_lseek_out) == 8);
static_assert(sizeof(fuse_file_lock) == 24);
static_assert(sizeof(fuse_lk_in) == 48);
static_assert(sizeof(fuse_lk_out) == 24);
static_assert(sizeof(fuse_copy_file_range_in) == 56);
static_assert(sizeof(fuse_ioctl_in) == 32);
static_assert(sizeof(fuse_syncfs_in) == 8);
static_assert(sizeof(fuse_dirent) == 24 && offsetof(fuse_dirent, name) == 24);
static_assert(sizeof(fuse_direntplus) == 152);

bool ArgReader::read_cstr(Name& out) {
    const void* nul = std::memchr(b_.data(), 0, b_.size());  // guest-controlled: search stays in b_
    if (nul == nullptr) return false;
    size_t n = static_cast<size_t>(static_cast<const uint8_t*>(nul) - b_.data());
    out = Name::trusted(std::string_view(reinterpret_cast<const char*>(b_.data()), n));
    b_ = b_.subspan(n + 1);
    return true;
}

bool ArgReader::take(size_t n, std::span<const uint8_t>& out) {
    if (b_.size() < n) return false;
    out = b_.first(n);
    b_ = b_.subspan(n);
    return true;
}

ReplyWriter::ReplyWriter(std::span<const iovec> out) : out_(out) {
    for (const iovec& v : out_) capacity_ += v.iov_len;
    if (header_fits()) seek(sizeof(fuse_out_header));
}

void ReplyWriter::seek(size_t pos) {
    // Walks from the start; only used to (re)position at the end of the header.
    pos_ = pos;
    cur_iov_ = 0;
    cur_off_ = pos;
    while (cur_iov_ < out_.size() && cur_off_ >= out_[cur_iov_].iov_len) {
        cur_off_ -= out_[cur_iov_].iov_len;
        ++cur_iov_;
    }
}

bool ReplyWriter::append(const void* data, size_t n) {
    if (!header_fits() || n > remaining()) return false;
    const auto* src = static_cast<const uint8_t*>(data);
    size_t left = n;
    while (left > 0) {
        const iovec& v = out_[cur_iov_];  // in range: left <= remaining()
        size_t chunk = std::min(left, v.iov_len - cur_off_);
        std::memcpy(static_cast<uint8_t*>(v.iov_base) + cur_off_, src, chunk);
        src += chunk;
        left -= chunk;
        advance(chunk);
    }
    return true;
}

bool ReplyWriter::append_zeros(size_t n) {
    static constexpr uint8_t kZeros[64] = {};
    if (!header_fits() || n > remaining()) return false;
    while (n > 0) {
        size_t chunk = std::min(n, sizeof(kZeros));
        append(kZeros, chunk);
        n -= chunk;
    }
    return true;
}

size_t ReplyWriter::peek_iovecs(size_t n, iovec* iov, size_t max) const {
    n = std::min(n, remaining());
    size_t used = 0;
    size_t idx = cur_iov_;
    size_t off = cur_off_;
    while (n > 0 && used < max && idx < out_.size()) {
        size_t avail = out_[idx].iov_len - off;
        if (avail > 0) {
            size_t chunk = std::min(n, avail);
            iov[used++] = iovec{static_cast<uint8_t*>(out_[idx].iov_base) + off, chunk};
            n -= chunk;
        }
        ++idx;
        off = 0;
    }
    return used;
}

void ReplyWriter::advance(size_t n) {
    n = std::min(n, remaining());
    pos_ += n;
    cur_off_ += n;
    while (cur_iov_ < out_.size() && cur_off_ >= out_[cur_iov_].iov_len) {
        cur_off_ -= out_[cur_iov_].iov_len;
        ++cur_iov_;
    }
}

void ReplyWriter::reset_body() {
    if (header_fits()) seek(sizeof(fuse_out_header));
}

void ReplyWriter::write_at(size_t offset, const void* data, size_t n) {
    const auto* src = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < out_.size() && n > 0; ++i) {
        size_t len = out_[i].iov_len;
        if (offset >= len) {
            offset -= len;
            continue;
        }
        size_t chunk = std::min(n, len - offset);
        std::memcpy(static_cast<uint8_t*>(out_[i].iov_base) + offset, src, chunk);
        src += chunk;
        n -= chunk;
        offset = 0;
    }
}

size_t ReplyWriter::finish(uint64_t unique, int error) {
    if (!header_fits()) return 0;
    if (error != 0) reset_body();
    fuse_out_header h{};
    h.len = static_cast<uint32_t>(pos_);  // pos_ <= 16 + the largest reply (~1 MiB)
    h.error = -error;
    h.unique = unique;
    write_at(0, &h, sizeof(h));
    return pos_;
}

uint32_t encode_dev(dev_t dev) {
    uint32_t maj = major(dev);
    uint32_t min = minor(dev);
    return (min & 0xffu) | ((maj & 0xfffu) << 8) | ((min & ~0xffu) << 12);
}

dev_t decode_dev(uint32_t raw) {
    uint32_t maj = (raw & 0xfff00u) >> 8;
    uint32_t min = (raw & 0xffu) | ((raw >> 12) & 0xfff00u);
    return makedev(maj, min);
}

void encode_attr(const struct stat& st, fuse_attr& a) {
    a = fuse_attr{};
    a.ino = st.st_ino;
    a.size = static_cast<uint64_t>(st.st_size);
    a.blocks = static_cast<uint64_t>(st.st_blocks);
    a.atime = static_cast<uint64_t>(st.st_atim.tv_sec);
    a.mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
    a.ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
    a.atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
    a.mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
    a.ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
    a.mode = st.st_mode;
    a.nlink = static_cast<uint32_t>(st.st_nlink);
    a.uid = st.st_uid;
    a.gid = st.st_gid;
    a.rdev = encode_dev(st.st_rdev);
    a.blksize = static_cast<uint32_t>(st.st_blksize);
    a.flags = 0;
}

void encode_entry(const Entry& e, CacheTimes t, fuse_entry_out& out) {
    out = fuse_entry_out{};
    out.nodeid = e.nodeid;
    out.generation = e.generation;
    out.entry_valid = t.entry_sec;
    out.entry_valid_nsec = t.entry_nsec;
    out.attr_valid = t.attr_sec;
    out.attr_valid_nsec = t.attr_nsec;
    encode_attr(e.attr, out.attr);
}

}  // namespace krunlet::fs
