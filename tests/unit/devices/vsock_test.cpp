// virtio-vsock at packet level: a scripted guest sends headers on the tx
// queue and reads the device's packets from the rx queue.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "devices/vsock.h"
#include "harness.h"
#include "vsock_guest.h"

using namespace krunlet;
using namespace krunlet::devices;
using namespace krunlet::devices::test;
using namespace krunlet::devices::vsock;

namespace {

// The service end: records everything, optionally echoes.
struct Svc : VsockService {
    std::vector<VsockStream*> streams;
    std::string data;
    int connects = 0;
    int closes = 0;
    bool echo = false;
    std::string greeting;  // sent from on_connect

    void on_connect(VsockStream& s) override {
        ++connects;
        streams.push_back(&s);
        if (!greeting.empty()) s.send(bytes_of(greeting));
    }
    void on_data(VsockStream& s, std::span<const uint8_t> b) override {
        data += str_of(b);
        if (echo) s.send(b);
    }
    void on_close(VsockStream& s) override {
        ++closes;
        streams.erase(std::remove(streams.begin(), streams.end(), &s), streams.end());
    }
};

// The guest with one recording service on kPort.
struct Guest : VsockGuest {
    std::shared_ptr<Svc> svc = std::make_shared<Svc>();
    Guest() {
        REQUIRE(dev->add_service(kPort, svc).ok());
        start();
    }
};

}  // namespace

TEST_CASE("vsock: create and config space") {
    for (uint64_t bad : {0ull, 1ull, 2ull, 0xffffffffull, 1ull << 32}) {
        auto r = VsockDevice::create(bad);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().message.find("3..4294967294") != std::string::npos);
    }
    auto dev = VsockDevice::create(0x12345678);
    REQUIRE(dev.ok());
    CHECK((*dev)->device_type() == 19u);
    uint8_t cfg[8];
    (*dev)->read_config(0, cfg);
    uint64_t cid;
    std::memcpy(&cid, cfg, 8);
    CHECK(cid == 0x12345678);
    uint8_t hi[4];
    (*dev)->read_config(4, hi);
    CHECK(hi[0] == 0);
    auto svc = std::make_shared<Svc>();
    CHECK((*dev)->add_service(5, svc).ok());
    CHECK((*dev)->add_service(5, svc).error().code == EEXIST);
    CHECK_FALSE((*dev)->add_service(6, nullptr).ok());
}

TEST_CASE("vsock: connect gets a RESPONSE, then data flows both ways") {
    Guest g;
    g.svc->greeting = "hello guest";
    g.post_rx(4);
    g.send(g.hdr(kOpRequest, 5000));
    auto p = g.recv();
    REQUIRE(p.size() == 2);
    // The RESPONSE comes before anything on_connect sent.
    CHECK(p[0].h.op == kOpResponse);
    CHECK(p[0].h.src_cid == kHostCid);
    CHECK(p[0].h.dst_cid == kGuestCid);
    CHECK(p[0].h.src_port == kPort);
    CHECK(p[0].h.dst_port == 5000);
    CHECK(p[0].h.type == kTypeStream);
    CHECK(p[0].h.buf_alloc == VsockDevice::kBufAlloc);
    CHECK(p[1].h.op == kOpRw);
    CHECK(p[1].data == "hello guest");
    CHECK(g.svc->connects == 1);
    CHECK(g.dev->connection_count() == 1);
    CHECK(g.drv->irq.used > 0);

    g.send(g.hdr(kOpRw, 5000), "ping");
    CHECK(g.svc->data == "ping");
    REQUIRE(g.svc->streams.size() == 1);
    // A send from outside any device call goes out at once.
    CHECK(g.svc->streams[0]->send(bytes_of("pong")));
    p = g.recv();
    REQUIRE(p.size() == 1);
    CHECK(p[0].data == "pong");
    CHECK(p[0].h.fwd_cnt == 4);  // every header carries what we consumed
}

