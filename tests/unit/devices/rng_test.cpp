#include <doctest/doctest.h>

#include <algorithm>

#include "devices/rng.h"
#include "harness.h"

using namespace krunlet;
using namespace krunlet::devices;
using krunlet::devices::test::Driver;

namespace {
bool all_zero(const std::vector<uint8_t>& v) {
    return std::all_of(v.begin(), v.end(), [](uint8_t b) { return b == 0; });
}
}  // namespace

TEST_CASE("rng: fills every writable buffer and interrupts") {
    auto dev = RngDevice::create();
    REQUIRE(dev.ok());
    CHECK((*dev)->device_type() == 4u);
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());

    drv.post_in(0, 64);
    drv.post_in(0, 4096);
    drv.post(0, {}, {16, 48});  // two writable descriptors in one chain
    REQUIRE(drv.kick(0).ok());
    auto used = drv.take_used(0);
    REQUIRE(used.size() == 3);
    CHECK(used[0].len == 64);
    CHECK(used[1].len == 4096);
    CHECK(used[2].len == 64);
    for (auto& u : used) CHECK_FALSE(all_zero(u.data));
    CHECK(used[0].data != std::vector<uint8_t>(used[2].data.begin(), used[2].data.end()));
    CHECK(drv.irq.used == 1);

    // A kick with nothing posted is harmless and raises no interrupt.
    REQUIRE(drv.kick(0).ok());
    CHECK(drv.irq.used == 1);
}

TEST_CASE("rng: a huge request gets a bounded fill") {
    auto dev = RngDevice::create();
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());
    drv.post(0, {}, {1u << 20, 1u << 20});
    REQUIRE(drv.kick(0).ok());
    auto used = drv.take_used(0);
    REQUIRE(used.size() == 1);
    CHECK(used[0].len == RngDevice::kMaxFillPerChain);
}

TEST_CASE("rng: a read-only buffer gets 0 bytes, a broken ring an error") {
    auto dev = RngDevice::create();
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());
    uint8_t junk[8] = {};
    drv.post_out(0, junk);
    REQUIRE(drv.kick(0).ok());
    auto used = drv.take_used(0);
    REQUIRE(used.size() == 1);
    CHECK(used[0].len == 0);

    // Point a descriptor outside guest RAM: the device reports a queue error
    // (the transport then sets NEEDS_RESET) instead of touching host memory.
    uint16_t head = drv.post_in(0, 32);
    drv.ram().put<uint64_t>(drv.desc_gpa(0) + 16ull * head, 0xdead0000000ull);
    auto r = drv.kick(0);
    CHECK_FALSE(r.ok());
    CHECK(r.error().message.find("virtio-rng") != std::string::npos);
}

TEST_CASE("rng: kicks before activation and after reset are ignored") {
    auto dev = RngDevice::create();
    REQUIRE(dev.ok());
    CHECK((*dev)->queue_notify(0).ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());
    drv.reset();
    CHECK((*dev)->queue_notify(0).ok());
}
