// A scripted virtio driver for host-only benchmarks (krunlet-bench net-host): it plays the
// guest's side of one device's split virtqueues (virtio 1.2 §2.7) in an anonymous mapping that
// the device sees as guest RAM, and raises the device's queue notifications the way the VMM
// gets them, through an eventfd per queue watched by an epoll loop (DeviceEnv), like an
// ioeventfd. The device's interrupt writes an eventfd, as the VMM's irqfd does.
//
// Everything runs on the caller's thread. Only BenchLoop::run_once() runs device code, so
// timing it with the thread's CPU clock measures what the VMM's event loop thread would spend.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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
    ~VirtqDriver();

    // DRIVER_OK: program the queues and activate the device.
    Result<void> activate(uint64_t features);
    // Memory for buffers (never freed).
    Result<uint64_t> alloc(size_t len, size_t align = 64);
    uint8_t* host(uint64_t gpa, size_t len) const { return mem_->translate(gpa, len); }

    // Posts one chain; nullopt when the ring has too few free descriptors.
    std::optional<uint16_t> post(uint16_t qi, const std::vector<Segment>& segs);
    // Tells the device (the ioeventfd write of a guest's kick).
    void kick(uint16_t qi);
    // Used entries since the last call; their descriptors are free again.
    void take_used(uint16_t qi, std::vector<UsedElem>& out);
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
    // The VMM's irqfd: one eventfd write per interrupt (nobody reads it here; the counter does
    // not fill up in practice).
    class EventFdInterrupt final : public virtio::Interrupt {
    public:
        EventFdInterrupt();
        bool valid() const { return fd_.valid(); }
        void signal_used() override { raise(); }
        void signal_config() override { raise(); }

    private:
        void raise();
        UniqueFd fd_;
    };
    VirtqDriver(virtio::Device& dev, BenchLoop& loop) : dev_(dev), loop_(loop) {}

    virtio::Device& dev_;
    BenchLoop& loop_;
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