TEST_CASE("vsock: the host never sends beyond the guest's credit") {
    Guest g;
    g.buf_alloc = 1000;
    g.connect(5000);
    std::string big(3000, 'z');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    REQUIRE(g.svc->streams[0]->send(bytes_of(big)));
    g.post_rx(8);
    std::string got;
    for (auto& p : g.recv()) got += p.data;
    CHECK(got.size() == 1000);  // exactly the window, no more

    // The guest reads it and says so: the next 1000 come.
    g.fwd_cnt = 1000;
    g.send(g.hdr(kOpCreditUpdate, 5000));
    for (auto& p : g.recv()) got += p.data;
    CHECK(got.size() == 2000);
    // A larger window releases the rest.
    g.buf_alloc = 10000;
    g.send(g.hdr(kOpCreditUpdate, 5000));
    for (auto& p : g.recv()) got += p.data;
    CHECK(got == big);
}

TEST_CASE("vsock: payload is split to fit rx buffers") {
    Guest g;
    g.connect(5000);
    std::string big(10000, 'q');
    REQUIRE(g.svc->streams[0]->send(bytes_of(big)));
    g.post_rx(4, kHeaderSize + 1024);
    auto p = g.recv();
    REQUIRE(p.size() == 4);
    for (auto& x : p) CHECK(x.data.size() == 1024);
    g.post_rx(16);
    p = g.recv();
    REQUIRE(p.size() == 2);
    CHECK(p[0].data.size() == 4096);
    CHECK(p[1].data.size() == 10000 - 4096 - 4096);
}

TEST_CASE("vsock: an rx buffer with room for a header only does not hang the device") {
    // Found by fuzz_vsock (tests/fuzz/regressions/fuzz_vsock): the pump used
    // to retry the same connection with the same buffer forever.
    Guest g;
    g.connect(5000);
    REQUIRE(g.svc->streams[0]->send(bytes_of(std::string(100, 'd'))));
    g.post_rx(1, kHeaderSize);  // returns only if the pump does not spin
    auto first = g.recv();
    REQUIRE(first.size() == 1);  // spent on a header-only credit update
    CHECK(first[0].h.op == vsock::kOpCreditUpdate);
    CHECK(first[0].data.empty());
    // The next, real buffer gets the data.
    g.post_rx(1);
    auto p = g.recv();
    REQUIRE(p.size() == 1);
    CHECK(p[0].data.size() == 100);
}

TEST_CASE("vsock: a well-behaved bulk sender streams megabytes; a flood past buf_alloc is reset") {
    SUBCASE("well-behaved: respects the credit it hears about") {
        Guest g;
        g.connect(5000);
        g.post_rx(64);
        uint32_t peer_buf_alloc = VsockDevice::kBufAlloc, peer_fwd = 0, sent = 0;
        const uint32_t total = 4 << 20;
        while (sent < total) {
            for (auto& p : g.recv()) {
                CHECK(p.h.op == kOpCreditUpdate);
                peer_buf_alloc = p.h.buf_alloc;
                peer_fwd = p.h.fwd_cnt;
                g.post_rx(1);
            }
            uint32_t credit = peer_buf_alloc - (sent - peer_fwd);
            REQUIRE(credit > 0);  // the device's updates keep the window open
            uint32_t n = std::min<uint32_t>({credit, 65536, total - sent});
            g.send(g.hdr(kOpRw, 5000), std::string(n, 'b'));
            sent += n;
        }
        CHECK(g.svc->data.size() == total);
        CHECK(g.dev->connection_count() == 1);
        CHECK(g.svc->closes == 0);
    }
    SUBCASE("flood: ignores the window") {
        Guest g;
        g.connect(5000);
        // No rx buffers: the guest never hears of consumed bytes, so it may
        // send exactly kBufAlloc and no more.
        std::string chunk(65536, 'f');
        for (uint32_t sent = 0; sent < VsockDevice::kBufAlloc; sent += 65536) g.send(g.hdr(kOpRw, 5000), chunk);
        CHECK(g.dev->connection_count() == 1);
        CHECK(g.svc->closes == 0);
        g.send(g.hdr(kOpRw, 5000), "one byte too many");
        CHECK(g.svc->closes == 1);
        CHECK(g.svc->data.size() == VsockDevice::kBufAlloc);
        g.post_rx(4);
        auto p = g.recv();
        REQUIRE(p.size() == 1);
        CHECK(p[0].h.op == kOpRst);
        CHECK(g.dev->connection_count() == 0);
        // Later packets on it are answered with RST, not delivered.
        g.send(g.hdr(kOpRw, 5000), "more");
        p = g.recv();
        REQUIRE(p.size() == 1);
        CHECK(p[0].h.op == kOpRst);
        CHECK(g.svc->data.size() == VsockDevice::kBufAlloc);
    }
}

