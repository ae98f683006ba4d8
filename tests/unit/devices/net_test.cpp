// virtio-net at the virtqueue level: a scripted driver (harness.h) on one
// side, a fake backend that records and injects frames on the other.
#include <doctest/doctest.h>

#include "net/virtio_net_abi.h"

#include <algorithm>
#include <numeric>

#include "../net/frames.h"
#include "devices/net.h"
#include "harness.h"

using namespace krunlet;
using namespace krunlet::devices;
using namespace krunlet::devices::test;
using krunlet::net::test::Bytes;

namespace {

constexpr uint16_t kRx = NetDevice::kRxQueue;
constexpr uint16_t kTx = NetDevice::kTxQueue;
constexpr uint64_t kMrg = 1ull << VIRTIO_NET_F_MRG_RXBUF;
constexpr uint64_t kCsum = 1ull << VIRTIO_NET_F_CSUM;
constexpr uint64_t kAllFeatures = virtio::kFeatureVersion1 | kMrg | kCsum;
constexpr size_t kHdr = 12;

class FakeBackend final : public net::NetBackend {
public:
    void set_sink(net::FrameSink* s) override { sink = s; }
    Result<void> start() override {
        ++starts;
        return {};
    }
    Result<void> send_to_host(std::span<const uint8_t> frame) override {
        if (fail_sends) return make_error(EIO, "fake backend refuses");
        sent.emplace_back(frame.begin(), frame.end());
        // Answer at once, from inside the device's transmit path.
        if (echo && sink != nullptr) sink->receive(frame);
        return {};
    }
    void sink_ready() override { ++ready_calls; }

    net::FrameSink* sink = nullptr;
    std::vector<Bytes> sent;
    int starts = 0;
    int ready_calls = 0;
    bool echo = false;
    bool fail_sends = false;
};

Bytes frame_of(size_t len, uint8_t seed = 1) {
    Bytes f(len);
    for (size_t i = 0; i < len; ++i) f[i] = static_cast<uint8_t>(seed + i * 13 + i / 256);
    return f;
}
Bytes header(uint8_t flags = 0, uint8_t gso = 0, uint16_t csum_start = 0, uint16_t csum_offset = 0) {
    Bytes h(kHdr, 0);
    h[0] = flags;
    h[1] = gso;
    h[6] = static_cast<uint8_t>(csum_start);
    h[7] = static_cast<uint8_t>(csum_start >> 8);
    h[8] = static_cast<uint8_t>(csum_offset);
    h[9] = static_cast<uint8_t>(csum_offset >> 8);
    return h;
}
uint16_t num_buffers(const Used& u) { return static_cast<uint16_t>(u.data[10] | u.data[11] << 8); }

struct Rig {
    FakeBackend* backend = nullptr;  // owned by the device
    std::unique_ptr<NetDevice> dev;
    std::unique_ptr<Driver> drv;

    explicit Rig(NetDevice::Options opts = {}) {
        auto b = std::make_unique<FakeBackend>();
        backend = b.get();
        auto d = NetDevice::create(std::move(b), opts);
        REQUIRE(d.ok());
        dev = std::move(d).value();
        drv = std::make_unique<Driver>(*dev);
    }
    net::FrameSink& sink() { return *backend->sink; }
    void inject(const Bytes& f) { sink().receive(f); }
};

}  // namespace

