#include "devices/rng.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <variant>

namespace krunlet::devices {

namespace {

// Fill `len` bytes at `dst` from the kernel's CSPRNG. getrandom() without
// flags only blocks before the host's pool is first initialised, which is long
// past by the time a VM runs; requests above 256 bytes may come back short or
// be interrupted, hence the loop.
Result<void> fill_random(uint8_t* dst, size_t len) {
    while (len > 0) {
        ssize_t n = ::getrandom(dst, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno_error("virtio-rng: getrandom");
        }
        dst += n;
        len -= static_cast<size_t>(n);
    }
    return {};
}

}  // namespace

Result<std::unique_ptr<RngDevice>> RngDevice::create() {
    return std::unique_ptr<RngDevice>(new RngDevice());
}

Result<void> RngDevice::activate(const virtio::ActivateArgs& args) {
    if (args.queues.size() != kQueueSizes.size())
        return make_error(EINVAL, "virtio-rng: expected 1 queue, transport gave " +
                                      std::to_string(args.queues.size()));
    // A queue the driver left disabled is never used (§4.2.3.2: QueueReady).
    queue_ = args.queues[0].active() ? &args.queues[0] : nullptr;
    irq_ = &args.irq;
    return {};
}

void RngDevice::reset() {
    queue_ = nullptr;
    irq_ = nullptr;
}

Result<void> RngDevice::queue_notify(uint16_t index) {
    if (index != 0 || queue_ == nullptr) return {};  // kicks of unknown queues are ignored
    bool used = false;
    Result<void> result;
    for (;;) {
        auto popped = queue_->pop();
        if (std::holds_alternative<std::monostate>(popped)) break;
        if (auto* err = std::get_if<virtio::QueueError>(&popped)) {
            result = make_error(EIO, std::string("virtio-rng: request queue: ") + virtio::to_string(*err));
            break;
        }
        auto chain = std::get<virtio::DescriptorChain>(std::move(popped));
        // The buffers are guest-controlled but already validated to lie in
        // guest RAM by Queue::pop(); we only write within each buffer's len.
        size_t budget = kMaxFillPerChain;
        size_t written = 0;
        for (const auto& buf : chain.writable()) {
            size_t n = std::min<size_t>(buf.len, budget);
            if (n == 0) break;
            if (auto r = fill_random(buf.data, n); !r.ok()) {
                result = r;
                break;
            }
            written += n;
            budget -= n;
        }
        queue_->add_used(std::move(chain), static_cast<uint32_t>(written));
        used = true;
        if (!result.ok()) break;
    }
    if (used && queue_->needs_interrupt()) irq_->signal_used();
    return result;
}

}  // namespace krunlet::devices