TEST_CASE("vsock: RST for unknown ports, unknown connections and bad packets") {
    Guest g;
    g.post_rx(16);
    g.send(g.hdr(kOpRequest, 5000, 9999));  // nobody listens on 9999
    auto p = g.recv();
    REQUIRE(p.size() == 1);
    CHECK(p[0].h.op == kOpRst);
    CHECK(p[0].h.src_port == 9999);
    CHECK(p[0].h.dst_port == 5000);
    CHECK(p[0].h.dst_cid == kGuestCid);
    CHECK(g.svc->connects == 0);

    g.send(g.hdr(kOpRw, 5001), "no connection");
    g.send(g.hdr(kOpShutdown, 5002));
    g.send(g.hdr(kOpRst, 5003));  // an RST is never answered
    p = g.recv();
    REQUIRE(p.size() == 2);
    CHECK(p[0].h.op == kOpRst);
    CHECK(p[1].h.op == kOpRst);

    auto h = g.hdr(kOpRequest, 5004);
    h.dst_cid = 7;  // another VM: not reachable
    g.send(h);
    h = g.hdr(kOpRequest, 5005);
    h.type = 2;  // SEQPACKET was not negotiated
    g.send(h);
    h = g.hdr(kOpRequest, 5006);
    h.src_cid = 42;  // spoofed: dropped silently
    g.send(h);
    p = g.recv();
    REQUIRE(p.size() == 2);
    CHECK(p[0].h.dst_port == 5004);
    CHECK(p[1].h.dst_port == 5005);
    CHECK(p[1].h.type == 2);
    CHECK(g.svc->connects == 0);

    // On a live connection: a length that overruns the packet, or an op
    // that makes no sense, resets it.
    g.connect(6000);
    h = g.hdr(kOpRw, 6000);
    h.len = 100;
    g.send(h, "short", false);
    p = g.recv();
    REQUIRE(p.size() == 1);
    CHECK(p[0].h.op == kOpRst);
    CHECK(g.svc->closes == 1);
    CHECK(g.svc->data.empty());

    g.connect(6001);
    g.send(g.hdr(kOpResponse, 6001));
    p = g.recv();
    g.connect(6002);
    g.send(g.hdr(kOpRequest, 6002));  // duplicate REQUEST
    auto p2 = g.recv();
    g.connect(6003);
    g.send(g.hdr(42, 6003));
    auto p3 = g.recv();
    p.insert(p.end(), p2.begin(), p2.end());
    p.insert(p.end(), p3.begin(), p3.end());
    REQUIRE(p.size() == 3);
    for (auto& x : p) CHECK(x.h.op == kOpRst);
    CHECK(g.svc->closes == 4);
    CHECK(g.dev->connection_count() == 0);
}

TEST_CASE("vsock: orphan RSTs are bounded when the guest does not read") {
    Guest g;
    for (size_t i = 0; i < VsockDevice::kMaxOrphanRsts + 50; ++i) g.send(g.hdr(kOpRw, 7000 + uint32_t(i)), "x");
    g.post_rx(200);
    CHECK(g.recv().size() == 200);
    g.post_rx(200);
    CHECK(g.recv().size() == VsockDevice::kMaxOrphanRsts - 200);
}

TEST_CASE("vsock: the number of connections is capped") {
    Guest g;
    for (uint32_t i = 0; i < VsockDevice::kMaxConnections; ++i) g.connect(10000 + i);
    CHECK(g.dev->connection_count() == VsockDevice::kMaxConnections);
    g.post_rx(1);
    g.send(g.hdr(kOpRequest, 20000));
    auto p = g.recv();
    REQUIRE(p.size() == 1);
    CHECK(p[0].h.op == kOpRst);
    CHECK(g.svc->connects == int(VsockDevice::kMaxConnections));
    // Closing one frees a slot.
    g.send(g.hdr(kOpRst, 10000));
    CHECK(g.svc->closes == 1);
    g.connect(20000);
    CHECK(g.dev->connection_count() == VsockDevice::kMaxConnections);
}

