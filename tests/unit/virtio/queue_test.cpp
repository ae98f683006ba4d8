// Split virtqueue against a mock driver (virtio 1.2 §2.7). Guest RAM sits
// between PROT_NONE guard pages, so a bounds bug crashes the test instead of
// passing silently.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <variant>

#include "mock_driver.h"
#include "virtio/queue.h"

namespace krunlet::virtio::test {
namespace {

constexpr uint64_t kRamGpa = 0x10000;
constexpr size_t kRamSize = 1 << 20;
constexpr uint64_t kData = kRamGpa + 0x80000;  // buffers live here
constexpr uint16_t kMax = 256;

DescriptorChain take_chain(Queue& q) {
    auto r = q.pop();
    if (auto* e = std::get_if<QueueError>(&r)) FAIL("unexpected queue error: " << std::string(to_string(*e)));
    REQUIRE_MESSAGE(std::holds_alternative<DescriptorChain>(r), "queue unexpectedly empty");
    return std::move(std::get<DescriptorChain>(r));
}

QueueError take_error(Queue& q) {
    auto r = q.pop();
    REQUIRE_MESSAGE(std::holds_alternative<QueueError>(r), "expected a queue error");
    return std::get<QueueError>(r);
}

bool is_empty(Queue& q) { return std::holds_alternative<std::monostate>(q.pop()); }

struct Fixture {
    GuardedRam ram{kRamGpa, kRamSize};
    MockDriver drv{ram, 16, kRamGpa};
    Queue q{kMax};

