// The devices behind the real virtio-mmio transport: the driver's register
// sequence (virtio 1.2 §4.2.3.1), config space at 0x100, kicks through
// MmioTransport::notify. Checks that device and transport agree on the
// Device interface, not the devices' logic (their own tests do that).
#include <doctest/doctest.h>

#include <cstring>

#include "devices/rng.h"
#include "devices/vsock.h"
#include "harness.h"
#include "virtio/mmio.h"

using namespace krunlet;
using namespace krunlet::devices;
using namespace krunlet::devices::test;

namespace {

struct CountingLine : virtio::IrqLine {
    explicit CountingLine(int& n) : n_(n) {}
    void trigger() override { ++n_; }
    int& n_;
};

struct Mmio {
    virtio::MmioTransport t;
    Mmio(std::unique_ptr<virtio::Device> dev, const GuestMemory& mem, int& irqs)
        : t(std::move(dev), mem, std::make_unique<CountingLine>(irqs)) {}

    void w32(uint64_t off, uint32_t v) {
        uint8_t b[4];
        std::memcpy(b, &v, 4);
        t.write(off, b);
    }
    uint32_t r32(uint64_t off) {
        uint8_t b[4] = {};
        t.read(off, b);
        uint32_t v;
        std::memcpy(&v, b, 4);
        return v;
    }
    // §4.2.3.1 driver initialisation; queue `skip` is left disabled.
    void bring_up(Driver& drv, size_t nqueues, int skip = -1) {
        drv.init_rings();
        w32(0x070, 0);
        w32(0x070, 1);      // ACKNOWLEDGE
        w32(0x070, 1 | 2);  // DRIVER
        w32(0x014, 1);
        REQUIRE((r32(0x010) & 1) == 1);  // VIRTIO_F_VERSION_1 offered
        w32(0x024, 1);
        w32(0x020, 1);
        w32(0x024, 0);
        w32(0x020, 0);
        w32(0x070, 1 | 2 | 8);  // FEATURES_OK
        REQUIRE((r32(0x070) & 8) == 8);
        for (size_t i = 0; i < nqueues; ++i) {
            if (static_cast<int>(i) == skip) continue;
            auto c = drv.ring_config(static_cast<uint16_t>(i));
            w32(0x030, static_cast<uint32_t>(i));
            REQUIRE(r32(0x034) >= c.size);
            w32(0x038, c.size);
            w32(0x080, static_cast<uint32_t>(c.desc));
            w32(0x084, static_cast<uint32_t>(c.desc >> 32));
            w32(0x090, static_cast<uint32_t>(c.avail));
            w32(0x094, static_cast<uint32_t>(c.avail >> 32));
            w32(0x0a0, static_cast<uint32_t>(c.used));
            w32(0x0a4, static_cast<uint32_t>(c.used >> 32));
            w32(0x044, 1);
        }
        w32(0x070, 1 | 2 | 8 | 4);  // DRIVER_OK
        REQUIRE(r32(0x070) == (1 | 2 | 8 | 4));
    }
};

}  // namespace

TEST_CASE("mmio: virtio-rng behind the transport") {
    auto dev = RngDevice::create();
    REQUIRE(dev.ok());
    Driver drv(**dev);
    int irqs = 0;
    Mmio m(std::move(*dev), drv.ram().mem(), irqs);
    CHECK(m.r32(0x000) == 0x74726976);  // "virt"
    CHECK(m.r32(0x004) == 2);
    CHECK(m.r32(0x008) == virtio::kDeviceRng);
    m.bring_up(drv, 1);
    drv.post_in(0, 128);
    m.t.notify(0);
    auto used = drv.take_used(0);
    REQUIRE(used.size() == 1);
    CHECK(used[0].len == 128);
    CHECK(irqs == 1);
    CHECK((m.r32(0x060) & 1) == 1);  // InterruptStatus: used buffer
}

TEST_CASE("mmio: virtio-vsock config and a connection; its event queue left disabled") {
    auto dev = VsockDevice::create(3);
    REQUIRE(dev.ok());
    struct Accept : VsockService {
        int connects = 0;
        void on_connect(VsockStream&) override { ++connects; }
        void on_data(VsockStream&, std::span<const uint8_t>) override {}
        void on_close(VsockStream&) override {}
    };
    auto svc = std::make_shared<Accept>();
    REQUIRE((*dev)->add_service(1024, svc).ok());
    Driver drv(**dev, 64);
    int irqs = 0;
    Mmio m(std::move(*dev), drv.ram().mem(), irqs);
    CHECK(m.r32(0x008) == virtio::kDeviceVsock);
    CHECK(m.r32(0x100) == 3);  // guest_cid, low half
    CHECK(m.r32(0x104) == 0);
    m.bring_up(drv, 3, /*skip=*/VsockDevice::kEventQueue);

    drv.post_in(VsockDevice::kRxQueue, 4096 + vsock::kHeaderSize);
    m.t.notify(VsockDevice::kRxQueue);
    VsockHeader h{};
    h.src_cid = 3;
    h.dst_cid = vsock::kHostCid;
    h.src_port = 4000;
    h.dst_port = 1024;
    h.type = vsock::kTypeStream;
    h.op = vsock::kOpRequest;
    h.buf_alloc = 65536;
    drv.post_out(VsockDevice::kTxQueue, std::span(reinterpret_cast<const uint8_t*>(&h), vsock::kHeaderSize));
    m.t.notify(VsockDevice::kTxQueue);
    CHECK(svc->connects == 1);
    auto used = drv.take_used(VsockDevice::kRxQueue);
    REQUIRE(used.size() == 1);
    VsockHeader r{};
    std::memcpy(&r, used[0].data.data(), vsock::kHeaderSize);
    CHECK(r.op == vsock::kOpResponse);
    CHECK((m.r32(0x070) & virtio::kStatusNeedsReset) == 0);
}
