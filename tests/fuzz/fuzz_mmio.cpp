// fuzz_mmio: the virtio-mmio transport (lib/virtio/mmio.h) driven by a
// guest whose register accesses come from the fuzzer.
//
// Input: a program of register reads and writes (any offset in and past the
// 4 KiB window, any width), queue notifications, whole-device bring-ups
// (the §3.1.1 sequence with fuzzer-chosen features and queue sizes), chains
// posted on the two queues, raw guest-RAM writes, drains, and knobs that
// make the device fail activation or a notification.
//
// Behind the transport sits a small device with two queues that completes
// every chain it is kicked for. It checks the transport's side of the
// contract (virtio 1.2 §2.1, §3.1.1, §4.2):
//   - activate() comes only after a reset (or at first), with VERSION_1 and
//     only offered features, and with every live queue validly configured;
//   - queue_notify() reaches the device only while it is live, for a live
//     queue whose configuration has not changed since activation;
//   - reset() only follows an activate(); config accesses stay in the window.
// Register reads check constants, that Status is always a state the
// transition table can reach, that hidden feature bits stay hidden, and
// that InterruptStatus holds only the two defined bits.
#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "fuzz_util.h"
#include "mmio_regs.h"
#include "mock_driver.h"
#include "virtio/mmio.h"

using namespace krunlet;
using namespace krunlet::virtio;
using krunlet::fuzz::Input;
using krunlet::virtio::test::GuardedRam;
using krunlet::virtio::test::MockDriver;
using krunlet::virtio::test::Seg;

namespace {

constexpr uint64_t kRamGpa = 0x100000;
constexpr size_t kRamSize = 0x10000;
constexpr uint64_t kQ1Base = kRamGpa + 0x1000;
constexpr uint64_t kData = kRamGpa + 0x8000;
constexpr size_t kMaxOps = 512;

// Registers (§4.2.2).
using namespace mmio_regs;
constexpr std::array<uint64_t, 30> kRegisters = {
    rMagic,     rVersion,    rDeviceId,  rVendor,     rDevFeatures, rDevFeaturesSel, rDrvFeatures, rDrvFeaturesSel,
    rQueueSel,  rQueueNumMax, rQueueNum, rQueueReady, rQueueNotify, rIntStatus,      rIntAck,      rStatus,
    rDescLow,   rDescHigh,   rDriverLow, rDriverHigh, rDeviceLow,   rDeviceHigh,     rShmSel,      rShmLenLow,
    rShmBaseHigh, rQueueReset, rConfigGen, rConfig,   rConfig + 4,  0x0fe0};

constexpr uint32_t A = kStatusAcknowledge, D = kStatusDriver, F = kStatusFeaturesOk, K = kStatusDriverOk;
constexpr uint64_t kRingPacked = 1ull << 34;  // offered by the device, must stay hidden
constexpr uint64_t kDevFeatures = (1ull << 0) | kFeatureEventIdx | kFeatureIndirectDesc | kRingPacked | (1ull << 50);
// What the transport may show the driver: device bits outside 24..49, the
// three ring/transport bits it implements, and VERSION_1.
constexpr uint64_t kTransportRange = ((1ull << 50) - 1) & ~((1ull << 24) - 1);
constexpr uint64_t kOffered = (kDevFeatures & ~kTransportRange) | kFeatureEventIdx | kFeatureIndirectDesc |
                              kFeatureVersion1;
constexpr std::array<uint16_t, 2> kQueueMax = {16, 8};

struct Knobs {
    bool fail_activate = false;
    bool fail_notify = false;
    bool config_irq_on_notify = false;
};

// The device behind the transport: completes chains, checks the contract.
class FuzzDevice final : public Device {
public:
    explicit FuzzDevice(Knobs& k) : k_(k) {}

    uint32_t device_type() const override { return kDeviceRng; }
    uint64_t device_features() const override { return kDevFeatures; }
    std::span<const uint16_t> queue_max_sizes() const override { return kQueueMax; }