    void activate(bool event_idx = false) {
        q.config() = drv.config();
        auto r = q.activate(ram.mem(), event_idx);
        REQUIRE_MESSAGE(r.ok(), r.error().message);
    }
    std::string activate_error(const QueueConfig& c) {
        q.reset();
        q.config() = c;
        auto r = q.activate(ram.mem(), false);
        REQUIRE_FALSE(r.ok());
        CHECK_FALSE(q.active());
        return r.error().message;
    }
};

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

TEST_CASE_FIXTURE(Fixture, "activate checks size, alignment and that the rings are in RAM") {
    CHECK(q.config().size == kMax);  // QueueNum defaults to the maximum
    CHECK_FALSE(q.active());
    CHECK(take_error(q) == QueueError::NotReady);

    QueueConfig c = drv.config();
    QueueConfig bad = c;
    bad.size = 0;
    CHECK(contains(activate_error(bad), "power of two"));
    bad.size = 12;
    CHECK(contains(activate_error(bad), "power of two"));
    bad.size = 512;  // > max
    CHECK(contains(activate_error(bad), "between 1 and 256"));
    bad = c;
    bad.ready = false;
    CHECK(contains(activate_error(bad), "QueueReady"));
    bad = c;
    bad.desc += 8;
    CHECK(contains(activate_error(bad), "16-byte aligned"));
    bad = c;
    bad.avail += 1;
    CHECK(contains(activate_error(bad), "2-byte aligned"));
    bad = c;
    bad.used += 2;
    CHECK(contains(activate_error(bad), "4-byte aligned"));
    // Each ring partly or wholly outside RAM.
    bad = c;
    bad.desc = ram.end() - 16 * 15;  // one descriptor too few before the end
    CHECK(contains(activate_error(bad), "descriptor table"));
    bad = c;
    bad.avail = ram.end() - (6 + 2 * 16) + 2;
    CHECK(contains(activate_error(bad), "available ring"));
    bad = c;
    bad.used = ram.end() - (6 + 8 * 16) + 4;
    CHECK(contains(activate_error(bad), "used ring"));
    bad = c;
    bad.used = 0x1000;  // below RAM
    CHECK(contains(activate_error(bad), "not inside"));
    bad = c;
    bad.desc = ~0ull & ~15ull;  // desc + 16n overflows 64 bits
    CHECK(contains(activate_error(bad), "not inside"));

    q.reset();
    activate();
    CHECK(q.active());
    auto again = q.activate(ram.mem(), false);
    CHECK_FALSE(again.ok());
    CHECK(is_empty(q));
}

TEST_CASE("rings and buffers ending exactly at the end of RAM work (guard page right after)") {
    GuardedRam ram(kRamGpa, kRamSize);
    const uint16_t n = 8;
    // The available ring ends on the last byte of RAM (its used_event is the
    // last two bytes); the used ring, which must be 4-byte aligned, ends two
    // bytes before it.
    const uint64_t avail = ram.end() - (6 + 2 * n);
    const uint64_t used = (avail - (6 + 8 * n)) & ~3ull;
    QueueConfig c{n, kRamGpa, avail, used, true};
    MockDriver drv(ram, n, kRamGpa);  // only its descriptor writer is used
    Queue q(n);
    q.config() = c;
    REQUIRE(q.activate(ram.mem(), true).ok());
    drv.write_chain(kRamGpa, 0, {{ram.end() - 4, 4, true}});  // a buffer ending at the guard page too
    ram.put<uint16_t>(avail + 4, 0);
    ram.put<uint16_t>(avail + 2, 1);
    auto chain = take_chain(q);
    const uint8_t bytes[4] = {1, 2, 3, 4};
    CHECK(chain.copy_to_writable(0, bytes) == 4);
    CHECK(ram.get<uint32_t>(ram.end() - 4) == 0x04030201);
    // (The buffer overlapped the ring's tail; a guest may do that.)
    ram.put<uint16_t>(ram.end() - 2, 0);  // used_event: interrupt on the first completion
    q.add_used(std::move(chain), 4);
    CHECK(q.needs_interrupt());
    CHECK(is_empty(q));
    CHECK(ram.get<uint16_t>(used + 4 + 8 * n) == 1);  // avail_event
    CHECK(ram.get<uint16_t>(used + 2) == 1);
}

TEST_CASE_FIXTURE(Fixture, "a readable+writable chain round-trips through the used ring") {
    activate();
    CHECK(is_empty(q));
    std::memcpy(ram.host(kData), "hello", 5);
    drv.post(3, {{kData, 5, false}, {kData + 0x100, 64, true}});
    auto chain = take_chain(q);
    CHECK(chain.head() == 3);
    REQUIRE(chain.readable().size() == 1);
    REQUIRE(chain.writable().size() == 1);
    CHECK(chain.readable()[0].data == ram.host(kData));
    CHECK(chain.readable()[0].len == 5);
    CHECK(chain.writable()[0].data == ram.host(kData + 0x100));
    CHECK(chain.readable_bytes() == 5);
    CHECK(chain.writable_bytes() == 64);
    CHECK(is_empty(q));

    CHECK(drv.used_idx() == 0);
    q.add_used(std::move(chain), 1000);  // more than fits: clamped
    CHECK(drv.used_idx() == 1);
    CHECK(drv.used_elem(0) == std::pair<uint32_t, uint32_t>{3, 64});

    // Several chains come out in avail order, whatever their heads.
    drv.post(7, {{kData, 1, false}});
    drv.post(0, {{kData, 1, true}});
    drv.post(13, {{kData, 2, false}, {kData, 3, false}, {kData, 4, true}});  // descriptors 13..15
    auto a = take_chain(q);
    auto b = take_chain(q);
    auto c = take_chain(q);
    CHECK(is_empty(q));
    CHECK(a.head() == 7);
    CHECK(b.head() == 0);
    CHECK(c.head() == 13);
    CHECK(c.readable().size() == 2);
    CHECK(c.readable_bytes() == 5);
    // Completed out of order.
    q.add_used(std::move(c), 4);
    q.add_used(std::move(a), 0);
    q.add_used(std::move(b), 1);
    CHECK(drv.used_idx() == 4);
    CHECK(drv.used_elem(1) == std::pair<uint32_t, uint32_t>{13, 4});
    CHECK(drv.used_elem(2) == std::pair<uint32_t, uint32_t>{7, 0});
    CHECK(drv.used_elem(3) == std::pair<uint32_t, uint32_t>{0, 1});
}

TEST_CASE_FIXTURE(Fixture, "a chain popped after a completion holds only its own buffers") {
    // add_used() hands the completed chain's buffer lists to the next pop() for reuse; nothing
    // of the old chain may show through.
    activate();
    drv.post(0, {{kData, 8, false}, {kData + 8, 8, false}, {kData + 16, 8, false}, {kData + 0x100, 32, true}});
    auto big = take_chain(q);
    REQUIRE(big.readable().size() == 3);
    q.add_used(std::move(big), 32);

    drv.post(4, {{kData + 0x200, 4, true}});
    auto writable_only = take_chain(q);
    CHECK(writable_only.readable().empty());
    CHECK(writable_only.readable_bytes() == 0);
    REQUIRE(writable_only.writable().size() == 1);
    CHECK(writable_only.writable()[0].data == ram.host(kData + 0x200));
    CHECK(writable_only.writable_bytes() == 4);
    // A chain still held keeps its lists while another one is popped and completed.
    drv.post(5, {{kData + 0x300, 2, false}});
    auto held = take_chain(q);
    q.add_used(std::move(writable_only), 4);
    drv.post(6, {{kData + 0x400, 6, false}, {kData + 0x500, 6, true}});
    auto next = take_chain(q);
    REQUIRE(held.readable().size() == 1);
    CHECK(held.readable()[0].data == ram.host(kData + 0x300));
    REQUIRE(next.readable().size() == 1);
    CHECK(next.readable()[0].data == ram.host(kData + 0x400));
    REQUIRE(next.writable().size() == 1);
    CHECK(next.writable_bytes() == 6);
    q.add_used(std::move(held), 0);
    q.add_used(std::move(next), 6);
    CHECK(drv.used_idx() == 4);
    CHECK(drv.used_elem(3) == std::pair<uint32_t, uint32_t>{6, 6});
}

TEST_CASE_FIXTURE(Fixture, "copy helpers and iovecs span buffer boundaries") {
    activate();
    std::memcpy(ram.host(kData), "abcd", 4);
    std::memcpy(ram.host(kData + 0x10), "efg", 3);
    drv.post(0, {{kData, 4, false}, {kData + 0x10, 3, false}, {kData + 0x20, 3, true}, {kData + 0x30, 3, true}});
    auto chain = take_chain(q);

    uint8_t out[8] = {};
    CHECK(chain.copy_from_readable(2, std::span<uint8_t>(out, 4)) == 4);
    CHECK(std::memcmp(out, "cdef", 4) == 0);
    CHECK(chain.copy_from_readable(0, out) == 7);
    CHECK(std::memcmp(out, "abcdefg", 7) == 0);
    CHECK(chain.copy_from_readable(7, out) == 0);
    CHECK(chain.copy_from_readable(100, out) == 0);

    const uint8_t in[10] = {'1', '2', '3', '4', '5', '6', '7', '8', '9', '0'};
    CHECK(chain.copy_to_writable(1, in) == 5);
    CHECK(std::memcmp(ram.host(kData + 0x21), "12", 2) == 0);
    CHECK(std::memcmp(ram.host(kData + 0x30), "345", 3) == 0);
    CHECK(chain.copy_to_writable(6, in) == 0);

    auto iov = chain.writable_iovecs();
    REQUIRE(iov.size() == 2);
    CHECK(iov[0].iov_base == ram.host(kData + 0x20));
    CHECK(iov[0].iov_len == 3);
    CHECK(iov[1].iov_base == ram.host(kData + 0x30));
    q.add_used(std::move(chain), 6);
}

TEST_CASE_FIXTURE(Fixture, "indirect descriptor tables") {
    activate();
    const uint64_t table = kData + 0x1000;
    std::memcpy(ram.host(kData), "xyz", 3);

    SUBCASE("an indirect head") {
        drv.write_chain(table, 0, {{kData, 3, false}, {kData + 0x100, 8, true}, {kData + 0x200, 8, true}});
        // The WRITE flag on the table pointer means nothing (§2.7.5.3.2).
        drv.set_desc(5, table, 3 * 16, kIndirect | kWrite);
        drv.publish(5);
        auto chain = take_chain(q);
        CHECK(chain.head() == 5);
        CHECK(chain.readable().size() == 1);
        CHECK(chain.writable().size() == 2);
        CHECK(chain.writable_bytes() == 16);
        uint8_t out[3];
        CHECK(chain.copy_from_readable(0, out) == 3);
        CHECK(std::memcmp(out, "xyz", 3) == 0);
        q.add_used(std::move(chain), 16);
        CHECK(drv.used_elem(0) == std::pair<uint32_t, uint32_t>{5, 16});
    }
    SUBCASE("direct descriptors, then an indirect one as the last") {
        drv.write_chain(table, 0, {{kData + 0x100, 8, true}});
        drv.set_desc(1, kData, 3, kNext, 2);
        drv.set_desc(2, table, 16, kIndirect);
        drv.publish(1);
        auto chain = take_chain(q);
        CHECK(chain.readable().size() == 1);
        CHECK(chain.writable().size() == 1);
    }
    SUBCASE("a table of the maximum queue size (not just the driver's size)") {
        for (uint16_t i = 0; i < kMax; ++i)
            drv.write_desc(table, i, kData, 1, static_cast<uint16_t>(i + 1 < kMax ? kNext : 0), i + 1);
        drv.set_desc(0, table, kMax * 16, kIndirect);
        drv.publish(0);
        CHECK(take_chain(q).readable().size() == kMax);
    }
}

TEST_CASE_FIXTURE(Fixture, "malformed indirect tables are refused") {
    activate();
    const uint64_t table = kData + 0x1000;
    drv.write_chain(table, 0, {{kData, 4, false}, {kData, 4, false}});
    QueueError want{};
    SUBCASE("length 0") {
        drv.set_desc(0, table, 0, kIndirect);
        want = QueueError::BadIndirectTable;
    }
    SUBCASE("length not a multiple of 16") {
        drv.set_desc(0, table, 17, kIndirect);
        want = QueueError::BadIndirectTable;
    }
    SUBCASE("longer than the maximum queue size") {
        drv.set_desc(0, table, (kMax + 1) * 16, kIndirect);
        want = QueueError::BadIndirectTable;
    }
    SUBCASE("INDIRECT together with NEXT") {
        drv.set_desc(0, table, 32, kIndirect | kNext, 1);
        want = QueueError::IndirectWithNext;
    }
    SUBCASE("nested table") {
        drv.write_desc(table, 1, table, 32, kIndirect);
        drv.write_desc(table, 0, kData, 4, kNext, 1);
        drv.set_desc(0, table, 32, kIndirect);
        want = QueueError::NestedIndirect;
    }
    SUBCASE("next past the end of the table") {
        drv.write_desc(table, 1, kData, 4, kNext, 2);
        drv.set_desc(0, table, 32, kIndirect);
        want = QueueError::NextOutOfRange;
    }
    SUBCASE("a loop inside the table") {
        drv.write_desc(table, 1, kData, 4, kNext, 0);
        drv.set_desc(0, table, 32, kIndirect);
        want = QueueError::ChainTooLong;
    }
    SUBCASE("table outside RAM") {
        drv.set_desc(0, ram.end() - 16, 32, kIndirect);
        want = QueueError::BufferOutOfRange;
    }
    drv.publish(0);
    CHECK(take_error(q) == want);
    // pop() does not advance on an error: the same fault is reported again.
    CHECK(take_error(q) == want);
}

TEST_CASE_FIXTURE(Fixture, "descriptor loops end with ChainTooLong, a full-length chain is fine") {
    activate();
    SUBCASE("self loop") {
        drv.set_desc(4, kData, 1, kNext, 4);
        drv.publish(4);
        CHECK(take_error(q) == QueueError::ChainTooLong);
    }
    SUBCASE("two-descriptor loop") {
        drv.set_desc(0, kData, 1, kNext, 9);
        drv.set_desc(9, kData, 1, kNext, 0);
        drv.publish(0);
        CHECK(take_error(q) == QueueError::ChainTooLong);
    }
    SUBCASE("a chain using every descriptor once") {
        std::vector<Seg> segs(16, Seg{kData, 1, false});
        drv.post(0, segs);
        CHECK(take_chain(q).readable().size() == 16);
    }
}

TEST_CASE_FIXTURE(Fixture, "avail index, head and next are bounds-checked") {
    activate();
    drv.write_chain(drv.desc_gpa(), 0, {{kData, 1, false}});
    SUBCASE("avail idx more than size ahead") {
        drv.set_avail_idx(17);
        CHECK(take_error(q) == QueueError::AvailIdxJump);
    }
    SUBCASE("avail idx moved backwards") {
        drv.set_avail_idx(0xffff);
        CHECK(take_error(q) == QueueError::AvailIdxJump);
    }
    SUBCASE("exactly size ahead is allowed") {
        for (int i = 0; i < 16; ++i) drv.publish(0);
        for (int i = 0; i < 16; ++i) CHECK(take_chain(q).head() == 0);
        CHECK(is_empty(q));
    }
    SUBCASE("head >= size") {
        drv.publish(16);
        CHECK(take_error(q) == QueueError::HeadOutOfRange);
        drv.set_avail_idx(0);
        drv.publish(0xffff);
        CHECK(take_error(q) == QueueError::HeadOutOfRange);
    }
    SUBCASE("next >= size") {
        drv.set_desc(0, kData, 1, kNext, 16);
        drv.publish(0);
        CHECK(take_error(q) == QueueError::NextOutOfRange);
    }
}

TEST_CASE_FIXTURE(Fixture, "buffers must lie inside guest RAM") {
    activate();
    const uint64_t end = ram.end();
    struct Case {
        const char* what;
        uint64_t addr;
        uint32_t len;
    } cases[] = {
        {"starts at the end of RAM", end, 1},
        {"crosses the end of RAM by one byte", end - 4, 5},
        {"starts below RAM", kRamGpa - 1, 2},
        {"far below RAM", 0, 16},
        {"addr + len overflows 64 bits", 0xfffffffffffffff0ull, 0x20},
        {"len of 4 GiB - 1", kRamGpa, 0xffffffffu},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        for (bool writable : {false, true}) {
            Queue fresh(kMax);
            fresh.config() = drv.config();
            REQUIRE(fresh.activate(ram.mem(), false).ok());
            drv.set_avail_idx(0);
            drv.post(0, {{kData, 8, false}, {c.addr, c.len, writable}});
            CHECK(take_error(fresh) == QueueError::BufferOutOfRange);
        }
    }
}

TEST_CASE_FIXTURE(Fixture, "device-readable after device-writable is refused") {
    activate();
    SUBCASE("direct") { drv.post(0, {{kData, 8, true}, {kData, 8, false}}); }
    SUBCASE("inside an indirect table") {
        const uint64_t table = kData + 0x1000;
        drv.write_chain(table, 0, {{kData, 8, false}, {kData, 8, true}, {kData, 8, false}});
        drv.set_desc(0, table, 48, kIndirect);
        drv.publish(0);
    }
    SUBCASE("direct writable, then an indirect table with a readable buffer") {
        const uint64_t table = kData + 0x1000;
        drv.write_chain(table, 0, {{kData, 8, false}});
        drv.set_desc(0, kData, 8, kWrite | kNext, 1);
        drv.set_desc(1, table, 16, kIndirect);
        drv.publish(0);
    }
    SUBCASE("a zero-length readable after a writable still counts") {
        drv.post(0, {{kData, 8, true}, {kData, 0, false}});
    }
    CHECK(take_error(q) == QueueError::ReadableAfterWritable);
}

TEST_CASE_FIXTURE(Fixture, "zero-length descriptors are dropped and their address is not used") {
    activate();
    drv.post(0, {{kData, 4, false}, {~0ull, 0, false}, {kData, 0, true}, {kData + 8, 4, true}});
    auto chain = take_chain(q);
    CHECK(chain.readable().size() == 1);
    CHECK(chain.writable().size() == 1);
    CHECK(chain.writable()[0].data == ram.host(kData + 8));
}

TEST_CASE("16-bit ring indices wrap around") {
    GuardedRam ram(kRamGpa, kRamSize);
    MockDriver drv(ram, 4, kRamGpa);
    Queue q(4);
    q.config() = drv.config();
    REQUIRE(q.activate(ram.mem(), false).ok());
    for (uint16_t i = 0; i < 4; ++i) drv.write_chain(drv.desc_gpa(), i, {{kData + i, 1, true}});

    // Run the indices up to just below 65535, one chain at a time.
    for (uint32_t i = 0; i < 65533; ++i) {
        drv.publish(static_cast<uint16_t>(i % 4));
        auto chain = take_chain(q);
        REQUIRE(chain.head() == i % 4);
        q.add_used(std::move(chain), 1);
    }
    CHECK(drv.used_idx() == 65533);
    // A full ring's worth that crosses 65535 -> 0 on both rings.
    for (uint16_t k = 0; k < 4; ++k) drv.publish(static_cast<uint16_t>(3 - k));
    CHECK(drv.avail_idx() == 1);
    for (uint16_t k = 0; k < 4; ++k) {
        auto chain = take_chain(q);
        CHECK(chain.head() == 3 - k);
        q.add_used(std::move(chain), 1);
    }
    CHECK(is_empty(q));
    CHECK(drv.used_idx() == 1);
    CHECK(drv.used_elem(65535).first == 1);  // ring slot 3
    CHECK(drv.used_elem(0).first == 0);
    // The jump check works across the wrap too: 1 + 5 is 5 ahead of us.
    drv.set_avail_idx(6);
    CHECK(take_error(q) == QueueError::AvailIdxJump);
    drv.set_avail_idx(5);
    CHECK(std::holds_alternative<DescriptorChain>(q.pop()));
}

TEST_CASE_FIXTURE(Fixture, "without EVENT_IDX, VIRTQ_AVAIL_F_NO_INTERRUPT suppresses interrupts") {
    activate(false);
    CHECK_FALSE(q.needs_interrupt());  // nothing used yet
    drv.set_used_event(1000);          // ignored without EVENT_IDX
    for (int i = 0; i < 3; ++i) drv.post(static_cast<uint16_t>(i), {{kData, 1, true}});
    q.add_used(take_chain(q), 0);
    CHECK(q.needs_interrupt());
    CHECK_FALSE(q.needs_interrupt());  // nothing new since
    drv.set_avail_flags(1);
    q.add_used(take_chain(q), 0);
    CHECK_FALSE(q.needs_interrupt());
    drv.set_avail_flags(0);
    q.add_used(take_chain(q), 0);
    CHECK(q.needs_interrupt());
    // avail_event is left alone without EVENT_IDX.
    CHECK(is_empty(q));
    CHECK(drv.avail_event() == 0);
}

TEST_CASE_FIXTURE(Fixture, "with EVENT_IDX, used_event decides and avail_event is published") {
    ram.put<uint16_t>(drv.used_gpa() + 4 + 8 * 16, 0xbeef);
    activate(true);
    CHECK(drv.avail_event() == 0);  // activate asks for a kick on the first buffer
    drv.set_avail_flags(1);         // NO_INTERRUPT is ignored with EVENT_IDX
    for (int i = 0; i < 6; ++i) drv.post(static_cast<uint16_t>(i), {{kData, 1, true}});
    std::vector<DescriptorChain> chains;
    for (int i = 0; i < 6; ++i) chains.push_back(take_chain(q));
    CHECK(drv.avail_event() == 0);  // stale while busy: suppresses kicks
    CHECK(is_empty(q));
    CHECK(drv.avail_event() == 6);  // idle: "kick me when you post entry 6"

    drv.set_used_event(1);  // interrupt when used->idx moves past 1
    q.add_used(std::move(chains[0]), 0);  // idx 1
    CHECK_FALSE(q.needs_interrupt());
    q.add_used(std::move(chains[1]), 0);  // idx 2: passes 1
    CHECK(q.needs_interrupt());
    q.add_used(std::move(chains[2]), 0);  // idx 3
    CHECK_FALSE(q.needs_interrupt());
    // A batch that jumps over used_event still interrupts once.
    drv.set_used_event(3);
    q.add_used(std::move(chains[3]), 0);
    q.add_used(std::move(chains[4]), 0);  // idx 5
    CHECK(q.needs_interrupt());
    CHECK_FALSE(q.needs_interrupt());
    // used_event behind us (driver asleep on an old value): no interrupt.
    q.add_used(std::move(chains[5]), 0);  // idx 6
    CHECK_FALSE(q.needs_interrupt());

    // New buffers after the driver saw avail_event == 6.
    drv.post(0, {{kData, 1, true}});
    auto c = take_chain(q);
    CHECK(drv.avail_event() == 6);
    CHECK(is_empty(q));
    CHECK(drv.avail_event() == 7);
    q.add_used(std::move(c), 0);
}

TEST_CASE_FIXTURE(Fixture, "stale and spent chains are not completed twice") {
    activate();
    drv.post(0, {{kData, 1, true}});
    drv.post(1, {{kData, 1, true}});
    auto a = take_chain(q);
    auto b = take_chain(q);
    q.add_used(std::move(a), 1);
    CHECK(drv.used_idx() == 1);
    q.add_used(std::move(a), 1);  // NOLINT(bugprone-use-after-move): the point of the test
    CHECK(drv.used_idx() == 1);

    // A reset drops the ring b came from.
    q.reset();
    CHECK_FALSE(q.active());
    CHECK(q.config().size == kMax);
    CHECK_FALSE(q.config().ready);
    CHECK(q.config().desc == 0);
    CHECK(take_error(q) == QueueError::NotReady);
    CHECK_FALSE(q.needs_interrupt());
    ram.put<uint16_t>(drv.used_gpa() + 2, 0);
    activate();
    q.add_used(std::move(b), 1);
    CHECK(drv.used_idx() == 0);
}

TEST_CASE("QueueError names are distinct and convert to errors") {
    std::vector<std::string> seen;
    for (QueueError e : {QueueError::NotReady, QueueError::AvailIdxJump, QueueError::HeadOutOfRange,
                         QueueError::NextOutOfRange, QueueError::ChainTooLong, QueueError::NestedIndirect,
                         QueueError::BadIndirectTable, QueueError::IndirectWithNext, QueueError::BufferOutOfRange,
                         QueueError::ReadableAfterWritable, QueueError::RingOutOfRange}) {
        std::string s = to_string(e);
        CHECK(std::find(seen.begin(), seen.end(), s) == seen.end());
        seen.push_back(s);
        Error err = to_error(e);
        CHECK(err.code == EPROTO);
        CHECK(err.message.find(s) != std::string::npos);
    }
}

}  // namespace
}  // namespace krunlet::virtio::test
