// Test harness for devices: guest RAM with guard pages, a scripted virtio
// driver (split rings laid out in that RAM, descriptors allocated from a free
// list, buffers from a bump allocator), a counting interrupt and a real epoll
// loop implementing DeviceEnv.
#pragma once

#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "base/fd.h"
#include "memory/guest_memory.h"
#include "virtio/device.h"
#include "virtio/queue.h"

namespace krunlet::devices::test {

inline std::span<const uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string str_of(std::span<const uint8_t> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// Guest RAM at kBase with an inaccessible page on each side.
class Ram {
public:
    static constexpr uint64_t kBase = 0x100000;
    static constexpr size_t kPage = 4096;

    explicit Ram(size_t size) : size_(size) {
        void* p = ::mmap(nullptr, size + 2 * kPage, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        REQUIRE(p != MAP_FAILED);
        map_ = Mapping(p, size + 2 * kPage);
        host_ = map_.data() + kPage;
        REQUIRE(::mprotect(map_.data(), kPage, PROT_NONE) == 0);
        REQUIRE(::mprotect(host_ + size, kPage, PROT_NONE) == 0);
        mem_ = std::make_unique<GuestMemory>(GuestMemory::wrap({MemoryRegion{kBase, size, host_}}));
    }
    const GuestMemory& mem() const { return *mem_; }
    uint8_t* host(uint64_t gpa, size_t len = 1) const {
        uint8_t* p = mem_->translate(gpa, len);
        REQUIRE(p != nullptr);
        return p;
    }
    uint64_t alloc(size_t len, size_t align = 16) {
        next_ = (next_ + align - 1) & ~(uint64_t(align) - 1);
        REQUIRE(next_ + len <= size_);
        uint64_t gpa = kBase + next_;
        next_ += len;
        return gpa;
    }
    template <class T>
    void put(uint64_t gpa, T v) { std::memcpy(host(gpa, sizeof v), &v, sizeof v); }
    template <class T>
    T get(uint64_t gpa) const {
        T v;
        std::memcpy(&v, host(gpa, sizeof v), sizeof v);
        return v;
    }

private:
    size_t size_;
    Mapping map_;
    uint8_t* host_ = nullptr;
    std::unique_ptr<GuestMemory> mem_;
    uint64_t next_ = 0;
};

class CountingIrq : public virtio::Interrupt {
public:
    void signal_used() override { ++used; }
    void signal_config() override { ++config; }
    int used = 0;
    int config = 0;
};

struct Used {
    uint16_t head;
    uint32_t len;
    std::vector<uint8_t> data;  // the first `len` device-written bytes
};

// A scripted driver for every queue of one device.
class Driver {
public:
    Driver(virtio::Device& dev, uint16_t qsize = 64, size_t ram_bytes = 64 << 20) : dev_(dev), ram_(ram_bytes) {
        auto sizes = dev.queue_max_sizes();
        for (size_t i = 0; i < sizes.size(); ++i) {
            queues_.emplace_back(sizes[i]);
            Ring r;
            r.size = std::min<uint16_t>(qsize, sizes[i]);
            r.desc = ram_.alloc(16u * r.size, 16);
            r.avail = ram_.alloc(6 + 2u * r.size, 2);
            r.used = ram_.alloc(6 + 8u * r.size, 4);
            rings_.push_back(std::move(r));
        }
    }

    // Zero the rings and forget posted chains, as a fresh driver would.
    void init_rings() {
        for (auto& r : rings_) {
            std::memset(ram_.host(r.avail, 6 + 2u * r.size), 0, 6 + 2u * r.size);
            std::memset(ram_.host(r.used, 6 + 8u * r.size), 0, 6 + 8u * r.size);
            r.avail_idx = r.used_seen = 0;
            r.chains.clear();
            r.free.clear();
            for (int d = r.size - 1; d >= 0; --d) r.free.push_back(static_cast<uint16_t>(d));
        }
    }
    // Where queue qi's rings are, for programming a real transport.
    virtio::QueueConfig ring_config(uint16_t qi) const {
        const Ring& r = rings_.at(qi);
        return virtio::QueueConfig{r.size, r.desc, r.avail, r.used, true};
    }

    // Program the harness's own queues, activate them and the device
    // (DRIVER_OK without a transport). `skip` leaves one queue disabled.
    Result<void> activate(uint64_t features = virtio::kFeatureVersion1, int skip = -1) {
        init_rings();
        for (size_t i = 0; i < queues_.size(); ++i) {
            if (static_cast<int>(i) == skip) continue;
            queues_[i].config() = ring_config(static_cast<uint16_t>(i));
            KRUNLET_CHECK(queues_[i].activate(ram_.mem(), false));
        }
        return dev_.activate(virtio::ActivateArgs{ram_.mem(), queues_, features, irq});
    }
    void reset() {
        dev_.reset();
        for (auto& q : queues_) q.reset();
    }

    // Post a chain: device-readable buffers, then device-writable ones of
    // the given sizes. Returns the head.
    uint16_t post(uint16_t qi, const std::vector<std::span<const uint8_t>>& readable,
                  const std::vector<uint32_t>& writable) {
        Ring& r = rings_.at(qi);
        size_t n = readable.size() + writable.size();
        REQUIRE(n > 0);
        REQUIRE(r.free.size() >= n);
        std::vector<uint16_t> ids(n);
        for (auto& id : ids) {
            id = r.free.back();
            r.free.pop_back();
        }
        Chain ch;
        for (size_t k = 0; k < n; ++k) {
            bool w = k >= readable.size();
            uint32_t len = w ? writable[k - readable.size()] : static_cast<uint32_t>(readable[k].size());
            uint64_t gpa = ram_.alloc(std::max<uint32_t>(len, 1));
            if (!w && len > 0) std::memcpy(ram_.host(gpa, len), readable[k].data(), len);
            if (w) ch.out.push_back({gpa, len});
            uint64_t d = r.desc + 16ull * ids[k];
            bool last = k + 1 == n;
            ram_.put<uint64_t>(d, gpa);
            ram_.put<uint32_t>(d + 8, len);
            ram_.put<uint16_t>(d + 12, static_cast<uint16_t>((w ? 2 : 0) | (last ? 0 : 1)));
            ram_.put<uint16_t>(d + 14, last ? 0 : ids[k + 1]);
        }
        ch.ids = ids;
        r.chains[ids[0]] = std::move(ch);
        ram_.put<uint16_t>(r.avail + 4 + 2ull * (r.avail_idx % r.size), ids[0]);
        ++r.avail_idx;
        std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(ram_.host(r.avail + 2, 2)))
            .store(r.avail_idx, std::memory_order_release);
        return ids[0];
    }
    uint16_t post_out(uint16_t qi, std::span<const uint8_t> bytes) { return post(qi, {bytes}, {}); }
    uint16_t post_in(uint16_t qi, uint32_t size) { return post(qi, {}, {size}); }

    Result<void> kick(uint16_t qi) { return dev_.queue_notify(qi); }

    // Used entries added since the last call; their descriptors are freed.
    std::vector<Used> take_used(uint16_t qi) {
        Ring& r = rings_.at(qi);
        std::vector<Used> out;
        uint16_t idx = std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(ram_.host(r.used + 2, 2)))
                           .load(std::memory_order_acquire);
        for (; r.used_seen != idx; ++r.used_seen) {
            uint64_t e = r.used + 4 + 8ull * (r.used_seen % r.size);
            Used u;
            u.head = static_cast<uint16_t>(ram_.get<uint32_t>(e));
            u.len = ram_.get<uint32_t>(e + 4);
            auto it = r.chains.find(u.head);
            REQUIRE(it != r.chains.end());
            size_t left = u.len;
            for (auto& [gpa, len] : it->second.out) {
                size_t n = std::min<size_t>(left, len);
                const uint8_t* p = ram_.host(gpa, std::max<size_t>(n, 1));
                u.data.insert(u.data.end(), p, p + n);
                left -= n;
            }
            REQUIRE(left == 0);  // the device never claims more than it was given
            for (auto id : it->second.ids) r.free.push_back(id);
            r.chains.erase(it);
            out.push_back(std::move(u));
        }
        return out;
    }
    size_t outstanding(uint16_t qi) const { return rings_.at(qi).chains.size(); }
    size_t free_descriptors(uint16_t qi) const { return rings_.at(qi).free.size(); }

    // Raw access for malformed-ring tests.
    uint64_t desc_gpa(uint16_t qi) const { return rings_.at(qi).desc; }
    Ram& ram() { return ram_; }
    CountingIrq irq;

private:
    struct Chain {
        std::vector<uint16_t> ids;
        std::vector<std::pair<uint64_t, uint32_t>> out;
    };
    struct Ring {
        uint16_t size = 0;
        uint64_t desc = 0, avail = 0, used = 0;
        uint16_t avail_idx = 0;
        uint16_t used_seen = 0;
        std::vector<uint16_t> free;
        std::map<uint16_t, Chain> chains;
    };
    virtio::Device& dev_;
    Ram ram_;
    std::vector<virtio::Queue> queues_;
    std::vector<Ring> rings_;
};

// DeviceEnv on a real epoll instance; the test runs it by hand.
class LoopEnv : public virtio::DeviceEnv {
public:
    LoopEnv() : ep_(::epoll_create1(EPOLL_CLOEXEC)) { REQUIRE(ep_.valid()); }

    Result<void> watch(int fd, uint32_t events, std::function<void(uint32_t)> handler) override {
        epoll_event ev{};
        ev.events = events;
        ev.data.fd = fd;
        if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return errno_error("epoll_ctl");
        handlers_[fd] = std::make_shared<std::function<void(uint32_t)>>(std::move(handler));
        return {};
    }
    void unwatch(int fd) override {
        ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
        handlers_.erase(fd);
    }
    bool watching(int fd) const { return handlers_.count(fd) != 0; }
    size_t watch_count() const { return handlers_.size(); }

    // Dispatch what is ready within timeout_ms; returns how many handlers ran.
    int run_once(int timeout_ms) {
        epoll_event evs[16];
        int n = ::epoll_wait(ep_.get(), evs, 16, timeout_ms);
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

private:
    UniqueFd ep_;
    std::map<int, std::shared_ptr<std::function<void(uint32_t)>>> handlers_;
};

}  // namespace krunlet::devices::test
