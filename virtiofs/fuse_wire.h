// FUSE wire format helpers: a bounds-checked reader over a request's arguments and a scatter
// writer over the reply buffers. The structs themselves come from <linux/fuse.h>; the
// static_asserts in fuse_wire.cpp pin the sizes this code relies on.
#pragma once

#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

#include "virtiofs/fs_api.h"

namespace krunlet::fs {

// Reads a request's argument bytes front to back (guest-controlled). Every read checks the
// remaining length first; a failed read consumes nothing.
class ArgReader {
public:
    explicit ArgReader(std::span<const uint8_t> bytes) : b_(bytes) {}

    // Copies sizeof(T) bytes into `out` (the request buffer need not be aligned).
    template <class T>
    bool read(T& out) {
        static_assert(std::is_trivially_copyable_v<T>);
        if (b_.size() < sizeof(T)) return false;
        std::memcpy(&out, b_.data(), sizeof(T));
        b_ = b_.subspan(sizeof(T));
        return true;
    }
    // Reads the first `n` bytes of a struct whose full size is larger (older protocol layouts,
    // e.g. the 8-byte fuse_setxattr_in); the rest of `out` is zeroed.
    template <class T>
    bool read_prefix(T& out, size_t n) {
        static_assert(std::is_trivially_copyable_v<T>);
        if (n > sizeof(T) || b_.size() < n) return false;
        std::memset(&out, 0, sizeof(T));
        std::memcpy(&out, b_.data(), n);
        b_ = b_.subspan(n);
        return true;
    }
    // A NUL-terminated string; false when no NUL lies within the remaining bytes.
    bool read_cstr(Name& out);
    // The next `n` bytes, without copying.
    bool take(size_t n, std::span<const uint8_t>& out);

    size_t remaining() const { return b_.size(); }
    bool at_end() const { return b_.empty(); }

private:
    std::span<const uint8_t> b_;
};

// Writes a reply into the device-writable buffers of a descriptor chain (a list of iovecs that
// need not be contiguous). The first sizeof(fuse_out_header) bytes are reserved for the header,
// which finish() fills in. Nothing is ever written past the buffers' total length.
class ReplyWriter {
public:
    explicit ReplyWriter(std::span<const iovec> out);

    // False when not even a fuse_out_header fits: such a request gets no reply at all.
    bool header_fits() const { return capacity_ >= sizeof(fuse_out_header); }
    size_t capacity() const { return capacity_; }
    size_t size() const { return pos_; }
    size_t remaining() const { return capacity_ - pos_; }

    // Appends bytes; false (and nothing written) when they do not fit.
    bool append(const void* data, size_t n);
    bool append_zeros(size_t n);
    template <class T>
    bool append_obj(const T& v) {
        static_assert(std::is_trivially_copyable_v<T>);
        return append(&v, sizeof(T));
    }

    // Fills `iov` (at most `max` entries) with the buffer pieces covering the next `n` bytes,
    // without moving the write position; returns how many entries were used. For preadv/memcpy
    // straight into the reply. The caller passes n <= remaining().
    size_t peek_iovecs(size_t n, iovec* iov, size_t max) const;
    // Moves the write position forward over `n` bytes that were written through peek_iovecs().
    void advance(size_t n);

    // Drops everything after the header (to turn a half-built reply into an error reply).
    void reset_body();
    // Writes the fuse_out_header at the start and returns the reply length: error == 0 keeps
    // the body, otherwise the reply is the header alone with error = -errno.
    size_t finish(uint64_t unique, int error);

private:
    void write_at(size_t offset, const void* data, size_t n);
    void seek(size_t pos);

    std::span<const iovec> out_;
    size_t capacity_ = 0;
    size_t pos_ = 0;
    // The iovec holding byte pos_, and the offset of pos_ within it (a cursor for appends).
    size_t cur_iov_ = 0;
    size_t cur_off_ = 0;
};

// How long the guest may cache a name (entry_valid) and attributes (attr_valid), as the
// seconds + nanoseconds pairs of fuse_entry_out / fuse_attr_out.
struct CacheTimes {
    uint64_t entry_sec = 0;
    uint32_t entry_nsec = 0;
    uint64_t attr_sec = 0;
    uint32_t attr_nsec = 0;
};

// struct stat → struct fuse_attr. The device number is re-encoded in the kernel's
// "new_encode_dev" layout that the guest's FUSE client decodes.
void encode_attr(const struct stat& st, fuse_attr& out);
void encode_entry(const Entry& e, CacheTimes t, fuse_entry_out& out);

// Device numbers in the 32-bit layout FUSE carries (fuse_attr.rdev, fuse_mknod_in.rdev):
// minor bits 0-7, major bits 8-19, minor bits 8-19 in 20-31.
uint32_t encode_dev(dev_t dev);
dev_t decode_dev(uint32_t raw);

// Size of one fuse_dirent / fuse_direntplus record holding a name of `namelen` bytes, padded
// to 8 bytes as FUSE_DIRENT_ALIGN does.
constexpr size_t dirent_size(size_t namelen) {
    return (offsetof(fuse_dirent, name) + namelen + 7) & ~size_t{7};
}
constexpr size_t direntplus_size(size_t namelen) {
    return (offsetof(fuse_direntplus, dirent.name) + namelen + 7) & ~size_t{7};
}

}  // namespace krunlet::fs
