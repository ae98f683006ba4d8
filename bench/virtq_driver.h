// A scripted virtio driver for host-only benchmarks (krunlet-bench net-host and fs-host): it
// plays the guest's side of a device's split virtqueues (virtio 1.2 §2.7) in a shared memfd
// mapping that the device sees as guest RAM. Each queue's notification is an eventfd, as an
// ioeventfd is in the VMM, and the device's interrupt writes one more eventfd, as the VMM's
// irqfd does.
//
// Two kinds of device sit behind it:
//  - an in-process virtio::Device: the kick eventfds are watched by an epoll loop (BenchLoop,
//    a DeviceEnv), and only BenchLoop::run_once() runs device code, so timing that thread's
//    CPU measures what the VMM's thread would spend;
//  - another process (virtiofsd, through vhost_user_frontend.h): it maps the memfd and is
//    handed the kick and interrupt eventfds.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "memory/guest_memory.h"
#include "virtio/device.h"
#include "virtio/queue.h"

namespace krunlet::bench {

// DeviceEnv on an epoll instance the caller runs by hand.
class BenchLoop final : public virtio::DeviceEnv {
public:
    static Result<std::unique_ptr<BenchLoop>> create();
    Result<void> watch(int fd, uint32_t events, std::function<void(uint32_t)> handler) override;
    void unwatch(int fd) override;
    // Runs the handlers of what is ready within timeout_ms; returns how many ran.
    int run_once(int timeout_ms);

private:
    BenchLoop() = default;
    UniqueFd ep_;
    std::map<int, std::shared_ptr<std::function<void(uint32_t)>>> handlers_;
};

struct Segment {
    uint64_t gpa;
    uint32_t len;
    bool writable;
};

struct UsedElem {
    uint16_t head;
    uint32_t len;
};

class VirtqDriver {
public:
    // Rings of `queue_size` entries per queue (at most each queue's maximum) and `ram_bytes`
    // of memory for rings and buffers. The device's queues are notified through `loop`.
    static Result<std::unique_ptr<VirtqDriver>> create(virtio::Device& dev, BenchLoop& loop, uint16_t queue_size,
                                                       size_t ram_bytes);
    // The same for a device served elsewhere (another process, or a thread of the caller's
    // that activates it with activate(dev, ...)), whose queues have these maximum sizes. With
    // `one_kick`, every queue is kicked through the same blocking eventfd, as the VMM's
    // own-thread devices are (one ioeventfd without datamatch: lib/vmm/device_slot.h).
    static Result<std::unique_ptr<VirtqDriver>> create_detached(std::span<const uint16_t> max_sizes,
                                                                uint16_t queue_size, size_t ram_bytes,
                                                                bool one_kick = false);
    ~VirtqDriver();

    // DRIVER_OK for the in-process device: program the queues and activate it.
    Result<void> activate(uint64_t features);
    Result<void> activate(virtio::Device& dev, uint64_t features);

    // What another process needs to serve the queues.
    struct RingLayout {
        uint16_t size;
        uint64_t desc, avail, used;  // guest-physical
    };
    size_t queue_count() const { return rings_.size(); }
    RingLayout layout(uint16_t qi) const;
    int kick_fd(uint16_t qi) const { return one_kick_.valid() ? one_kick_.get() : rings_.at(qi).kick.get(); }
    int interrupt_fd() const { return irq_->fd(); }
    int memory_fd() const { return memfd_.get(); }
    uint64_t ram_base() const { return kRamBase; }
    size_t ram_size() const { return ram_.size(); }
    uint8_t* ram() const { return ram_.data(); }
    // Memory for buffers (never freed).
    Result<uint64_t> alloc(size_t len, size_t align = 64);
    uint8_t* host(uint64_t gpa, size_t len) const { return mem_->translate(gpa, len); }

    // Posts one chain; nullopt when the ring has too few free descriptors.
    std::optional<uint16_t> post(uint16_t qi, const std::vector<Segment>& segs);
    // Tells the device (the ioeventfd write of a guest's kick).
    void kick(uint16_t qi);
    // With VIRTIO_RING_F_EVENT_IDX: asks for the interrupt only once `count` more chains of the
    // queue are used (used_event, virtio 1.2 §2.7.10). Call it before posting them.
    void interrupt_after(uint16_t qi, uint16_t count);
    // Used entries since the last call; their descriptors are free again.
    void take_used(uint16_t qi, std::vector<UsedElem>& out);
    // Blocks until every chain of `heads` in queue `qi` is used (interrupts in between are
    // consumed) and stores their used lengths in `lens`, in the same order; an error after
    // `timeout_ms` without an interrupt. Other chains of the queue used meanwhile are freed and
    // dropped (the callers have no others in flight).
    Result<void> wait_used(uint16_t qi, std::span<const uint16_t> heads, std::span<uint32_t> lens, int timeout_ms);
    size_t free_descriptors(uint16_t qi) const { return rings_.at(qi).free.size(); }

private:
    struct Ring {
        uint16_t size = 0;
        uint64_t desc = 0, avail = 0, used = 0;
        uint16_t avail_idx = 0, used_seen = 0;
        std::vector<uint16_t> free;
        std::map<uint16_t, std::vector<uint16_t>> chains;  // head -> its descriptors
        UniqueFd kick;
    };
    // The VMM's irqfd: one eventfd write per interrupt. wait_used() reads it; net-host never
    // does (the counter does not fill up in practice).
    class EventFdInterrupt final : public virtio::Interrupt {
    public:
        EventFdInterrupt();
        bool valid() const { return fd_.valid(); }
        int fd() const { return fd_.get(); }
        void signal_used() override { raise(); }
        void signal_config() override { raise(); }

    private:
        void raise();
        UniqueFd fd_;
    };
    static constexpr uint64_t kRamBase = 0x100000;
    VirtqDriver() = default;

    virtio::Device* dev_ = nullptr;  // in-process only
    BenchLoop* loop_ = nullptr;      // in-process only
    UniqueFd memfd_;
    UniqueFd one_kick_;  // with one_kick: the queues' shared, blocking eventfd
    Mapping ram_;
    std::unique_ptr<GuestMemory> mem_;
    uint64_t next_ = 0;
    std::vector<virtio::Queue> queues_;
    std::vector<Ring> rings_;
    std::unique_ptr<EventFdInterrupt> irq_;
};

// CPU time of the calling thread, in seconds.
double thread_cpu_s();

}  // namespace krunlet::bench