TEST_CASE("net: identity, features and config space") {
    Rig rig;
    NetDevice& dev = *rig.dev;
    CHECK(dev.device_type() == 1u);
    CHECK(dev.queue_max_sizes().size() == 2);
    const uint64_t f = dev.device_features();
    for (unsigned b : {VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_CSUM})
        CHECK(((f >> b) & 1) == 1);
    // Nothing the device cannot back: no control queue, no offloads to the guest, no TSO.
    for (unsigned b : {VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4,
                       VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_MQ, VIRTIO_NET_F_MTU})
        CHECK(((f >> b) & 1) == 0);
    CHECK((f & virtio::kFeatureEventIdx) != 0);

    uint8_t cfg[8];
    dev.read_config(0, cfg);
    CHECK(std::equal(cfg, cfg + 6, NetDevice::kDefaultMac.begin()));
    CHECK(cfg[6] == VIRTIO_NET_S_LINK_UP);
    CHECK(cfg[7] == 0);
    uint8_t status[2];
    dev.read_config(6, status);
    CHECK(status[0] == 1);
    // Past the defined fields, and at absurd offsets: zeros, no overflow.
    uint8_t tail[4] = {0xff, 0xff, 0xff, 0xff};
    dev.read_config(7, tail);
    CHECK(tail[0] == 0);
    CHECK(tail[3] == 0);
    dev.read_config(0xfffffffe, tail);
    CHECK(std::all_of(tail, tail + 4, [](uint8_t b) { return b == 0; }));

    NetDevice::Options o;
    o.mac = {0x02, 0, 0, 0, 0, 0x42};
    o.mergeable_rx = false;
    o.tx_checksum = false;
    Rig plain(o);
    CHECK(((plain.dev->device_features() >> VIRTIO_NET_F_MRG_RXBUF) & 1) == 0);
    CHECK(((plain.dev->device_features() >> VIRTIO_NET_F_CSUM) & 1) == 0);
    plain.dev->read_config(0, cfg);
    CHECK(cfg[5] == 0x42);
}

TEST_CASE("net: create refuses what cannot work") {
    CHECK_FALSE(NetDevice::create(nullptr, {}).ok());
    NetDevice::Options o;
    o.mac = {0x01, 0, 0, 0, 0, 1};
    auto r = NetDevice::create(std::make_unique<FakeBackend>(), o);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("multicast") != std::string::npos);
    o.mac = {};
    CHECK_FALSE(NetDevice::create(std::make_unique<FakeBackend>(), o).ok());
}

TEST_CASE("net: the backend starts once, at the first activation") {
    Rig rig;
    CHECK(rig.backend->starts == 0);
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    CHECK(rig.backend->starts == 1);
    rig.drv->reset();
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    CHECK(rig.backend->starts == 1);
}

TEST_CASE("net: transmitted frames reach the backend without the header") {
    Rig rig;
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    const Bytes a = frame_of(60, 1), b = frame_of(1514, 2), h = header();
    rig.drv->post(kTx, {h, a}, {});  // header and frame in separate descriptors
    Bytes joined = h;
    joined.insert(joined.end(), b.begin(), b.end());
    rig.drv->post(kTx, {joined}, {});  // both in one
    // A frame scattered over many small descriptors.
    const Bytes c = frame_of(300, 3);
    std::vector<Bytes> parts{h};
    for (size_t i = 0; i < c.size(); i += 7) parts.emplace_back(c.begin() + i, c.begin() + std::min(i + 7, c.size()));
    rig.drv->post(kTx, std::vector<std::span<const uint8_t>>(parts.begin(), parts.end()), {});
    REQUIRE(rig.drv->kick(kTx).ok());

    REQUIRE(rig.backend->sent.size() == 3);
    CHECK(rig.backend->sent[0] == a);
    CHECK(rig.backend->sent[1] == b);
    CHECK(rig.backend->sent[2] == c);
    auto used = rig.drv->take_used(kTx);
    REQUIRE(used.size() == 3);
    for (auto& u : used) CHECK(u.len == 0);
    CHECK(rig.drv->irq.used == 1);
    CHECK(rig.dev->stats().tx_frames == 3);
    CHECK(rig.dev->stats().tx_bytes == 60 + 1514 + 300);
}

