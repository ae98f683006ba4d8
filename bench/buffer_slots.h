// The driver-side buffers of one virtqueue direction in the net-host benchmarks' scripted
// guests (net_host_bench.cpp: vsock, net_host_slirp.cpp: virtio-net). Each buffer is posted
// as one descriptor chain and stays ours until the device returns that chain on the used ring,
// so a slot remembers the chain's head to be matched against used elements.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <cstdint>
#include <vector>

#include "base/result.h"
#include "virtq_driver.h"

namespace krunlet::bench {

struct BufferSlot {
    uint64_t gpa = 0;   // the buffer in the driver's memory
    uint16_t head = 0;  // the chain it was posted as, while busy
    bool busy = false;  // posted and not yet returned by the device
};

class BufferSlots {
public:
    // `count` buffers of `bytes` each, taken from the driver's memory.
    Result<void> allocate(VirtqDriver& d, size_t count, size_t bytes) {
        for (size_t i = 0; i < count; ++i) {
            auto g = d.alloc(bytes);
            if (!g.ok()) return g.error();
            slots_.push_back({*g, 0, false});
        }
        return ok_result();
    }

    // The first slot not in flight, or nullptr when every buffer is with the device.
    BufferSlot* free_slot() {
        for (auto& s : slots_)
            if (!s.busy) return &s;
        return nullptr;
    }
    bool has_free() const {
        for (const auto& s : slots_)
            if (!s.busy) return true;
        return false;
    }

    static void posted(BufferSlot& s, uint16_t head) {
        s.head = head;
        s.busy = true;
    }

    // The device returned chain `head`: frees and returns its slot, or nullptr if no busy slot
    // was posted as that chain.
    BufferSlot* complete(uint16_t head) {
        for (auto& s : slots_)
            if (s.busy && s.head == head) {
                s.busy = false;
                return &s;
            }
        return nullptr;
    }

    std::vector<BufferSlot>& all() { return slots_; }

private:
    std::vector<BufferSlot> slots_;
};

// Runs a scripted guest's device loop (its run_device() and poll()) until `until` holds;
// false after 60 s, so a device that stops answering fails the benchmark instead of hanging it.
template <class Guest>
bool pump(Guest& g, const std::function<bool()>& until) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!until()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        g.run_device(5);
        g.poll();
    }
    return true;
}

}  // namespace krunlet::bench
