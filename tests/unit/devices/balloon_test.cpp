#include <doctest/doctest.h>
#include <linux/virtio_balloon.h>
#include <sys/mman.h>

#include <cstring>
#include <vector>

#include "devices/balloon.h"
#include "harness.h"

using namespace krunlet;
using namespace krunlet::devices;
using krunlet::devices::test::Driver;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kReporting = 1ull << VIRTIO_BALLOON_F_REPORTING;

// Pages of [host, host + len) the kernel has resident, from mincore(2).
size_t resident_pages(const uint8_t* host, size_t len) {
    std::vector<unsigned char> vec(len / kPage);
    REQUIRE(::mincore(const_cast<uint8_t*>(host), len, vec.data()) == 0);
    size_t n = 0;
    for (unsigned char v : vec) n += v & 1;
    return n;
}

// The guest address of the first buffer of the chain at `head` on queue `qi`.
uint64_t buffer_gpa(Driver& drv, uint16_t qi, uint16_t head) {
    return drv.ram().get<uint64_t>(drv.desc_gpa(qi) + 16ull * head);
}

uint32_t config_u32(const BalloonDevice& dev, uint32_t offset) {
    uint8_t b[4];
    dev.read_config(offset, b);
    uint32_t v;
    std::memcpy(&v, b, 4);
    return v;
}

}  // namespace

TEST_CASE("balloon: offers only free page reporting; num_pages is 0 and actual is the driver's") {
    auto dev = BalloonDevice::create();
    REQUIRE(dev.ok());
    BalloonDevice& b = **dev;
    CHECK(b.device_type() == 5u);
    CHECK(b.device_features() == kReporting);
    CHECK(b.queue_max_sizes().size() == 3);
    CHECK(b.queue_max_sizes()[BalloonDevice::kReportingQueue] >= 32);  // the driver's PAGE_REPORTING_CAPACITY
    CHECK(config_u32(b, 0) == 0);
    CHECK(config_u32(b, 4) == 0);

    const uint8_t actual[4] = {0x78, 0x56, 0x34, 0x12};
    b.write_config(4, actual);
    CHECK(config_u32(b, 4) == 0x12345678u);
    // Byte-wide writes land in their byte; num_pages and offsets past the
    // config are not writable, and read as 0.
    const uint8_t one = 0xff;
    b.write_config(5, std::span(&one, 1));
    b.write_config(0, std::span(&one, 1));
    b.write_config(0xfffffff0u, actual);
    CHECK(config_u32(b, 4) == 0x1234ff78u);
    CHECK(config_u32(b, 0) == 0);
    CHECK(config_u32(b, 8) == 0);
    CHECK(config_u32(b, 0xfffffffeu) == 0);
    CHECK(b.stats().actual_pages == 0x1234ff78u);
}

TEST_CASE("balloon: a reported range loses its whole pages on the host and keeps its ragged edges") {
    auto dev = BalloonDevice::create();
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate(virtio::kFeatureVersion1 | kReporting).ok());

    // A range that starts and ends inside a page: 8 whole pages between.
    const uint32_t len = 9 * kPage + 100;
    const uint16_t head = drv.post_in(BalloonDevice::kReportingQueue, len);
    const uint64_t gpa = buffer_gpa(drv, BalloonDevice::kReportingQueue, head);
    uint8_t* host = drv.ram().host(gpa, len);
    std::memset(host, 0xab, len);
    const uint64_t first = (gpa + kPage - 1) & ~(kPage - 1);
    const uint64_t end = (gpa + len) & ~(kPage - 1);
    REQUIRE(end - first >= 8 * kPage);
    uint8_t* whole = drv.ram().host(first, end - first);
    CHECK(resident_pages(whole, end - first) == (end - first) / kPage);

    REQUIRE(drv.kick(BalloonDevice::kReportingQueue).ok());
    auto used = drv.take_used(BalloonDevice::kReportingQueue);
    REQUIRE(used.size() == 1);
    CHECK(used[0].len == 0);
    CHECK(drv.irq.used == 1);
    CHECK((*dev)->stats().reports == 1);
    CHECK((*dev)->stats().reported_bytes == end - first);
    // Gone from the host, and zero when the guest touches them again.
    CHECK(resident_pages(whole, end - first) == 0);
    CHECK(whole[0] == 0);
    CHECK(whole[end - first - 1] == 0);
    // The partial pages at either end are not the driver's to give: untouched.
    if (first > gpa) CHECK(drv.ram().get<uint8_t>(first - 1) == 0xab);
    CHECK(drv.ram().get<uint8_t>(gpa) == (first == gpa ? 0 : 0xab));
    CHECK(drv.ram().get<uint8_t>(gpa + len - 1) == 0xab);
}

