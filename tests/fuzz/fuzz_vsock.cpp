// fuzz_vsock: the virtio-vsock device (lib/devices/vsock.h) fed packets by a
// guest driver whose headers and payloads come from the fuzzer.
//
// The guest is the scripted driver of tests/unit/devices/harness.h (guarded
// guest RAM, split rings). A service listens on port 1024; port 1025 has
// none. Input: a mode byte (honest credit or raw header fields), then a
// program: send a packet (header fields mostly valid, op/flags/len/credit
// from the input, payload split over 1-3 descriptors), kick tx/rx/event,
// post rx buffers (sometimes too small for a header), let the service send
// (up to 1 MiB at once) or close, read the config space, reset the device,
// send bursts of full-size packets, break a posted chain.
//
// The service answers every connection with its serial number (8 bytes)
// followed by a byte pattern derived from it, so the guest can check that
// what arrives on a connection is exactly a prefix of what was sent.
// Checked after every step:
//   - every rx packet is well formed (header fields, len == used len - 44,
//     known op, host CID as source unless it is an RST echoing a bad packet);
//   - per connection: RESPONSE only after the guest's REQUEST, data only
//     after RESPONSE and before SHUTDOWN/RST, data is the service's stream
//     in order; with honest credit, never more than the guest's buf_alloc in
//     flight (§5.10.6.3);
//   - services see on_connect/on_data/on_close in order, on_close exactly
//     once, and every stream is closed after a reset or at the end;
//   - memory is bounded: at most kMaxConnections connections, and what a
//     service has queued but the guest has not received stays under
//     kMaxHostBuffered; once send() refuses, it keeps refusing;
//   - a ring fault (the program can break a posted chain) makes
//     queue_notify() fail, and keep failing until reset.
#include <algorithm>
#include <cstdio>
#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "devices/vsock.h"
#include "fuzz_util.h"
#include "harness.h"

using namespace krunlet;
using namespace krunlet::devices;
using namespace krunlet::devices::vsock;
using krunlet::devices::test::Driver;
using krunlet::devices::test::Used;
using krunlet::fuzz::Input;

