#include "devices/balloon.h"

#include <linux/virtio_balloon.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <variant>

namespace krunlet::devices {

namespace {

// §5.5.4: struct virtio_balloon_config begins with num_pages and actual, both
// le32. The fields after them exist only with FREE_PAGE_HINT / PAGE_POISON,
// which are not offered.
constexpr uint32_t kNumPagesOffset = 0;
constexpr uint32_t kActualOffset = 4;
constexpr uint32_t kConfigSize = 8;

}  // namespace

Result<std::unique_ptr<BalloonDevice>> BalloonDevice::create() {
    return std::unique_ptr<BalloonDevice>(new BalloonDevice());
}

uint64_t BalloonDevice::device_features() const {
    // Not MUST_TELL_HOST: deflating needs no host action before the guest
    // reuses a page. Not STATS_VQ or FREE_PAGE_HINT (they would add queues
    // nobody reads), nor PAGE_POISON: reported pages come back as zeroes, and
    // a guest kernel that poisons free pages then turns reporting off itself.
    return 1ull << VIRTIO_BALLOON_F_REPORTING;
}

void BalloonDevice::read_config(uint32_t offset, std::span<uint8_t> out) const {
    uint8_t cfg[kConfigSize] = {};
    const uint32_t num_pages = 0;  // never a request to inflate
    std::memcpy(cfg + kNumPagesOffset, &num_pages, 4);
    std::memcpy(cfg + kActualOffset, &stats_.actual_pages, 4);
    for (size_t i = 0; i < out.size(); ++i) {
        const uint64_t at = uint64_t{offset} + i;  // guest-controlled: any offset and width
        out[i] = at < kConfigSize ? cfg[at] : 0;
    }
}

void BalloonDevice::write_config(uint32_t offset, std::span<const uint8_t> in) {
    // Only `actual` is the driver's to write (§5.5.6); each byte of it lands
    // where it belongs, anything else is ignored.
    for (size_t i = 0; i < in.size(); ++i) {
        const uint64_t at = uint64_t{offset} + i;  // guest-controlled
        if (at < kActualOffset || at >= kActualOffset + 4) continue;
        const unsigned shift = 8 * unsigned(at - kActualOffset);
        stats_.actual_pages = (stats_.actual_pages & ~(0xffu << shift)) | uint32_t{in[i]} << shift;
    }
}

Result<void> BalloonDevice::activate(const virtio::ActivateArgs& args) {
    if (args.queues.size() != kQueueSizes.size())
        return make_error(EINVAL, "virtio-balloon: expected 3 queues, transport gave " +
                                      std::to_string(args.queues.size()));
    queues_ = args.queues;
    irq_ = &args.irq;
    reporting_ = (args.driver_features & (1ull << VIRTIO_BALLOON_F_REPORTING)) != 0;
    return {};
}

void BalloonDevice::reset() {
    queues_ = {};
    irq_ = nullptr;
    reporting_ = false;
    // Pages already dropped stay dropped: they were free in the guest, and a
    // reset driver starts over with whatever its allocator holds.
}

Result<void> BalloonDevice::queue_notify(uint16_t index) {
    if (index >= queues_.size() || !queues_[index].active()) return {};  // unknown or disabled: ignored
    // Without REPORTING the driver has no third queue; a kick of one it set
    // up anyway is ignored rather than trusted.
    if (index == kReportingQueue && !reporting_) return {};
    return serve(index);
}

Result<void> BalloonDevice::serve(uint16_t index) {
    virtio::Queue& q = queues_[index];
    bool used = false;
    Result<void> result;
    for (;;) {
        auto popped = q.pop();
        if (std::holds_alternative<std::monostate>(popped)) break;
        if (auto* err = std::get_if<virtio::QueueError>(&popped)) {
            result = make_error(EIO, "virtio-balloon: queue " + std::to_string(index) + ": " +
                                         virtio::to_string(*err));
            break;
        }
        auto chain = std::get<virtio::DescriptorChain>(std::move(popped));
        if (index == kReportingQueue) {
            // §5.5.6.7: each buffer is a range of free guest memory the driver
            // will not touch until the chain comes back. Queue::pop() has
            // checked each lies inside guest RAM; its bounds are otherwise
            // guest-controlled, so only whole pages inside it are dropped.
            // Linux posts them device-writable, the spec leaves it open.
            for (const auto& buf : chain.readable()) release(buf.data, buf.len);
            for (const auto& buf : chain.writable()) release(buf.data, buf.len);
            ++stats_.reports;
        } else if (index == kInflateQueue) {
            // An array of le32 page numbers, unasked for: count and return.
            stats_.ignored_inflate_pages += chain.readable_bytes() / 4;
        }
        // Nothing is written back; the used length is 0 (§2.7.8).
        q.add_used(std::move(chain), 0);
        used = true;
    }
    if (used && q.needs_interrupt()) irq_->signal_used();
    return result;
}

void BalloonDevice::release(const uint8_t* host, uint64_t len) {
    // Guest RAM is mapped page-aligned, so host and guest page boundaries
    // coincide. MADV_DONTNEED, not MADV_FREE: the RSS drops now, and the next
    // guest touch of the range finds zero pages, which is fine for free memory.
    stats_.reported_bytes += discard_whole_pages(host, len);
}

}  // namespace krunlet::devices
