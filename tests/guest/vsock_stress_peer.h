// Both roles of the krunlet-vsockstress protocol (vsock_stress_proto.h) on a connected,
// blocking stream socket of any family: the guest program, the integration test's host peers
// and `krunlet-bench net`'s host server all run these, so every side speaks the same protocol.
// Header-only and POSIX-only (the guest program is a static binary without krunlet's libs).
#pragma once

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "vsock_stress_proto.h"

namespace krunlet::vsockstress {

inline constexpr size_t kChunk = 64 * 1024;  // one vsock packet's worth

// Whole-buffer I/O. read_all returns the bytes read: short only at EOF or on an error (errno
// then says which; 0 at EOF).
inline bool write_all(int fd, const void* data, size_t n) {
    auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
        ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= static_cast<size_t>(k);
    }
    return true;
}

inline size_t read_all(int fd, void* data, size_t n) {
    auto* p = static_cast<uint8_t*>(data);
    size_t got = 0;
    while (got < n) {
        ssize_t k = ::read(fd, p + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k == 0) errno = 0;
        if (k <= 0) break;
        got += static_cast<size_t>(k);
    }
    return got;
}

// Gives up on a peer that stops moving: reads and writes fail after `seconds` of no progress.
inline void set_io_timeout(int fd, int seconds) {
    timeval tv{seconds, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

struct Outcome {
    bool ok = false;
    std::string error;  // what went wrong, for a person
    Hello hello;        // what was asked (the server learns it from the wire)
    Report up;          // what the server received (its Report)
    Report down;        // what the client received
    uint64_t up_hash = 0;    // of what the client sent
    uint64_t down_hash = 0;  // of what the server sent
};

namespace detail {

inline std::string errno_text(const char* what) {
    return std::string(what) + ": " + (errno != 0 ? std::strerror(errno) : "end of stream");
}

inline std::string hex(uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "%016" PRIx64, v);
    return b;
}

// Sends `n` stream bytes (zeros when raw); returns the hash of what was sent (0 when raw).
inline bool send_stream(int fd, uint64_t seed, uint64_t n, bool raw, uint64_t& hash, std::string& error) {
    std::vector<uint8_t> buf(kChunk, 0);
    StreamSource src(seed);
    while (n > 0) {
        size_t k = n < kChunk ? static_cast<size_t>(n) : kChunk;
        if (!raw) src.fill(buf.data(), k);
        if (!write_all(fd, buf.data(), k)) {
            error = errno_text("sending the stream");
            return false;
        }
        n -= k;
    }
    hash = raw ? 0 : src.hash();
    return true;
}

inline bool recv_stream(int fd, uint64_t seed, uint64_t n, bool raw, Report& report, std::string& error) {
    std::vector<uint8_t> buf(kChunk);
    StreamCheck check(seed);
    uint64_t got = 0;
    while (got < n) {
        size_t want = n - got < kChunk ? static_cast<size_t>(n - got) : kChunk;
        ssize_t k = ::read(fd, buf.data(), want);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = 0;
            error = errno_text("receiving the stream") + " after " + std::to_string(got) + " of " +
                    std::to_string(n) + " bytes";
            return false;
        }
        if (!raw) check.update(buf.data(), static_cast<size_t>(k));
        got += static_cast<uint64_t>(k);
    }
    report = raw ? Report{got, 0, kNoMismatch} : check.report();
    return true;
}

inline std::string mismatch(const char* dir, const Report& r, uint64_t sent, uint64_t hash) {
    return std::string(dir) + ": sent " + std::to_string(sent) + " bytes hash " + hex(hash) + ", peer received " +
           std::to_string(r.bytes) + " bytes hash " + hex(r.hash) +
           (r.first_bad != kNoMismatch ? ", first wrong byte at " + std::to_string(r.first_bad) : "");
}

}  // namespace detail

// Client side of Mode::Stream.
inline Outcome client_stream(int fd, uint32_t index, uint64_t up, uint64_t down, uint32_t flags) {
    Outcome o;
    o.hello.mode = static_cast<uint32_t>(Mode::Stream);
    o.hello.index = index;
    o.hello.flags = flags;
    o.hello.up_bytes = up;
    o.hello.down_bytes = down;
    const bool raw = (flags & kFlagRaw) != 0;
    if (!write_all(fd, &o.hello, sizeof o.hello)) {
        o.error = detail::errno_text("sending the hello");
        return o;
    }
    if (!detail::send_stream(fd, up_seed(index), up, raw, o.up_hash, o.error)) return o;
    if (read_all(fd, &o.up, sizeof o.up) != sizeof o.up) {
        o.error = detail::errno_text("reading the server's report");
        return o;
    }
    if (!detail::recv_stream(fd, down_seed(index), down, raw, o.down, o.error)) return o;
    if (!write_all(fd, &o.down, sizeof o.down)) {
        o.error = detail::errno_text("sending the report");
        return o;
    }
    if (!report_matches(o.up, up, o.up_hash)) {
        o.error = detail::mismatch("up", o.up, up, o.up_hash);
        return o;
    }
    // The down stream was checked byte by byte as it arrived.
    if (!raw && o.down.first_bad != kNoMismatch) {
        o.error = "down: first wrong byte at " + std::to_string(o.down.first_bad);
        return o;
    }
    o.down_hash = o.down.hash;
    o.ok = true;
    return o;
}

