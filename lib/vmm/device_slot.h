// One virtio-mmio device as the VM sees it: its 4 KiB window, its interrupt
// (an irqfd) and its queue notifications as ioeventfds, so a queue kick
// reaches a host thread without an exit to user space: one ioeventfd per
// queue on the event loop, or, for a device that asks for its own queue
// thread, one ioeventfd for all its queues that the thread blocks on.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "sandbox/seccomp.h"
#include "base/result.h"
#include "kvm/kvm.h"
#include "virtio/mmio.h"
#include "vmm/event_loop.h"

namespace krunlet {

// An IrqLine that writes an eventfd registered with KVM_IRQFD.
class EventFdIrq final : public virtio::IrqLine {
public:
    static Result<std::unique_ptr<EventFdIrq>> create(const VmFd& vm, uint32_t gsi);
    void trigger() override;
    int fd() const { return fd_.get(); }

private:
    UniqueFd fd_;
};

// The DeviceEnv a device gets: the event loop, with every handler run under
// the device's transport mutex (see virtio/device.h).
class LockedDeviceEnv final : public virtio::DeviceEnv {
public:
    explicit LockedDeviceEnv(EventLoop& loop) : loop_(loop) {}
    void bind(std::mutex* mu) { mu_ = mu; }
    Result<void> watch(int fd, uint32_t events, std::function<void(uint32_t)> handler) override;
    void unwatch(int fd) override;

private:
    EventLoop& loop_;
    std::mutex* mu_ = nullptr;
};

// The thread of a device that serves its queues itself (Device::own_queue_thread).
class QueueThread {
public:
    // Starts a thread named `name` that calls transport.notify(q) for every queue
    // each time `kick` (a blocking eventfd) is signalled. With a `filter` (which
    // must outlive the thread) the thread installs it at its first kick, before
    // it reads a queue: not earlier, because krun_setuid's privilege drop, after
    // the VM is built, makes every thread call setuid (docs/security.md).
    QueueThread(std::string name, virtio::MmioTransport& transport, size_t nqueues, UniqueFd kick,
                const sandbox::SeccompFilter* filter = nullptr);
    ~QueueThread();  // stops and joins
    QueueThread(const QueueThread&) = delete;
    QueueThread& operator=(const QueueThread&) = delete;

private:
    void run(virtio::MmioTransport& transport, size_t nqueues);
    UniqueFd kick_;
    const sandbox::SeccompFilter* filter_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;  // last: started once the members it uses exist
};

class DeviceSlot {
public:
    // Creates the transport around `device`, wires its interrupt to `gsi` and
    // its queue notifications to ioeventfds on `loop` (or its queue thread,
    // which installs `queue_thread_filter`).
    static Result<std::unique_ptr<DeviceSlot>> create(const VmFd& vm, EventLoop& loop, const GuestMemory& mem,
                                                      std::unique_ptr<LockedDeviceEnv> env,
                                                      std::unique_ptr<virtio::Device> device, uint64_t base,
                                                      uint32_t gsi,
                                                      const sandbox::SeccompFilter* queue_thread_filter = nullptr);
    ~DeviceSlot();

    uint64_t base() const { return base_; }
    uint32_t gsi() const { return gsi_; }
    virtio::MmioTransport& transport() { return *transport_; }

private:
    DeviceSlot() = default;
    EventLoop* loop_ = nullptr;
    uint64_t base_ = 0;
    uint32_t gsi_ = 0;
    std::unique_ptr<LockedDeviceEnv> env_;  // outlives the device, which uses it
    std::unique_ptr<virtio::MmioTransport> transport_;
    std::vector<UniqueFd> notify_fds_;             // on the event loop
    std::unique_ptr<QueueThread> queue_thread_;   // declared last: joined before the transport goes
};

}  // namespace krunlet
