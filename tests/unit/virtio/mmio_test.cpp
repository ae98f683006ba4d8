// The virtio-mmio transport (virtio 1.2 §4.2) driven register by register, as
// a guest driver would, with a small counting device behind it.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <variant>

#include "mmio_regs.h"
#include "mock_driver.h"
#include "virtio/mmio.h"

namespace krunlet::virtio::test {
namespace {

constexpr uint64_t kRamGpa = 0x100000;
constexpr size_t kRamSize = 1 << 20;
constexpr uint64_t kData = kRamGpa + 0x80000;

// Registers (§4.2.2).
using namespace mmio_regs;

constexpr uint32_t A = kStatusAcknowledge, D = kStatusDriver, F = kStatusFeaturesOk, K = kStatusDriverOk;
constexpr uint64_t kRingPacked = 1ull << 34;  // offered by the test device, hidden by the transport
constexpr uint64_t kDevBit0 = 1ull << 0;
constexpr uint64_t kDevBit50 = 1ull << 50;

struct Counters {
    int activations = 0;
    int notifies = 0;
    int resets = 0;
    int drains = 0;
    uint64_t features = 0;
    std::vector<bool> active_at_activate;
    uint32_t config_write_offset = 0;
    std::vector<uint8_t> config_write;
    bool fail_activate = false;
    bool fail_notify = false;
    Interrupt* irq = nullptr;  // kept after reset, to test late signals
};

// Completes every chain of a kicked queue with "ok" written back.
class TestDevice final : public Device {
public:
    explicit TestDevice(Counters& c) : c_(c) {}
    uint32_t device_type() const override { return kDeviceRng; }
    uint64_t device_features() const override { return kDevBit0 | kFeatureEventIdx | kRingPacked | kDevBit50; }
    std::span<const uint16_t> queue_max_sizes() const override { return sizes_; }
    void read_config(uint32_t offset, std::span<uint8_t> out) const override {
        for (size_t i = 0; i < out.size(); ++i) out[i] = offset + i < 8 ? static_cast<uint8_t>(0x11 + offset + i) : 0;
    }
    void write_config(uint32_t offset, std::span<const uint8_t> in) override {
        c_.config_write_offset = offset;
        c_.config_write.assign(in.begin(), in.end());
    }
    Result<void> activate(const ActivateArgs& args) override {
        ++c_.activations;
        c_.features = args.driver_features;
        c_.active_at_activate.clear();
        for (const Queue& q : args.queues) c_.active_at_activate.push_back(q.active());
        c_.irq = &args.irq;
        if (c_.fail_activate) return make_error(EINVAL, "test device refuses to start");
        queues_ = args.queues;
        irq_ = &args.irq;
        return {};
    }
    Result<void> queue_notify(uint16_t index) override {
        ++c_.notifies;
        if (c_.fail_notify) return make_error(EIO, "test device failed");
        Queue& q = queues_[index];
        bool used = false;
        for (;;) {
            auto r = q.pop();
            if (auto* e = std::get_if<QueueError>(&r)) return to_error(*e);
            if (std::holds_alternative<std::monostate>(r)) break;
            auto& chain = std::get<DescriptorChain>(r);
            const uint8_t ok[2] = {'o', 'k'};
            size_t n = chain.copy_to_writable(0, ok);
            q.add_used(std::move(chain), static_cast<uint32_t>(n));
            used = true;
        }
        if (used && q.needs_interrupt()) irq_->signal_used();
        return {};
    }
    void reset() override {
        ++c_.resets;
        queues_ = {};
        irq_ = nullptr;
    }
    void drain() override { ++c_.drains; }

private:
    Counters& c_;
    const uint16_t sizes_[2] = {16, 8};
    std::span<Queue> queues_;
    Interrupt* irq_ = nullptr;
};

class CountingIrq final : public IrqLine {
public:
    explicit CountingIrq(std::atomic<int>& n) : n_(n) {}
    void trigger() override { n_.fetch_add(1); }

private:
    std::atomic<int>& n_;
};

struct Rig {
    GuardedRam ram{kRamGpa, kRamSize};
    Counters c;
    std::atomic<int> irqs{0};
    std::unique_ptr<MmioTransport> t =
        std::make_unique<MmioTransport>(std::make_unique<TestDevice>(c), ram.mem(), std::make_unique<CountingIrq>(irqs));
    MockDriver q0{ram, 16, kRamGpa};
    MockDriver q1{ram, 8, kRamGpa + 0x10000};

