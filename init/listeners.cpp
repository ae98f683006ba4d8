#include "init/listeners.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "base/control_protocol.h"

namespace krunlet::init {
namespace {

// A table this big holds some 25,000 sockets; what lies beyond is not read
// (those listeners are simply not mirrored).
constexpr size_t kMaxTable = 4u << 20;
constexpr size_t kFirstRead = 16u << 10;

std::optional<uint32_t> parse_hex(std::string_view text) {
    if (text.empty() || text.size() > 8) return std::nullopt;
    uint32_t v = 0;
    for (char c : text) {
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = uint32_t(c - '0');
        else if (c >= 'A' && c <= 'F')
            d = uint32_t(c - 'A' + 10);
        else if (c >= 'a' && c <= 'f')
            d = uint32_t(c - 'a' + 10);
        else
            return std::nullopt;
        v = v << 4 | d;
    }
    return v;
}

// The next whitespace-separated field of `line`, consumed.
std::string_view next_field(std::string_view& line) {
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos) {
        line = {};
        return {};
    }
    size_t end = line.find_first_of(" \t", start);
    std::string_view field = line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    line = end == std::string_view::npos ? std::string_view{} : line.substr(end);
    return field;
}

// "ADDR:PORT" of the local_address column. The kernel prints the address as
// the 32-bit words it stores (__be32, so network byte order in memory) with
// %08X each, which is why every word goes back into memory as parsed, on the
// same kernel that wrote it; the port is printed in host order.
std::optional<TcpListener> parse_local(std::string_view field, bool v6) {
    size_t colon = field.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::string_view addr = field.substr(0, colon);
    const size_t words = v6 ? 4 : 1;
    if (addr.size() != 8 * words) return std::nullopt;
    TcpListener l;
    l.v6 = v6;
    for (size_t w = 0; w < words; ++w) {
        auto word = parse_hex(addr.substr(8 * w, 8));
        if (!word) return std::nullopt;
        std::memcpy(l.addr.data() + 4 * w, &*word, 4);
    }
    std::string_view port = field.substr(colon + 1);
    if (port.size() != 4) return std::nullopt;
    auto p = parse_hex(port);
    if (!p || *p == 0) return std::nullopt;
    l.port = static_cast<uint16_t>(*p);
    return l;
}

enum class Reach { Wildcard, Specific, Loopback, None };

// How an IPv4 connection can reach this listener, and through which address
// (network byte order).
Reach classify(const TcpListener& l, uint32_t& addr_be) {
    const uint8_t* a = l.addr.data();
    if (l.v6) {
        static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::all_of(a, a + 16, [](uint8_t b) { return b == 0; })) {
            addr_be = 0;
            return Reach::Wildcard;  // "::", dual-stack unless IPV6_V6ONLY (not visible here)
        }
        if (std::memcmp(a, kMappedPrefix, 12) != 0) return Reach::None;  // no IPv4 path
        a += 12;  // ::ffff:a.b.c.d is the IPv4 address a.b.c.d
    }
    std::memcpy(&addr_be, a, 4);
    if (addr_be == 0) return Reach::Wildcard;
    if (a[0] == 127) return Reach::Loopback;
    return Reach::Specific;
}

std::string dotted(uint32_t addr_be) {
    uint8_t b[4];
    std::memcpy(b, &addr_be, 4);
    char text[16];
    std::snprintf(text, sizeof text, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    return text;
}

}  // namespace

std::vector<TcpListener> parse_proc_net_tcp(std::string_view text, bool v6) {
    std::vector<TcpListener> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        std::string_view slot = next_field(line);
        if (slot.empty() || slot.back() != ':') continue;  // the header, or garbage
        std::string_view local = next_field(line);
        next_field(line);  // rem_address
        std::string_view state = next_field(line);
        if (state != "0A") continue;  // TCP_LISTEN (include/net/tcp_states.h)
        if (auto l = parse_local(local, v6)) out.push_back(*l);
    }
    return out;
}

