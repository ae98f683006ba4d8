// "0x1f"-style formatting of addresses for error messages.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace krunlet::x86 {

inline std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

}  // namespace krunlet::x86
