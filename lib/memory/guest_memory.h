// Guest physical memory: where it lives in the host, and bounds-checked access.
//
// Every address that comes from the guest goes through translate()/read()/
// write(), which refuse ranges that leave a region or overflow 64 bits, so a
// hostile guest can never make the VMM touch host memory outside guest RAM.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace krunlet {

struct MemoryRegion {
    uint64_t gpa = 0;       // guest physical start
    uint64_t size = 0;      // bytes
    uint8_t* host = nullptr;  // where it is mapped in the VMM
};

// MADV_DONTNEED on the whole 4 KiB pages inside [p, p + len), never on the
// partial pages at its ends; returns the bytes dropped (0 when refused). For
// anonymous private memory the next touch reads zeroes; for a read-only
// private file mapping it reads the file again.
uint64_t discard_whole_pages(const void* p, uint64_t len);

class GuestMemory {
public:
    // Anonymous MAP_NORESERVE RAM of `ram_bytes`, laid out around the MMIO
    // hole [hole_start, hole_end): RAM below the hole starts at 0, the rest
    // continues at hole_end. Never pre-faulted.
    static Result<GuestMemory> create(uint64_t ram_bytes, uint64_t hole_start, uint64_t hole_end);

    // A non-owning view over memory the caller keeps alive (tests, fuzzers).
    static GuestMemory wrap(std::vector<MemoryRegion> regions);

    GuestMemory(GuestMemory&&) noexcept = default;
    GuestMemory& operator=(GuestMemory&&) noexcept = default;

    std::span<const MemoryRegion> regions() const { return regions_; }
    uint64_t total_size() const;

    // Host address of [gpa, gpa + len) if the whole range lies in one region,
    // else nullptr. Overflow-safe; len == 0 is valid at any in-region address.
    uint8_t* translate(uint64_t gpa, uint64_t len) const;

    // Move the pages at [src, src + len) into guest RAM at gpa, instead of
    // copying them: mremap() takes their mapping (a private file mapping keeps
    // its page-cache pages, shared with every other process mapping the file,
    // until the guest writes one) and the range becomes read-write. src is
    // unmapped afterwards. Page-aligned src, gpa and len only, inside one RAM
    // region and one source mapping; false (nothing changed) otherwise. src
    // must be a MAP_PRIVATE mapping: in a shared one the guest's writes would
    // reach the file.
    bool adopt_pages(uint64_t gpa, const uint8_t* src, size_t len) const;

    // Back [gpa, gpa + len) with 4 KiB pages rather than transparent huge
    // pages (MADV_NOHUGEPAGE): for a range the VMM writes a few scattered
    // pages of, where a first touch would otherwise clear 2 MiB.
    void use_small_pages(uint64_t gpa, uint64_t len) const;

    bool read(uint64_t gpa, void* dst, size_t len) const;
    bool write(uint64_t gpa, const void* src, size_t len) const;

    template <class T>
    std::optional<T> read_obj(uint64_t gpa) const {
        static_assert(std::is_trivially_copyable_v<T>);
        T v;
        if (!read(gpa, &v, sizeof v)) return std::nullopt;
        return v;
    }
    template <class T>
    bool write_obj(uint64_t gpa, const T& v) const {
        static_assert(std::is_trivially_copyable_v<T>);
        return write(gpa, &v, sizeof v);
    }

private:
    GuestMemory() = default;
    std::vector<MemoryRegion> regions_;
    std::vector<Mapping> owned_;
};

}  // namespace krunlet
