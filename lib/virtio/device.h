// The interface between a virtio device and its transport (virtio-mmio).
//
// A device is one file that fills in these hooks (kvmtool's shape); the
// transport owns the queues, the status state machine and the interrupt.
//
// Threads and locking: the transport holds its mutex while it calls any hook
// below. vCPU threads call read_config/write_config/activate/reset (MMIO
// exits); the event loop thread calls queue_notify (ioeventfd), or the
// device's own queue thread when it asks for one (own_queue_thread()).
// Handlers a device registers with DeviceEnv::watch() run on the event loop
// thread with the same mutex held, so a device never needs a lock of its own.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "virtio/queue.h"

namespace krunlet::virtio {

// virtio 1.2 §5: device IDs.
enum DeviceType : uint32_t {
    kDeviceNet = 1,
    kDeviceConsole = 3,
    kDeviceRng = 4,
    kDeviceBalloon = 5,
    kDeviceVsock = 19,
    kDeviceFs = 26,
};

// virtio 1.2 §6: reserved feature bits the transport handles.
inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;
inline constexpr uint64_t kFeatureEventIdx = 1ull << 29;
inline constexpr uint64_t kFeatureIndirectDesc = 1ull << 28;

// Raises the device's interrupt line (an irqfd in the VMM, a counter in tests).
class IrqLine {
public:
    virtual ~IrqLine() = default;
    virtual void trigger() = 0;
};

// What a device gets at DRIVER_OK.
class Interrupt {
public:
    virtual ~Interrupt() = default;
    // Set InterruptStatus bit 0 and raise the line (virtio 1.2 §4.2.2).
    virtual void signal_used() = 0;
    // Set InterruptStatus bit 1 (configuration change) and raise the line.
    virtual void signal_config() = 0;
};

struct ActivateArgs {
    const GuestMemory& mem;
    std::span<Queue> queues;    // live and validated; valid until reset()
    uint64_t driver_features;   // what the driver accepted
    Interrupt& irq;
};

// Host-side event sources for a device (stdin, sockets, timers).
class DeviceEnv {
public:
    virtual ~DeviceEnv() = default;
    // Call `handler(epoll events)` on the event loop thread, with the
    // transport's mutex held, whenever `fd` is ready for `events`.
    virtual Result<void> watch(int fd, uint32_t events, std::function<void(uint32_t)> handler) = 0;
    virtual void unwatch(int fd) = 0;
};

class Device {
public:
    virtual ~Device() = default;
    virtual uint32_t device_type() const = 0;
    // Offered features, not counting VIRTIO_F_VERSION_1 (the transport adds it).
    virtual uint64_t device_features() const = 0;
    // One entry per queue: its maximum size.
    virtual std::span<const uint16_t> queue_max_sizes() const = 0;
    // Device configuration space (virtio 1.2 §4.2.2, offset 0x100 onwards).
    virtual void read_config(uint32_t offset, std::span<uint8_t> out) const {
        (void)offset;
        for (auto& b : out) b = 0;
    }
    virtual void write_config(uint32_t offset, std::span<const uint8_t> in) {
        (void)offset;
        (void)in;
    }
    // The driver set DRIVER_OK. An error marks the device NEEDS_RESET.
    virtual Result<void> activate(const ActivateArgs& args) = 0;
    // The driver kicked queue `index`. Return an error (e.g. a QueueError)
    // to have the transport mark the device NEEDS_RESET.
    virtual Result<void> queue_notify(uint16_t index) = 0;
    // The driver wrote 0 to Status: drop queues and in-flight state.
    virtual void reset() = 0;
    // The VM is stopping: finish work the guest has already handed over
    // (e.g. console bytes still in the TX queue) so nothing is lost.
    virtual void drain() {}
    // Serve queue notifications on a thread of this device's own that blocks
    // in read() on one ioeventfd shared by all its queues, instead of on the
    // shared event loop. For devices whose requests do blocking host I/O (the
    // file server): a slow fsync then stalls no other device, and a request
    // costs one wake-up syscall instead of epoll_wait plus read.
    virtual bool own_queue_thread() const { return false; }
};

}  // namespace krunlet::virtio
