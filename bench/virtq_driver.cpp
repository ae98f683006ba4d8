#include "virtq_driver.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>

namespace krunlet::bench {

Result<std::unique_ptr<BenchLoop>> BenchLoop::create() {
    std::unique_ptr<BenchLoop> l(new BenchLoop());
    l->ep_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!l->ep_.valid()) return errno_error("epoll_create1");
    return l;
}

Result<void> BenchLoop::watch(int fd, uint32_t events, std::function<void(uint32_t)> handler) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return errno_error("epoll_ctl");
    handlers_[fd] = std::make_shared<std::function<void(uint32_t)>>(std::move(handler));
    return {};
}

void BenchLoop::unwatch(int fd) {
    ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
    handlers_.erase(fd);
}

int BenchLoop::run_once(int timeout_ms) {
    epoll_event evs[32];
    int n = ::epoll_wait(ep_.get(), evs, 32, timeout_ms);
    int ran = 0;
    for (int i = 0; i < n; ++i) {
        auto it = handlers_.find(evs[i].data.fd);
        if (it == handlers_.end()) continue;  // unwatched by an earlier handler
        auto h = it->second;                   // the handler may unwatch itself
        (*h)(evs[i].events);
        ++ran;
    }
    return ran;
}

VirtqDriver::EventFdInterrupt::EventFdInterrupt() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

void VirtqDriver::EventFdInterrupt::raise() {
    uint64_t one = 1;
    (void)!::write(fd_.get(), &one, sizeof one);
}

Result<std::unique_ptr<VirtqDriver>> VirtqDriver::create_detached(std::span<const uint16_t> max_sizes,
                                                                  uint16_t queue_size, size_t ram_bytes,
                                                                  bool one_kick) {
    std::unique_ptr<VirtqDriver> d(new VirtqDriver());
    if (one_kick) {
        d->one_kick_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
        if (!d->one_kick_.valid()) return errno_error("eventfd");
    }
    // A memfd, so that another process can map the same pages (vhost-user's SET_MEM_TABLE).
    d->memfd_ = UniqueFd(::memfd_create("krunlet-bench-ram", MFD_CLOEXEC));
    if (!d->memfd_.valid()) return errno_error("memfd_create");
    if (::ftruncate(d->memfd_.get(), static_cast<off_t>(ram_bytes)) != 0) return errno_error("ftruncate of the memfd");
    void* p = ::mmap(nullptr, ram_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd_.get(), 0);
    if (p == MAP_FAILED) return errno_error("mmap of the driver's memory");
    d->ram_ = Mapping(p, ram_bytes);
    d->mem_ = std::make_unique<GuestMemory>(GuestMemory::wrap({MemoryRegion{kRamBase, ram_bytes, d->ram_.data()}}));
    d->next_ = kRamBase;
    d->irq_ = std::make_unique<EventFdInterrupt>();
    if (!d->irq_->valid()) return errno_error("eventfd");
    d->queues_.reserve(max_sizes.size());
    for (uint16_t max : max_sizes) {
        d->queues_.emplace_back(max);
        Ring r;
        r.size = std::min(queue_size, max);
        auto desc = d->alloc(16u * r.size, 16);
        auto avail = d->alloc(6 + 2u * r.size, 2);
        auto used = d->alloc(6 + 8u * r.size, 4);
        if (!desc.ok() || !avail.ok() || !used.ok()) return make_error(ENOMEM, "driver memory too small for the rings");
        r.desc = *desc;
        r.avail = *avail;
        r.used = *used;
        for (int k = r.size - 1; k >= 0; --k) r.free.push_back(static_cast<uint16_t>(k));
        if (!one_kick) {
            r.kick = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
            if (!r.kick.valid()) return errno_error("eventfd");
        }
        d->rings_.push_back(std::move(r));
    }
    return d;
}

Result<std::unique_ptr<VirtqDriver>> VirtqDriver::create(virtio::Device& dev, BenchLoop& loop, uint16_t queue_size,
                                                         size_t ram_bytes) {
    auto made = create_detached(dev.queue_max_sizes(), queue_size, ram_bytes);
    if (!made.ok()) return made.error();
    std::unique_ptr<VirtqDriver> d = std::move(*made);
    d->dev_ = &dev;
    d->loop_ = &loop;
    // The kick path of the VMM: an ioeventfd read on the event loop, then queue_notify.
    for (size_t i = 0; i < d->rings_.size(); ++i) {
        int fd = d->rings_[i].kick.get();
        auto q = static_cast<uint16_t>(i);
        virtio::Device* devp = &dev;
        KRUNLET_CHECK(loop.watch(fd, EPOLLIN, [fd, q, devp](uint32_t) {
            uint64_t v;
            (void)!::read(fd, &v, sizeof v);
            (void)devp->queue_notify(q);
        }));
    }
    return d;
}

VirtqDriver::~VirtqDriver() {
    if (loop_ != nullptr)
        for (auto& r : rings_) loop_->unwatch(r.kick.get());
}

Result<void> VirtqDriver::activate(uint64_t features) {
    if (dev_ == nullptr) return make_error(EINVAL, "activate() needs an in-process device");
    return activate(*dev_, features);
}

