#include "devices/vsock.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <variant>

namespace krunlet::devices {

using namespace vsock;

namespace {
constexpr uint32_t kShutdownBoth = kShutdownRcv | kShutdownSend;
}  // namespace

// One guest->host stream. Owned by the device (conns_, then closed_ until the
// service has seen on_close); the service only holds a reference.
class VsockDevice::Connection final : public VsockStream,
                                      public std::enable_shared_from_this<Connection> {
public:
    enum class State {
        Connecting,  // host-initiated: our REQUEST is queued or sent, the guest has not answered
        Open,
        Resetting,  // our RST is queued; the key stays taken until it is sent
        Closed,     // forgotten by the device
    };

    Connection(VsockDevice& dev, Key key, std::shared_ptr<VsockService> svc)
        : dev_(dev), key_(key), svc_(std::move(svc)) {}

    bool send(std::span<const uint8_t> bytes) override {
        if (!accepts_host_data()) return false;
        dev_.enter(true);
        bool ok = true;
        if (tx_pending() + bytes.size() > kMaxHostBuffered) {
            // The guest stopped reading; it must not make us hold unbounded data.
            dev_.reset_connection(*this);
            ok = false;
        } else if (!bytes.empty()) {
            if (tx_off_ > 0 && tx_off_ >= tx_buf_.size() / 2) {
                tx_buf_.erase(tx_buf_.begin(), tx_buf_.begin() + static_cast<ptrdiff_t>(tx_off_));
                tx_off_ = 0;
            }
            tx_buf_.insert(tx_buf_.end(), bytes.begin(), bytes.end());
            dev_.schedule(*this);
        }
        dev_.leave();
        return ok;
    }

    void close() override {
        if (state_ == State::Connecting) {
            dev_.enter(true);
            dev_.reset_connection(*this);  // abandon the attempt: RST instead of waiting
            dev_.leave();
            return;
        }
        if (state_ != State::Open || host_shutdown_) return;
        dev_.enter(true);
        host_shutdown_ = true;
        dev_.schedule(*this);
        dev_.leave();
    }

    uint32_t host_port() const override { return key_.host_port; }
    uint32_t guest_port() const override { return key_.guest_port; }
    size_t pending() const override { return tx_pending(); }

    void consumed(size_t n) override {
        if (state_ != State::Open || n == 0) return;
        dev_.enter(true);
        // Never credit more than was received: a confused service must not widen the window.
        fwd_cnt_ += static_cast<uint32_t>(std::min<size_t>(n, rx_cnt_ - fwd_cnt_));
        dev_.credit_if_low(*this);
        dev_.leave();
    }

    bool notify_when_drained() override {
        if (state_ != State::Open || tx_pending() <= kDrainedBytes) return false;
        if (!drain_wanted_) {
            drain_wanted_ = true;
            dev_.drain_waiters_.push_back(weak_from_this());
        }
        return true;
    }

    // The service has the stream (it gets on_close once this ends).
    bool live() const { return state_ == State::Open || state_ == State::Connecting; }

    bool accepts_host_data() const {
        return state_ == State::Open && !host_shutdown_ && (peer_shutdown_ & kShutdownRcv) == 0;
    }
    size_t tx_pending() const { return tx_buf_.size() - tx_off_; }
    void drop_tx() {
        tx_buf_.clear();
        tx_off_ = 0;
    }
    // What the guest lets us send now (§5.10.6.3.1). A bogus peer fwd_cnt
    // ahead of what we sent wraps to a huge in-flight count: credit 0.
    uint32_t peer_credit() const {
        uint32_t in_flight = tx_cnt_ - peer_fwd_cnt_;
        return in_flight >= peer_buf_alloc_ ? 0 : peer_buf_alloc_ - in_flight;
    }
    bool wants_to_send() const {
        if (state_ == State::Resetting) return true;
        if (state_ == State::Connecting) return need_request_;
        if (state_ != State::Open) return false;
        if (need_response_ || need_credit_update_) return true;
        if (tx_pending() > 0 && peer_credit() > 0) return true;
        return host_shutdown_ && !shutdown_sent_ && tx_pending() == 0;
    }

    VsockDevice& dev_;
    const Key key_;
    const std::shared_ptr<VsockService> svc_;
    State state_ = State::Open;
    bool queued_ = false;  // in dev_.ready_
    bool need_response_ = true;   // guest-initiated: RESPONSE not sent yet
    bool need_request_ = false;   // host-initiated: REQUEST not sent yet
    bool drain_wanted_ = false;   // in dev_.drain_waiters_
    bool need_credit_update_ = false;
    bool host_shutdown_ = false;  // close() was called
    bool shutdown_sent_ = false;
    uint32_t peer_shutdown_ = 0;  // SHUTDOWN flags the guest has sent

    // host -> guest
    std::vector<uint8_t> tx_buf_;
    size_t tx_off_ = 0;
    uint32_t tx_cnt_ = 0;          // payload bytes sent, wrapping (§5.10.6.3)
    uint32_t peer_buf_alloc_ = 0;  // guest-controlled
    uint32_t peer_fwd_cnt_ = 0;    // guest-controlled

    // guest -> host
    uint32_t rx_cnt_ = 0;          // payload bytes received, wrapping
    uint32_t fwd_cnt_ = 0;         // ... of which the service consumed
    uint32_t fwd_advertised_ = 0;  // fwd_cnt in the last header the guest got
};

Result<std::unique_ptr<VsockDevice>> VsockDevice::create(uint64_t guest_cid) {
    // §5.10.4: CIDs 0-2 are reserved and 0xffffffff is VMADDR_CID_ANY; the
    // upper 32 bits of guest_cid are reserved and must be zero.
    if (guest_cid < 3 || guest_cid >= 0xffffffffull)
        return make_error(EINVAL, "virtio-vsock: guest CID " + std::to_string(guest_cid) +
                                      " is reserved; pick one in 3..4294967294");
    return std::unique_ptr<VsockDevice>(new VsockDevice(guest_cid));
}

VsockDevice::VsockDevice(uint64_t guest_cid) : guest_cid_(guest_cid) {}

VsockDevice::~VsockDevice() {
    // Every stream a service saw gets its on_close before it disappears.
    for (auto& [key, c] : conns_)
        if (c->live()) closed_.push_back(c);
    for (auto& c : conns_) c.second->state_ = Connection::State::Closed;
    auto last = std::move(closed_);
    for (auto& c : last) c->svc_->on_close(*c);
}

Result<void> VsockDevice::add_service(uint32_t host_port, std::shared_ptr<VsockService> svc) {
    if (!svc) return make_error(EINVAL, "virtio-vsock: add_service needs a service");
    if (host_port == 0xffffffffu)
        return make_error(EINVAL, "virtio-vsock: port 4294967295 is VMADDR_PORT_ANY; pick another");
    if (!services_.emplace(host_port, std::move(svc)).second)
        return make_error(EEXIST, "virtio-vsock: host port " + std::to_string(host_port) +
                                      " already has a service; use one port per service");
    return {};
}

void VsockDevice::read_config(uint32_t offset, std::span<uint8_t> out) const {
    // struct virtio_vsock_config { le64 guest_cid; } (§5.10.4)
    for (size_t i = 0; i < out.size(); ++i) {
        uint64_t at = uint64_t{offset} + i;
        out[i] = at < 8 ? static_cast<uint8_t>(guest_cid_ >> (8 * at)) : 0;
    }
}

Result<void> VsockDevice::activate(const virtio::ActivateArgs& args) {
    if (args.queues.size() != kQueueSizes.size())
        return make_error(EINVAL, "virtio-vsock: expected 3 queues, transport gave " +
                                      std::to_string(args.queues.size()));
    // A queue the driver left disabled is treated as never having buffers.
    auto live = [&](uint16_t i) { return args.queues[i].active() ? &args.queues[i] : nullptr; };
    rx_ = live(kRxQueue);
    tx_ = live(kTxQueue);
    irq_ = &args.irq;
    fault_.reset();
    enter(false);
    process_tx();  // packets the driver queued before DRIVER_OK
    leave();
    if (fault_) return *fault_;
    return {};
}

Result<void> VsockDevice::queue_notify(uint16_t index) {
    if (fault_) return *fault_;
    enter(false);
    if (index == kTxQueue) process_tx();
    // An rx kick means fresh buffers: leave() sends what was waiting for them.
    // The event queue's buffers are kept for a TRANSPORT_RESET we never send.
    leave();
    if (fault_) return *fault_;
    return {};
}

void VsockDevice::reset() {
    enter(false);
    for (auto& [key, c] : conns_) {
        if (c->live()) closed_.push_back(c);
        c->state_ = Connection::State::Closed;
    }
    conns_.clear();
    ready_.clear();
    orphan_rsts_.clear();
    drain_waiters_.clear();
    rx_held_.reset();
    rx_ = tx_ = nullptr;
    irq_ = nullptr;
    fault_.reset();
    leave();  // services hear on_close
}

void VsockDevice::enter(bool from_stream) {
    if (depth_++ == 0) outer_is_stream_ = from_stream;
}

void VsockDevice::leave() {
    if (depth_ == 1) {
        for (;;) {
            pump_rx();
            // Inside a VsockStream call the service is on the stack: its
            // on_close and on_drained wait for the next device entry point.
            if (outer_is_stream_) break;
            if (!closed_.empty()) {
                auto batch = std::move(closed_);
                closed_.clear();
                for (auto& c : batch) c->svc_->on_close(*c);  // may send on other streams
                continue;
            }
            if (!deliver_drained()) break;
        }
    }
    --depth_;
}

bool VsockDevice::deliver_drained() {
    bool called = false;
    auto waiters = std::move(drain_waiters_);
    drain_waiters_.clear();
    for (auto& w : waiters) {
        auto c = w.lock();
        if (!c || !c->drain_wanted_) continue;
        if (c->state_ != Connection::State::Open) {
            c->drain_wanted_ = false;  // on_close tells the service instead
        } else if (c->tx_pending() <= VsockStream::kDrainedBytes) {
            c->drain_wanted_ = false;
            c->svc_->on_drained(*c);  // may send again (and ask again, once above the mark)
            called = true;
        } else {
            drain_waiters_.push_back(c);
        }
    }
    return called;
}

Result<VsockStream*> VsockDevice::connect(uint32_t guest_port, std::shared_ptr<VsockService> svc) {
    if (!svc) return make_error(EINVAL, "virtio-vsock: connect needs a service");
    if (rx_ == nullptr || tx_ == nullptr)
        return make_error(ENOTCONN, "virtio-vsock: the guest driver is not running yet");
    if (conns_.size() >= kMaxConnections)
        return make_error(EAGAIN, "virtio-vsock: " + std::to_string(kMaxConnections) + " connections are open");
    // An ephemeral host port that no service owns and no stream to this guest port uses.
    uint32_t port = next_ephemeral_port_;
    for (;;) {
        if (port < kFirstEphemeralPort || port == 0xffffffffu) port = kFirstEphemeralPort;
        if (!services_.contains(port) && !conns_.contains(Key{guest_port, port})) break;
        ++port;
    }
    next_ephemeral_port_ = port + 1;
    Key key{guest_port, port};
    auto c = std::make_shared<Connection>(*this, key, std::move(svc));
    c->state_ = Connection::State::Connecting;
    c->need_response_ = false;
    c->need_request_ = true;
    conns_.emplace(key, c);
    enter(true);  // the caller is a service: no callbacks into it from here
    schedule(*c);
    leave();
    return static_cast<VsockStream*>(c.get());
}

void VsockDevice::fail(virtio::QueueError e, const char* which) {
    fault_ = make_error(EIO, std::string("virtio-vsock: ") + which + ": " + virtio::to_string(e));
    rx_held_.reset();
    rx_ = tx_ = nullptr;  // stop touching the rings until reset
}

void VsockDevice::schedule(Connection& c) {
    if (c.queued_ || c.state_ == Connection::State::Closed) return;
    c.queued_ = true;
    ready_.push_back(c.weak_from_this());
}

void VsockDevice::reset_connection(Connection& c) {
    if (!c.live()) return;
    c.state_ = Connection::State::Resetting;
    c.drop_tx();
    closed_.push_back(c.shared_from_this());
    schedule(c);
}

void VsockDevice::drop_connection(Connection& c) {
    auto self = c.shared_from_this();
    if (c.live()) closed_.push_back(self);
    c.state_ = Connection::State::Closed;
    c.drop_tx();
    conns_.erase(c.key_);
}

void VsockDevice::queue_orphan_rst(const VsockHeader& in) {
    if (orphan_rsts_.size() >= kMaxOrphanRsts) return;  // the guest is not reading rx
    VsockHeader h{};
    h.src_cid = in.dst_cid;
    h.dst_cid = in.src_cid;
    h.src_port = in.dst_port;
    h.dst_port = in.src_port;
    h.type = in.type;
    h.op = kOpRst;
    orphan_rsts_.push_back(h);
}

// --- guest -> host (tx queue) ---

void VsockDevice::process_tx() {
    bool used = false;
    while (tx_ != nullptr) {
        auto popped = tx_->pop();
        if (auto* err = std::get_if<virtio::QueueError>(&popped)) {
            fail(*err, "tx queue");
            break;
        }
        if (std::holds_alternative<std::monostate>(popped)) break;
        auto chain = std::get<virtio::DescriptorChain>(std::move(popped));
        VsockHeader h{};
        bool have_header = chain.readable_bytes() >= kHeaderSize;
        bool payload_ok = false;
        if (have_header) {
            chain.copy_from_readable(0, std::span(reinterpret_cast<uint8_t*>(&h), kHeaderSize));
            // guest-controlled: len must fit the chain and the packet limit.
            payload_ok = h.len <= kMaxPacketPayload && h.len <= chain.readable_bytes() - kHeaderSize;
            scratch_.resize(payload_ok ? h.len : 0);
            // A private copy: the guest cannot change bytes the service is parsing.
            if (payload_ok) chain.copy_from_readable(kHeaderSize, scratch_);
        }
        tx_->add_used(std::move(chain), 0);
        used = true;
        // Without a whole header there is nobody to answer: drop it.
        if (have_header) handle_packet(h, scratch_, payload_ok);
    }
    if (used && tx_ != nullptr && irq_ != nullptr && tx_->needs_interrupt()) irq_->signal_used();
}

void VsockDevice::handle_packet(const VsockHeader& h, std::span<const uint8_t> payload, bool payload_ok) {
    // A spoofed source is dropped without a word, as vhost-vsock does.
    if (h.src_cid != guest_cid_) return;
    if (h.dst_cid != kHostCid || h.type != kTypeStream) {
        if (h.op != kOpRst) queue_orphan_rst(h);  // never answer an RST with an RST
        return;
    }
    auto it = conns_.find(Key{h.src_port, h.dst_port});
    if (it != conns_.end()) {
        auto c = it->second;  // keep it alive while services run
        handle_connected(c, h, payload, payload_ok);
        return;
    }
    if (h.op == kOpRequest)
        handle_request(h);
    else if (h.op != kOpRst)
        queue_orphan_rst(h);
}

void VsockDevice::handle_request(const VsockHeader& h) {
    auto svc = services_.find(h.dst_port);
    if (svc == services_.end() || conns_.size() >= kMaxConnections) {
        queue_orphan_rst(h);  // the guest's connect() fails with ECONNRESET
        return;
    }
    Key key{h.src_port, h.dst_port};
    auto c = std::make_shared<Connection>(*this, key, svc->second);
    c->peer_buf_alloc_ = h.buf_alloc;
    c->peer_fwd_cnt_ = h.fwd_cnt;
    conns_.emplace(key, c);
    schedule(*c);  // the RESPONSE goes out before anything on_connect sends
    c->svc_->on_connect(*c);
}

void VsockDevice::handle_connected(const std::shared_ptr<Connection>& c, const VsockHeader& h,
                                   std::span<const uint8_t> payload, bool payload_ok) {
    if (c->state_ == Connection::State::Connecting) {
        // Our REQUEST's answer (§5.10.6.2): RESPONSE accepts, RST refuses; anything else
        // (or an answer before we asked) is a protocol error.
        if (h.op == kOpResponse && !c->need_request_) {
            c->peer_buf_alloc_ = h.buf_alloc;
            c->peer_fwd_cnt_ = h.fwd_cnt;
            c->state_ = Connection::State::Open;
            c->svc_->on_connect(*c);
        } else if (h.op == kOpRst) {
            drop_connection(*c);
        } else {
            reset_connection(*c);
        }
        return;
    }
    if (c->state_ != Connection::State::Open) {
        // Our RST is on its way; the guest's own RST makes it unnecessary.
        if (h.op == kOpRst) {
            c->state_ = Connection::State::Closed;
            conns_.erase(c->key_);
        }
        return;
    }
    // Every header refreshes the peer's credit (§5.10.6.3).
    c->peer_buf_alloc_ = h.buf_alloc;
    c->peer_fwd_cnt_ = h.fwd_cnt;

    switch (h.op) {
    case kOpRst:
        drop_connection(*c);
        return;
    case kOpShutdown:
        c->peer_shutdown_ |= h.flags & kShutdownBoth;
        if (c->peer_shutdown_ & kShutdownRcv) c->drop_tx();  // it will not read them
        if (c->peer_shutdown_ == kShutdownBoth) {
            // The guest closed its socket and waits for our RST to finish.
            reset_connection(*c);
            return;
        }
        schedule(*c);
        return;
    case kOpRw: {
        if (!payload_ok || (c->peer_shutdown_ & kShutdownSend)) {
            reset_connection(*c);  // a malformed packet, or data after "no more data"
            return;
        }
        // The guest may only send what the window it last heard about
        // allows. A peer that ignores it is reset: this is what keeps a flood
        // from growing host memory, whatever the service does.
        uint32_t in_flight = c->rx_cnt_ - c->fwd_advertised_;
        if (uint64_t{in_flight} + payload.size() > kBufAlloc) {
            reset_connection(*c);
            return;
        }
        auto n = static_cast<uint32_t>(payload.size());
        c->rx_cnt_ += n;
        // After close() the service wants no more data; it is credited anyway
        // so the guest is not left waiting for a window before our SHUTDOWN.
        if (n > 0 && !c->host_shutdown_) {
            c->svc_->on_data(*c, payload);
            if (!c->svc_->defers_credit()) c->fwd_cnt_ += n;  // else consumed() credits it
        } else {
            c->fwd_cnt_ += n;
        }
        if (c->state_ != Connection::State::Open) return;  // the service reset it
        credit_if_low(*c);
        return;
    }
    case kOpCreditUpdate:
        schedule(*c);  // the window may have opened for queued data
        return;
    case kOpCreditRequest:
        c->need_credit_update_ = true;
        schedule(*c);
        return;
    default:
        // REQUEST on a live connection, RESPONSE to a request we never made,
        // INVALID or an unknown op (§5.10.6.4: answer with RST).
        reset_connection(*c);
        return;
    }
}

void VsockDevice::credit_if_low(Connection& c) {
    // Tell the guest about consumed bytes once its view of our free space
    // falls below half the window, so a streaming sender never stalls.
    uint32_t guest_view_free = kBufAlloc - (c.rx_cnt_ - c.fwd_advertised_);
    if (guest_view_free < kBufAlloc / 2 && c.fwd_cnt_ != c.fwd_advertised_) {
        c.need_credit_update_ = true;
        schedule(c);
    }
}

// --- host -> guest (rx queue) ---

bool VsockDevice::build_packet(Connection& c, VsockHeader& h, std::vector<uint8_t>& payload, size_t room) {
    h = VsockHeader{};
    h.src_cid = kHostCid;
    h.dst_cid = guest_cid_;
    h.src_port = c.key_.host_port;
    h.dst_port = c.key_.guest_port;
    h.type = kTypeStream;
    h.buf_alloc = kBufAlloc;
    h.fwd_cnt = c.fwd_cnt_;
    payload.clear();

    if (c.state_ == Connection::State::Resetting) {
        h.op = kOpRst;
        c.state_ = Connection::State::Closed;
        conns_.erase(c.key_);  // may destroy the map's reference; closed_ holds another
        return true;
    }
    if (c.state_ == Connection::State::Connecting) {
        if (!c.need_request_) return false;
        h.op = kOpRequest;  // buf_alloc and fwd_cnt above give the guest our window
        c.need_request_ = false;
        c.fwd_advertised_ = c.fwd_cnt_;
        return true;
    }
    if (c.state_ != Connection::State::Open) return false;
    if (c.need_response_) {
        h.op = kOpResponse;
        c.need_response_ = false;
    } else if (size_t n = std::min<size_t>({c.tx_pending(), c.peer_credit(), room, kMaxPacketPayload}); n > 0) {
        h.op = kOpRw;
        h.len = static_cast<uint32_t>(n);
        payload.assign(c.tx_buf_.begin() + static_cast<ptrdiff_t>(c.tx_off_),
                       c.tx_buf_.begin() + static_cast<ptrdiff_t>(c.tx_off_ + n));
        c.tx_off_ += n;
        if (c.tx_off_ == c.tx_buf_.size()) c.drop_tx();
        c.tx_cnt_ += static_cast<uint32_t>(n);
    } else if (c.host_shutdown_ && !c.shutdown_sent_ && c.tx_pending() == 0) {
        h.op = kOpShutdown;
        h.flags = kShutdownBoth;
        c.shutdown_sent_ = true;
    } else if (c.need_credit_update_) {
        h.op = kOpCreditUpdate;
    } else {
        return false;
    }
    // Any header tells the guest our fwd_cnt, so it doubles as a credit update.
    c.need_credit_update_ = false;
    c.fwd_advertised_ = c.fwd_cnt_;
    return true;
}

void VsockDevice::pump_rx() {
    bool used = false;
    std::vector<uint8_t> payload;
    // Connections tried since the last packet was built. Once every ready
    // connection has been tried with the held buffer and none could use it
    // (guest-controlled: e.g. a buffer with room for a header only, while
    // they only have data), stop: retrying would spin forever with the
    // transport mutex held. The buffer stays held for the next kick.
    size_t fruitless = 0;
    while (rx_ != nullptr) {
        // Drop connections with nothing sendable from the front of the list;
        // credit or new data puts them back.
        while (!ready_.empty()) {
            auto c = ready_.front().lock();
            if (c && c->wants_to_send()) break;
            if (c) c->queued_ = false;
            ready_.pop_front();
        }
        if (orphan_rsts_.empty() && ready_.empty()) break;

        if (!rx_held_) {
            auto popped = rx_->pop();
            if (auto* err = std::get_if<virtio::QueueError>(&popped)) {
                fail(*err, "rx queue");
                break;
            }
            if (std::holds_alternative<std::monostate>(popped)) break;  // resume on the next rx kick
            rx_held_ = std::get<virtio::DescriptorChain>(std::move(popped));
        }
        size_t room = rx_held_->writable_bytes();
        if (room < kHeaderSize) {
            // guest-controlled: Linux posts 4 KiB buffers; one that cannot
            // hold a header is a broken driver.
            fault_ = make_error(EIO, "virtio-vsock: rx buffer of " + std::to_string(room) +
                                         " bytes cannot hold a packet header");
            rx_held_.reset();
            rx_ = tx_ = nullptr;
            break;
        }
        VsockHeader h{};
        bool built = false;
        if (!orphan_rsts_.empty()) {
            h = orphan_rsts_.front();
            orphan_rsts_.pop_front();
            payload.clear();
            built = true;
        } else {
            auto c = ready_.front().lock();
            ready_.pop_front();
            built = build_packet(*c, h, payload, room - kHeaderSize);
            if (!built && room == kHeaderSize && c->wants_to_send()) {
                // guest-controlled: a buffer with no room for payload. Use
                // it for a credit update (a header-only packet is always
                // valid), so it does not block the buffers behind it.
                h.op = kOpCreditUpdate;
                h.len = 0;
                payload.clear();
                built = true;
            }
            // Round robin: a connection with more to say goes to the back.
            if (c->wants_to_send())
                ready_.push_back(c);
            else
                c->queued_ = false;
        }
        if (!built) {
            if (++fruitless > ready_.size()) break;
            continue;  // keep the held buffer for the next packet
        }
        fruitless = 0;
        rx_held_->copy_to_writable(0, std::span(reinterpret_cast<const uint8_t*>(&h), kHeaderSize));
        rx_held_->copy_to_writable(kHeaderSize, payload);
        rx_->add_used(std::move(*rx_held_), static_cast<uint32_t>(kHeaderSize + h.len));
        rx_held_.reset();
        used = true;
    }
    if (used && rx_ != nullptr && irq_ != nullptr && rx_->needs_interrupt()) irq_->signal_used();
}

}  // namespace krunlet::devices