    uint32_t r32(uint64_t off) {
        uint8_t b[4] = {0xaa, 0xaa, 0xaa, 0xaa};
        t->read(off, b);
        return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
    }
    void w32(uint64_t off, uint32_t v) {
        const uint8_t b[4] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v >> 16),
                              static_cast<uint8_t>(v >> 24)};
        t->write(off, b);
    }
    uint64_t device_features() {
        w32(rDevFeaturesSel, 0);
        uint64_t f = r32(rDevFeatures);
        w32(rDevFeaturesSel, 1);
        return f | uint64_t{r32(rDevFeatures)} << 32;
    }
    void set_features(uint64_t f) {
        w32(rDrvFeaturesSel, 0);
        w32(rDrvFeatures, static_cast<uint32_t>(f));
        w32(rDrvFeaturesSel, 1);
        w32(rDrvFeatures, static_cast<uint32_t>(f >> 32));
    }
    void program_queue(uint32_t sel, const QueueConfig& qc, bool ready = true) {
        w32(rQueueSel, sel);
        w32(rQueueNum, qc.size);
        w32(rDescLow, static_cast<uint32_t>(qc.desc));
        w32(rDescHigh, static_cast<uint32_t>(qc.desc >> 32));
        w32(rDriverLow, static_cast<uint32_t>(qc.avail));
        w32(rDriverHigh, static_cast<uint32_t>(qc.avail >> 32));
        w32(rDeviceLow, static_cast<uint32_t>(qc.used));
        w32(rDeviceHigh, static_cast<uint32_t>(qc.used >> 32));
        if (ready) w32(rQueueReady, 1);
    }
    // Walk the valid path up to `state` (no queues set up).
    void drive_to(uint32_t state, uint64_t features = kFeatureVersion1) {
        w32(rStatus, 0);
        if (state & A) w32(rStatus, A);
        if (state & D) {
            w32(rStatus, A | D);
            set_features(features);
        }
        if (state & F) w32(rStatus, A | D | F);
        if (state & K) w32(rStatus, A | D | F | K);
        REQUIRE(r32(rStatus) == state);
    }
    // The Linux driver's sequence, with queue 0 set up and queue 1 left alone.
    void full_init(uint64_t features = kFeatureVersion1 | kFeatureEventIdx) {
        drive_to(A | D | F, features);
        CHECK(r32(rStatus) == (A | D | F));
        program_queue(0, q0.config());
        w32(rStatus, A | D | F | K);
        REQUIRE(r32(rStatus) == (A | D | F | K));
    }
};

