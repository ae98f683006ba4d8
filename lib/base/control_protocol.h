// The control channel between the guest's init and the VMM.
//
// Transport: a vsock stream. The guest (CID 3) connects to the host (CID 2,
// VMADDR_CID_HOST) on kControlPort. Every message is a 4-byte little-endian
// length N (1..kMaxControlMessage) followed by N bytes of one JSON object with a
// "type" member:
//
//   host -> guest  {"type":"exec", "args":[...], "env":["K=V",...],
//                   "workdir":"...", "rlimits":["ID=CUR:MAX",...],
//                   "tty":true|false}
//                  Sent once, right after the connection is accepted. Every
//                  member but "type" is optional. Non-empty "args" beat the
//                  rootfs's /.krun_config.json process.args (libkrun's rule for
//                  KRUN_INIT); "workdir" beats process.cwd; "env" entries are
//                  added to the config's environment and win on equal keys.
//                  "tty" says whether the host's console is a terminal; when
//                  it is false, init makes the guest console raw (no echo, no
//                  \n -> \r\n) so the workload's output reaches a host pipe
//                  byte for byte.
//   host -> guest  {"type":"signal", "signo":N}     forward a signal (issue 4)
//   guest -> host  {"type":"exit", "code":N}        N is the final 0..255 status
//                  (128+sig when killed, 125/126/127 as in DESIGN.md §3). The
//                  host ends the VM as soon as it has this message.
//
// This header is shared by init (a static guest binary) and the VMM, so it only
// uses the standard library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace krunlet::control {

inline constexpr uint32_t kHostCid = 2;
inline constexpr uint32_t kGuestCid = 3;
inline constexpr uint32_t kControlPort = 1024;
inline constexpr size_t kMaxControlMessage = 1 << 20;

// Boot timing (DESIGN.md §2): init writes kInitStarted to this I/O port with
// outb() as the first thing it does, and the VMM timestamps the exit. The guest
// kernel runs with io_delay=none so it never touches port 0x80 itself.
inline constexpr uint16_t kDebugPort = 0x80;
inline constexpr uint8_t kInitStarted = 0x4b;  // 'K'

// Guest exit codes that mean "not the workload's own".
inline constexpr int kExitInitFailed = 125;
inline constexpr int kExitCannotExecute = 126;
inline constexpr int kExitNotFound = 127;

// Frame one JSON text.
inline std::string frame(std::string_view json) {
    std::string out(4, '\0');
    auto n = static_cast<uint32_t>(json.size());
    for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out.append(json);
    return out;
}

// Incremental decoder: feed bytes in; take out whole messages. A length of 0 or
// above kMaxControlMessage poisons the decoder (the peer is broken or hostile).
class Decoder {
public:
    void feed(std::string_view bytes) {
        if (!broken_) buf_.append(bytes);
    }
    // The next whole message, if one has arrived.
    std::optional<std::string> next() {
        if (broken_ || buf_.size() < 4) return std::nullopt;
        uint32_t n = 0;
        for (int i = 0; i < 4; ++i) n |= uint32_t(uint8_t(buf_[i])) << (8 * i);
        if (n == 0 || n > kMaxControlMessage) {
            broken_ = true;
            buf_.clear();
            return std::nullopt;
        }
        if (buf_.size() < 4 + size_t(n)) return std::nullopt;
        std::string msg = buf_.substr(4, n);
        buf_.erase(0, 4 + size_t(n));
        return msg;
    }
    bool broken() const { return broken_; }

private:
    std::string buf_;
    bool broken_ = false;
};

}  // namespace krunlet::control
