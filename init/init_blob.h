// The guest init binary embedded in the VMM library (init_blob.S). The VMM
// serves it as the virtual file /init.krun at the root of the guest's rootfs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" {
// Page-aligned, read-only; [start, end) is the whole static ELF executable.
__attribute__((visibility("hidden"))) extern const unsigned char krunlet_init_start[];
__attribute__((visibility("hidden"))) extern const unsigned char krunlet_init_end[];
}

namespace krunlet {

inline std::span<const uint8_t> init_binary() {
    return {reinterpret_cast<const uint8_t*>(krunlet_init_start),
            static_cast<size_t>(krunlet_init_end - krunlet_init_start)};
}

}  // namespace krunlet