// Server side, any mode: reads the hello and serves it.
inline Outcome serve_one(int fd) {
    Outcome o;
    if (read_all(fd, &o.hello, sizeof o.hello) != sizeof o.hello) {
        o.error = detail::errno_text("reading the hello");
        return o;
    }
    const Hello& h = o.hello;
    if (h.magic != kMagic) {
        o.error = "bad hello magic " + detail::hex(h.magic);
        return o;
    }
    switch (static_cast<Mode>(h.mode)) {
    case Mode::Stream: {
        const bool raw = (h.flags & kFlagRaw) != 0;
        if (!detail::recv_stream(fd, up_seed(h.index), h.up_bytes, raw, o.up, o.error)) return o;
        if (!write_all(fd, &o.up, sizeof o.up)) {
            o.error = detail::errno_text("sending the report");
            return o;
        }
        if (!detail::send_stream(fd, down_seed(h.index), h.down_bytes, raw, o.down_hash, o.error)) return o;
        if (read_all(fd, &o.down, sizeof o.down) != sizeof o.down) {
            o.error = detail::errno_text("reading the client's report");
            return o;
        }
        if (!raw && o.up.first_bad != kNoMismatch) {
            o.error = "up: first wrong byte at " + std::to_string(o.up.first_bad);
            return o;
        }
        o.up_hash = o.up.hash;
        if (!report_matches(o.down, h.down_bytes, o.down_hash)) {
            o.error = detail::mismatch("down", o.down, h.down_bytes, o.down_hash);
            return o;
        }
        o.ok = true;
        return o;
    }
    case Mode::Echo: {
        if (h.up_bytes == 0 || h.up_bytes > kMaxEchoSize) {
            o.error = "echo size " + std::to_string(h.up_bytes) + " is outside 1.." + std::to_string(kMaxEchoSize);
            return o;
        }
        std::vector<uint8_t> msg(static_cast<size_t>(h.up_bytes));
        for (uint64_t i = 0; i < h.down_bytes; ++i) {
            if (read_all(fd, msg.data(), msg.size()) != msg.size() || !write_all(fd, msg.data(), msg.size())) {
                o.error = detail::errno_text("echo") + " at message " + std::to_string(i);
                return o;
            }
        }
        o.ok = true;
        return o;
    }
    case Mode::Probe:
        o.ok = write_all(fd, &kProbeAnswer, 1);
        if (!o.ok) o.error = detail::errno_text("answering the probe");
        return o;
    }
    o.error = "unknown mode " + std::to_string(h.mode);
    return o;
}

// Client side of Mode::Echo: `count` round trips of `size` bytes.
inline Outcome client_echo(int fd, uint64_t size, uint64_t count) {
    Outcome o;
    o.hello.mode = static_cast<uint32_t>(Mode::Echo);
    o.hello.up_bytes = size;
    o.hello.down_bytes = count;
    std::vector<uint8_t> out(static_cast<size_t>(size)), in(static_cast<size_t>(size));
    if (!write_all(fd, &o.hello, sizeof o.hello)) {
        o.error = detail::errno_text("sending the hello");
        return o;
    }
    for (uint64_t i = 0; i < count; ++i) {
        std::memcpy(out.data(), &i, out.size() < 8 ? out.size() : 8);
        if (!write_all(fd, out.data(), out.size()) || read_all(fd, in.data(), in.size()) != in.size()) {
            o.error = detail::errno_text("echo") + " at message " + std::to_string(i);
            return o;
        }
        if (in != out) {
            o.error = "echo: message " + std::to_string(i) + " came back changed";
            return o;
        }
    }
    o.ok = true;
    return o;
}

// Client side of Mode::Probe.
inline Outcome client_probe(int fd) {
    Outcome o;
    o.hello.mode = static_cast<uint32_t>(Mode::Probe);
    uint8_t b = 0;
    if (!write_all(fd, &o.hello, sizeof o.hello) || read_all(fd, &b, 1) != 1) {
        o.error = detail::errno_text("probe");
        return o;
    }
    o.ok = b == kProbeAnswer;
    if (!o.ok) o.error = "probe: unexpected answer";
    return o;
}

}  // namespace krunlet::vsockstress
