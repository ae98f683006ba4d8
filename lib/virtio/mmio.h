// virtio-mmio transport, version 2 (virtio 1.2 §4.2).
//
// Each device gets a 4 KiB window. The driver's writes to Status are checked
// against a table of valid transitions; queue fields are frozen once the
// device is live (the lesson of CVE-2026-5747). A driver that breaks the
// protocol gets DEVICE_NEEDS_RESET, never a host abort.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "memory/guest_memory.h"
#include "virtio/device.h"
#include "virtio/queue.h"

namespace krunlet::virtio {

// Device status bits (virtio 1.2 §2.1).
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusNeedsReset = 64;
inline constexpr uint32_t kStatusFailed = 128;

class MmioTransport {
public:
    static constexpr uint64_t kWindowSize = 0x1000;
    static constexpr uint64_t kQueueNotifyOffset = 0x50;
    // VendorID register: "KRUN" read as a big-endian ASCII word. Linux
    // ignores it; it only has to be stable.
    static constexpr uint32_t kVendorId = 0x4b52554e;

    // What the guest driver did wrong (for logs and tests). Every refused or
    // ignored access is counted; last_problem describes the latest one.
    struct Stats {
        uint64_t invalid_status_writes = 0;  // not in the transition table: ignored
        uint64_t refused_features_ok = 0;    // FEATURES_OK refused (bad feature set)
        uint64_t frozen_queue_writes = 0;    // queue field written while ready/live
        uint64_t late_feature_writes = 0;    // DriverFeatures after FEATURES_OK
        uint64_t bad_accesses = 0;           // wrong width/alignment, unknown or write-only register
        uint64_t ignored_notifies = 0;       // not live, bad index, or inactive queue
        uint64_t needs_reset = 0;            // times DEVICE_NEEDS_RESET was raised
        std::string last_problem;
    };

    MmioTransport(std::unique_ptr<Device> device, const GuestMemory& mem, std::unique_ptr<IrqLine> irq);
    ~MmioTransport();
    MmioTransport(const MmioTransport&) = delete;
    MmioTransport& operator=(const MmioTransport&) = delete;

    // A vCPU's access at `offset` inside the window (KVM_EXIT_MMIO). Accesses
    // of a wrong width or to unknown registers read as 0 / are ignored.
    void read(uint64_t offset, std::span<uint8_t> data);
    void write(uint64_t offset, std::span<const uint8_t> data);

    // The driver kicked queue `index` (its ioeventfd fired, or a QueueNotify
    // write reached user space).
    void notify(uint32_t index);

    // The VM is stopping: let the device finish what the guest handed over.
    void drain();

    std::mutex& mutex() { return mu_; }
    Device& device() { return *device_; }
    size_t num_queues() const { return queues_.size(); }
    uint32_t status() const;
    Stats stats() const;

private:
    class InterruptImpl;
    void write_status(uint32_t value);
    void mark_needs_reset();
    void reset_locked();
    uint32_t read_register(uint64_t offset);
    void write_register(uint64_t offset, uint32_t value);
    void write_queue_field(uint64_t offset, uint32_t value);
    void notify_locked(uint32_t index);
    void activate_locked();
    void note(uint64_t& counter, std::string what);
    uint64_t offered_features() const;

    mutable std::mutex mu_;
    std::unique_ptr<Device> device_;
    const GuestMemory& mem_;
    std::unique_ptr<IrqLine> irq_line_;
    std::unique_ptr<InterruptImpl> interrupt_;
    std::vector<Queue> queues_;
    uint32_t status_ = 0;
    uint32_t device_features_sel_ = 0;
    uint32_t driver_features_sel_ = 0;
    uint64_t driver_features_ = 0;
    uint32_t queue_sel_ = 0;
    // Bumped by Interrupt::signal_config(), which a device may call from any
    // of its threads.
    std::atomic<uint32_t> config_generation_{0};
    bool device_activated_ = false;  // Device::activate() called since the last reset
    bool device_live_ = false;       // ... and it succeeded, and no NEEDS_RESET since
    Stats stats_;
};

}  // namespace krunlet::virtio
