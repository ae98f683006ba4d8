#include "vmm/device_slot.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "vmm/vm_config.h"

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
                                                       uint32_t gsi, const sandbox::SeccompFilter* queue_thread_filter) {
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
    if (slot->transport_->device().own_queue_thread()) {
        // No datamatch: a kick of any queue wakes the thread, which looks at all of them
        // (an empty queue costs two loads from guest memory).
        UniqueFd efd(::eventfd(0, EFD_CLOEXEC));
        if (!efd.valid()) return errno_error("eventfd for a queue thread");
        KRUNLET_CHECK(vm.register_ioeventfd(efd.get(), base + virtio::MmioTransport::kQueueNotifyOffset, 4,
                                            std::nullopt));
        slot->queue_thread_ = std::make_unique<QueueThread>("virtio-" + std::to_string(gsi), *slot->transport_,
                                                            nqueues, std::move(efd), queue_thread_filter);
        return slot;
    }
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

QueueThread::QueueThread(std::string name, virtio::MmioTransport& transport, size_t nqueues, UniqueFd kick,
                         const sandbox::SeccompFilter* filter)
    : kick_(std::move(kick)), filter_(filter), thread_([this, &transport, nqueues] { run(transport, nqueues); }) {
    // At most 15 characters plus NUL, or the kernel refuses the name.
    name.resize(std::min<size_t>(name.size(), 15));
    ::pthread_setname_np(thread_.native_handle(), name.c_str());
}

QueueThread::~QueueThread() {
    stopping_.store(true, std::memory_order_release);
    uint64_t one = 1;
    // The counter cannot be full: the guest adds 1 per kick and every read empties it.
    [[maybe_unused]] ssize_t n = ::write(kick_.get(), &one, sizeof one);
    thread_.join();
}

void QueueThread::run(virtio::MmioTransport& transport, size_t nqueues) {
    while (!stopping_.load(std::memory_order_acquire)) {
        uint64_t count;
        ssize_t n = ::read(kick_.get(), &count, sizeof count);
        if (n != sizeof count) {
            if (n < 0 && errno == EINTR) continue;
            return;  // cannot happen with a valid eventfd; nothing sensible is left to do
        }
        if (stopping_.load(std::memory_order_acquire)) return;
        if (const sandbox::SeccompFilter* f = std::exchange(filter_, nullptr)) {
            // Nothing guest-controlled has been read yet. A VMM that cannot
            // sandbox this thread must not serve the guest from it.
            if (auto r = f->install(); !r.ok()) {
                std::fprintf(stderr, "krunlet: %s\n", r.error().message.c_str());
                std::_Exit(kExitVmmError);
            }
        }
        for (size_t q = 0; q < nqueues; ++q) transport.notify(uint32_t(q));
    }
}

DeviceSlot::~DeviceSlot() {
    for (const auto& fd : notify_fds_) loop_->remove(fd.get());
}

}  // namespace krunlet
