// The request side of `krunlet-bench fs-host` (fs_host_bench.cpp): FUSE requests encoded as
// the guest kernel encodes them, and a channel that posts them on a server's virtqueues,
// `depth` at a time, with reply buffers of the size the kernel would post.
#pragma once

#include <linux/fuse.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "fs_host_servers.h"
#include "virtq_driver.h"

namespace krunlet::bench::fs_host {

// Request bytes: fuse_in_header, then the op's argument structs and strings.
class Request {
public:
    Request(uint32_t opcode, uint64_t nodeid) : bytes_(sizeof(fuse_in_header)) {
        fuse_in_header h{};
        h.opcode = opcode;
        h.nodeid = nodeid;
        h.pid = 1;
        std::memcpy(bytes_.data(), &h, sizeof h);
    }
    template <class T>
    Request& obj(const T& v) {
        auto p = reinterpret_cast<const uint8_t*>(&v);
        bytes_.insert(bytes_.end(), p, p + sizeof v);
        return *this;
    }
    Request& name(const std::string& s) {  // NUL-terminated, as the kernel sends names
        bytes_.insert(bytes_.end(), s.begin(), s.end());
        bytes_.push_back(0);
        return *this;
    }
    Request& payload(size_t n, uint8_t fill) {
        bytes_.insert(bytes_.end(), n, fill);
        return *this;
    }
    // The reply must be an error (any errno: the servers need not agree on which).
    Request& expect_failure() {
        expect_failure_ = true;
        return *this;
    }
    bool expects_failure() const { return expect_failure_; }
    uint32_t opcode() const {
        fuse_in_header h;
        std::memcpy(&h, bytes_.data(), sizeof h);
        return h.opcode;
    }
    // Fixes up len and unique; call after the last append.
    const std::vector<uint8_t>& finish(uint64_t unique) {
        fuse_in_header h;
        std::memcpy(&h, bytes_.data(), sizeof h);
        h.len = uint32_t(bytes_.size());
        h.unique = unique;
        std::memcpy(bytes_.data(), &h, sizeof h);
        return bytes_;
    }

private:
    std::vector<uint8_t> bytes_;
    bool expect_failure_ = false;
};

// Requests through the server's queues, `depth` at a time (posted together, one kick, then
// every reply awaited): hiprio for FORGET (no reply, as the guest kernel sends it), the request
// queue for everything else.
class Channel {
public:
    static constexpr size_t kMaxDepth = 32;
    static constexpr size_t kRequestSlot = 8192;   // the biggest: WRITE 4 KiB + headers
    static constexpr size_t kReplySlot = 40960;    // the biggest: READDIRPLUS of 32 KiB

    static Result<Channel> create(ServedFs& fs);

    Result<void> call(Request& r, const char* what) {
        Request* one = &r;
        return batch(std::span<Request* const>(&one, 1), what);
    }

    // Sends the requests (all FORGETs or none) and waits for every reply; a reply that is not
    // the one expected (an error, or a success where an error was asked for) ends the
    // benchmark (it would measure nothing).
    Result<void> batch(std::span<Request* const> rs, const char* what);
    // The reply to the request in position `slot` of the last batch.
    size_t reply_body_size(size_t slot = 0) const { return bodies_[slot]; }
    template <class T>
    T reply(size_t off = 0, size_t slot = 0) const {
        T v{};
        if (sizeof(fuse_out_header) + off + sizeof v <= kReplySlot)
            std::memcpy(&v, d_.host(rep_ + slot * kReplySlot + sizeof(fuse_out_header) + off, sizeof v), sizeof v);
        return v;
    }

private:
    Channel(VirtqDriver& d, uint64_t req, uint64_t rep) : d_(d), req_(req), rep_(rep) {}

    // The reply buffer the guest kernel posts: the out header plus the op's reply struct, or
    // the requested size for reads (fuse_simple_request's out_args; virtio_fs.c maps exactly
    // those). A server may do work in proportion to the buffer it is given.
    static size_t reply_room(const std::vector<uint8_t>& req);
    VirtqDriver& d_;
    uint64_t req_, rep_;  // guest-physical slot arrays
    uint64_t unique_ = 0;
    std::vector<uint16_t> heads_;
    std::array<uint64_t, kMaxDepth> uniques_{};
    std::array<size_t, kMaxDepth> bodies_{};  // bytes after each reply's fuse_out_header
};

// `n` requests made by `make(i)`, sent `depth` at a time; `done(i, slot)` sees each reply.
Result<void> in_batches(Channel& h, long n, int depth, const char* what, const std::function<Request(long)>& make,
                        const std::function<void(long, size_t)>& done = {});

}  // namespace krunlet::bench::fs_host