std::map<uint16_t, std::string> reachable_ports(const std::vector<TcpListener>& listeners) {
    struct Best {
        Reach reach = Reach::None;
        uint32_t addr_host = 0;  // host order, for "lowest first"
        uint32_t addr_be = 0;
    };
    std::map<uint16_t, Best> best;
    for (const TcpListener& l : listeners) {
        uint32_t be = 0;
        Reach r = classify(l, be);
        if (r == Reach::None) continue;
        uint8_t b[4];
        std::memcpy(b, &be, 4);
        const uint32_t host = uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3];
        Best& cur = best[l.port];
        // Reach orders Wildcard < Specific < Loopback: smaller is better.
        if (cur.reach == Reach::None || r < cur.reach || (r == cur.reach && host < cur.addr_host))
            cur = Best{r, host, be};
    }
    std::map<uint16_t, std::string> out;
    for (const auto& [port, b] : best) {
        if (out.size() >= control::kMaxMirroredPorts) break;
        out.emplace(port, dotted(b.addr_be));
    }
    return out;
}

std::vector<std::string> listener_changes(const std::map<uint16_t, std::string>& before,
                                          const std::map<uint16_t, std::string>& after) {
    std::vector<std::string> out;
    // Removals first: a host port freed here may be needed by an addition.
    for (const auto& [port, addr] : before)
        if (after.find(port) == after.end()) out.push_back(control::unlisten_message(port));
    for (const auto& [port, addr] : after) {
        auto it = before.find(port);
        if (it == before.end() || it->second != addr) out.push_back(control::listen_message(port, addr));
    }
    return out;
}

ListenerWatcher::ListenerWatcher(std::string proc_net, Clock::time_point start)
    : dir_(std::move(proc_net)), start_(start), next_(start) {}

int ListenerWatcher::timeout_ms(Clock::time_point now) const {
    if (broken_) return -1;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(next_ - now).count();
    return left <= 0 ? 0 : static_cast<int>(left);
}

std::vector<std::string> ListenerWatcher::poll_if_due(Clock::time_point now) {
    if (broken_ || now < next_) return {};
    next_ = now + (now - start_ < kFastPeriod ? kFastInterval : kSlowInterval);
    return poll();
}

bool ListenerWatcher::read_table(UniqueFd& fd, bool& missing, const char* name) {
    if (missing) return false;
    if (!fd.valid()) {
        std::string path = dir_ + "/" + name;
        fd = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd.valid()) {
            // tcp6 is absent without CONFIG_IPV6; anything but "absent" may pass.
            if (errno == ENOENT) missing = true;
            return false;
        }
    }
    if (buf_.size() < kFirstRead) buf_.resize(kFirstRead);
    size_t got = 0;
    while (true) {
        if (got == buf_.size()) {
            if (buf_.size() >= kMaxTable) break;
            buf_.resize(std::min(buf_.size() * 2, kMaxTable));
        }
        // Offset 0 makes seq_file start the table afresh.
        ssize_t n = ::pread(fd.get(), buf_.data() + got, buf_.size() - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fd.reset();  // reopened next time
            return false;
        }
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    table_size_ = got;
    return true;
}

std::vector<std::string> ListenerWatcher::poll() {
    std::vector<TcpListener> all;
    if (!read_table(tcp_, tcp_missing_, "tcp")) {
        if (tcp_missing_) broken_ = true;  // no /proc/net/tcp: nothing will ever show up
        return {};  // a failed read says nothing about the ports: keep the last view
    }
    all = parse_proc_net_tcp(std::string_view(buf_.data(), table_size_), false);
    if (read_table(tcp6_, tcp6_missing_, "tcp6")) {
        auto six = parse_proc_net_tcp(std::string_view(buf_.data(), table_size_), true);
        all.insert(all.end(), six.begin(), six.end());
    } else if (!tcp6_missing_) {
        return {};
    }
    auto now = reachable_ports(all);
    auto messages = listener_changes(reported_, now);
    reported_ = std::move(now);
    return messages;
}

}  // namespace krunlet::init
