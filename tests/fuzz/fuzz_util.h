// Shared by the libFuzzer targets: a front-to-back reader over the fuzzer's
// input, and FUZZ_CHECK, which turns a broken invariant into a crash that
// libFuzzer records (with the message) as a reproducer.
//
// The reader hands out zeros once the input is used up, so every decoder
// below is total: any byte string is a valid program for the target, and
// truncating an input only shortens what it does. Seeds are written by
// make_seeds.py in the same little-endian, front-to-back encoding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace krunlet::fuzz {

[[noreturn]] inline void check_failed(const char* file, int line, const char* expr, const std::string& why) {
    std::fprintf(stderr, "\n==FUZZ CHECK FAILED== %s:%d: %s\n  %s\n", file, line, expr, why.c_str());
    std::fflush(stderr);
    std::abort();
}

// For the harness's own byte loops (pattern generation and checking): no
// coverage or comparison tracing there, it would only slow the fuzzer down
// and reward it for longer streams.
#define FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage")))

// An invariant of the code under test (not of the input): its failure is a bug.
#define FUZZ_CHECK(cond, why)                                                        \
    do {                                                                             \
        if (!(cond)) ::krunlet::fuzz::check_failed(__FILE__, __LINE__, #cond, (why)); \
    } while (0)

// KRUNLET_FUZZ_TRACE=1: the targets narrate what an input does (for reading reproducers).
inline bool tracing() {
    static const bool on = [] {
        const char* v = std::getenv("KRUNLET_FUZZ_TRACE");
        return v != nullptr && *v != '\0' && *v != '0';
    }();
    return on;
}

class Input {
public:
    Input(const uint8_t* data, size_t size) : p_(data), n_(size) {}

    size_t left() const { return n_ - pos_; }
    bool empty() const { return pos_ >= n_; }

    uint8_t u8() { return pos_ < n_ ? p_[pos_++] : 0; }
    uint16_t u16() { return static_cast<uint16_t>(u8() | u8() << 8); }
    uint32_t u32() { return u16() | uint32_t{u16()} << 16; }
    uint64_t u64() { return u32() | uint64_t{u32()} << 32; }
    bool coin() { return (u8() & 1) != 0; }

    // Up to n bytes (fewer at the end of the input), without copying.
    std::span<const uint8_t> bytes(size_t n) {
        size_t k = n < left() ? n : left();
        std::span<const uint8_t> s(p_ + pos_, k);
        pos_ += k;
        return s;
    }
    std::string str(size_t n) {
        auto b = bytes(n);
        return std::string(reinterpret_cast<const char*>(b.data()), b.size());
    }
    // A length-prefixed (u8) string, for short names and words.
    std::string str8() { return str(u8()); }
    std::span<const uint8_t> rest() { return bytes(left()); }

    // One element of a non-empty array-like container.
    template <class C>
    const auto& pick(const C& choices) {
        return choices[u8() % std::size(choices)];
    }

private:
    const uint8_t* p_;
    size_t n_;
    size_t pos_ = 0;
};

inline std::span<const uint8_t> as_bytes(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace krunlet::fuzz