TEST_CASE("vsock: guest-initiated shutdown and reset") {
    Guest g;
    g.connect(5000);
    g.connect(5001);
    // shutdown(SHUT_WR) alone: a half close; the host may still send.
    g.send([&] { auto h = g.hdr(kOpShutdown, 5000); h.flags = kShutdownSend; return h; }());
    CHECK(g.svc->closes == 0);
    g.post_rx(4);
    REQUIRE(g.svc->streams.size() == 2);
    VsockStream* s0 = g.svc->streams[0]->guest_port() == 5000 ? g.svc->streams[0] : g.svc->streams[1];
    CHECK(s0->send(bytes_of("still here")));
    auto p = g.recv();
    REQUIRE(p.size() == 1);
    CHECK(p[0].data == "still here");
    // Data after "I will send no more" is a protocol error.
    g.send(g.hdr(kOpRw, 5000), "oops");
    p = g.recv();
    REQUIRE(p.size() == 1);
    CHECK(p[0].h.op == kOpRst);
    CHECK(g.svc->closes == 1);
    CHECK(g.svc->data.empty());

    // close(): SHUTDOWN with both flags; the host answers RST (Linux waits for it).
    g.send([&] { auto h = g.hdr(kOpShutdown, 5001); h.flags = kShutdownRcv | kShutdownSend; return h; }());
    p = g.recv();
    REQUIRE(p.size() == 1);
    CHECK(p[0].h.op == kOpRst);
    CHECK(p[0].h.dst_port == 5001);
    CHECK(g.svc->closes == 2);
    CHECK(g.dev->connection_count() == 0);

    // A plain RST from the guest is not answered.
    g.connect(5002);
    g.post_rx(2);
    g.send(g.hdr(kOpRst, 5002));
    CHECK(g.svc->closes == 3);
    CHECK(g.recv().empty());
}

TEST_CASE("vsock: host close sends queued data, then SHUTDOWN; the guest's RST ends it") {
    Guest g;
    g.connect(5000);
    VsockStream* s = g.svc->streams[0];
    CHECK(s->send(bytes_of("last words")));
    s->close();
    CHECK_FALSE(s->send(bytes_of("too late")));
    g.post_rx(4);
    auto p = g.recv();
    REQUIRE(p.size() == 2);
    CHECK(p[0].h.op == kOpRw);
    CHECK(p[0].data == "last words");
    CHECK(p[1].h.op == kOpShutdown);
    CHECK(p[1].h.flags == (kShutdownRcv | kShutdownSend));
    CHECK(g.svc->closes == 0);  // the stream lives until the guest agrees
    g.send(g.hdr(kOpRst, 5000));
    CHECK(g.svc->closes == 1);
    CHECK(g.dev->connection_count() == 0);
    CHECK(g.recv().empty());
}

TEST_CASE("vsock: host close waits for credit before SHUTDOWN; service close from on_data") {
    Guest g;
    g.buf_alloc = 4;
    g.connect(5000);
    VsockStream* s = g.svc->streams[0];
    CHECK(s->send(bytes_of("12345678")));
    s->close();
    g.post_rx(4);
    auto p = g.recv();
    REQUIRE(p.size() == 1);
    CHECK(p[0].data == "1234");
    g.fwd_cnt = 4;
    g.send(g.hdr(kOpCreditUpdate, 5000));
    p = g.recv();
    REQUIRE(p.size() == 2);
    CHECK(p[0].data == "5678");
    CHECK(p[1].h.op == kOpShutdown);

    // A service that closes from inside on_data.
    struct Closer : Svc {
        void on_data(VsockStream& s, std::span<const uint8_t> b) override {
            Svc::on_data(s, b);
            s.send(bytes_of("bye"));
            s.close();
        }
    };
    auto d = VsockDevice::create(kGuestCid);
    REQUIRE(d.ok());
    auto closer = std::make_shared<Closer>();
    REQUIRE((*d)->add_service(kPort, closer).ok());
    Guest g2;  // reuse the helpers with a different device
    g2.dev = std::move(*d);
    g2.svc = closer;
    g2.drv = std::make_unique<Driver>(*g2.dev, 256);
    REQUIRE(g2.drv->activate().ok());
    g2.connect(5000);
    g2.post_rx(4);
    g2.send(g2.hdr(kOpRw, 5000), "exit");
    p = g2.recv();
    REQUIRE(p.size() == 2);
    CHECK(p[0].data == "bye");
    CHECK(p[1].h.op == kOpShutdown);
}