TEST_CASE("net: malformed and oversized transmit chains are dropped and returned") {
    Rig rig;
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    const Bytes h = header();
    rig.drv->post(kTx, {Bytes(5)}, {});                // shorter than the header
    rig.drv->post(kTx, {h, frame_of(13)}, {});         // runt: no full Ethernet header
    rig.drv->post(kTx, {header(0, VIRTIO_NET_HDR_GSO_TCPV4), frame_of(100)}, {});  // GSO never offered
    rig.drv->post(kTx, {}, {64});                      // nothing readable at all
    Bytes big = frame_of(net::kMaxFrameSize + 1);
    rig.drv->post(kTx, {h, big}, {});                  // one byte over the limit
    Bytes max = frame_of(net::kMaxFrameSize);
    rig.drv->post(kTx, {h, max}, {});                  // exactly the limit
    REQUIRE(rig.drv->kick(kTx).ok());
    CHECK(rig.drv->take_used(kTx).size() == 6);
    CHECK(rig.dev->stats().tx_malformed == 4);
    CHECK(rig.dev->stats().tx_oversize == 1);
    REQUIRE(rig.backend->sent.size() == 1);
    CHECK(rig.backend->sent[0] == max);

    rig.backend->fail_sends = true;
    rig.drv->post(kTx, {h, frame_of(64)}, {});
    REQUIRE(rig.drv->kick(kTx).ok());
    CHECK(rig.drv->take_used(kTx).size() == 1);
    CHECK(rig.dev->stats().tx_backend_errors == 1);
}

TEST_CASE("net: NEEDS_CSUM frames leave with the checksum completed") {
    using namespace krunlet::net::test;
    Rig rig;
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    const Bytes payload = bytes("checksum me, odd length!");
    const Bytes full = ethernet(kBroadcast, kGuestMac, kEthIpv4,
                                ipv4(kGuestIp, kHostIp, kProtoUdp, udp(kGuestIp, kHostIp, 1234, 53, payload)));
    const Bytes partial = ethernet(kBroadcast, kGuestMac, kEthIpv4,
                                   ipv4(kGuestIp, kHostIp, kProtoUdp, udp(kGuestIp, kHostIp, 1234, 53, payload, true)));
    REQUIRE(full != partial);
    // csum_start: the UDP header (14 + 20); csum_offset: its checksum field.
    rig.drv->post(kTx, {header(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 34, 6), partial}, {});
    // Offsets pointing past the frame are refused, not followed.
    rig.drv->post(kTx, {header(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 34, 0xfff0), partial}, {});
    rig.drv->post(kTx, {header(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0xffff, 0), partial}, {});
    rig.drv->post(kTx, {header(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, static_cast<uint16_t>(partial.size() - 1), 0), partial},
                  {});
    REQUIRE(rig.drv->kick(kTx).ok());
    REQUIRE(rig.backend->sent.size() == 1);
    CHECK(rig.backend->sent[0] == full);
    auto ip = parse_ipv4(rig.backend->sent[0]);
    REQUIRE(ip.has_value());
    CHECK(l4_checksum_ok(*ip));
    CHECK(rig.dev->stats().tx_malformed == 3);
}

TEST_CASE("net: a received frame lands after a zeroed header") {
    Rig rig;
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    rig.drv->post_in(kRx, 2048);
    CHECK(rig.sink().can_receive());
    const Bytes f = frame_of(98);
    rig.inject(f);
    auto used = rig.drv->take_used(kRx);
    REQUIRE(used.size() == 1);
    CHECK(used[0].len == kHdr + f.size());
    CHECK(std::all_of(used[0].data.begin(), used[0].data.begin() + 10, [](uint8_t b) { return b == 0; }));
    CHECK(num_buffers(used[0]) == 1);
    CHECK(Bytes(used[0].data.begin() + kHdr, used[0].data.end()) == f);
    CHECK(rig.drv->irq.used == 1);
    CHECK(rig.dev->stats().rx_frames == 1);
}