    void read_config(uint32_t offset, std::span<uint8_t> out) const override {
        FUZZ_CHECK(uint64_t{offset} + out.size() <= MmioTransport::kWindowSize - rConfig,
                   "config read past the window reached the device");
        for (size_t i = 0; i < out.size(); ++i) out[i] = offset + i < 8 ? static_cast<uint8_t>(0x40 + offset + i) : 0;
    }
    void write_config(uint32_t offset, std::span<const uint8_t> in) override {
        FUZZ_CHECK(uint64_t{offset} + in.size() <= MmioTransport::kWindowSize - rConfig,
                   "config write past the window reached the device");
    }

    Result<void> activate(const ActivateArgs& args) override {
        FUZZ_CHECK(!activated_, "activate() twice without a reset in between");
        activated_ = true;
        FUZZ_CHECK(args.queues.size() == kQueueMax.size(), "wrong number of queues");
        FUZZ_CHECK(args.driver_features & kFeatureVersion1, "activated without VERSION_1");
        FUZZ_CHECK((args.driver_features & ~kOffered) == 0, "activated with features that were not offered");
        for (size_t i = 0; i < args.queues.size(); ++i) {
            const Queue& q = args.queues[i];
            const QueueConfig& c = q.config();
            if (q.active())
                FUZZ_CHECK(c.ready && c.size != 0 && (c.size & (c.size - 1)) == 0 && c.size <= kQueueMax[i],
                           "a live queue with an invalid configuration");
            at_activate_[i] = c;
        }
        if (k_.fail_activate) return make_error(EINVAL, "fuzz device refuses to start");
        live_ = true;
        queues_ = args.queues;
        irq_ = &args.irq;
        return {};
    }

    Result<void> queue_notify(uint16_t index) override {
        FUZZ_CHECK(live_, "queue_notify() while the device is not live");
        FUZZ_CHECK(index < queues_.size() && queues_[index].active(), "queue_notify() for a queue that is not live");
        Queue& q = queues_[index];
        const QueueConfig& c = q.config();
        const QueueConfig& was = at_activate_[index];
        FUZZ_CHECK(c.size == was.size && c.desc == was.desc && c.avail == was.avail && c.used == was.used &&
                       c.ready == was.ready,
                   "a live queue's configuration changed after DRIVER_OK");
        ++notifies;
        if (k_.config_irq_on_notify) irq_->signal_config();
        bool used = false;
        for (;;) {
            auto r = q.pop();
            if (auto* e = std::get_if<QueueError>(&r)) return to_error(*e);
            if (std::holds_alternative<std::monostate>(r)) break;
            auto& chain = std::get<DescriptorChain>(r);
            uint8_t first = 0;
            chain.copy_from_readable(0, std::span(&first, 1));
            const uint8_t ok[2] = {'o', 'k'};
            size_t n = chain.copy_to_writable(0, ok);
            q.add_used(std::move(chain), static_cast<uint32_t>(n));
            used = true;
            if (first == 0xee) return make_error(EIO, "fuzz device: poisoned request");
        }
        if (used && q.needs_interrupt()) irq_->signal_used();
        if (k_.fail_notify) return make_error(EIO, "fuzz device failed");
        return {};
    }

    void reset() override {
        FUZZ_CHECK(activated_, "reset() without an activate() before it");
        activated_ = live_ = false;
        queues_ = {};
        irq_ = nullptr;
    }
    void drain() override { FUZZ_CHECK(live_, "drain() while the device is not live"); }

    int notifies = 0;

private:
    Knobs& k_;
    bool activated_ = false;  // activate() called (even if it failed) and no reset() since
    bool live_ = false;       // ... and it succeeded
    std::span<Queue> queues_;
    Interrupt* irq_ = nullptr;
    std::array<QueueConfig, 2> at_activate_{};
};

class CountingLine final : public IrqLine {
public:
    void trigger() override { ++count; }
    int count = 0;
};

uint32_t le32(const uint8_t* b) { return b[0] | b[1] << 8 | b[2] << 16 | uint32_t{b[3]} << 24; }

bool is_reachable_status(uint32_t s) {
    if (s & ~(A | D | F | K | kStatusNeedsReset | kStatusFailed)) return false;
    const uint32_t steps = s & (A | D | F | K);
    return steps == 0 || steps == A || steps == (A | D) || steps == (A | D | F) || steps == (A | D | F | K);
}

class Harness {
public:
    explicit Harness(Input& in) : in_(in) {
        std::memset(ram().host(kRamGpa), 0, kRamSize);
        auto dev = std::make_unique<FuzzDevice>(knobs_);
        auto line = std::make_unique<CountingLine>();
        t_ = std::make_unique<MmioTransport>(std::move(dev), ram().mem(), std::move(line));
        drivers_[0] = std::make_unique<MockDriver>(ram(), kQueueMax[0], kRamGpa);
        drivers_[1] = std::make_unique<MockDriver>(ram(), kQueueMax[1], kQ1Base);
    }