namespace {

constexpr uint64_t kGuestCid = 3;
constexpr uint32_t kServicePort = 1024;
constexpr uint32_t kNoServicePort = 1025;
constexpr std::array<uint32_t, 4> kGuestPorts = {50000, 50001, 50002, 50003};
constexpr uint16_t kQueueSize = 64;
constexpr size_t kRamBytes = 16 << 20;
constexpr size_t kPostBudget = 12 << 20;  // bytes of buffers one input may post (the RAM is a bump allocator)
constexpr size_t kMaxOps = 256;
constexpr size_t kMaxBigSends = 6;
constexpr uint32_t kRx = VsockDevice::kRxQueue, kTx = VsockDevice::kTxQueue, kEvent = VsockDevice::kEventQueue;

// Byte `i` of the stream a service sends on connection `serial` (i >= 8; bytes 0..7 are the serial).
uint8_t pattern(uint64_t serial, uint64_t i) { return static_cast<uint8_t>(serial * 131 + i * 7 + (i >> 9)); }

// ---- the host side: one service, and what it has sent --------------------------------------

struct StreamInfo {
    uint64_t serial = 0;
    uint64_t sent = 0;     // bytes send() accepted
    bool refused = false;  // send() said no once (or close() was called)
};

struct World {
    std::map<VsockStream*, StreamInfo> open;    // between on_connect and on_close
    std::map<uint64_t, uint64_t> delivered;     // serial -> bytes the guest received
    uint64_t next_serial = 0;
};

// Bytes [from, from + n) of connection `serial`'s stream.
FUZZ_NO_COVERAGE std::vector<uint8_t> stream_bytes(uint64_t serial, uint64_t from, size_t n) {
    std::vector<uint8_t> buf(n);
    for (size_t k = 0; k < n; ++k) {
        uint64_t i = from + k;
        buf[k] = i < 8 ? static_cast<uint8_t>(serial >> (8 * i)) : pattern(serial, i);
    }
    return buf;
}

// The first offset in [0, n) where `got` differs from the stream (after its serial), or n.
FUZZ_NO_COVERAGE size_t stream_mismatch(uint64_t serial, uint64_t from, const uint8_t* got, size_t n) {
    for (size_t k = 0; k < n; ++k)
        if (from + k >= 8 && got[k] != pattern(serial, from + k)) return k;
    return n;
}

void send_pattern(StreamInfo& info, VsockStream& s, size_t n) {
    std::vector<uint8_t> buf = stream_bytes(info.serial, info.sent, n);
    bool ok = s.send(buf);
    FUZZ_CHECK(!(ok && info.refused), "send() accepted data after it had refused (or after close())");
    if (ok)
        info.sent += n;
    else
        info.refused = true;
}

class Service final : public VsockService {
public:
    explicit Service(World& w) : w_(w) {}
    void on_connect(VsockStream& s) override {
        FUZZ_CHECK(!w_.open.count(&s), "on_connect for a stream that is already open");
        FUZZ_CHECK(s.host_port() == kServicePort, "on_connect on the wrong port");
        StreamInfo& info = w_.open[&s];
        info.serial = ++w_.next_serial;
        send_pattern(info, s, 8);
        FUZZ_CHECK(!info.refused, "a fresh connection refused its greeting");
    }
    void on_data(VsockStream& s, std::span<const uint8_t> bytes) override {
        auto it = w_.open.find(&s);
        FUZZ_CHECK(it != w_.open.end(), "on_data for a stream that is not open");
        FUZZ_CHECK(!bytes.empty() && bytes.size() <= VsockDevice::kMaxPacketPayload, "on_data with a bad size");
        const uint8_t what = bytes[0] % 8;
        if (what < 5) {
            send_pattern(it->second, s, bytes.size() * (what + 1));
        } else if (what == 5) {
            it->second.refused = true;
            s.close();
        }
    }
    void on_close(VsockStream& s) override {
        FUZZ_CHECK(w_.open.erase(&s) == 1, "on_close for a stream that is not open");
    }

private:
    World& w_;
};

// ---- the guest's view of one connection -----------------------------------------------------

struct Conn {
    enum State { None, Requested, Open, Closed } state = None;
    bool host_shut = false;     // the host sent SHUTDOWN: no more data
    bool guest_no_rcv = false;  // the guest said it will not read any more
    uint32_t rx_total = 0;      // payload bytes received in this connection
    uint64_t serial = 0;        // from the first 8 bytes
    // Credit as the device last heard it (honest mode), and whether it can be trusted.
    uint32_t fwd_known = 0;
    uint32_t buf_alloc_known = 0;
    bool credit_tracked = false;
    bool request_since_open = false;  // a REQUEST was posted after RESPONSE (post-time shadow)
};

using Key = std::pair<uint32_t, uint32_t>;  // (guest port, host port)

class Harness {
public:
    explicit Harness(Input& in) : in_(in) {
        auto d = VsockDevice::create(kGuestCid);
        FUZZ_CHECK(d.ok(), "VsockDevice::create");
        dev_ = std::move(*d);
        svc_ = std::make_shared<Service>(world_);
        FUZZ_CHECK(dev_->add_service(kServicePort, svc_).ok(), "add_service");
        drv_ = std::make_unique<Driver>(*dev_, kQueueSize, kRamBytes);
        uint8_t mode = in_.u8();
        honest_ = (mode & 1) == 0;
        static constexpr std::array<uint32_t, 4> kAllocs = {4096, 65536, 256 * 1024, 1 << 20};
        buf_alloc_ = kAllocs[(mode >> 1) % 4];
    }

    void run() {
        activate();
        for (size_t i = 0; i < kMaxOps && !in_.empty(); ++i) {
            step();
            check_bounds();
        }
        dev_->reset();
        FUZZ_CHECK(world_.open.empty(), "a stream was not closed by reset()");
        drv_.reset();
        dev_.reset();
        FUZZ_CHECK(world_.open.empty(), "a stream was not closed when the device went away");
    }

private:
    void activate() {
        auto r = drv_->activate();
        pending_.clear();
        after_call(r, false);
    }

