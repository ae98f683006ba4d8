// One virtio-mmio device as the VM sees it: its 4 KiB window, its interrupt
// (an irqfd) and one ioeventfd per queue, so a queue kick reaches the event
// loop without an exit to user space.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/fd.h"
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

class DeviceSlot {
public:
    // Creates the transport around `device`, wires its interrupt to `gsi` and
    // its queue notifications to ioeventfds on `loop`.
    static Result<std::unique_ptr<DeviceSlot>> create(const VmFd& vm, EventLoop& loop, const GuestMemory& mem,
                                                      std::unique_ptr<LockedDeviceEnv> env,
                                                      std::unique_ptr<virtio::Device> device, uint64_t base,
                                                      uint32_t gsi);
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
    std::vector<UniqueFd> notify_fds_;
};

}  // namespace krunlet
