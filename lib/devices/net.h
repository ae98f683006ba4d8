// virtio-net (virtio 1.2 §5.1): one receive/transmit queue pair, no control
// queue. Frames go to and come from a net::NetBackend (net/backend.h).
//
// Features offered: MAC and STATUS (link always up); MRG_RXBUF, so a frame
// may span several receive buffers; CSUM, which the device backs by finishing
// the guest's partial checksum itself before the frame leaves (no TSO/UFO, so
// every frame the guest sends is already MTU-sized); EVENT_IDX and
// INDIRECT_DESC, handled by the queue. GUEST_CSUM is not offered: frames for
// the guest carry complete checksums and the guest verifies them.
//
// Every frame is preceded by struct virtio_net_hdr_v1 (§5.1.6), 12 bytes with
// VIRTIO_F_VERSION_1. Bounds: frames above net::kMaxFrameSize are dropped,
// never truncated; frames for a guest that posts no receive buffers wait in
// a backlog of kRxBacklogFrames / kRxBacklogBytes and are dropped beyond it;
// each drop is counted in stats().
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "net/backend.h"
#include "virtio/device.h"

namespace krunlet::devices {

class NetDevice final : public virtio::Device, private net::FrameSink {
public:
    using Mac = std::array<uint8_t, 6>;
    // QEMU's default guest MAC; libslirp learns whatever the guest uses.
    static constexpr Mac kDefaultMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

    struct Options {
        Mac mac = kDefaultMac;
        bool mergeable_rx = true;  // offer VIRTIO_NET_F_MRG_RXBUF
        bool tx_checksum = true;   // offer VIRTIO_NET_F_CSUM
    };

    static constexpr uint16_t kRxQueue = 0;
    static constexpr uint16_t kTxQueue = 1;
    static constexpr size_t kRxBacklogFrames = 256;
    static constexpr size_t kRxBacklogBytes = 2 * 1024 * 1024;

    // The device owns the backend and becomes its sink.
    static Result<std::unique_ptr<NetDevice>> create(std::unique_ptr<net::NetBackend> backend,
                                                     const Options& options);
    ~NetDevice() override;
    NetDevice(const NetDevice&) = delete;
    NetDevice& operator=(const NetDevice&) = delete;

    uint32_t device_type() const override { return virtio::kDeviceNet; }
    uint64_t device_features() const override;
    std::span<const uint16_t> queue_max_sizes() const override { return kQueueSizes; }
    void read_config(uint32_t offset, std::span<uint8_t> out) const override;
    Result<void> activate(const virtio::ActivateArgs& args) override;
    Result<void> queue_notify(uint16_t index) override;
    void reset() override;

    // Counters for logs and tests. "Dropped" frames are lost (TCP resends).
    struct Stats {
        uint64_t tx_frames = 0;
        uint64_t tx_bytes = 0;
        uint64_t tx_malformed = 0;       // shorter than header + Ethernet header, GSO, bad csum offsets
        uint64_t tx_oversize = 0;        // frame above net::kMaxFrameSize
        uint64_t tx_backend_errors = 0;  // the backend could not take the frame
        uint64_t rx_frames = 0;
        uint64_t rx_bytes = 0;
        uint64_t rx_backlog_drops = 0;   // no room in the backlog
        uint64_t rx_inactive_drops = 0;  // arrived while the device was not live
        uint64_t rx_oversize = 0;        // too big for kMaxFrameSize or for the guest's buffers
        uint64_t rx_bad_buffers = 0;     // receive buffers smaller than the header, returned empty
    };
    const Stats& stats() const { return stats_; }
    size_t rx_backlog() const { return backlog_.size(); }
    net::NetBackend& backend() { return *backend_; }

private:
    NetDevice(std::unique_ptr<net::NetBackend> backend, const Options& options);
    static constexpr std::array<uint16_t, 2> kQueueSizes{256, 256};

    // net::FrameSink
    void receive(std::span<const uint8_t> frame) override;
    bool can_receive() const override;
    bool has_room() const;

    void process_tx();
    void send_chain(const virtio::DescriptorChain& chain);
    void pump_rx();
    enum class Place { Done, NoBuffers };
    Place place_frame(std::span<const uint8_t> frame);
    void signal(virtio::Queue& q);
    void fail(virtio::QueueError e, const char* which);

    std::unique_ptr<net::NetBackend> backend_;
    Options options_;
    bool backend_started_ = false;

    // Negotiated at activate().
    bool live_ = false;
    bool mergeable_ = false;
    size_t hdr_len_ = 12;

    virtio::Queue* rx_ = nullptr;  // valid between activate() and reset()
    virtio::Queue* tx_ = nullptr;
    virtio::Interrupt* irq_ = nullptr;

    // Frames waiting for receive buffers, and receive chains popped for the
    // frame at the head of the backlog but not yet enough to hold it.
    std::deque<std::vector<uint8_t>> backlog_;
    size_t backlog_bytes_ = 0;
    std::deque<virtio::DescriptorChain> held_;
    size_t held_bytes_ = 0;
    bool rx_used_ = false;                 // used entries added since the last rx interrupt check
    bool in_rx_ = false;                   // pump_rx() is running (the backend may re-enter)
    mutable bool backend_waiting_ = false;  // can_receive() said no: call sink_ready() later

    std::vector<uint8_t> tx_scratch_;  // one frame copied out of guest memory
    // A ring fault found where no error can be returned (a backend callback);
    // the next queue_notify() reports it so the transport marks NEEDS_RESET.
    std::optional<Error> fault_;
    Stats stats_;
};

}  // namespace krunlet::devices