TEST_CASE("balloon: a range smaller than a page, reports without REPORTING, and unasked inflation drop nothing") {
    auto dev = BalloonDevice::create();
    REQUIRE(dev.ok());
    Driver drv(**dev);

    SUBCASE("no whole page inside") {
        REQUIRE(drv.activate(virtio::kFeatureVersion1 | kReporting).ok());
        const uint16_t head = drv.post_in(BalloonDevice::kReportingQueue, kPage - 1);
        const uint64_t gpa = buffer_gpa(drv, BalloonDevice::kReportingQueue, head);
        std::memset(drv.ram().host(gpa, kPage - 1), 0x5c, kPage - 1);
        REQUIRE(drv.kick(BalloonDevice::kReportingQueue).ok());
        CHECK(drv.take_used(BalloonDevice::kReportingQueue).size() == 1);
        CHECK((*dev)->stats().reported_bytes == 0);
        CHECK(drv.ram().get<uint8_t>(gpa + kPage - 2) == 0x5c);
    }
    SUBCASE("REPORTING not negotiated: the third queue is not the device's to serve") {
        REQUIRE(drv.activate(virtio::kFeatureVersion1).ok());
        drv.post_in(BalloonDevice::kReportingQueue, 4 * kPage);
        REQUIRE(drv.kick(BalloonDevice::kReportingQueue).ok());
        CHECK(drv.take_used(BalloonDevice::kReportingQueue).empty());
        CHECK((*dev)->stats().reports == 0);
    }
    SUBCASE("inflate: page numbers are counted and handed back, their pages kept") {
        REQUIRE(drv.activate(virtio::kFeatureVersion1 | kReporting).ok());
        const uint64_t page = drv.ram().alloc(kPage, kPage);
        std::memset(drv.ram().host(page, kPage), 0x77, kPage);
        const uint32_t pfns[3] = {uint32_t(page >> VIRTIO_BALLOON_PFN_SHIFT), 0xffffffffu, 0};
        drv.post_out(BalloonDevice::kInflateQueue,
                     std::span(reinterpret_cast<const uint8_t*>(pfns), sizeof pfns));
        REQUIRE(drv.kick(BalloonDevice::kInflateQueue).ok());
        CHECK(drv.take_used(BalloonDevice::kInflateQueue).size() == 1);
        CHECK((*dev)->stats().ignored_inflate_pages == 3);
        CHECK(drv.ram().get<uint8_t>(page + 100) == 0x77);
        CHECK(resident_pages(drv.ram().host(page, kPage), kPage) == 1);
    }
}

TEST_CASE("balloon: a broken reporting ring is an error; kicks before activation and after reset are ignored") {
    auto dev = BalloonDevice::create();
    REQUIRE(dev.ok());
    CHECK((*dev)->queue_notify(BalloonDevice::kReportingQueue).ok());
    Driver drv(**dev);
    REQUIRE(drv.activate(virtio::kFeatureVersion1 | kReporting).ok());
    // A range outside guest RAM: refused by the queue before anything is dropped.
    const uint16_t head = drv.post_in(BalloonDevice::kReportingQueue, 2 * kPage);
    drv.ram().put<uint64_t>(drv.desc_gpa(BalloonDevice::kReportingQueue) + 16ull * head, 0x7f0000000000ull);
    auto r = drv.kick(BalloonDevice::kReportingQueue);
    CHECK_FALSE(r.ok());
    CHECK(r.error().message.find("virtio-balloon") != std::string::npos);
    CHECK((*dev)->stats().reported_bytes == 0);

    drv.reset();
    CHECK((*dev)->queue_notify(BalloonDevice::kReportingQueue).ok());
    CHECK((*dev)->queue_notify(7).ok());
}