TEST_CASE_FIXTURE(Rig, "identification and read-only registers") {
    CHECK(r32(rMagic) == 0x74726976);
    CHECK(r32(rVersion) == 2);
    CHECK(r32(rDeviceId) == kDeviceRng);
    CHECK(r32(rVendor) == MmioTransport::kVendorId);
    // VERSION_1 always; RING_PACKED hidden (the queue cannot do it).
    CHECK(device_features() == (kDevBit0 | kFeatureEventIdx | kDevBit50 | kFeatureVersion1));
    w32(rDevFeaturesSel, 2);
    CHECK(r32(rDevFeatures) == 0);
    w32(rQueueSel, 0);
    CHECK(r32(rQueueNumMax) == 16);
    CHECK(r32(rQueueReady) == 0);
    w32(rQueueSel, 1);
    CHECK(r32(rQueueNumMax) == 8);
    w32(rQueueSel, 2);
    CHECK(r32(rQueueNumMax) == 0);  // no such queue
    CHECK(r32(rQueueReady) == 0);
    CHECK(r32(rIntStatus) == 0);
    CHECK(r32(rStatus) == 0);
    CHECK(r32(rConfigGen) == 0);
    CHECK(r32(rQueueReset) == 0);
    for (uint32_t sel : {0u, 1u, 7u}) {
        w32(rShmSel, sel);
        for (uint64_t off = 0x0b0; off <= 0x0bc; off += 4) CHECK(r32(off) == 0xffffffffu);  // no region: -1
    }
    CHECK(t->stats().bad_accesses == 0);

    // Write-only and unknown registers read as 0 and are counted.
    for (uint64_t off : {rDevFeaturesSel, rDrvFeatures, rQueueNum, rQueueNotify, rIntAck, rDescLow, uint64_t{0x0f0}})
        CHECK(r32(off) == 0);
    CHECK(t->stats().bad_accesses == 7);
    // Only aligned 32-bit register accesses.
    uint8_t two[2] = {1, 1};
    t->read(rMagic, two);
    CHECK((two[0] == 0 && two[1] == 0));
    uint8_t four[4] = {1, 1, 1, 1};
    t->read(rMagic + 2, four);
    CHECK(std::memcmp(four, "\0\0\0\0", 4) == 0);
    uint8_t eight[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    t->read(rMagic, eight);
    CHECK(std::memcmp(eight, "\0\0\0\0\0\0\0\0", 8) == 0);
    const uint8_t one[1] = {A};
    t->write(rStatus, one);
    CHECK(r32(rStatus) == 0);
    // Writes to read-only registers change nothing.
    w32(rMagic, 0);
    w32(rQueueNumMax, 1);
    CHECK(r32(rMagic) == 0x74726976);
    CHECK(t->stats().bad_accesses == 7 + 6);
}

TEST_CASE_FIXTURE(Rig, "device configuration space: any width, bounded by the window") {
    uint8_t b1[1];
    t->read(0x100, b1);
    CHECK(b1[0] == 0x11);
    uint8_t b2[2];
    t->read(0x102, b2);
    CHECK((b2[0] == 0x13 && b2[1] == 0x14));
    CHECK(r32(0x104) == 0x18171615);
    uint8_t b8[8];
    t->read(0x100, b8);
    CHECK(b8[7] == 0x18);
    CHECK(r32(0xffc) == 0);  // inside the window, beyond the device's fields
    uint8_t past[4] = {9, 9, 9, 9};
    t->read(0xffe, past);  // crosses the end of the window
    CHECK(std::memcmp(past, "\0\0\0\0", 4) == 0);
    t->read(0x1000, past);
    CHECK(std::memcmp(past, "\0\0\0\0", 4) == 0);
    CHECK(t->stats().bad_accesses == 2);

    const uint8_t w[3] = {7, 8, 9};
    t->write(0x105, w);
    CHECK(c.config_write_offset == 5);
    CHECK(c.config_write == std::vector<uint8_t>{7, 8, 9});
    t->write(0xfff, w);  // past the window: not passed on
    CHECK(c.config_write_offset == 5);
}

TEST_CASE_FIXTURE(Rig, "full initialisation, a kick, an interrupt and its acknowledgement") {
    full_init();
    CHECK(c.activations == 1);
    CHECK(c.features == (kFeatureVersion1 | kFeatureEventIdx));
    CHECK(c.active_at_activate == std::vector<bool>{true, false});
    w32(rQueueSel, 0);
    CHECK(r32(rQueueReady) == 1);

    q0.post(0, {{kData, 8, false}, {kData + 0x100, 16, true}});
    w32(rQueueNotify, 0);  // a QueueNotify write that reached user space
    CHECK(c.notifies == 1);
    CHECK(q0.used_idx() == 1);
    CHECK(q0.used_elem(0) == std::pair<uint32_t, uint32_t>{0, 2});
    CHECK(std::memcmp(ram.host(kData + 0x100), "ok", 2) == 0);
    CHECK(q0.avail_event() == 1);  // EVENT_IDX negotiated: the queue asks for the next kick
    CHECK(r32(rIntStatus) == 1);
    CHECK(irqs == 1);
    w32(rIntAck, 1);
    CHECK(r32(rIntStatus) == 0);

    t->notify(0);  // the ioeventfd path, nothing new posted
    CHECK(c.notifies == 2);
    CHECK(irqs == 1);
    t->drain();
    CHECK(c.drains == 1);
    CHECK(t->stats().needs_reset == 0);
    CHECK(t->stats().invalid_status_writes == 0);
}

TEST_CASE("every status write outside the transition table is refused") {
    const uint32_t states[] = {0, A, A | D, A | D | F, A | D | F | K};
    std::vector<uint32_t> values;
    for (uint32_t v = 1; v < 16; ++v) values.push_back(v);  // all combinations of A, D, F, K
    for (uint32_t v : {0x10u, 0x20u, A | 0x10u, 0x100u}) values.push_back(v);  // undefined bits
    int refused = 0;
    for (uint32_t s : states) {
        for (uint32_t v : values) {
            CAPTURE(s);
            CAPTURE(v);
            Rig rig;
            rig.drive_to(s);
            const bool valid = v == s || (s == 0 && v == A) || (s == A && v == (A | D)) ||
                               (s == (A | D) && v == (A | D | F)) || (s == (A | D | F) && v == (A | D | F | K));
            rig.w32(rStatus, v);
            CHECK(rig.r32(rStatus) == (valid ? v : s));
            CHECK(rig.t->stats().invalid_status_writes == (valid ? 0u : 1u));
            if (!valid) {
                ++refused;
                CHECK(!rig.t->stats().last_problem.empty());
            }
            CHECK(rig.c.activations == (((valid ? v : s) & K) != 0 ? 1 : 0));
        }
    }
    CHECK(refused == 5 * 19 - 4 - 4);  // minus 4 steps forward and 4 rewrites of a non-zero state
}

TEST_CASE("FAILED can be set in any state and only a reset clears it") {
    for (uint32_t s : {0u, A, A | D, A | D | F, A | D | F | K}) {
        CAPTURE(s);
        Rig rig;
        rig.drive_to(s);
        rig.w32(rStatus, s | kStatusFailed);
        CHECK(rig.r32(rStatus) == (s | kStatusFailed));
        rig.w32(rStatus, (s | kStatusFailed | A | D));  // progress after FAILED (or FAILED plus new bits)
        if (s != (s | A | D)) {
            CHECK(rig.r32(rStatus) == (s | kStatusFailed));
            CHECK(rig.t->stats().last_problem.find("FAILED is set") != std::string::npos);
        }
        rig.w32(rStatus, 0);
        CHECK(rig.r32(rStatus) == 0);
        CHECK(rig.c.resets == (s & K ? 1 : 0));
    }
    Rig rig;
    rig.drive_to(A);
    rig.w32(rStatus, A | D | kStatusFailed);  // FAILED together with a new step: refused
    CHECK(rig.r32(rStatus) == A);
}

TEST_CASE_FIXTURE(Rig, "feature negotiation: FEATURES_OK is refused for a bad feature set") {
    uint64_t features = 0;
    const char* why = "";
    SUBCASE("VERSION_1 not accepted (a legacy driver)") {
        features = kFeatureEventIdx;
        why = "VERSION_1";
    }
    SUBCASE("a feature the device hid") {
        features = kFeatureVersion1 | kRingPacked;
        why = "did not offer";
    }
    SUBCASE("a feature nobody offered") {
        features = kFeatureVersion1 | (1ull << 5);
        why = "did not offer";
    }
    drive_to(A | D);
    set_features(features);
    w32(rStatus, A | D | F);
    CHECK(r32(rStatus) == (A | D));  // the driver sees FEATURES_OK did not stick
    CHECK(t->stats().refused_features_ok == 1);
    CHECK(t->stats().last_problem.find(why) != std::string::npos);
    // DRIVER_OK without FEATURES_OK is not a valid step either.
    w32(rStatus, A | D | K);
    CHECK(r32(rStatus) == (A | D));
    CHECK(c.activations == 0);
    // Linux then gives up.
    w32(rStatus, A | D | kStatusFailed);
    CHECK(r32(rStatus) == (A | D | kStatusFailed));
}

TEST_CASE_FIXTURE(Rig, "driver features are frozen at FEATURES_OK") {
    drive_to(A | D);
    set_features(kFeatureVersion1 | kDevBit0);
    w32(rDrvFeaturesSel, 2);
    w32(rDrvFeatures, 1);  // bits 64+: nothing there
    CHECK(t->stats().bad_accesses == 1);
    w32(rStatus, A | D | F);
    set_features(kFeatureVersion1 | kFeatureEventIdx);  // too late
    CHECK(t->stats().late_feature_writes == 2);
    w32(rStatus, A | D | F | K);
    CHECK(c.features == (kFeatureVersion1 | kDevBit0));
}

TEST_CASE_FIXTURE(Rig, "queue fields of a ready queue are frozen before DRIVER_OK") {
    drive_to(A | D | F);
    program_queue(0, q0.config());
    // Rewrites of a ready queue are ignored.
    w32(rDescLow, static_cast<uint32_t>(kData));
    w32(rQueueNum, 4);
    CHECK(t->stats().frozen_queue_writes == 2);
    // Out-of-range selector and a QueueReady value other than 0/1.
    w32(rQueueSel, 9);
    w32(rQueueNum, 4);
    w32(rQueueSel, 1);
    w32(rQueueReady, 2);
    CHECK(r32(rQueueReady) == 0);
    CHECK(t->stats().bad_accesses == 2);
    // Queue 1: programmed, un-readied (how a driver stops a queue), moved, readied.
    program_queue(1, q0.config());
    w32(rQueueReady, 0);
    CHECK(r32(rQueueReady) == 0);
    w32(rQueueNum, 8);
    program_queue(1, q1.config());
    w32(rStatus, A | D | F | K);
    REQUIRE(c.activations == 1);
    CHECK(c.active_at_activate == std::vector<bool>{true, true});
    CHECK(t->stats().needs_reset == 0);

    // Queue 0 runs on the layout written before QueueReady, queue 1 on its new one.
    q0.post(1, {{kData, 4, true}});
    q1.post(2, {{kData + 16, 4, true}});
    t->notify(0);
    t->notify(1);
    CHECK(q0.used_idx() == 1);
    CHECK(q1.used_idx() == 1);
    CHECK(q1.used_elem(0).first == 2);
}

TEST_CASE_FIXTURE(Rig, "reconfiguring a live queue marks the device NEEDS_RESET") {
    full_init();
    const uint64_t regs[] = {rQueueNum, rQueueReady, rDescLow, rDescHigh, rDriverLow, rDriverHigh, rDeviceLow, rDeviceHigh};
    uint64_t reg = 0;
    uint32_t value = 0;
    for (uint64_t r : regs) {
        SUBCASE(("register " + std::to_string(r)).c_str()) {
            reg = r;
            value = r == rQueueReady ? 0 : 0x2000;
        }
    }
    // Harmless: selecting another queue, reading, rewriting QueueReady=1.
    w32(rQueueSel, 1);
    CHECK(r32(rQueueNumMax) == 8);
    w32(rQueueSel, 0);
    w32(rQueueReady, 1);
    CHECK(r32(rStatus) == (A | D | F | K));

    w32(reg, value);
    CHECK(r32(rStatus) == (A | D | F | K | kStatusNeedsReset));
    CHECK(r32(rIntStatus) == 2);  // configuration change notification
    CHECK(irqs == 1);
    CHECK(c.resets == 1);  // quiesced
    CHECK(t->stats().frozen_queue_writes == 1);
    CHECK(t->stats().needs_reset == 1);
    w32(rQueueSel, 0);
    CHECK(r32(rQueueReady) == 1);  // the write was ignored

    // Kicks are ignored until the driver resets the device.
    q0.post(0, {{kData, 4, true}});
    w32(rQueueNotify, 0);
    CHECK(c.notifies == 0);
    CHECK(t->stats().ignored_notifies == 1);
    t->drain();
    CHECK(c.drains == 0);
    // Linux adds FAILED with a read-modify-write that echoes NEEDS_RESET.
    w32(rStatus, A | D | F | K | kStatusNeedsReset | kStatusFailed);
    CHECK(r32(rStatus) == (A | D | F | K | kStatusNeedsReset | kStatusFailed));
    // Reset and start over.
    w32(rStatus, 0);
    CHECK(r32(rStatus) == 0);
    CHECK(r32(rIntStatus) == 0);
    CHECK(c.resets == 1);  // already quiesced: not reset twice
    ram.put<uint16_t>(q0.used_gpa() + 2, 0);
    q0.set_avail_idx(0);
    full_init();
    CHECK(c.activations == 2);
    q0.post(0, {{kData, 4, true}});
    w32(rQueueNotify, 0);
    CHECK(c.notifies == 1);
    CHECK(q0.used_idx() == 1);
}

TEST_CASE_FIXTURE(Rig, "a failed activation marks the device NEEDS_RESET") {
    SUBCASE("queue size not a power of two") {
        drive_to(A | D | F);
        QueueConfig bad = q0.config();
        bad.size = 12;
        program_queue(0, bad);
        w32(rStatus, A | D | F | K);
        CHECK(c.activations == 0);
        CHECK(t->stats().last_problem.find("queue 0") != std::string::npos);
        CHECK(c.resets == 0);
    }
    SUBCASE("rings outside guest RAM") {
        drive_to(A | D | F);
        QueueConfig bad = q0.config();
        bad.used = kRamGpa + kRamSize;
        program_queue(0, bad);
        w32(rStatus, A | D | F | K);
        CHECK(c.activations == 0);
    }
    SUBCASE("QueueNum above 65535") {
        drive_to(A | D | F);
        program_queue(0, q0.config(), false);
        w32(rQueueNum, 0x10000);
        w32(rQueueReady, 1);
        w32(rStatus, A | D | F | K);
        CHECK(c.activations == 0);
    }
    SUBCASE("the device refuses") {
        c.fail_activate = true;
        drive_to(A | D | F);
        program_queue(0, q0.config());
        w32(rStatus, A | D | F | K);
        CHECK(c.activations == 1);
        CHECK(c.resets == 1);  // its partial state is dropped
        CHECK(t->stats().last_problem.find("refuses to start") != std::string::npos);
    }
    CHECK(r32(rStatus) == (A | D | F | K | kStatusNeedsReset));
    CHECK(r32(rIntStatus) == 2);
    CHECK(irqs == 1);
    t->notify(0);
    CHECK(c.notifies == 0);
}

TEST_CASE_FIXTURE(Rig, "an error from the device's queue handler marks NEEDS_RESET") {
    full_init();
    SUBCASE("device error") {
        c.fail_notify = true;
        t->notify(0);
    }
    SUBCASE("a descriptor loop posted by the guest") {
        q0.set_desc(0, kData, 4, kNext | kWrite, 1);
        q0.set_desc(1, kData, 4, kNext | kWrite, 0);
        q0.publish(0);
        t->notify(0);
        CHECK(t->stats().last_problem.find("loop") != std::string::npos);
    }
    CHECK(c.notifies == 1);
    CHECK((r32(rStatus) & kStatusNeedsReset) != 0);
    CHECK(r32(rIntStatus) == 2);
    CHECK(c.resets == 1);
    t->notify(0);
    CHECK(c.notifies == 1);
}

TEST_CASE_FIXTURE(Rig, "kicks are ignored unless the device is live and the queue active") {
    t->notify(0);  // before anything
    drive_to(A | D | F);
    program_queue(0, q0.config());
    w32(rQueueNotify, 0);  // before DRIVER_OK
    CHECK(c.notifies == 0);
    w32(rStatus, A | D | F | K);
    t->notify(1);  // queue 1 was never readied
    t->notify(2);  // no such queue
    t->notify(0xffffffffu);
    CHECK(c.notifies == 0);
    CHECK(t->stats().ignored_notifies == 5);
    t->notify(0);
    CHECK(c.notifies == 1);
}

TEST_CASE_FIXTURE(Rig, "a reset in the middle of initialisation or operation") {
    SUBCASE("after FEATURES_OK with a queue programmed") {
        drive_to(A | D | F);
        program_queue(0, q0.config());
        w32(rStatus, 0);
        CHECK(c.resets == 0);  // never activated
    }
    SUBCASE("while live, with an interrupt pending") {
        full_init();
        q0.post(0, {{kData, 4, true}});
        t->notify(0);
        REQUIRE(r32(rIntStatus) == 1);
        w32(rStatus, 0);
        CHECK(c.resets == 1);
        // A late signal from the device is dropped.
        c.irq->signal_used();
        CHECK(irqs == 1);
    }
    CHECK(r32(rStatus) == 0);
    CHECK(r32(rIntStatus) == 0);
    w32(rQueueSel, 0);
    CHECK(r32(rQueueReady) == 0);
    // Features were forgotten: FEATURES_OK without writing them is refused.
    w32(rStatus, A);
    w32(rStatus, A | D);
    w32(rStatus, A | D | F);
    CHECK(r32(rStatus) == (A | D));
    // A complete second initialisation works.
    ram.put<uint16_t>(q0.used_gpa() + 2, 0);
    q0.set_avail_idx(0);
    full_init();
    q0.post(3, {{kData, 4, true}});
    t->notify(0);
    CHECK(q0.used_idx() == 1);
    CHECK(q0.used_elem(0).first == 3);
}

TEST_CASE_FIXTURE(Rig, "InterruptStatus and InterruptACK") {
    full_init();
    Interrupt& irq = *c.irq;
    irq.signal_used();
    irq.signal_config();
    CHECK(r32(rIntStatus) == 3);
    CHECK(r32(rConfigGen) == 1);
    CHECK(irqs == 2);
    w32(rIntAck, 2);
    CHECK(r32(rIntStatus) == 1);
    w32(rIntAck, 0xfffffffc);  // undefined bits: no effect
    CHECK(r32(rIntStatus) == 1);
    w32(rIntAck, 1);
    CHECK(r32(rIntStatus) == 0);

    // A device thread raising while a vCPU acknowledges: no event is lost.
    constexpr int kSignals = 100000;
    std::atomic<bool> done{false};
    std::thread device([&] {
        for (int i = 0; i < kSignals; ++i) irq.signal_used();
        done = true;
    });
    int acks = 0;
    while (!done) {
        if (uint32_t s = r32(rIntStatus)) {
            w32(rIntAck, s);
            ++acks;
        }
    }
    device.join();
    CHECK(irqs == 2 + kSignals);
    w32(rIntAck, r32(rIntStatus));
    CHECK(r32(rIntStatus) == 0);
    irq.signal_used();
    CHECK(r32(rIntStatus) == 1);
    MESSAGE("acknowledged " << acks << " times during " << kSignals << " signals");

    // Both registers work while a device thread holds the transport's mutex (serving a long
    // request): the vCPU's interrupt handler never waits for it. A lock-taking read would
    // deadlock here, since this thread holds the mutex.
    std::lock_guard busy(t->mutex());
    irq.signal_used();
    CHECK(r32(rIntStatus) == 1);
    w32(rIntAck, 1);
    CHECK(r32(rIntStatus) == 0);
}

TEST_CASE_FIXTURE(Rig, "destroying the transport stops a live device first") {
    full_init();
    CHECK(c.resets == 0);
    t.reset();
    CHECK(c.resets == 1);
}

}  // namespace
}  // namespace krunlet::virtio::test
