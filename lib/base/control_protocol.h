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
//                  "mounts":[{"tag":"krunlet-vol0","path":"/data",
//                  "read_only":true},...] lists virtio-fs shares init mounts
//                  (after the config's own mounts, parents first) before it
//                  starts the workload; "read_only" is optional (false). At
//                  most kMaxMounts entries; tags and paths must pass
//                  mount_tag_problem() / mount_path_problem(). An init that
//                  predates "mounts" ignores it, and a host that sends none
//                  gets none.
//                  "net":{"address":"10.0.2.15","prefix":24,
//                  "gateway":"10.0.2.2","dns":"10.0.2.3"} is eth0's static
//                  IPv4 setup (all four members required, dotted quads, prefix
//                  1..32); without it init uses slirp's layout, which is the
//                  same. "mirror_ports":true asks init to report the guest's
//                  TCP listeners (the "listen"/"unlisten" messages below); the
//                  host sends it only when it will act on them (user-mode
//                  network, no explicit port map).
//   host -> guest  {"type":"signal", "signo":N}     forward a signal (issue 4)
//   guest -> host  {"type":"exit", "code":N}        N is the final 0..255 status
//                  (128+sig when killed, 125/126/127 as in DESIGN.md §3). The
//                  host ends the VM as soon as it has this message.
//   guest -> host  {"type":"listen", "port":P, "addr":"A"}
//                  A guest socket listens on TCP port P (1..65535). A is the
//                  IPv4 address a connection must be sent to in the guest to
//                  reach it: "0.0.0.0" for a wildcard listener (0.0.0.0 or ::),
//                  a 127.x.y.z address for a loopback-only one, or the one
//                  address it is bound to. A second "listen" for the same
//                  port replaces the first (its address changed). Only sent
//                  after "mirror_ports"; at most kMaxMirroredPorts ports.
//   guest -> host  {"type":"unlisten", "port":P}   nothing listens on P any more
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
// Written once more just before init forks the workload, so that a boot splits
// into kernel, init and workload (--boot-trace, bench/compare.sh). One exit.
inline constexpr uint8_t kWorkloadStarting = 0x57;  // 'W'

// Guest exit codes that mean "not the workload's own".
inline constexpr int kExitInitFailed = 125;
inline constexpr int kExitCannotExecute = 126;
inline constexpr int kExitNotFound = 127;

// Bounds on the exec message's "mounts" (and on the virtio-fs entries of
// /.krun_config.json). virtio 1.2 §5.11.4: a tag is at most 36 bytes.
inline constexpr size_t kMaxMounts = 64;
inline constexpr size_t kMaxMountTag = 36;
inline constexpr size_t kMaxMountPath = 4095;  // PATH_MAX with its NUL

// Why `tag` cannot name a virtio-fs share to mount, or nullptr when it can:
// 1..36 bytes of printable ASCII without spaces (what mount(8) and
// /proc/mounts show without escaping).
inline const char* mount_tag_problem(std::string_view tag) {
    if (tag.empty()) return "the tag is empty";
    if (tag.size() > kMaxMountTag) return "the tag is longer than 36 bytes";
    for (char c : tag)
        if (c < 0x21 || c > 0x7e) return "the tag may only hold printable ASCII characters without spaces";
    return nullptr;
}

// Why `path` cannot be a guest mount point, or nullptr when it can: an
// absolute path other than "/", without "." or ".." components or NUL bytes,
// at most kMaxMountPath bytes.
inline const char* mount_path_problem(std::string_view path) {
    if (path.empty() || path.front() != '/') return "the path must be absolute";
    if (path.size() > kMaxMountPath) return "the path is longer than 4095 bytes";
    if (path.find('\0') != std::string_view::npos) return "the path contains a NUL byte";
    bool has_name = false;
    size_t i = 0;
    while (i < path.size()) {
        size_t end = path.find('/', i);
        if (end == std::string_view::npos) end = path.size();
        std::string_view part = path.substr(i, end - i);
        if (part == "." || part == "..") return "the path may not contain \".\" or \"..\" components";
        if (!part.empty()) has_name = true;
        i = end + 1;
    }
    if (!has_name) return "the path may not be / (that would hide the root filesystem)";
    return nullptr;
}

// How many guest ports init reports, and the host mirrors, at most: the
// guest decides how many it opens, so both ends bound it.
inline constexpr size_t kMaxMirroredPorts = 256;

// Whether `text` is a dotted-quad IPv4 address ("a.b.c.d", each 0..255, no
// leading zeros): the only form "listen" and "net" addresses take.
inline bool is_dotted_quad(std::string_view text) {
    int parts = 0;
    size_t i = 0;
    while (parts < 4) {
        size_t start = i;
        unsigned value = 0;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i - start < 3)
            value = value * 10 + unsigned(text[i++] - '0');
        size_t len = i - start;
        if (len == 0 || value > 255 || (len > 1 && text[start] == '0')) return false;
        if (++parts < 4) {
            if (i >= text.size() || text[i] != '.') return false;
            ++i;
        }
    }
    return i == text.size();
}

// The guest's listener messages, as init sends them. `addr` must be a dotted
// quad (is_dotted_quad), so no JSON escaping is needed.
inline std::string listen_message(uint16_t port, std::string_view addr) {
    return "{\"type\":\"listen\",\"port\":" + std::to_string(port) + ",\"addr\":\"" + std::string(addr) + "\"}";
}
inline std::string unlisten_message(uint16_t port) {
    return "{\"type\":\"unlisten\",\"port\":" + std::to_string(port) + "}";
}

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