TEST_CASE("net: with MRG_RXBUF a large frame spans several buffers") {
    Rig rig;
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    for (int i = 0; i < 4; ++i) rig.drv->post_in(kRx, 1000);
    const Bytes f = frame_of(2500);
    rig.inject(f);
    auto used = rig.drv->take_used(kRx);
    REQUIRE(used.size() == 3);
    CHECK(used[0].len == 1000);
    CHECK(used[1].len == 1000);
    CHECK(used[2].len == kHdr + 2500 - 2000);
    CHECK(num_buffers(used[0]) == 3);
    Bytes got;
    for (auto& u : used) got.insert(got.end(), u.data.begin(), u.data.end());
    CHECK(Bytes(got.begin() + kHdr, got.end()) == f);
    // The fourth buffer is still there for the next frame.
    rig.inject(frame_of(40));
    used = rig.drv->take_used(kRx);
    REQUIRE(used.size() == 1);
    CHECK(num_buffers(used[0]) == 1);

    // Not enough buffers yet: the frame waits, holding what was posted, and
    // goes out whole when the driver adds more.
    rig.drv->post_in(kRx, 1000);
    rig.inject(frame_of(1500, 9));
    CHECK(rig.drv->take_used(kRx).empty());
    CHECK(rig.dev->rx_backlog() == 1);
    rig.drv->post_in(kRx, 1000);
    REQUIRE(rig.drv->kick(kRx).ok());
    used = rig.drv->take_used(kRx);
    REQUIRE(used.size() == 2);
    CHECK(num_buffers(used[0]) == 2);
    CHECK(used[0].len + used[1].len == kHdr + 1500);
}

TEST_CASE("net: without MRG_RXBUF one buffer per frame; a frame too big for it is dropped") {
    Rig rig;
    REQUIRE(rig.drv->activate(virtio::kFeatureVersion1).ok());
    rig.drv->post_in(kRx, 1526);
    rig.inject(frame_of(1600));  // does not fit: dropped, the buffer kept
    CHECK(rig.dev->stats().rx_oversize == 1);
    CHECK(rig.drv->take_used(kRx).empty());
    const Bytes f = frame_of(1514);
    rig.inject(f);
    auto used = rig.drv->take_used(kRx);
    REQUIRE(used.size() == 1);
    CHECK(used[0].len == kHdr + 1514);
    CHECK(num_buffers(used[0]) == 1);  // §5.1.6.4: 1 when MRG_RXBUF is not negotiated
    CHECK(Bytes(used[0].data.begin() + kHdr, used[0].data.end()) == f);
}

TEST_CASE("net: frames wait for buffers in a bounded backlog") {
    Rig rig;
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    // Frames before the guest posts any receive buffer wait, in order.
    for (uint8_t i = 0; i < 5; ++i) rig.inject(frame_of(64, i));
    CHECK(rig.dev->rx_backlog() == 5);
    for (int i = 0; i < 5; ++i) rig.drv->post_in(kRx, 2048);
    REQUIRE(rig.drv->kick(kRx).ok());
    auto used = rig.drv->take_used(kRx);
    REQUIRE(used.size() == 5);
    for (uint8_t i = 0; i < 5; ++i) CHECK(Bytes(used[i].data.begin() + kHdr, used[i].data.end()) == frame_of(64, i));
    CHECK(rig.drv->irq.used == 1);

    // A guest that never reads: the backlog stops at its cap and counts drops.
    for (size_t i = 0; i < NetDevice::kRxBacklogFrames + 10; ++i) rig.inject(frame_of(64));
    CHECK(rig.dev->rx_backlog() == NetDevice::kRxBacklogFrames);
    CHECK(rig.dev->stats().rx_backlog_drops == 10);
    CHECK_FALSE(rig.sink().can_receive());
    // The byte cap holds too: a few maximum-size frames fill it.
    rig.drv->reset();
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    CHECK(rig.dev->rx_backlog() == 0);  // reset dropped the old driver's frames
    const size_t fit = NetDevice::kRxBacklogBytes / net::kMaxFrameSize;
    for (size_t i = 0; i < fit + 3; ++i) rig.inject(frame_of(net::kMaxFrameSize));
    CHECK(rig.dev->rx_backlog() == fit);

    // Once the guest drains it, the backend hears that it may send again.
    const int ready_before = rig.backend->ready_calls;
    for (size_t i = 0; i < 64; ++i) rig.drv->post_in(kRx, 4096);
    REQUIRE(rig.drv->kick(kRx).ok());
    CHECK(rig.dev->rx_backlog() < fit);
    CHECK(rig.backend->ready_calls == ready_before + 1);
}

