// virtio-vsock (virtio 1.2 §5.10), stream sockets only. Queues: rx (0,
// device -> driver), tx (1, driver -> device), event (2, unused: we never
// migrate, so TRANSPORT_RESET is never sent).
//
// The guest connects to host ports served by in-process VsockServices. Each
// connection is a small state machine with credit-based flow control
// (§5.10.6.3): every header we send carries our fixed buf_alloc and our
// fwd_cnt; we never send the guest more than its advertised credit; a guest
// that sends more than ours is reset, so a flood cannot grow host memory.
// Packets for the guest are built lazily, when the guest has posted an rx
// buffer: a connection with something to say (a control op or data within
// credit) waits in a ready list, and RSTs for unknown connections wait in a
// bounded queue.
//
// All entry points run on the event loop thread (or a vCPU thread for
// activate/reset) with the transport mutex held; VsockStream calls must come
// from the same context. Service callbacks are never made re-entrantly from
// inside VsockStream::send()/close(): closes are delivered at the end of the
// outermost device call.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "virtio/device.h"

namespace krunlet::devices {

// The host end of one connection, handed to a service.
class VsockStream {
public:
    virtual ~VsockStream() = default;
    // Queue bytes for the guest (sent as credit allows). Returns false if the
    // connection is closed (by either side) or if the guest has left more than
    // kMaxHostBuffered bytes unread, in which case the connection is reset.
    virtual bool send(std::span<const uint8_t> bytes) = 0;
    // Orderly close: SHUTDOWN once queued data is out; the guest answers RST.
    virtual void close() = 0;
    virtual uint32_t host_port() const = 0;
    virtual uint32_t guest_port() const = 0;
    // Bytes queued by send() that the guest has not been sent yet.
    virtual size_t pending() const = 0;
    // For a service with defers_credit(): `n` more of the bytes on_data gave it have left its
    // hands, so the guest may send that many more.
    virtual void consumed(size_t n) = 0;
    // While pending() is above kDrainedBytes: ask for one on_drained() call once it falls to
    // kDrainedBytes or below, and return true. Otherwise return false (nothing to wait for).
    virtual bool notify_when_drained() = 0;
    static constexpr size_t kDrainedBytes = 256 * 1024;
};

// An in-process host endpoint on a port the guest connects to.
class VsockService {
public:
    virtual ~VsockService() = default;
    virtual void on_connect(VsockStream& stream) = 0;  // stream stays valid until on_close
    // The service consumes `bytes` entirely (they are credited back to the guest).
    virtual void on_data(VsockStream& stream, std::span<const uint8_t> bytes) = 0;
    virtual void on_close(VsockStream& stream) = 0;
    // See VsockStream::notify_when_drained().
    virtual void on_drained(VsockStream& stream) { (void)stream; }
    // false (the default): bytes count as consumed once on_data returns. true: only what the
    // service reports with VsockStream::consumed() is credited back to the guest, so a service
    // that forwards to a slow peer holds at most one receive window (kBufAlloc) per stream.
    virtual bool defers_credit() const { return false; }
};

// struct virtio_vsock_hdr (§5.10.6), little-endian on the wire; we only
// support little-endian hosts (x86_64). The wire header is the first 44
// bytes (vsock::kHeaderSize); the struct is not packed, so it has 4 bytes of
// tail padding that never go on the wire, and its fields can be bound to
// references.
struct VsockHeader {
    uint64_t src_cid;
    uint64_t dst_cid;
    uint32_t src_port;
    uint32_t dst_port;
    uint32_t len;
    uint16_t type;
    uint16_t op;
    uint32_t flags;
    uint32_t buf_alloc;
    uint32_t fwd_cnt;
};
static_assert(offsetof(VsockHeader, src_port) == 16 && offsetof(VsockHeader, len) == 24 &&
                  offsetof(VsockHeader, op) == 30 && offsetof(VsockHeader, fwd_cnt) == 40,
              "virtio_vsock_hdr layout (virtio 1.2 §5.10.6)");

namespace vsock {
inline constexpr size_t kHeaderSize = 44;  // sizeof(struct virtio_vsock_hdr)
inline constexpr uint16_t kTypeStream = 1;
enum Op : uint16_t {
    kOpInvalid = 0,
    kOpRequest = 1,
    kOpResponse = 2,
    kOpRst = 3,
    kOpShutdown = 4,
    kOpRw = 5,
    kOpCreditUpdate = 6,
    kOpCreditRequest = 7,
};
inline constexpr uint32_t kShutdownRcv = 1;   // sender will receive no more
inline constexpr uint32_t kShutdownSend = 2;  // sender will send no more
inline constexpr uint64_t kHostCid = 2;       // VMADDR_CID_HOST
inline constexpr uint64_t kFeatureStream = 1ull << 0;
}  // namespace vsock

class VsockDevice final : public virtio::Device {
public:
    // Our receive window per connection, advertised as buf_alloc.
    static constexpr uint32_t kBufAlloc = 256 * 1024;
    // Largest payload per packet, either direction (Linux's
    // VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
    static constexpr uint32_t kMaxPacketPayload = 64 * 1024;
    static constexpr size_t kMaxConnections = 64;
    // Host -> guest bytes a connection may queue while the guest is not reading.
    static constexpr size_t kMaxHostBuffered = 4 * 1024 * 1024;
    // RSTs for packets that match no connection, waiting for rx buffers;
    // beyond this they are dropped (the guest is not reading its rx queue).
    static constexpr size_t kMaxOrphanRsts = 256;