TEST_CASE("vsock: CREDIT_REQUEST gets a CREDIT_UPDATE with the consumed count") {
    Guest g;
    g.connect(5000);
    g.send(g.hdr(kOpRw, 5000), "0123456789");
    g.post_rx(1);
    g.send(g.hdr(kOpCreditRequest, 5000));
    auto p = g.recv();
    REQUIRE(p.size() == 1);
    CHECK(p[0].h.op == kOpCreditUpdate);
    CHECK(p[0].h.fwd_cnt == 10);
    CHECK(p[0].h.buf_alloc == VsockDevice::kBufAlloc);
}

TEST_CASE("vsock: a guest that never reads cannot make the host buffer without bound") {
    Guest g;
    g.buf_alloc = 0;  // no window at all
    g.connect(5000);
    VsockStream* s = g.svc->streams[0];
    std::string mib(1 << 20, 'm');
    size_t accepted = 0;
    while (s->send(bytes_of(mib))) {
        accepted += mib.size();
        REQUIRE(accepted <= VsockDevice::kMaxHostBuffered);
    }
    CHECK(accepted == VsockDevice::kMaxHostBuffered);
    // The stream stays valid until on_close, which comes with the next
    // device call (never from inside send()).
    CHECK(g.svc->closes == 0);
    g.post_rx(2);
    auto p = g.recv();
    REQUIRE(p.size() == 1);
    CHECK(p[0].h.op == kOpRst);
    CHECK(g.svc->closes == 1);
}

TEST_CASE("vsock: device reset closes every stream; a new driver starts clean") {
    Guest g;
    g.svc->echo = true;
    g.connect(5000);
    g.connect(5001);
    g.drv->reset();
    CHECK(g.svc->closes == 2);
    CHECK(g.dev->connection_count() == 0);
    REQUIRE(g.drv->activate().ok());
    g.connect(5000);
    g.post_rx(1);
    g.send(g.hdr(kOpRw, 5000), "echo");
    auto p = g.recv();
    REQUIRE(p.size() == 1);
    CHECK(p[0].data == "echo");
}

TEST_CASE("vsock: destroying the device closes live streams") {
    auto svc = std::make_shared<Svc>();
    {
        Guest g;
        g.svc = svc;
        REQUIRE(g.dev->add_service(kPort + 1, svc).ok());
        g.post_rx(1);
        g.send(g.hdr(kOpRequest, 5000, kPort + 1));
        CHECK(svc->connects == 1);
    }
    CHECK(svc->closes == 1);
}

TEST_CASE("vsock: a broken rx ring is reported by the next kick") {
    Guest g;
    g.connect(5000);
    uint16_t head = g.drv->post_in(VsockDevice::kRxQueue, kRxBuf);
    g.drv->ram().put<uint64_t>(g.drv->desc_gpa(VsockDevice::kRxQueue) + 16ull * head, 0xdead0000000ull);
    // The fault is found while sending from outside a device call...
    CHECK(g.svc->streams[0]->send(bytes_of("x")));
    // ...and surfaces at the next queue_notify so the transport can reset us.
    auto r = g.dev->queue_notify(VsockDevice::kTxQueue);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("virtio-vsock: rx queue") != std::string::npos);
}

TEST_CASE("vsock: queues the driver left disabled are never touched") {
    auto dev = VsockDevice::create(kGuestCid);
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate(virtio::kFeatureVersion1, /*skip=*/VsockDevice::kTxQueue).ok());
    CHECK((*dev)->queue_notify(VsockDevice::kRxQueue).ok());
    CHECK((*dev)->queue_notify(VsockDevice::kEventQueue).ok());
}
