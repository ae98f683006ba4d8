#include "vmm/device_slot.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace krunlet {

Result<std::unique_ptr<EventFdIrq>> EventFdIrq::create(const VmFd& vm, uint32_t gsi) {
    auto irq = std::make_unique<EventFdIrq>();
    irq->fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!irq->fd_.valid()) return errno_error("eventfd for an irqfd");
    KRUNLET_CHECK(vm.register_irqfd(irq->fd_.get(), gsi));
    return irq;
}

void EventFdIrq::trigger() {
    uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: the interrupt is pending.
    [[maybe_unused]] ssize_t n = ::write(fd_.get(), &one, sizeof one);
}

Result<void> LockedDeviceEnv::watch(int fd, uint32_t events, std::function<void(uint32_t)> handler) {
    std::mutex* mu = mu_;
    return loop_.add(fd, events, [mu, h = std::move(handler)](uint32_t ev) {
        std::lock_guard lock(*mu);
        h(ev);
    });
}

void LockedDeviceEnv::unwatch(int fd) { loop_.remove(fd); }

Result<std::unique_ptr<DeviceSlot>> DeviceSlot::create(const VmFd& vm, EventLoop& loop, const GuestMemory& mem,
                                                       std::unique_ptr<LockedDeviceEnv> env,
                                                       std::unique_ptr<virtio::Device> device, uint64_t base,
                                                       uint32_t gsi) {
    std::unique_ptr<DeviceSlot> slot(new DeviceSlot());
    slot->loop_ = &loop;
    slot->base_ = base;
    slot->gsi_ = gsi;
    slot->env_ = std::move(env);
    auto irq = EventFdIrq::create(vm, gsi);
    if (!irq.ok()) return irq.error();
    size_t nqueues = device->queue_max_sizes().size();
    slot->transport_ = std::make_unique<virtio::MmioTransport>(std::move(device), mem, std::move(irq).value());
    if (slot->env_) slot->env_->bind(&slot->transport_->mutex());

    // virtio 1.2 §4.2.2: the driver writes the queue index to QueueNotify.
    for (size_t q = 0; q < nqueues; ++q) {
        UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!efd.valid()) return errno_error("eventfd for a queue");
        KRUNLET_CHECK(vm.register_ioeventfd(efd.get(), base + virtio::MmioTransport::kQueueNotifyOffset, 4, q));
        virtio::MmioTransport* t = slot->transport_.get();
        int fd = efd.get();
        auto idx = uint32_t(q);
        KRUNLET_CHECK(loop.add(fd, EPOLLIN, [t, fd, idx](uint32_t) {
            uint64_t count;
            if (::read(fd, &count, sizeof count) == sizeof count) t->notify(idx);
        }));
        slot->notify_fds_.push_back(std::move(efd));
    }
    return slot;
}

DeviceSlot::~DeviceSlot() {
    for (const auto& fd : notify_fds_) loop_->remove(fd.get());
}

}  // namespace krunlet