    static constexpr uint16_t kRxQueue = 0;
    static constexpr uint16_t kTxQueue = 1;
    static constexpr uint16_t kEventQueue = 2;

    // guest_cid: 3 .. 0xfffffffe (0-2 and U32_MAX are reserved, §5.10.4).
    static Result<std::unique_ptr<VsockDevice>> create(uint64_t guest_cid);
    ~VsockDevice() override;
    VsockDevice(const VsockDevice&) = delete;
    VsockDevice& operator=(const VsockDevice&) = delete;

    // Serve `host_port` with `svc` (call before boot).
    Result<void> add_service(uint32_t host_port, std::shared_ptr<VsockService> svc);
    // Open a stream from the host to the guest's `guest_port` (a guest listener), served by
    // `svc` from an ephemeral host port. The guest's answer decides: on_connect once it
    // accepts, or on_close alone if it refuses (RST). The stream is valid until on_close;
    // close() before the answer abandons it. Needs an active device; EAGAIN at the
    // connection cap.
    Result<VsockStream*> connect(uint32_t guest_port, std::shared_ptr<VsockService> svc);

    uint32_t device_type() const override { return virtio::kDeviceVsock; }
    uint64_t device_features() const override { return vsock::kFeatureStream; }
    std::span<const uint16_t> queue_max_sizes() const override { return kQueueSizes; }
    void read_config(uint32_t offset, std::span<uint8_t> out) const override;
    Result<void> activate(const virtio::ActivateArgs& args) override;
    Result<void> queue_notify(uint16_t index) override;
    void reset() override;

    uint64_t guest_cid() const { return guest_cid_; }
    size_t connection_count() const { return conns_.size(); }

private:
    class Connection;
    friend class Connection;
    struct Key {
        uint32_t guest_port;
        uint32_t host_port;
        auto operator<=>(const Key&) const = default;
    };

    explicit VsockDevice(uint64_t guest_cid);
    static constexpr std::array<uint16_t, 3> kQueueSizes{256, 256, 64};

    // Nesting of device entry points (queue_notify, reset, VsockStream
    // calls). The rx ring is filled when the outermost one ends; on_close
    // is delivered then too, unless the outermost is a VsockStream call
    // (its service is on the stack), in which case the next device entry
    // point delivers it.
    void enter(bool from_stream);
    void leave();

    void process_tx();
    void handle_packet(const VsockHeader& h, std::span<const uint8_t> payload, bool payload_ok);
    void handle_request(const VsockHeader& h);
    void handle_connected(const std::shared_ptr<Connection>& c, const VsockHeader& h,
                          std::span<const uint8_t> payload, bool payload_ok);
    void queue_orphan_rst(const VsockHeader& in);
    void schedule(Connection& c);
    void credit_if_low(Connection& c);
    bool deliver_drained();  // on_drained for waiters that drained; true if any was called  // CREDIT_UPDATE once the guest's view of our window is half gone
    void reset_connection(Connection& c);   // send RST, then forget it
    void drop_connection(Connection& c);    // forget it without a word (peer sent RST)
    void pump_rx();
    bool build_packet(Connection& c, VsockHeader& h, std::vector<uint8_t>& payload, size_t room);
    void fail(virtio::QueueError e, const char* which);

    uint64_t guest_cid_;
    std::map<uint32_t, std::shared_ptr<VsockService>> services_;
    std::map<Key, std::shared_ptr<Connection>> conns_;
    std::deque<std::weak_ptr<Connection>> ready_;  // connections with something to send
    std::deque<VsockHeader> orphan_rsts_;
    std::vector<std::shared_ptr<Connection>> closed_;  // on_close not yet delivered
    std::vector<std::weak_ptr<Connection>> drain_waiters_;  // asked for on_drained
    uint32_t next_ephemeral_port_ = kFirstEphemeralPort;
    static constexpr uint32_t kFirstEphemeralPort = 1u << 30;  // host ports for connect()
    int depth_ = 0;
    bool outer_is_stream_ = false;

    virtio::Queue* rx_ = nullptr;  // valid between activate() and reset()
    virtio::Queue* tx_ = nullptr;
    virtio::Interrupt* irq_ = nullptr;
    std::optional<virtio::DescriptorChain> rx_held_;  // popped, not yet filled
    // A ring fault found where no error can be returned (a VsockStream call);
    // the next queue_notify() reports it so the transport marks NEEDS_RESET.
    std::optional<Error> fault_;

    std::vector<uint8_t> scratch_;  // one tx payload, copied out of guest memory
};

}  // namespace krunlet::devices