TEST_CASE("net: receive buffers smaller than the header are handed back empty") {
    Rig rig;
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    rig.drv->post_in(kRx, 8);
    rig.drv->post(kRx, {Bytes(4)}, {});  // device-readable only
    rig.drv->post_in(kRx, 512);
    const Bytes f = frame_of(100);
    rig.inject(f);
    auto used = rig.drv->take_used(kRx);
    REQUIRE(used.size() == 3);
    CHECK(used[0].len == 0);
    CHECK(used[1].len == 0);
    CHECK(used[2].len == kHdr + 100);
    CHECK(rig.dev->stats().rx_bad_buffers == 2);
}

TEST_CASE("net: a frame larger than the whole ring's buffers is dropped, not stuck") {
    Rig rig;
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    const uint16_t ring = rig.drv->ring_config(kRx).size;
    for (uint16_t i = 0; i < ring; ++i) rig.drv->post_in(kRx, 64);
    rig.inject(frame_of(ring * 64));  // header + frame exceed every buffer together
    CHECK(rig.dev->stats().rx_oversize == 1);
    CHECK(rig.dev->rx_backlog() == 0);
    rig.inject(frame_of(40));  // the held buffers serve the next frame
    auto used = rig.drv->take_used(kRx);
    REQUIRE(used.size() == 1);
    CHECK(used[0].len == kHdr + 40);

    // Out of range both ways before anything is queued.
    rig.inject(frame_of(net::kMaxFrameSize + 1));
    rig.inject(frame_of(10));
    CHECK(rig.dev->stats().rx_oversize == 3);
}

TEST_CASE("net: the backend may answer from inside the transmit path") {
    Rig rig;
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    rig.backend->echo = true;
    rig.drv->post_in(kRx, 2048);
    rig.drv->post_in(kRx, 2048);
    rig.drv->post(kTx, {header(), frame_of(70, 4)}, {});
    rig.drv->post(kTx, {header(), frame_of(80, 5)}, {});
    REQUIRE(rig.drv->kick(kTx).ok());
    auto rx = rig.drv->take_used(kRx);
    REQUIRE(rx.size() == 2);
    CHECK(Bytes(rx[0].data.begin() + kHdr, rx[0].data.end()) == frame_of(70, 4));
    CHECK(Bytes(rx[1].data.begin() + kHdr, rx[1].data.end()) == frame_of(80, 5));
    CHECK(rig.drv->take_used(kTx).size() == 2);
}

TEST_CASE("net: frames while inactive are dropped; a broken ring means NEEDS_RESET") {
    Rig rig;
    rig.inject(frame_of(64));  // before DRIVER_OK
    CHECK(rig.dev->stats().rx_inactive_drops == 1);
    CHECK_FALSE(rig.sink().can_receive());
    CHECK(rig.dev->queue_notify(kTx).ok());  // a kick before activation is ignored

    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    CHECK(rig.backend->ready_calls == 1);  // told "no" before; now there is room
    uint16_t head = rig.drv->post_in(kRx, 2048);
    rig.drv->ram().put<uint64_t>(rig.drv->desc_gpa(kRx) + 16ull * head, 0xdead0000000ull);  // outside RAM
    rig.inject(frame_of(64));  // the fault is found here, where nothing can be returned...
    auto r = rig.drv->kick(kTx);  // ...and reported by the next notify
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("virtio-net: receiveq") != std::string::npos);
    rig.inject(frame_of(64));  // harmless afterwards
    CHECK(rig.dev->stats().rx_inactive_drops == 2);

    // A broken transmit ring likewise.
    rig.drv->reset();
    REQUIRE(rig.drv->activate(kAllFeatures).ok());
    head = rig.drv->post(kTx, {header(), frame_of(64)}, {});
    rig.drv->ram().put<uint32_t>(rig.drv->desc_gpa(kTx) + 16ull * head + 8, 0xffffffffu);  // length past RAM
    r = rig.drv->kick(kTx);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("virtio-net: transmitq") != std::string::npos);
}
