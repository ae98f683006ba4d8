#include "devices/fs.h"

#include <linux/fuse.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <variant>

namespace krunlet::devices {

static_assert(sizeof(fuse_in_header) == 40 && sizeof(fuse_out_header) == 16,
              "FUSE wire headers (<linux/fuse.h>)");
static_assert(FsDevice::kWriteHeaders == sizeof(fuse_in_header) + sizeof(fuse_write_in),
              "a WRITE's headers (<linux/fuse.h>)");
static_assert(fs::kMaxRequestPayload + 4096 <= FsDevice::kMaxRequestBytes,
              "the device must pass every request the server accepts");

Result<std::unique_ptr<FsDevice>> FsDevice::create(std::string tag, std::unique_ptr<fs::Server> server) {
    if (tag.empty() || tag.size() > kMaxTagLen)
        return make_error(EINVAL, "virtio-fs: tag \"" + tag + "\" must be 1 to 36 bytes long");
    if (tag.find('\0') != std::string::npos)
        return make_error(EINVAL, "virtio-fs: the tag must not contain NUL bytes");
    if (!server) return make_error(EINVAL, "virtio-fs: no server given");
    return std::unique_ptr<FsDevice>(new FsDevice(std::move(tag), std::move(server)));
}

FsDevice::FsDevice(std::string tag, std::unique_ptr<fs::Server> server)
    : tag_(std::move(tag)), server_(std::move(server)) {
    std::memcpy(config_.data(), tag_.data(), tag_.size());  // NUL-padded by config_{}
    const uint32_t num_request_queues = kQueueSizes.size() - 1;
    for (int i = 0; i < 4; ++i) config_[kMaxTagLen + i] = static_cast<uint8_t>(num_request_queues >> (8 * i));
}

void FsDevice::read_config(uint32_t offset, std::span<uint8_t> out) const {
    for (size_t i = 0; i < out.size(); ++i) {
        uint64_t at = uint64_t{offset} + i;
        out[i] = at < config_.size() ? config_[at] : 0;
    }
}

Result<void> FsDevice::activate(const virtio::ActivateArgs& args) {
    if (args.queues.size() != kQueueSizes.size())
        return make_error(EINVAL, "virtio-fs: expected 2 queues, transport gave " +
                                      std::to_string(args.queues.size()));
    queues_.clear();
    for (auto& q : args.queues) queues_.push_back(&q);
    irq_ = &args.irq;
    return {};
}

void FsDevice::reset() {
    queues_.clear();
    irq_ = nullptr;
    request_ = {};  // give back a large request's buffer
}

Result<void> FsDevice::queue_notify(uint16_t index) {
    if (index >= queues_.size() || !queues_[index]->active()) return {};
    virtio::Queue& q = *queues_[index];
    bool used = false;
    Result<void> result;
    for (;;) {
        auto popped = q.pop();
        if (auto* err = std::get_if<virtio::QueueError>(&popped)) {
            result = make_error(EIO, std::string("virtio-fs: ") +
                                         (index == kHiprioQueue ? "hiprio" : "request") +
                                         " queue: " + virtio::to_string(*err));
            break;
        }
        if (std::holds_alternative<std::monostate>(popped)) break;
        auto chain = std::get<virtio::DescriptorChain>(std::move(popped));
        uint32_t written = serve_chain(chain);
        q.add_used(std::move(chain), written);
        used = true;
    }
    if (used && irq_ != nullptr && q.needs_interrupt()) irq_->signal_used();
    return result;
}

uint32_t FsDevice::serve_chain(const virtio::DescriptorChain& chain) {
    const size_t in_len = chain.readable_bytes();
    if (in_len > kMaxRequestBytes) {
        // guest-controlled: no real client sends this (max_write keeps WRITE
        // below the limit), and it is not copied. Completing the chain with 0
        // bytes written would be wrong: Linux's virtio_fs ignores the used
        // length and parses the fuse_out_header it expected us to write. Up
        // to 6.x that header still holds the driver's zeroes, and oh.len = 0
        // underflows its argument copy; newer kernels check oh.len/unique
        // and turn it into EIO. A real reply is right for both: EINVAL, as
        // for any request the server cannot parse.
        fuse_in_header ih{};
        fuse_out_header oh{};
        chain.copy_from_readable(0, std::span(reinterpret_cast<uint8_t*>(&ih), sizeof ih));
        oh.len = sizeof oh;
        oh.error = -EINVAL;
        oh.unique = ih.unique;
        if (chain.writable_bytes() < sizeof oh) return 0;
        return static_cast<uint32_t>(
            chain.copy_to_writable(0, std::span(reinterpret_cast<const uint8_t*>(&oh), sizeof oh)));
    }
    // A private, contiguous copy: the server parses bytes the guest can no
    // longer change under it. A WRITE's payload is the exception: only its
    // headers are copied, and the data goes from guest memory to pwritev()
    // (the server never reads it), which saves copying up to 1 MiB.
    fuse_in_header ih{};
    size_t copy_len = in_len;
    if (chain.copy_from_readable(0, std::span(reinterpret_cast<uint8_t*>(&ih), sizeof ih)) == sizeof ih &&
        ih.opcode == FUSE_WRITE && ih.total_extlen == 0 && in_len > kWriteHeaders)  // guest-controlled
        copy_len = kWriteHeaders;
    request_.resize(copy_len);
    chain.copy_from_readable(0, request_);
    tail_.clear();
    if (copy_len < in_len) readable_iovecs_from(chain, copy_len, tail_);
    chain.writable_iovecs(out_);
    size_t n = server_->handle(request_, out_, tail_);
    // The server never reports more than it was given room for; clamp anyway
    // so a bug there cannot make us claim bytes the guest did not get.
    return static_cast<uint32_t>(std::min(n, chain.writable_bytes()));
}

void FsDevice::readable_iovecs_from(const virtio::DescriptorChain& chain, size_t offset, std::vector<iovec>& out) {
    for (const virtio::Buffer& b : chain.readable()) {  // validated guest ranges
        if (offset >= b.len) {
            offset -= b.len;
            continue;
        }
        out.push_back(iovec{b.data + offset, b.len - offset});
        offset = 0;
    }
}

}  // namespace krunlet::devices
