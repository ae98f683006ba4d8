// Test helpers: guest RAM between PROT_NONE guard pages, and a mock virtio
// driver that lays out a split virtqueue in it (the rust-vmm virtio-queue
// approach: test the device side against a scripted driver).
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "memory/guest_memory.h"
#include "virtio/queue.h"

namespace krunlet::virtio::test {

static_assert(std::endian::native == std::endian::little, "the mock driver writes rings in host byte order");

inline constexpr uint16_t kNext = 1;
inline constexpr uint16_t kWrite = 2;
inline constexpr uint16_t kIndirect = 4;

// Guest RAM [gpa, gpa + size) backed by host memory that has an inaccessible
// page on each side, so a read or write one byte outside RAM crashes the test.
class GuardedRam {
public:
    static constexpr size_t kPage = 4096;

    GuardedRam(uint64_t gpa, size_t size) : gpa_(gpa), size_(size) {
        void* p = ::mmap(nullptr, size + 2 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) die("mmap");
        mapping_ = Mapping(p, size + 2 * kPage);
        host_ = mapping_.data() + kPage;
        if (::mprotect(mapping_.data(), kPage, PROT_NONE) != 0 ||
            ::mprotect(host_ + size, kPage, PROT_NONE) != 0)
            die("mprotect");
        mem_ = std::make_unique<GuestMemory>(GuestMemory::wrap({MemoryRegion{gpa, size, host_}}));
    }

    const GuestMemory& mem() const { return *mem_; }
    uint64_t gpa() const { return gpa_; }
    uint64_t end() const { return gpa_ + size_; }
    uint8_t* host(uint64_t gpa) const { return host_ + (gpa - gpa_); }

    template <class T>
    void put(uint64_t gpa, T v) {
        if (!mem_->write_obj(gpa, v)) die("mock driver wrote outside guest RAM");
    }
    template <class T>
    T get(uint64_t gpa) const {
        auto v = mem_->read_obj<T>(gpa);
        if (!v) die("mock driver read outside guest RAM");
        return *v;
    }

private:
    [[noreturn]] static void die(const char* what) {
        std::perror(what);
        std::abort();
    }
    uint64_t gpa_;
    size_t size_;
    Mapping mapping_;
    uint8_t* host_ = nullptr;
    std::unique_ptr<GuestMemory> mem_;
};

struct Seg {
    uint64_t addr;
    uint32_t len;
    bool writable;
};

// The driver's side of one split virtqueue, laid out at `base`.
class MockDriver {
public:
    MockDriver(GuardedRam& ram, uint16_t size, uint64_t base)
        : ram_(ram), size_(size), desc_(base), avail_(base + 16ull * size),
          used_((base + 16ull * size + 6 + 2ull * size + 3) & ~3ull) {}

    QueueConfig config() const { return QueueConfig{size_, desc_, avail_, used_, true}; }
    uint16_t size() const { return size_; }
    uint64_t desc_gpa() const { return desc_; }
    uint64_t avail_gpa() const { return avail_; }
    uint64_t used_gpa() const { return used_; }
    uint64_t end_gpa() const { return used_ + 6 + 8ull * size_; }

    // One descriptor in any table (the queue's or an indirect one).
    void write_desc(uint64_t table, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
        const uint64_t d = table + 16ull * i;
        ram_.put<uint64_t>(d, addr);
        ram_.put<uint32_t>(d + 8, len);
        ram_.put<uint16_t>(d + 12, flags);
        ram_.put<uint16_t>(d + 14, next);
    }
    void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
        write_desc(desc_, i, addr, len, flags, next);
    }
    // Segments as consecutive descriptors first, first+1, ... in `table`.
    void write_chain(uint64_t table, uint16_t first, const std::vector<Seg>& segs) {
        for (size_t k = 0; k < segs.size(); ++k) {
            const bool last = k + 1 == segs.size();
            write_desc(table, static_cast<uint32_t>(first + k), segs[k].addr, segs[k].len,
                       static_cast<uint16_t>((segs[k].writable ? kWrite : 0) | (last ? 0 : kNext)),
                       static_cast<uint16_t>(last ? 0 : first + k + 1));
        }
    }

    // Put `head` in the next avail slot and publish it (release store, as a
    // driver's write barrier before the idx bump).
    void publish(uint16_t head) {
        ram_.put<uint16_t>(avail_ + 4 + 2ull * (avail_idx_ % size_), head);
        set_avail_idx(static_cast<uint16_t>(avail_idx_ + 1));
    }
    uint16_t post(uint16_t first, const std::vector<Seg>& segs) {
        write_chain(desc_, first, segs);
        publish(first);
        return first;
    }
    void set_avail_idx(uint16_t idx) {
        avail_idx_ = idx;
        std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(ram_.host(avail_ + 2)))
            .store(idx, std::memory_order_release);
    }
    uint16_t avail_idx() const { return avail_idx_; }
    void set_avail_flags(uint16_t f) { ram_.put<uint16_t>(avail_, f); }
    void set_used_event(uint16_t v) { ram_.put<uint16_t>(avail_ + 4 + 2ull * size_, v); }

    uint16_t used_idx() const {
        return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(ram_.host(used_ + 2)))
            .load(std::memory_order_acquire);
    }
    // The used element at ring position `pos` (taken modulo the size): {id, len}.
    std::pair<uint32_t, uint32_t> used_elem(uint16_t pos) const {
        const uint64_t e = used_ + 4 + 8ull * (pos % size_);
        return {ram_.get<uint32_t>(e), ram_.get<uint32_t>(e + 4)};
    }
    uint16_t avail_event() const { return ram_.get<uint16_t>(used_ + 4 + 8ull * size_); }

private:
    GuardedRam& ram_;
    uint16_t size_;
    uint64_t desc_, avail_, used_;
    uint16_t avail_idx_ = 0;
};

}  // namespace krunlet::virtio::test
