// The wire protocol of krunlet-vsockstress (tests/guest/vsock_stress.cpp), shared with its
// host-side peers: tests/integration/vsock_test.cpp and `krunlet-bench net` (bench/net_*).
// Header-only and free of krunlet's libraries, so the static guest program can use it.
//
// One connection carries one exchange. The side that connects is the client, whatever the
// direction of the vsock or TCP connection underneath. All integers are little-endian.
//
//   client -> server  Hello (32 bytes)
//
//   Mode::Stream   the client sends hello.up_bytes of stream(up_seed(index)); the server
//                  answers with a Report (24 bytes) on what it received, then sends
//                  hello.down_bytes of stream(down_seed(index)); the client answers with a
//                  Report on those. Then both close. Each receiver checks every byte against
//                  its own copy of the generator (Report::first_bad) and hashes what it got;
//                  each sender compares the peer's Report with the hash of what it sent. With
//                  kFlagRaw the bytes are zeros and only counted (the benchmark: checking would
//                  measure the emulated CPU, not the transport); the Reports then carry hash 0.
//   Mode::Echo     hello.up_bytes is a message size (1..kMaxEchoSize) and hello.down_bytes a
//                  count: that many times the client sends one message and the server sends
//                  it back (round-trip latency).
//   Mode::Probe    the server answers one byte, kProbeAnswer, and closes; the client closes
//                  once it has it (connection rate).
//
// The stream: xorshift64* words seeded through splitmix64, each word's 8 bytes in
// little-endian order; byte k of the stream is byte k % 8 of word k / 8. A connection index
// picks the seed, so every connection of a run carries different data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace krunlet::vsockstress {

inline constexpr uint32_t kMagic = 0x3153564b;  // "KVS1"
enum class Mode : uint32_t { Stream = 1, Echo = 2, Probe = 3 };
inline constexpr uint32_t kFlagRaw = 1;
inline constexpr uint64_t kMaxEchoSize = 65536;
inline constexpr uint8_t kProbeAnswer = 'K';
inline constexpr uint64_t kNoMismatch = ~uint64_t{0};

struct Hello {
    uint32_t magic = kMagic;
    uint32_t mode = 0;
    uint32_t index = 0;
    uint32_t flags = 0;
    uint64_t up_bytes = 0;
    uint64_t down_bytes = 0;
};
static_assert(sizeof(Hello) == 32);

struct Report {
    uint64_t bytes = 0;                // received
    uint64_t hash = 0;                 // StreamHash of them
    uint64_t first_bad = kNoMismatch;  // offset of the first byte that differed from the stream
};
static_assert(sizeof(Report) == 24);

inline uint64_t up_seed(uint32_t index) { return 2 * uint64_t{index} + 1; }
inline uint64_t down_seed(uint32_t index) { return 2 * uint64_t{index} + 2; }

inline uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

inline uint64_t load_le64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);  // x86_64 only, like the rest of krunlet
    return v;
}

// The deterministic stream, produced in pieces of any size.
class StreamGen {
public:
    explicit StreamGen(uint64_t seed) : state_(splitmix64(seed) | 1) {}
    uint64_t next_word() {
        state_ ^= state_ >> 12;
        state_ ^= state_ << 25;
        state_ ^= state_ >> 27;
        return state_ * 0x2545f4914f6cdd1dull;
    }
    // The next byte of the stream (the slow path for unaligned pieces).
    uint8_t next_byte() {
        if (used_ == 8) {
            word_ = next_word();
            used_ = 0;
        }
        return static_cast<uint8_t>(word_ >> (8 * used_++));
    }
    // True when the next byte starts a fresh word.
    bool aligned() const { return used_ == 8; }
    void fill(uint8_t* p, size_t n) {
        while (n > 0 && !aligned()) {
            *p++ = next_byte();
            --n;
        }
        for (; n >= 8; n -= 8, p += 8) {
            uint64_t w = next_word();
            std::memcpy(p, &w, 8);
        }
        while (n-- > 0) *p++ = next_byte();
    }

private:
    uint64_t state_;
    uint64_t word_ = 0;
    unsigned used_ = 8;
};

// A 64-bit hash of a byte sequence that does not depend on how it was cut into pieces.
class StreamHash {
public:
    void update(const uint8_t* p, size_t n) {
        count_ += n;
        while (n > 0 && fill_ > 0) {
            push_byte(*p++);
            --n;
        }
        for (; n >= 8; n -= 8, p += 8) mix(load_le64(p));
        while (n-- > 0) push_byte(*p++);
    }
    uint64_t value() const {
        uint64_t h = h_;
        if (fill_ > 0) h = mixed(h, partial_);
        return splitmix64(h ^ count_);
    }
    uint64_t count() const { return count_; }

private:
    static uint64_t mixed(uint64_t h, uint64_t w) {
        h = (h ^ w) * 0x9e3779b97f4a7c15ull;
        return h ^ (h >> 29);
    }
    void mix(uint64_t w) { h_ = mixed(h_, w); }
    void push_byte(uint8_t b) {
        partial_ |= uint64_t{b} << (8 * fill_);
        if (++fill_ == 8) {
            mix(partial_);
            partial_ = 0;
            fill_ = 0;
        }
    }
    uint64_t h_ = 0x6a09e667f3bcc908ull;
    uint64_t partial_ = 0;
    unsigned fill_ = 0;
    uint64_t count_ = 0;
};

// The sender's side: fills buffers with the stream and hashes what it produced.
class StreamSource {
public:
    explicit StreamSource(uint64_t seed) : gen_(seed) {}
    void fill(uint8_t* p, size_t n) {
        gen_.fill(p, n);
        hash_.update(p, n);
    }
    uint64_t hash() const { return hash_.value(); }

private:
    StreamGen gen_;
    StreamHash hash_;
};

// The receiver's side: checks every byte against the stream and hashes what arrived.
class StreamCheck {
public:
    explicit StreamCheck(uint64_t seed) : gen_(seed) {}
    void update(const uint8_t* p, size_t n) {
        hash_.update(p, n);
        size_t i = 0;
        while (i < n && !gen_.aligned()) note(p[i++], gen_.next_byte());
        const size_t start = i;
        for (; n - i >= 8; i += 8) {
            uint64_t got = load_le64(p + i);
            uint64_t want = gen_.next_word();
            if (got != want && first_bad_ == kNoMismatch) {
                // Find the byte: the lowest differing byte of the little-endian word.
                uint64_t diff = got ^ want;
                first_bad_ = offset_ + (i - start) + static_cast<uint64_t>(__builtin_ctzll(diff) / 8);
            }
        }
        offset_ += i - start;
        while (i < n) note(p[i++], gen_.next_byte());
    }
    Report report() const { return Report{hash_.count(), hash_.value(), first_bad_}; }

private:
    void note(uint8_t got, uint8_t want) {
        if (got != want && first_bad_ == kNoMismatch) first_bad_ = offset_;
        ++offset_;
    }
    StreamGen gen_;
    StreamHash hash_;
    uint64_t offset_ = 0;
    uint64_t first_bad_ = kNoMismatch;
};

// What a sender makes of the receiver's Report.
inline bool report_matches(const Report& r, uint64_t sent_bytes, uint64_t sent_hash) {
    return r.bytes == sent_bytes && r.hash == sent_hash && r.first_bad == kNoMismatch;
}

}  // namespace krunlet::vsockstress