    void run() {
        for (size_t i = 0; i < kMaxOps && !in_.empty(); ++i) step();
        check_registers();
        t_->drain();
        t_.reset();  // the device's reset() (if live) runs here and checks itself
    }

private:
    static GuardedRam& ram() {
        static GuardedRam* r = new GuardedRam(kRamGpa, kRamSize);  // whole process; never freed on purpose
        return *r;
    }

    void write32(uint64_t off, uint32_t v) {
        uint8_t b[4] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v >> 16),
                        static_cast<uint8_t>(v >> 24)};
        t_->write(off, b);
    }
    uint32_t read32(uint64_t off) {
        uint8_t b[4];
        t_->read(off, b);
        return le32(b);
    }

    uint32_t value() {
        switch (in_.u8() % 4) {
            case 0: return in_.u8();
            case 1: return in_.u8() % 2;
            case 2: return static_cast<uint32_t>(kRamGpa + (in_.u16() & ~15u));
            default: return in_.u32();
        }
    }

    void step() {
        switch (in_.u8() % 12) {
            case 0: write32(in_.pick(kRegisters), value()); break;
            case 1: check_register(in_.pick(kRegisters)); break;
            case 2: raw_access(); break;
            case 3: t_->notify(in_.u8() < 0xf0 ? in_.u8() % 3 : in_.u32()); break;
            case 4: bring_up(); break;
            case 5: post(); break;
            case 6: {  // raw guest RAM bytes (rings included)
                uint64_t gpa = kRamGpa + in_.u16() % kRamSize;
                auto b = in_.bytes(in_.u8() % 17);
                (void)ram().mem().write(gpa, b.data(), b.size());
                break;
            }
            case 7: t_->drain(); break;
            case 8: {
                uint8_t k = in_.u8();
                knobs_.fail_activate = k & 1;
                knobs_.fail_notify = k & 2;
                knobs_.config_irq_on_notify = k & 4;
                break;
            }
            case 9: write32(rStatus, in_.u8() < 0xe0 ? in_.u8() : in_.u32()); break;
            case 10: write32(rQueueNotify, in_.u8() % 3); break;
            case 11: check_registers(); break;
        }
    }

    void raw_access() {
        uint64_t off = in_.u16() % 0x1100;
        static constexpr std::array<size_t, 8> kWidths = {4, 4, 1, 2, 8, 0, 3, 16};
        size_t w = in_.pick(kWidths);
        if (in_.u8() == 0xff) w = in_.u8();
        std::vector<uint8_t> buf(w);
        if (in_.coin()) {
            auto b = in_.bytes(w);
            std::copy(b.begin(), b.end(), buf.begin());
            t_->write(off, buf);
        } else {
            t_->read(off, buf);
            if (off >= rConfig + 8 && off < MmioTransport::kWindowSize)
                for (uint8_t v : buf) FUZZ_CHECK(v == 0, "config space past the device's 8 bytes is not 0");
        }
    }

    // The driver side of §3.1.1, with fuzzer-chosen features and sizes.
    void bring_up() {
        uint8_t how = in_.u8();
        write32(rStatus, 0);
        FUZZ_CHECK(read32(rStatus) == 0, "Status is not 0 after a reset");
        FUZZ_CHECK(read32(rIntStatus) == 0, "InterruptStatus survived a reset");
        std::memset(ram().host(kRamGpa), 0, kQ1Base + 0x1000 - kRamGpa);
        write32(rStatus, A);
        write32(rStatus, A | D);
        uint64_t feats = (how & 1) ? kOffered : (in_.u64() | kFeatureVersion1);
        if (how & 2) feats &= kOffered;
        write32(rDrvFeaturesSel, 0);
        write32(rDrvFeatures, static_cast<uint32_t>(feats));
        write32(rDrvFeaturesSel, 1);
        write32(rDrvFeatures, static_cast<uint32_t>(feats >> 32));
        write32(rStatus, A | D | F);
        const bool accepted = (read32(rStatus) & F) != 0;
        FUZZ_CHECK(accepted == ((feats & ~kOffered) == 0), "FEATURES_OK accepted/refused wrongly");
        for (uint32_t q = 0; q < 2; ++q) {
            uint16_t size = kQueueMax[q];
            if (how & 4) size = static_cast<uint16_t>(1u << (in_.u8() % 6));
            drivers_[q] = std::make_unique<MockDriver>(ram(), size, q == 0 ? kRamGpa : kQ1Base);
            if ((how & 8) && q == 1) continue;  // leave queue 1 disabled
            const MockDriver& m = *drivers_[q];
            write32(rQueueSel, q);
            FUZZ_CHECK(read32(rQueueNumMax) == kQueueMax[q], "QueueNumMax");
            write32(rQueueNum, size);
            write32(rDescLow, static_cast<uint32_t>(m.desc_gpa()));
            write32(rDescHigh, static_cast<uint32_t>(m.desc_gpa() >> 32));
            write32(rDriverLow, static_cast<uint32_t>(m.avail_gpa()));
            write32(rDriverHigh, 0);
            write32(rDeviceLow, static_cast<uint32_t>(m.used_gpa()));
            write32(rDeviceHigh, 0);
            write32(rQueueReady, 1);
        }
        if (how & 0x10) return;  // stop before DRIVER_OK
        write32(rStatus, A | D | F | K);
        check_registers();
    }

    // A chain on queue q, laid out by the mock driver in the data area.
    void post() {
        uint32_t q = in_.u8() % 2;
        MockDriver& m = *drivers_[q];
        uint16_t first = static_cast<uint16_t>(in_.u8() % m.size());
        size_t nseg = 1 + in_.u8() % 3;
        if (first + nseg > m.size()) nseg = m.size() - first;
        std::vector<Seg> segs;
        for (size_t k = 0; k < nseg; ++k) {
            uint64_t addr = kData + in_.u16() % 0x7000;
            uint32_t len = 1 + in_.u8() % 64;
            segs.push_back(Seg{addr, len, k > 0 && in_.coin()});
        }
        // Keep readable before writable so most chains are valid.
        std::stable_partition(segs.begin(), segs.end(), [](const Seg& s) { return !s.writable; });
        m.post(first, segs);
        if (in_.u8() < 0x40) (void)ram().mem().write_obj<uint8_t>(segs[0].addr, 0xee);
        if (in_.coin()) t_->notify(q);
    }

    void check_register(uint64_t off) {
        uint32_t v = read32(off);
        switch (off) {
            case rMagic: FUZZ_CHECK(v == 0x74726976, "MagicValue"); break;
            case rVersion: FUZZ_CHECK(v == 2, "Version"); break;
            case rDeviceId: FUZZ_CHECK(v == kDeviceRng, "DeviceID"); break;
            case rVendor: FUZZ_CHECK(v == MmioTransport::kVendorId, "VendorID"); break;
            case rStatus: FUZZ_CHECK(is_reachable_status(v), "Status " + std::to_string(v) + " is not reachable"); break;
            case rIntStatus: FUZZ_CHECK((v & ~3u) == 0, "InterruptStatus has undefined bits"); break;
            case rDevFeatures: {
                uint32_t lo, hi;
                write32(rDevFeaturesSel, 0);
                lo = read32(rDevFeatures);
                write32(rDevFeaturesSel, 1);
                hi = read32(rDevFeatures);
                FUZZ_CHECK((uint64_t{hi} << 32 | lo) == kOffered, "DeviceFeatures is not the filtered offer");
                break;
            }
            default: break;
        }
    }

    void check_registers() {
        for (uint64_t r : {rMagic, rVersion, rDeviceId, rVendor, rStatus, rIntStatus}) check_register(r);
    }

    Input& in_;
    Knobs knobs_;
    std::unique_ptr<MmioTransport> t_;
    std::array<std::unique_ptr<MockDriver>, 2> drivers_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    Harness h(in);
    h.run();
    return 0;
}
