// virtio-mmio transport, version 2 (virtio 1.2 §4.2.2, §4.2.3).
//
// Policy for a driver that breaks the protocol (decided here, tested in
// tests/unit/virtio/mmio_test.cpp):
// - Status writes outside the transition table are ignored: Status reads back
//   unchanged, so the driver can see its write did not take, exactly as when
//   FEATURES_OK is refused. They are counted in stats().
// - Queue fields of a ready queue are frozen before DRIVER_OK: writes are
//   ignored and counted (QueueReady=0 stays allowed: it is how a driver stops
//   using a queue, §4.2.2.2). Once DRIVER_OK is set every queue field is
//   frozen; a write that would change one is ignored, counted, and marks the
//   device DEVICE_NEEDS_RESET, because the driver now believes in a queue
//   layout the device is not using.
// - NEEDS_RESET (a live-queue rewrite, a failed activation, or an error from
//   the device's queue_notify) raises a configuration-change interrupt and
//   quiesces the device (Device::reset()), so nothing guest-controlled is
//   processed until the driver resets the device by writing 0 to Status.
// - Register accesses that are not 32 bits wide and aligned, reads of
//   write-only registers and writes to read-only or unknown ones read as 0 /
//   are ignored, and are counted.
#include "virtio/mmio.h"

#include <linux/virtio_mmio.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace krunlet::virtio {

