#include "devices/net.h"

#include "net/virtio_net_abi.h"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <string>
#include <variant>

namespace krunlet::devices {

namespace {

static_assert(std::endian::native == std::endian::little, "virtio-net headers are little-endian; so is the host");
static_assert(sizeof(virtio_net_hdr_v1) == 12, "virtio_net_hdr_v1 is 12 bytes (virtio 1.2 §5.1.6)");
static_assert(offsetof(virtio_net_hdr_v1, csum_start) == 6 && offsetof(virtio_net_hdr_v1, csum_offset) == 8 &&
                  offsetof(virtio_net_hdr_v1, num_buffers) == 10,
              "virtio_net_hdr_v1 layout (virtio 1.2 §5.1.6)");
// Without VERSION_1 and MRG_RXBUF the legacy header stops before num_buffers.
constexpr size_t kLegacyHdrLen = offsetof(virtio_net_hdr_v1, num_buffers);

constexpr uint64_t bit(unsigned n) { return 1ull << n; }

// struct virtio_net_config (§5.1.4) up to `status`: mac[6], le16 status.
// Fields past it (max_virtqueue_pairs, mtu, ...) belong to features we do not
// offer and read as 0.
constexpr uint32_t kConfigStatusOffset = 6;
constexpr uint32_t kConfigSize = 8;

uint16_t load_le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// Finish a partial checksum the way a NIC does for CHECKSUM_PARTIAL
// (§5.1.6.2): the driver left the pseudo-header sum in the checksum field;
// the one's complement sum over [start, end) folded and inverted goes there.
// `start` and `offset` are guest-controlled; false when they point outside
// the frame.
bool complete_checksum(std::span<uint8_t> frame, size_t start, size_t offset) {
    if (start >= frame.size() || offset > frame.size() - start || frame.size() - start - offset < 2) return false;
    uint64_t sum = 0;
    size_t i = start;
    for (; i + 1 < frame.size(); i += 2) sum += static_cast<uint32_t>(frame[i] << 8 | frame[i + 1]);
    if (i < frame.size()) sum += static_cast<uint32_t>(frame[i] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    auto csum = static_cast<uint16_t>(~sum & 0xffff);
    // A computed 0 goes out as 0xffff (its one's complement twin), because
    // 0 in a UDP checksum means "no checksum".
    if (csum == 0) csum = 0xffff;
    frame[start + offset] = static_cast<uint8_t>(csum >> 8);
    frame[start + offset + 1] = static_cast<uint8_t>(csum & 0xff);
    return true;
}

}  // namespace

Result<std::unique_ptr<NetDevice>> NetDevice::create(std::unique_ptr<net::NetBackend> backend,
                                                     const Options& options) {
    if (!backend) return make_error(EINVAL, "virtio-net: no backend given");
    if (options.mac[0] & 1)
        return make_error(EINVAL, "virtio-net: the MAC address is a multicast address (clear bit 0 of the first byte)");
    if (std::all_of(options.mac.begin(), options.mac.end(), [](uint8_t b) { return b == 0; }))
        return make_error(EINVAL, "virtio-net: the MAC address is all zeros");
    std::unique_ptr<NetDevice> dev(new NetDevice(std::move(backend), options));
    dev->backend_->set_sink(dev.get());
    return dev;
}

NetDevice::NetDevice(std::unique_ptr<net::NetBackend> backend, const Options& options)
    : backend_(std::move(backend)), options_(options) {}

NetDevice::~NetDevice() {
    // The backend outlives this body (members die after it): make sure it
    // never calls back into a half-destroyed sink.
    backend_->set_sink(nullptr);
}

uint64_t NetDevice::device_features() const {
    uint64_t f = bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | virtio::kFeatureEventIdx |
                 virtio::kFeatureIndirectDesc;
    if (options_.mergeable_rx) f |= bit(VIRTIO_NET_F_MRG_RXBUF);
    if (options_.tx_checksum) f |= bit(VIRTIO_NET_F_CSUM);
    return f;
}

void NetDevice::read_config(uint32_t offset, std::span<uint8_t> out) const {
    std::array<uint8_t, kConfigSize> cfg{};
    std::copy(options_.mac.begin(), options_.mac.end(), cfg.begin());
    cfg[kConfigStatusOffset] = VIRTIO_NET_S_LINK_UP;  // le16, high byte 0
    // guest-controlled offset and length: copy what overlaps, zero the rest.
    for (size_t i = 0; i < out.size(); ++i) {
        const uint64_t at = uint64_t{offset} + i;
        out[i] = at < cfg.size() ? cfg[at] : 0;
    }
}

Result<void> NetDevice::activate(const virtio::ActivateArgs& args) {
    if (args.queues.size() != kQueueSizes.size())
        return make_error(EINVAL, "virtio-net: expected 2 queues, transport gave " +
                                      std::to_string(args.queues.size()));
    if (!backend_started_) {
        auto r = backend_->start();
        if (!r.ok()) return make_error(r.error().code, "virtio-net: backend: " + r.error().message);
        backend_started_ = true;
    }
    auto live = [&](uint16_t i) { return args.queues[i].active() ? &args.queues[i] : nullptr; };
    rx_ = live(kRxQueue);
    tx_ = live(kTxQueue);
    irq_ = &args.irq;
    mergeable_ = (args.driver_features & bit(VIRTIO_NET_F_MRG_RXBUF)) != 0;
    // §5.1.6: the 12-byte header whenever VERSION_1 or MRG_RXBUF is in use.
    hdr_len_ = (mergeable_ || (args.driver_features & virtio::kFeatureVersion1) != 0) ? sizeof(virtio_net_hdr_v1)
                                                                                      : kLegacyHdrLen;
    live_ = true;
    fault_.reset();
    // The driver posts receive buffers and may queue frames before DRIVER_OK.
    process_tx();
    pump_rx();
    if (fault_) return *fault_;
    return {};
}

void NetDevice::reset() {
    live_ = false;
    rx_ = tx_ = nullptr;
    irq_ = nullptr;
    // Chains popped before the reset are dead (the queue's generation moved
    // on); frames queued for the old driver would only confuse the new one.
    held_.clear();
    held_bytes_ = 0;
    backlog_.clear();
    backlog_bytes_ = 0;
    rx_used_ = false;
    fault_.reset();
}

Result<void> NetDevice::queue_notify(uint16_t index) {
    if (fault_) return *fault_;
    if (index == kTxQueue)
        process_tx();
    else if (index == kRxQueue)
        pump_rx();
    if (fault_) return *fault_;
    return {};
}

void NetDevice::fail(virtio::QueueError e, const char* which) {
    fault_ = make_error(EIO, std::string("virtio-net: ") + which + ": " + virtio::to_string(e));
    // Stop touching the rings until the transport resets us.
    live_ = false;
    rx_ = tx_ = nullptr;
    held_.clear();
    held_bytes_ = 0;
}

void NetDevice::signal(virtio::Queue& q) {
    if (irq_ != nullptr && q.needs_interrupt()) irq_->signal_used();
}

// --- transmit: guest -> backend ---

void NetDevice::process_tx() {
    bool used = false;
    while (tx_ != nullptr) {
        auto popped = tx_->pop();
        if (std::holds_alternative<std::monostate>(popped)) break;
        if (auto* err = std::get_if<virtio::QueueError>(&popped)) {
            fail(*err, "transmitq");
            break;
        }
        auto chain = std::get<virtio::DescriptorChain>(std::move(popped));
        send_chain(chain);
        // The backend may have re-entered receive() and hit a receive ring
        // fault, which clears tx_ too; the chain then dies with the queue.
        if (tx_ == nullptr) break;
        // Transmit buffers are device-readable only: nothing was written.
        tx_->add_used(std::move(chain), 0);
        used = true;
    }
    if (used && tx_ != nullptr) signal(*tx_);
}

void NetDevice::send_chain(const virtio::DescriptorChain& chain) {
    // guest-controlled: the chain's layout and every byte in it. Device-
    // writable buffers in a transmit chain are ignored.
    const size_t total = chain.readable_bytes();
    if (total < hdr_len_ + net::kEthHeaderSize) {
        ++stats_.tx_malformed;
        return;
    }
    const size_t frame_len = total - hdr_len_;
    if (frame_len > net::kMaxFrameSize) {
        ++stats_.tx_oversize;
        return;
    }
    // Copy the frame out before looking at it, so the guest cannot change
    // it between our checks and the backend's parsing.
    tx_scratch_.resize(total);
    if (chain.copy_from_readable(0, tx_scratch_) != total) {
        ++stats_.tx_malformed;
        return;
    }
    const uint8_t* hdr = tx_scratch_.data();
    const uint8_t flags = hdr[offsetof(virtio_net_hdr_v1, flags)];
    const uint8_t gso = hdr[offsetof(virtio_net_hdr_v1, gso_type)];
    std::span<uint8_t> frame(tx_scratch_.data() + hdr_len_, frame_len);
    // No HOST_TSO/UFO was offered, so a segmentation request is a driver bug.
    if (gso != VIRTIO_NET_HDR_GSO_NONE) {
        ++stats_.tx_malformed;
        return;
    }
    if (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        const size_t start = load_le16(hdr + offsetof(virtio_net_hdr_v1, csum_start));
        const size_t off = load_le16(hdr + offsetof(virtio_net_hdr_v1, csum_offset));
        if (!complete_checksum(frame, start, off)) {
            ++stats_.tx_malformed;
            return;
        }
    }
    if (auto r = backend_->send_to_host(frame); !r.ok()) {
        ++stats_.tx_backend_errors;
        return;
    }
    ++stats_.tx_frames;
    stats_.tx_bytes += frame_len;
}

// --- receive: backend -> guest ---

bool NetDevice::has_room() const {
    return live_ && rx_ != nullptr && backlog_.size() < kRxBacklogFrames &&
           backlog_bytes_ + net::kMaxFrameSize <= kRxBacklogBytes;
}

bool NetDevice::can_receive() const {
    const bool room = has_room();
    if (!room) backend_waiting_ = true;
    return room;
}

void NetDevice::receive(std::span<const uint8_t> frame) {
    if (frame.size() > net::kMaxFrameSize || frame.size() < net::kEthHeaderSize) {
        ++stats_.rx_oversize;
        return;
    }
    if (!live_ || rx_ == nullptr) {
        ++stats_.rx_inactive_drops;
        return;
    }
    if (backlog_.size() >= kRxBacklogFrames || backlog_bytes_ + frame.size() > kRxBacklogBytes) {
        ++stats_.rx_backlog_drops;
        backend_waiting_ = true;
        return;
    }
    backlog_.emplace_back(frame.begin(), frame.end());
    backlog_bytes_ += frame.size();
    pump_rx();
}

void NetDevice::pump_rx() {
    // A backend that delivers from inside sink_ready() lands in receive(),
    // which queues the frame; the loop below picks it up.
    if (in_rx_) return;
    in_rx_ = true;
    while (rx_ != nullptr && !backlog_.empty()) {
        if (place_frame(backlog_.front()) == Place::NoBuffers) break;
        backlog_bytes_ -= backlog_.front().size();
        backlog_.pop_front();
    }
    if (rx_used_ && rx_ != nullptr) signal(*rx_);
    rx_used_ = false;
    in_rx_ = false;
    if (backend_waiting_ && has_room()) {
        backend_waiting_ = false;
        backend_->sink_ready();
    }
}

NetDevice::Place NetDevice::place_frame(std::span<const uint8_t> frame) {
    const size_t total = hdr_len_ + frame.size();
    // Gather receive chains until they can hold header + frame: one chain
    // without MRG_RXBUF (§5.1.6.3.2), as many as needed with it.
    while (held_bytes_ < total && (mergeable_ || held_.empty())) {
        // Every chain of the ring already held and still not enough room:
        // this frame can never fit.
        if (held_.size() >= rx_->config().size) break;
        auto popped = rx_->pop();
        if (std::holds_alternative<std::monostate>(popped)) return Place::NoBuffers;
        if (auto* err = std::get_if<virtio::QueueError>(&popped)) {
            fail(*err, "receiveq");
            return Place::NoBuffers;
        }
        auto chain = std::get<virtio::DescriptorChain>(std::move(popped));
        // guest-controlled: a buffer must hold at least the header (§5.1.6.3.1).
        // One that cannot is handed back empty; as its own used entry it
        // never splits a merged frame, and Linux counts it as a length error.
        if (chain.writable_bytes() < hdr_len_) {
            ++stats_.rx_bad_buffers;
            rx_->add_used(std::move(chain), 0);
            rx_used_ = true;
            continue;
        }
        held_bytes_ += chain.writable_bytes();
        held_.push_back(std::move(chain));
    }
    if (held_bytes_ < total) {
        // Too big for one buffer (no MRG_RXBUF) or for the whole ring: drop
        // it and keep the buffers for the next frame.
        ++stats_.rx_oversize;
        return Place::Done;
    }

    // How many chains the frame spans (bounded by the ring size, so it fits num_buffers).
    size_t count = 0;
    for (size_t room = 0; room < total; ++count) room += held_[count].writable_bytes();

    virtio_net_hdr_v1 hdr{};  // no offloads: flags, gso_type, csum fields all 0
    hdr.num_buffers = static_cast<uint16_t>(count);  // 1 without MRG_RXBUF (§5.1.6.4)
    std::span<const uint8_t> hdr_bytes(reinterpret_cast<const uint8_t*>(&hdr), hdr_len_);

    size_t done = 0;  // frame bytes written so far
    for (size_t i = 0; i < count; ++i) {
        virtio::DescriptorChain chain = std::move(held_.front());
        held_.pop_front();
        held_bytes_ -= chain.writable_bytes();
        size_t written = 0;
        if (i == 0) written = chain.copy_to_writable(0, hdr_bytes);
        const size_t n = chain.copy_to_writable(written, frame.subspan(done));
        written += n;
        done += n;
        rx_->add_used(std::move(chain), static_cast<uint32_t>(written));
    }
    rx_used_ = true;
    ++stats_.rx_frames;
    stats_.rx_bytes += frame.size();
    return Place::Done;
}

}  // namespace krunlet::devices
