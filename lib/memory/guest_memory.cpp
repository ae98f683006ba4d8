#include "memory/guest_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>

namespace krunlet {

Result<GuestMemory> GuestMemory::create(uint64_t ram_bytes, uint64_t hole_start, uint64_t hole_end) {
    constexpr uint64_t kPage = 4096;
    constexpr uint64_t kHugePage = 2 << 20;
    if (ram_bytes == 0 || ram_bytes % kPage != 0)
        return make_error(EINVAL, "guest RAM must be a non-zero multiple of 4 KiB");
    if (hole_start > hole_end || hole_start % kPage != 0 || hole_end % kPage != 0)
        return make_error(EINVAL, "bad MMIO hole");

    GuestMemory mem;
    auto add = [&](uint64_t gpa, uint64_t size) -> Result<void> {
        // MAP_NORESERVE: the guest gets address space, not committed memory;
        // pages are faulted in only when the guest touches them.
        // KVM maps a 2 MiB guest page with one NPT/EPT entry only when the
        // host address is congruent with the guest address modulo 2 MiB
        // (both regions start 2 MiB-aligned in guest physical space). mmap
        // aligns only to 4 KiB, so reserve 2 MiB more and trim: otherwise
        // every 4 KiB the guest touches is its own nested page fault, one VM
        // exit each (about 8,000 more exits per boot, measured with
        // bench/compare_boot.sh).
        const uint64_t reserve = size + kHugePage;
        void* raw = ::mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);
        if (raw == MAP_FAILED) return errno_error("mmap of guest RAM");
        const auto base = reinterpret_cast<uintptr_t>(raw);
        const uintptr_t aligned = (base + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
        if (aligned > base) ::munmap(raw, aligned - base);
        if (const uintptr_t tail = base + reserve - (aligned + size); tail > 0)
            ::munmap(reinterpret_cast<void*>(aligned + size), tail);
        void* p = reinterpret_cast<void*>(aligned);
        // THP lets KVM map guest RAM with 2 MiB pages (fewer EPT/NPT walks).
        ::madvise(p, size, MADV_HUGEPAGE);
        mem.owned_.emplace_back(p, size);
        mem.regions_.push_back(MemoryRegion{gpa, size, static_cast<uint8_t*>(p)});
        return {};
    };
    uint64_t low = std::min(ram_bytes, hole_start);
    KRUNLET_CHECK(add(0, low));
    if (ram_bytes > low) KRUNLET_CHECK(add(hole_end, ram_bytes - low));
    return mem;
}

GuestMemory GuestMemory::wrap(std::vector<MemoryRegion> regions) {
    GuestMemory mem;
    mem.regions_ = std::move(regions);
    return mem;
}

uint64_t GuestMemory::total_size() const {
    uint64_t n = 0;
    for (const auto& r : regions_) n += r.size;
    return n;
}

uint64_t discard_whole_pages(const void* p, uint64_t len) {
    constexpr uintptr_t kPage = 4096;
    const auto start = reinterpret_cast<uintptr_t>(p);
    const uintptr_t first = (start + kPage - 1) & ~(kPage - 1);
    const uintptr_t end = (start + len) & ~(kPage - 1);
    if (end <= first) return 0;
    return ::madvise(reinterpret_cast<void*>(first), end - first, MADV_DONTNEED) == 0 ? end - first : 0;
}

bool GuestMemory::adopt_pages(uint64_t gpa, const uint8_t* src, size_t len) const {
    constexpr uint64_t kPage = 4096;
    uint8_t* dst = translate(gpa, len);
    const auto s = reinterpret_cast<uintptr_t>(src);
    if (dst == nullptr || len == 0 || (s | reinterpret_cast<uintptr_t>(dst) | len) % kPage != 0) return false;
    // The guest writes its .data and .bss, and patches its own text: make the
    // pages writable first (a private mapping copies a page on its first write;
    // the file is never touched), so that a refusal leaves nothing moved.
    auto* from = const_cast<uint8_t*>(src);
    if (::mprotect(from, len, PROT_READ | PROT_WRITE) != 0) return false;
    // MREMAP_FIXED replaces the destination pages (never touched yet) in one
    // step; KVM's MMU notifier sees the change like any other unmap.
    if (::mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst) == MAP_FAILED) {
        ::mprotect(from, len, PROT_READ);
        return false;
    }
    return true;
}

void GuestMemory::use_small_pages(uint64_t gpa, uint64_t len) const {
    if (uint8_t* p = translate(gpa, len)) ::madvise(p, len, MADV_NOHUGEPAGE);  // advice: a refusal costs only time
}

uint8_t* GuestMemory::translate(uint64_t gpa, uint64_t len) const {
    for (const auto& r : regions_) {
        if (gpa < r.gpa) continue;
        uint64_t off = gpa - r.gpa;
        // Written as two comparisons so that off + len can never overflow.
        if (off > r.size || len > r.size - off) continue;
        return r.host + off;
    }
    return nullptr;
}

bool GuestMemory::read(uint64_t gpa, void* dst, size_t len) const {
    const uint8_t* src = translate(gpa, len);
    if (src == nullptr) return false;
    std::memcpy(dst, src, len);
    return true;
}

bool GuestMemory::write(uint64_t gpa, const void* src, size_t len) const {
    uint8_t* dst = translate(gpa, len);
    if (dst == nullptr) return false;
    std::memcpy(dst, src, len);
    return true;
}

}  // namespace krunlet