Result<void> VirtqDriver::activate(virtio::Device& dev, uint64_t features) {
    dev_ = &dev;
    for (size_t i = 0; i < queues_.size(); ++i) {
        const Ring& r = rings_[i];
        queues_[i].config() = virtio::QueueConfig{r.size, r.desc, r.avail, r.used, true};
        KRUNLET_CHECK(queues_[i].activate(*mem_, false));
    }
    return dev.activate(virtio::ActivateArgs{*mem_, queues_, features, *irq_});
}

VirtqDriver::RingLayout VirtqDriver::layout(uint16_t qi) const {
    const Ring& r = rings_.at(qi);
    return RingLayout{r.size, r.desc, r.avail, r.used};
}

Result<uint64_t> VirtqDriver::alloc(size_t len, size_t align) {
    uint64_t at = (next_ + align - 1) & ~(uint64_t(align) - 1);
    if (mem_->translate(at, len) == nullptr) return make_error(ENOMEM, "driver memory exhausted");
    next_ = at + len;
    return at;
}

std::optional<uint16_t> VirtqDriver::post(uint16_t qi, const std::vector<Segment>& segs) {
    Ring& r = rings_.at(qi);
    if (segs.empty() || r.free.size() < segs.size()) return std::nullopt;
    std::vector<uint16_t> ids(segs.size());
    for (auto& id : ids) {
        id = r.free.back();
        r.free.pop_back();
    }
    for (size_t k = 0; k < segs.size(); ++k) {
        uint8_t* d = host(r.desc + 16ull * ids[k], 16);
        bool last = k + 1 == segs.size();
        uint16_t flags = static_cast<uint16_t>((segs[k].writable ? 2 : 0) | (last ? 0 : 1));
        uint16_t next = last ? 0 : ids[k + 1];
        std::memcpy(d, &segs[k].gpa, 8);
        std::memcpy(d + 8, &segs[k].len, 4);
        std::memcpy(d + 12, &flags, 2);
        std::memcpy(d + 14, &next, 2);
    }
    r.chains[ids[0]] = ids;
    std::memcpy(host(r.avail + 4 + 2ull * (r.avail_idx % r.size), 2), &ids[0], 2);
    ++r.avail_idx;
    std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(host(r.avail + 2, 2)))
        .store(r.avail_idx, std::memory_order_release);
    return ids[0];
}

void VirtqDriver::kick(uint16_t qi) {
    uint64_t one = 1;
    (void)!::write(kick_fd(qi), &one, sizeof one);
}

void VirtqDriver::interrupt_after(uint16_t qi, uint16_t count) {
    Ring& r = rings_.at(qi);
    // used_event sits after the avail ring's entries.
    const auto event = static_cast<uint16_t>(r.used_seen + count - 1);
    std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(host(r.avail + 4 + 2ull * r.size, 2)))
        .store(event, std::memory_order_release);
    // The device's used->idx store and our field must not pass each other (§2.7.10's barrier).
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

void VirtqDriver::take_used(uint16_t qi, std::vector<UsedElem>& out) {
    Ring& r = rings_.at(qi);
    uint16_t idx = std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(host(r.used + 2, 2)))
                       .load(std::memory_order_acquire);
    for (; r.used_seen != idx; ++r.used_seen) {
        uint8_t* e = host(r.used + 4 + 8ull * (r.used_seen % r.size), 8);
        uint32_t head = 0, len = 0;
        std::memcpy(&head, e, 4);
        std::memcpy(&len, e + 4, 4);
        auto it = r.chains.find(static_cast<uint16_t>(head));
        if (it == r.chains.end()) continue;  // a device bug; the benchmark's totals will show it
        for (auto id : it->second) r.free.push_back(id);
        r.chains.erase(it);
        out.push_back({static_cast<uint16_t>(head), len});
    }
}

Result<void> VirtqDriver::wait_used(uint16_t qi, std::span<const uint16_t> heads, std::span<uint32_t> lens,
                                    int timeout_ms) {
    std::vector<UsedElem> got;
    size_t left = heads.size();
    std::vector<bool> done(heads.size());
    while (true) {
        take_used(qi, got);
        for (const auto& u : got)
            for (size_t i = 0; i < heads.size(); ++i)
                if (!done[i] && heads[i] == u.head) {
                    done[i] = true;
                    lens[i] = u.len;
                    --left;
                    break;
                }
        if (left == 0) return ok_result();
        got.clear();
        pollfd p{irq_->fd(), POLLIN, 0};
        int n = ::poll(&p, 1, timeout_ms);
        if (n < 0 && errno != EINTR) return errno_error("poll of the interrupt eventfd");
        if (n == 0)
            return make_error(ETIMEDOUT, "the device did not complete a request within " +
                                             std::to_string(timeout_ms) + " ms");
        uint64_t v;
        (void)!::read(irq_->fd(), &v, sizeof v);  // nonblocking; a racing reader only empties it
    }
}

double thread_cpu_s() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

}  // namespace krunlet::bench
