#include "fs_host_channel.h"

#include <algorithm>

#include "devices/fs.h"

namespace krunlet::bench::fs_host {
namespace {

constexpr int kReplyTimeoutMs = 10000;

}  // namespace

Result<Channel> Channel::create(ServedFs& fs) {
    VirtqDriver& d = fs.driver();
    auto req = d.alloc(kMaxDepth * kRequestSlot, 4096);
    auto rep = d.alloc(kMaxDepth * kReplySlot, 4096);
    if (!req.ok() || !rep.ok()) return make_error(ENOMEM, "driver memory too small for the buffers");
    return Channel(d, *req, *rep);
}

Result<void> Channel::batch(std::span<Request* const> rs, const char* what) {
    if (rs.empty() || rs.size() > kMaxDepth) return make_error(EINVAL, std::string(what) + ": bad batch size");
    heads_.clear();
    // All FORGETs or none: the queue is the first request's.
    const uint16_t q = rs[0]->opcode() == FUSE_FORGET ? devices::FsDevice::kHiprioQueue
                                                      : devices::FsDevice::kRequestQueue;
    // One interrupt for the whole batch, asked for before any of it is posted: a server
    // still awake from the last batch may start on the first requests at once.
    d_.interrupt_after(q, static_cast<uint16_t>(rs.size()));
    for (size_t i = 0; i < rs.size(); ++i) {
        const auto& bytes = rs[i]->finish(++unique_);
        uniques_[i] = unique_;
        if (bytes.size() > kRequestSlot) return make_error(EINVAL, std::string(what) + ": request too big");
        const bool forget = rs[i]->opcode() == FUSE_FORGET;
        if (forget != (q == devices::FsDevice::kHiprioQueue))
            return make_error(EINVAL, std::string(what) + ": a batch mixes FORGET with replies");
        const uint64_t req = req_ + i * kRequestSlot;
        std::memcpy(d_.host(req, bytes.size()), bytes.data(), bytes.size());
        std::vector<Segment> segs{{req, static_cast<uint32_t>(bytes.size()), false}};
        if (!forget) segs.push_back({rep_ + i * kReplySlot, static_cast<uint32_t>(reply_room(bytes)), true});
        auto head = d_.post(q, segs);
        if (!head) return make_error(EIO, std::string(what) + ": no free descriptors");
        heads_.push_back(*head);
    }
    d_.kick(q);
    std::array<uint32_t, kMaxDepth> lens{};
    auto w = d_.wait_used(q, heads_, std::span<uint32_t>(lens.data(), rs.size()), kReplyTimeoutMs);
    if (!w.ok()) return make_error(w.error().code, std::string(what) + ": " + w.error().message);
    if (q == devices::FsDevice::kHiprioQueue) return ok_result();  // FORGET: no reply by design
    for (size_t i = 0; i < rs.size(); ++i) {
        if (lens[i] < sizeof(fuse_out_header)) return make_error(EIO, std::string(what) + ": no reply");
        fuse_out_header oh;
        std::memcpy(&oh, d_.host(rep_ + i * kReplySlot, sizeof oh), sizeof oh);
        if (oh.len != lens[i] || oh.unique != uniques_[i])
            return make_error(EIO, std::string(what) + ": malformed reply");
        bodies_[i] = lens[i] - sizeof oh;
        if (rs[i]->expects_failure() != (oh.error != 0)) {
            if (oh.error == 0) return make_error(EIO, std::string(what) + " succeeded; it should have failed");
            return make_error(-oh.error, std::string(what) + " failed: " + std::strerror(-oh.error));
        }
    }
    return ok_result();
}

size_t Channel::reply_room(const std::vector<uint8_t>& req) {
    fuse_in_header ih;
    std::memcpy(&ih, req.data(), sizeof ih);
    size_t body = 0;
    switch (ih.opcode) {
        case FUSE_INIT: body = sizeof(fuse_init_out); break;
        case FUSE_LOOKUP: body = sizeof(fuse_entry_out); break;
        case FUSE_GETATTR: body = sizeof(fuse_attr_out); break;
        case FUSE_OPEN:
        case FUSE_OPENDIR: body = sizeof(fuse_open_out); break;
        case FUSE_CREATE: body = sizeof(fuse_entry_out) + sizeof(fuse_open_out); break;
        case FUSE_WRITE: body = sizeof(fuse_write_out); break;
        case FUSE_READ:
        case FUSE_READDIRPLUS: {
            fuse_read_in ri;
            std::memcpy(&ri, req.data() + sizeof ih, sizeof ri);
            body = ri.size;
            break;
        }
        default: break;  // UNLINK, RELEASE, RELEASEDIR: the header alone
    }
    return std::min(kReplySlot, sizeof(fuse_out_header) + body);
}

Result<void> in_batches(Channel& h, long n, int depth, const char* what, const std::function<Request(long)>& make,
                        const std::function<void(long, size_t)>& done) {
    std::vector<Request> rs;
    std::vector<Request*> ptrs;
    for (long i = 0; i < n;) {
        rs.clear();
        ptrs.clear();
        const long first = i;
        for (; i < n && i - first < depth; ++i) rs.push_back(make(i));
        for (auto& r : rs) ptrs.push_back(&r);
        KRUNLET_CHECK(h.batch(ptrs, what));
        if (done)
            for (long k = first; k < i; ++k) done(k, static_cast<size_t>(k - first));
    }
    return ok_result();
}

}  // namespace krunlet::bench::fs_host