    void step() {
        switch (in_.u8() % 12) {
            case 0:
            case 1:
                send_packet();
                break;
            case 2: kick(kTx); break;
            case 3: post_rx(); break;
            case 4: kick(kRx); break;
            case 5: service_action(); break;
            case 6: kick(kEvent); break;
            case 7: {
                std::array<uint8_t, 16> cfg{};
                uint32_t off = in_.u8() % 16;
                dev_->read_config(off, std::span(cfg).first(in_.u8() % 9));
                if (off == 0) {
                    uint64_t cid;
                    dev_->read_config(0, std::span(reinterpret_cast<uint8_t*>(&cid), 8));
                    FUZZ_CHECK(cid == kGuestCid, "config space guest_cid");
                }
                break;
            }
            case 8: reset(); break;
            case 9: post_rx(); kick(kRx); break;
            case 10: burst(); break;
            case 11: corrupt(); break;
        }
    }

    void reset() {
        drv_->reset();
        FUZZ_CHECK(world_.open.empty(), "a stream was not closed by reset()");
        FUZZ_CHECK(dev_->connection_count() == 0, "connections survived reset()");
        conns_.clear();
        faulted_ = false;
        last_tx_head_.reset();
        last_rx_head_.reset();
        activate();
    }

    void kick(uint16_t q) {
        if (faulted_) return;
        auto r = drv_->kick(q);
        if (q == kTx) apply_pending();
        after_call(r, true);
    }

    // After every device entry point: collect what it did and check it.
    void after_call(const Result<void>& r, bool sticky_check) {
        if (!r.ok()) {
            if (krunlet::fuzz::tracing()) std::fprintf(stderr, "vsock: fault: %s\n", r.error().message.c_str());
            faulted_ = true;
            if (sticky_check) FUZZ_CHECK(!drv_->kick(kTx).ok(), "a ring fault did not stick until reset");
            // The driver would reset the device now; so do we.
            reset();
            return;
        }
        for (const Used& u : drv_->take_used(kTx)) FUZZ_CHECK(u.len == 0, "the device wrote into a tx buffer");
        for (const Used& u : drv_->take_used(kRx)) check_rx(u);
        FUZZ_CHECK(drv_->take_used(kEvent).empty(), "the device used an event buffer");
    }

    void check_bounds() {
        FUZZ_CHECK(dev_->connection_count() <= VsockDevice::kMaxConnections, "too many connections");
        for (auto& [s, info] : world_.open) {
            uint64_t got = world_.delivered[info.serial];
            FUZZ_CHECK(info.sent <= got + VsockDevice::kMaxHostBuffered + 8,
                       "a service has more than kMaxHostBuffered bytes queued for the guest");
        }
    }

    // ---- guest -> device ----------------------------------------------------------------
    bool budget(size_t bytes) {
        if (posted_bytes_ + bytes + 64 > kPostBudget) return false;
        posted_bytes_ += bytes + 64;
        return true;
    }