namespace {

// Register offsets (virtio 1.2 §4.2.2, table "MMIO Device Register Layout").
constexpr uint64_t kMagicValue = VIRTIO_MMIO_MAGIC_VALUE;
constexpr uint64_t kVersion = VIRTIO_MMIO_VERSION;
constexpr uint64_t kDeviceId = VIRTIO_MMIO_DEVICE_ID;
constexpr uint64_t kVendorIdReg = VIRTIO_MMIO_VENDOR_ID;
constexpr uint64_t kDeviceFeatures = VIRTIO_MMIO_DEVICE_FEATURES;
constexpr uint64_t kDeviceFeaturesSel = VIRTIO_MMIO_DEVICE_FEATURES_SEL;
constexpr uint64_t kDriverFeatures = VIRTIO_MMIO_DRIVER_FEATURES;
constexpr uint64_t kDriverFeaturesSel = VIRTIO_MMIO_DRIVER_FEATURES_SEL;
constexpr uint64_t kQueueSel = VIRTIO_MMIO_QUEUE_SEL;
constexpr uint64_t kQueueNumMax = VIRTIO_MMIO_QUEUE_NUM_MAX;
constexpr uint64_t kQueueNum = VIRTIO_MMIO_QUEUE_NUM;
constexpr uint64_t kQueueReady = VIRTIO_MMIO_QUEUE_READY;
constexpr uint64_t kQueueNotify = VIRTIO_MMIO_QUEUE_NOTIFY;
constexpr uint64_t kInterruptStatus = VIRTIO_MMIO_INTERRUPT_STATUS;
constexpr uint64_t kInterruptAck = VIRTIO_MMIO_INTERRUPT_ACK;
constexpr uint64_t kStatus = VIRTIO_MMIO_STATUS;
constexpr uint64_t kQueueDescLow = VIRTIO_MMIO_QUEUE_DESC_LOW;
constexpr uint64_t kQueueDescHigh = VIRTIO_MMIO_QUEUE_DESC_HIGH;
constexpr uint64_t kQueueDriverLow = VIRTIO_MMIO_QUEUE_AVAIL_LOW;
constexpr uint64_t kQueueDriverHigh = VIRTIO_MMIO_QUEUE_AVAIL_HIGH;
constexpr uint64_t kQueueDeviceLow = VIRTIO_MMIO_QUEUE_USED_LOW;
constexpr uint64_t kQueueDeviceHigh = VIRTIO_MMIO_QUEUE_USED_HIGH;
constexpr uint64_t kShmSel = VIRTIO_MMIO_SHM_SEL;
constexpr uint64_t kShmLenLow = VIRTIO_MMIO_SHM_LEN_LOW;
constexpr uint64_t kShmLenHigh = VIRTIO_MMIO_SHM_LEN_HIGH;
constexpr uint64_t kShmBaseLow = VIRTIO_MMIO_SHM_BASE_LOW;
constexpr uint64_t kShmBaseHigh = VIRTIO_MMIO_SHM_BASE_HIGH;
constexpr uint64_t kQueueReset = 0x0c0;  // virtio 1.2 §4.2.2; newer than the 6.1 uapi header
constexpr uint64_t kConfigGeneration = VIRTIO_MMIO_CONFIG_GENERATION;
constexpr uint64_t kConfigSpace = VIRTIO_MMIO_CONFIG;

constexpr uint32_t kMagic = 0x74726976;  // "virt"
constexpr uint32_t kMmioVersion = 2;     // modern; legacy version 1 is not offered

static_assert(MmioTransport::kQueueNotifyOffset == kQueueNotify);

// InterruptStatus bits (§4.2.2).
constexpr uint32_t kIntUsedBuffer = 1;
constexpr uint32_t kIntConfigChange = 2;

// Bits 24..41 belong to the transport and ring, and 42..49 are reserved
// (§6); devices own 0..23 and 50..63. The queue implements only the three
// below: a device offering any other bit of that range (packed rings,
// RING_RESET, NOTIFICATION_DATA, ...) would promise what nobody implements,
// so the transport hides it.
constexpr uint64_t kTransportFeatureRange = ((1ull << 50) - 1) & ~((1ull << 24) - 1);
constexpr uint64_t kTransportFeaturesSupported = kFeatureIndirectDesc | kFeatureEventIdx | kFeatureVersion1;

// The status state machine (§3.1.1 "Device Initialization"), on the bits the
// driver owns. Every other change except "write 0" (reset) and "add FAILED"
// is refused.
constexpr uint32_t A = kStatusAcknowledge;
constexpr uint32_t D = kStatusDriver;
constexpr uint32_t F = kStatusFeaturesOk;
constexpr uint32_t K = kStatusDriverOk;
struct Transition {
    uint32_t from;
    uint32_t to;
};
constexpr Transition kValidTransitions[] = {
    {0, A},                  // the guest noticed the device
    {A, A | D},              // ... and has a driver for it
    {A | D, A | D | F},      // feature negotiation done (checked below)
    {A | D | F, A | D | F | K},  // queues set up: the device goes live
};
constexpr uint32_t kDriverStatusBits = A | D | F | K | kStatusFailed;

bool is_valid_transition(uint32_t from, uint32_t to) {
    return std::any_of(std::begin(kValidTransitions), std::end(kValidTransitions),
                       [&](const Transition& t) { return t.from == from && t.to == to; });
}

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

uint32_t load_le32(std::span<const uint8_t> d) {
    return uint32_t{d[0]} | uint32_t{d[1]} << 8 | uint32_t{d[2]} << 16 | uint32_t{d[3]} << 24;
}
void store_le32(std::span<uint8_t> d, uint32_t v) {
    for (size_t i = 0; i < 4; ++i) d[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

// InterruptStatus lives in an atomic: a device may raise an interrupt from its
// own thread while a vCPU acknowledges another one.
class MmioTransport::InterruptImpl final : public Interrupt {
public:
    InterruptImpl(IrqLine* line, std::atomic<uint32_t>& generation) : line_(line), generation_(generation) {}

    void signal_used() override {
        // Before DRIVER_OK and after a reset or NEEDS_RESET the device must
        // not notify (§2.1.2, §3.1.1); late signals from a device are dropped.
        if (enabled_.load(std::memory_order_acquire)) raise(kIntUsedBuffer);
    }
    void signal_config() override {
        // Whatever the state, the driver must see a new generation.
        generation_.fetch_add(1, std::memory_order_acq_rel);
        if (enabled_.load(std::memory_order_acquire)) raise(kIntConfigChange);
    }

    void raise(uint32_t bits) {
        status_.fetch_or(bits, std::memory_order_acq_rel);
        if (line_ != nullptr) line_->trigger();
    }
    uint32_t status() const { return status_.load(std::memory_order_acquire); }
    void ack(uint32_t bits) { status_.fetch_and(~bits, std::memory_order_acq_rel); }
    void clear() { status_.store(0, std::memory_order_release); }
    void set_enabled(bool on) { enabled_.store(on, std::memory_order_release); }

private:
    IrqLine* line_;
    std::atomic<uint32_t>& generation_;
    std::atomic<uint32_t> status_{0};
    std::atomic<bool> enabled_{false};
};

MmioTransport::MmioTransport(std::unique_ptr<Device> device, const GuestMemory& mem, std::unique_ptr<IrqLine> irq)
    : device_(std::move(device)), mem_(mem), irq_line_(std::move(irq)) {
    interrupt_ = std::make_unique<InterruptImpl>(irq_line_.get(), config_generation_);
    const auto sizes = device_->queue_max_sizes();
    queues_.reserve(sizes.size());
    for (uint16_t max : sizes) queues_.emplace_back(max);
}

MmioTransport::~MmioTransport() {
    {
        std::lock_guard lock(mu_);
        interrupt_->set_enabled(false);
        if (device_activated_) device_->reset();
        device_activated_ = device_live_ = false;
    }
    // The device may hold references to the queues and the interrupt: end it
    // first (outside the lock, in case its destructor joins a thread that
    // takes the lock).
    device_.reset();
}

uint32_t MmioTransport::status() const {
    std::lock_guard lock(mu_);
    return status_;
}

MmioTransport::Stats MmioTransport::stats() const {
    std::lock_guard lock(mu_);
    return stats_;
}

void MmioTransport::note(uint64_t& counter, std::string what) {
    ++counter;
    stats_.last_problem = std::move(what);
}

uint64_t MmioTransport::offered_features() const {
    const uint64_t dev = device_->device_features();
    return (dev & ~kTransportFeatureRange) | (dev & kTransportFeaturesSupported) | kFeatureVersion1;
}

// ---- register access --------------------------------------------------------

void MmioTransport::read(uint64_t offset, std::span<uint8_t> data) {
    std::fill(data.begin(), data.end(), uint8_t{0});
    // The guest's interrupt handler reads InterruptStatus (and acks it, below) on every
    // interrupt. It is an atomic, so the vCPU does not wait for the mutex, which a device
    // serving a long request on its own thread holds meanwhile (Device::own_queue_thread).
    if (offset == kInterruptStatus && data.size() == 4) {
        store_le32(data, interrupt_->status());
        return;
    }
    std::lock_guard lock(mu_);
    if (offset >= kConfigSpace) {
        // Device configuration space: any width (§4.2.2.2 asks the driver to
        // match the field width; the device decides what a read returns).
        if (offset > kWindowSize || data.size() > kWindowSize - offset) {
            note(stats_.bad_accesses, "config read past the MMIO window at " + hex(offset));
            return;
        }
        device_->read_config(static_cast<uint32_t>(offset - kConfigSpace), data);
        return;
    }
    if (data.size() != 4 || offset % 4 != 0) {
        note(stats_.bad_accesses, "register read of " + std::to_string(data.size()) + " bytes at " + hex(offset) +
                                      " (only aligned 32-bit accesses are allowed)");
        return;
    }
    store_le32(data, read_register(offset));
}

void MmioTransport::write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset == kInterruptAck && data.size() == 4) {  // lock-free, as InterruptStatus in read()
        interrupt_->ack(load_le32(data));  // guest-controlled: any bits; only set ones clear
        return;
    }
    std::lock_guard lock(mu_);
    if (offset >= kConfigSpace) {
        if (offset > kWindowSize || data.size() > kWindowSize - offset) {
            note(stats_.bad_accesses, "config write past the MMIO window at " + hex(offset));
            return;
        }
        device_->write_config(static_cast<uint32_t>(offset - kConfigSpace), data);
        return;
    }
    if (data.size() != 4 || offset % 4 != 0) {
        note(stats_.bad_accesses, "register write of " + std::to_string(data.size()) + " bytes at " +
                                      hex(offset) + " (only aligned 32-bit accesses are allowed)");
        return;
    }
    write_register(offset, load_le32(data));  // guest-controlled
}

uint32_t MmioTransport::read_register(uint64_t offset) {
    const bool sel_ok = queue_sel_ < queues_.size();
    switch (offset) {
        case kMagicValue: return kMagic;
        case kVersion: return kMmioVersion;
        case kDeviceId: return device_->device_type();
        case kVendorIdReg: return kVendorId;
        case kDeviceFeatures: {
            const uint64_t f = offered_features();
            if (device_features_sel_ == 0) return static_cast<uint32_t>(f);
            if (device_features_sel_ == 1) return static_cast<uint32_t>(f >> 32);
            return 0;  // no features beyond bit 63
        }
        case kQueueNumMax: return sel_ok ? queues_[queue_sel_].max_size() : 0;  // 0: no such queue
        case kQueueReady: return sel_ok && queues_[queue_sel_].config().ready ? 1 : 0;
        case kInterruptStatus: return interrupt_->status();
        case kStatus: return status_;
        // Shared memory regions: the device has none, and a region that does
        // not exist reads as length and base -1 (§4.2.2).
        case kShmLenLow:
        case kShmLenHigh:
        case kShmBaseLow:
        case kShmBaseHigh: return 0xffffffffu;
        case kQueueReset: return 0;  // VIRTIO_F_RING_RESET is never offered
        case kConfigGeneration: return config_generation_.load(std::memory_order_acquire);
        default:
            note(stats_.bad_accesses, "read of write-only or unknown register " + hex(offset));
            return 0;
    }
}

void MmioTransport::write_register(uint64_t offset, uint32_t value) {
    switch (offset) {
        case kDeviceFeaturesSel: device_features_sel_ = value; return;
        case kDriverFeaturesSel: driver_features_sel_ = value; return;
        case kDriverFeatures: {
            // Features are fixed once FEATURES_OK is set (§3.1.1 step 5).
            if (status_ & (kStatusFeaturesOk | kStatusDriverOk)) {
                note(stats_.late_feature_writes, "DriverFeatures written after FEATURES_OK; ignored");
                return;
            }
            if (driver_features_sel_ > 1) {
                if (value != 0) note(stats_.bad_accesses, "DriverFeatures set bits beyond 63; ignored");
                return;
            }
            const unsigned shift = 32 * driver_features_sel_;
            driver_features_ = (driver_features_ & ~(0xffffffffull << shift)) | (uint64_t{value} << shift);
            return;
        }
        case kQueueSel: queue_sel_ = value; return;
        case kQueueNum:
        case kQueueReady:
        case kQueueDescLow:
        case kQueueDescHigh:
        case kQueueDriverLow:
        case kQueueDriverHigh:
        case kQueueDeviceLow:
        case kQueueDeviceHigh: write_queue_field(offset, value); return;
        case kQueueNotify:
            // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index.
            notify_locked(value);
            return;
        case kInterruptAck: interrupt_->ack(value); return;
        case kStatus: write_status(value); return;
        case kShmSel: return;  // every id names "no region"
        case kQueueReset: return;  // RING_RESET is never offered
        default:
            note(stats_.bad_accesses, "write of read-only or unknown register " + hex(offset));
            return;
    }
}

void MmioTransport::write_queue_field(uint64_t offset, uint32_t value) {
    if (queue_sel_ >= queues_.size()) {
        note(stats_.bad_accesses, "queue register " + hex(offset) + " written with QueueSel " +
                                      std::to_string(queue_sel_) + " but the device has " +
                                      std::to_string(queues_.size()) + " queues");
        return;
    }
    QueueConfig& c = queues_[queue_sel_].config();
    const std::string which = "queue " + std::to_string(queue_sel_);

    if (status_ & kStatusDriverOk) {
        // Frozen: the device may be using this queue right now. Rewriting
        // QueueReady with its current value changes nothing and is harmless.
        if (offset == kQueueReady && value == (c.ready ? 1u : 0u)) return;
        note(stats_.frozen_queue_writes, which + ": register " + hex(offset) +
                                             " written after DRIVER_OK; ignored, device needs a reset");
        mark_needs_reset();
        return;
    }
    if (offset == kQueueReady) {
        if (value > 1) {
            note(stats_.bad_accesses, which + ": QueueReady written with " + std::to_string(value));
            return;
        }
        c.ready = value == 1;
        return;
    }
    if (c.ready) {
        // §4.2.2.2: the driver must not touch these while QueueReady is 1.
        note(stats_.frozen_queue_writes, which + ": register " + hex(offset) + " written while the queue is ready");
        return;
    }
    auto set_low = [&](uint64_t& field) { field = (field & ~0xffffffffull) | value; };
    auto set_high = [&](uint64_t& field) { field = (field & 0xffffffffull) | (uint64_t{value} << 32); };
    switch (offset) {
        case kQueueNum:
            if (value > 0xffff) {
                // Remember an invalid size so that DRIVER_OK fails loudly.
                note(stats_.bad_accesses, which + ": QueueNum " + std::to_string(value) + " is too large");
                c.size = 0;
            } else {
                c.size = static_cast<uint16_t>(value);
            }
            return;
        case kQueueDescLow: set_low(c.desc); return;
        case kQueueDescHigh: set_high(c.desc); return;
        case kQueueDriverLow: set_low(c.avail); return;
        case kQueueDriverHigh: set_high(c.avail); return;
        case kQueueDeviceLow: set_low(c.used); return;
        case kQueueDeviceHigh: set_high(c.used); return;
        default: return;
    }
}

// ---- status state machine ---------------------------------------------------

void MmioTransport::write_status(uint32_t value) {
    if (value == 0) {
        reset_locked();
        return;
    }
    // NEEDS_RESET belongs to the device. Drivers update Status by
    // read-modify-write, so it comes back in their writes: it means nothing
    // there and is neither set nor cleared by them.
    const uint32_t device_bits = status_ & kStatusNeedsReset;
    const uint32_t cur = status_ & ~kStatusNeedsReset;
    const uint32_t next = value & ~kStatusNeedsReset;
    if (next == cur) return;

    auto refuse = [&](const char* why) {
        note(stats_.invalid_status_writes, "Status " + hex(cur) + " -> " + hex(next) + " refused: " + why);
    };
    if (next & ~kDriverStatusBits) return refuse("unknown status bits");
    // The driver may give up at any time (§2.1.1); FAILED leaves only by reset.
    if (next == (cur | kStatusFailed)) {
        status_ = next | device_bits;
        return;
    }
    if (cur & kStatusFailed) return refuse("FAILED is set; write 0 to reset the device first");
    if (!is_valid_transition(cur, next))
        return refuse("not the next step of ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK (virtio 1.2 §3.1.1)");

    if ((next & kStatusFeaturesOk) && !(cur & kStatusFeaturesOk)) {
        const uint64_t unoffered = driver_features_ & ~offered_features();
        if ((driver_features_ & kFeatureVersion1) == 0 || unoffered != 0) {
            // Refused: FEATURES_OK stays clear on read-back (§2.2.2), and the
            // driver is expected to give up with FAILED.
            std::string why = (driver_features_ & kFeatureVersion1) == 0
                                  ? "the driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported)"
                                  : "the driver accepted features the device did not offer (" + hex(unoffered) + ")";
            note(stats_.refused_features_ok, "FEATURES_OK refused: " + why);
            return;
        }
    }
    status_ = next | device_bits;
    if ((next & kStatusDriverOk) && !(cur & kStatusDriverOk)) activate_locked();
}

void MmioTransport::activate_locked() {
    const bool event_idx = (driver_features_ & kFeatureEventIdx) != 0;
    for (size_t i = 0; i < queues_.size(); ++i) {
        Queue& q = queues_[i];
        if (!q.config().ready) continue;  // the device sees it as inactive
        if (auto r = q.activate(mem_, event_idx); !r) {
            stats_.last_problem = "queue " + std::to_string(i) + ": " + r.error().message;
            mark_needs_reset();
            return;
        }
    }
    device_activated_ = true;
    interrupt_->set_enabled(true);
    auto r = device_->activate(ActivateArgs{mem_, std::span<Queue>(queues_), driver_features_, *interrupt_});
    if (!r) {
        stats_.last_problem = "device activation failed: " + r.error().message;
        mark_needs_reset();
        return;
    }
    device_live_ = true;
}

void MmioTransport::mark_needs_reset() {
    if (status_ & kStatusNeedsReset) return;
    ++stats_.needs_reset;
    status_ |= kStatusNeedsReset;
    // Quiesce: no more guest-controlled work until the driver resets us.
    interrupt_->set_enabled(false);
    if (device_activated_) device_->reset();
    device_activated_ = device_live_ = false;
    // §2.1.2: setting DEVICE_NEEDS_RESET comes with a configuration change
    // notification (when the driver is far enough along to take one).
    if (status_ & kStatusDriverOk) interrupt_->raise(kIntConfigChange);
}

void MmioTransport::reset_locked() {
    interrupt_->set_enabled(false);
    if (device_activated_) device_->reset();
    device_activated_ = device_live_ = false;
    for (Queue& q : queues_) q.reset();  // also clears every QueueReady (§4.2.2.1)
    interrupt_->clear();                 // §4.2.2.1: InterruptStatus is cleared on reset
    status_ = 0;
    device_features_sel_ = 0;
    driver_features_sel_ = 0;
    driver_features_ = 0;
    queue_sel_ = 0;
    // config_generation_ keeps counting: it only has to change, never reset.
}

// ---- notifications ----------------------------------------------------------

void MmioTransport::notify(uint32_t index) {
    std::lock_guard lock(mu_);
    notify_locked(index);
}

void MmioTransport::notify_locked(uint32_t index) {
    if (!device_live_) {
        note(stats_.ignored_notifies, "queue " + std::to_string(index) + " kicked while the device is not live");
        return;
    }
    if (index >= queues_.size() || !queues_[index].active()) {
        note(stats_.ignored_notifies, "kick for queue " + std::to_string(index) + ", which is not active");
        return;
    }
    if (auto r = device_->queue_notify(static_cast<uint16_t>(index)); !r) {
        stats_.last_problem = "queue " + std::to_string(index) + ": " + r.error().message;
        mark_needs_reset();
    }
}

void MmioTransport::drain() {
    std::lock_guard lock(mu_);
    if (device_live_) device_->drain();
}

}  // namespace krunlet::virtio