    void send_packet() {
        const uint8_t sel = in_.u8();
        VsockHeader h{};
        h.src_cid = (sel & 0xc0) == 0xc0 ? in_.u64() : kGuestCid;
        h.dst_cid = (sel & 0x30) == 0x30 ? in_.u64() : kHostCid;
        uint8_t p = in_.u8();
        h.src_port = p == 0xff ? in_.u32() : kGuestPorts[p % kGuestPorts.size()];
        p = in_.u8();
        h.dst_port = p < 0xe0 ? kServicePort : p < 0xf0 ? kNoServicePort : in_.u32();
        h.type = (sel & 0x0c) == 0x0c ? in_.u16() : kTypeStream;
        h.op = in_.u8() % 9;  // 0 (INVALID) .. 7, and 8 (unknown)
        h.flags = in_.u8() < 0xf0 ? in_.u8() % 4 : in_.u32();

        const uint8_t extra = in_.u8();
        const Key key{h.src_port, h.dst_port};
        Conn& c = conns_[key];
        const bool raw_credit = !honest_ || extra >= 0xe0;
        if (raw_credit) {
            h.buf_alloc = in_.u32();
            h.fwd_cnt = in_.u32();
        } else {
            h.buf_alloc = buf_alloc_;
            h.fwd_cnt = c.state == Conn::Open && !c.request_since_open ? c.rx_total : 0;
        }
        if (h.op == kOpRequest && c.state == Conn::Open) c.request_since_open = true;

        std::vector<uint8_t> payload;
        uint8_t pm = in_.u8();
        if (pm < 0xf0) {
            auto b = in_.bytes(pm % 64);
            payload.assign(b.begin(), b.end());
        } else {
            // Big: up to just past the 64 KiB limit.
            payload.assign(VsockDevice::kMaxPacketPayload - 2 + (pm & 3), static_cast<uint8_t>(in_.u8()));
        }
        h.len = (extra & 0x0f) == 0x0f ? in_.u32() % (VsockDevice::kMaxPacketPayload * 2) : static_cast<uint32_t>(payload.size());

        std::vector<uint8_t> pkt(kHeaderSize + payload.size());
        std::memcpy(pkt.data(), &h, kHeaderSize);
        std::copy(payload.begin(), payload.end(), pkt.begin() + kHeaderSize);
        // 1-3 readable pieces, cut anywhere (also inside the header).
        std::vector<std::span<const uint8_t>> pieces;
        size_t cuts = in_.u8() % 3, at = 0;
        for (size_t k = 0; k < cuts && at < pkt.size(); ++k) {
            size_t n = 1 + in_.u8() % std::min<size_t>(pkt.size() - at, 64);
            pieces.push_back(std::span(pkt).subspan(at, n));
            at += n;
        }
        if (at < pkt.size()) pieces.push_back(std::span(pkt).subspan(at));
        std::vector<uint32_t> writable;
        if (in_.u8() == 0xff) writable.push_back(16);

        if (drv_->free_descriptors(kTx) < pieces.size() + writable.size()) kick(kTx);
        if (faulted_ || drv_->free_descriptors(kTx) < pieces.size() + writable.size()) return;
        if (!budget(pkt.size() + 16 * pieces.size())) return;
        last_tx_head_ = drv_->post(kTx, pieces, writable);
        if (krunlet::fuzz::tracing())
            std::fprintf(stderr, "vsock: guest -> op %u %u->%u len %u (payload %zu) credit %u/%u\n", h.op, h.src_port,
                         h.dst_port, h.len, payload.size(), h.fwd_cnt, h.buf_alloc);
        pending_.push_back(Pending{h, raw_credit});
        if (in_.u8() & 1) kick(kTx);
    }

    // The device has processed every posted tx packet: update the guest's model the same way.
    void apply_pending() {
        for (const Pending& p : pending_) {
            const VsockHeader& h = p.h;
            if (h.src_cid != kGuestCid || h.dst_cid != kHostCid || h.type != kTypeStream) continue;
            Conn& c = conns_[Key{h.src_port, h.dst_port}];
            if (h.op == kOpRequest) {
                if (c.state == Conn::Open) {
                    // A REQUEST on a live connection resets it: the RST follows.
                    c.credit_tracked = false;
                } else {
                    c.state = Conn::Requested;
                    c.fwd_known = h.fwd_cnt;
                    c.buf_alloc_known = h.buf_alloc;
                    // Trust the credit only from a clean start.
                    c.credit_tracked = !p.raw_credit && h.fwd_cnt == 0;
                }
                continue;
            }
            if (h.op == kOpRst) {
                if (c.state != Conn::None) c.state = Conn::Closed;
                continue;
            }
            if (h.op == kOpShutdown && (h.flags & kShutdownRcv)) c.guest_no_rcv = true;
            // Every header on a live connection refreshes the credit the device knows.
            if (c.state == Conn::Open || c.state == Conn::Requested) {
                if (p.raw_credit) c.credit_tracked = false;
                c.fwd_known = h.fwd_cnt;
                c.buf_alloc_known = h.buf_alloc;
            }
        }
        pending_.clear();
    }

    void post_rx() {
        size_t n = 1 + in_.u8() % 8;
        uint8_t sm = in_.u8();
        uint32_t size = sm < 0xe0 ? 4096 + kHeaderSize : sm < 0xf0 ? kHeaderSize + sm % 16 : sm % 48;
        for (size_t k = 0; k < n && drv_->free_descriptors(kRx) > 0 && budget(size); ++k)
            last_rx_head_ = drv_->post_in(kRx, size);
    }

    // 2-6 full-size RW packets on one connection before one kick: a guest
    // that ignores our credit (kBufAlloc) must be reset, one that stays in it
    // must get a CREDIT_UPDATE.
    void burst() {
        const uint32_t port = kGuestPorts[in_.u8() % kGuestPorts.size()];
        const size_t n = 2 + in_.u8() % 5;
        const uint32_t len = in_.u8() < 0x80 ? VsockDevice::kMaxPacketPayload : 60000;
        std::vector<uint8_t> pkt(kHeaderSize + len, 0x01);  // payload[0] % 8 == 1: the service echoes twice
        VsockHeader h{};
        h.src_cid = kGuestCid;
        h.dst_cid = kHostCid;
        h.src_port = port;
        h.dst_port = kServicePort;
        h.type = kTypeStream;
        h.op = kOpRw;
        h.len = len;
        h.buf_alloc = buf_alloc_;
        const Conn& c = conns_[Key{port, kServicePort}];
        h.fwd_cnt = c.state == Conn::Open && !c.request_since_open ? c.rx_total : 0;
        std::memcpy(pkt.data(), &h, kHeaderSize);
        for (size_t k = 0; k < n; ++k) {
            if (faulted_ || drv_->free_descriptors(kTx) < 1 || !budget(pkt.size())) break;
            last_tx_head_ = drv_->post(kTx, {std::span<const uint8_t>(pkt)}, {});
            pending_.push_back(Pending{h, !honest_});
        }
        kick(kTx);
    }

    // Break the last posted (not yet used) tx or rx chain so the next pop
    // fails: the device must report the fault from queue_notify() and keep
    // reporting it until reset. Only ever makes a chain invalid, so the
    // scripted driver's bookkeeping of valid chains stays right.
    void corrupt() {
        const bool rx = in_.coin();
        const uint16_t q = rx ? kRx : kTx;
        const std::optional<uint16_t> head = rx ? last_rx_head_ : last_tx_head_;
        if (!head || drv_->outstanding(q) == 0) return;
        const uint64_t d = drv_->desc_gpa(q) + 16ull * *head;
        if (in_.coin()) {
            drv_->ram().put<uint64_t>(d, ~uint64_t{0} - 0xfff);  // addr: far outside guest RAM
        } else {
            drv_->ram().put<uint16_t>(d + 12, 1);       // NEXT ...
            drv_->ram().put<uint16_t>(d + 14, 0xffff);  // ... to a descriptor that does not exist
        }
        if (rx) last_rx_head_.reset();
        else last_tx_head_.reset();
        kick(q);
    }

    void service_action() {
        if (world_.open.empty()) return;
        auto it = world_.open.begin();
        std::advance(it, in_.u8() % world_.open.size());
        VsockStream& s = *it->first;
        StreamInfo& info = it->second;
        uint8_t what = in_.u8() % 4;
        // Stream calls run "with the transport mutex held" in the VMM; here nothing else runs.
        if (what == 0 && big_sends_ < kMaxBigSends) {
            ++big_sends_;
            send_pattern(info, s, size_t{1} << 20);
        } else if (what == 1) {
            info.refused = true;
            s.close();
        } else {
            send_pattern(info, s, 1 + in_.u16() % 8192);
        }
        // A stream call delivers rx packets only if buffers are there; collect them.
        for (const Used& u : drv_->take_used(kRx)) check_rx(u);
    }

    // ---- device -> guest ----------------------------------------------------------------
    void check_rx(const Used& u) {
        FUZZ_CHECK(u.len >= kHeaderSize && u.data.size() == u.len, "rx packet shorter than a header");
        VsockHeader h{};
        std::memcpy(&h, u.data.data(), kHeaderSize);
        FUZZ_CHECK(h.len == u.len - kHeaderSize, "rx header len does not match the used length");
        FUZZ_CHECK(h.len <= VsockDevice::kMaxPacketPayload, "rx payload above the packet limit");
        FUZZ_CHECK(h.dst_cid == kGuestCid, "rx packet not addressed to the guest");
        FUZZ_CHECK(h.op == kOpResponse || h.op == kOpRst || h.op == kOpShutdown || h.op == kOpRw ||
                       h.op == kOpCreditUpdate,
                   "the device sent op " + std::to_string(h.op));
        FUZZ_CHECK((h.op == kOpRw) == (h.len > 0), "payload on a control packet, or an empty RW");
        const bool from_host = h.src_cid == kHostCid && h.type == kTypeStream;
        if (krunlet::fuzz::tracing())
            std::fprintf(stderr, "vsock: guest <- op %u %u->%u len %u fwd %u\n", h.op, h.src_port, h.dst_port, h.len,
                         h.fwd_cnt);
        if (h.op != kOpRst)
            FUZZ_CHECK(from_host && h.buf_alloc == VsockDevice::kBufAlloc, "bad source/type/buf_alloc on rx packet");
        if (!from_host) return;  // an RST echoing a malformed packet: nothing to track

        Conn& c = conns_[Key{h.dst_port, h.src_port}];
        switch (h.op) {
            case kOpResponse:
                FUZZ_CHECK(c.state != Conn::None, "RESPONSE to a connection the guest never requested");
                c.state = Conn::Open;
                c.host_shut = c.guest_no_rcv = c.request_since_open = false;
                c.rx_total = 0;
                c.serial = 0;
                break;
            case kOpRw: {
                FUZZ_CHECK(c.state == Conn::Open, "data on a connection that is not open");
                FUZZ_CHECK(!c.host_shut, "data after the host's SHUTDOWN");
                FUZZ_CHECK(!c.guest_no_rcv, "data after the guest's SHUTDOWN(RCV)");
                const uint8_t* p = u.data.data() + kHeaderSize;
                for (uint32_t k = 0; k < h.len && c.rx_total + k < 8; ++k) c.serial |= uint64_t{p[k]} << (8 * (c.rx_total + k));
                size_t bad = stream_mismatch(c.serial, c.rx_total, p, h.len);
                FUZZ_CHECK(bad == h.len, "stream data corrupted, reordered or duplicated at byte " +
                                             std::to_string(c.rx_total + bad));
                c.rx_total += h.len;
                if (c.rx_total >= 8) world_.delivered[c.serial] = c.rx_total;
                if (c.credit_tracked && c.fwd_known <= c.rx_total)
                    FUZZ_CHECK(c.rx_total - c.fwd_known <= c.buf_alloc_known,
                               "the device sent more than the guest's credit (" + std::to_string(c.rx_total - c.fwd_known) +
                                   " > " + std::to_string(c.buf_alloc_known) + ")");
                break;
            }
            case kOpShutdown:
                FUZZ_CHECK(c.state == Conn::Open, "SHUTDOWN on a connection that is not open");
                c.host_shut = true;
                break;
            case kOpCreditUpdate:
                FUZZ_CHECK(c.state == Conn::Open, "CREDIT_UPDATE on a connection that is not open");
                break;
            case kOpRst:
                if (c.state != Conn::None) c.state = Conn::Closed;
                break;
        }
    }

    struct Pending {
        VsockHeader h;
        bool raw_credit;
    };

    Input& in_;
    World world_;
    std::unique_ptr<VsockDevice> dev_;
    std::shared_ptr<Service> svc_;
    std::unique_ptr<Driver> drv_;
    bool honest_ = true;
    uint32_t buf_alloc_ = 0;
    bool faulted_ = false;
    size_t posted_bytes_ = 0;
    size_t big_sends_ = 0;
    std::optional<uint16_t> last_tx_head_;  // the newest chain posted on tx / rx
    std::optional<uint16_t> last_rx_head_;
    std::map<Key, Conn> conns_;
    std::vector<Pending> pending_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    Harness h(in);
    h.run();
    return 0;
}
