// Port mirroring, guest side (control_protocol.h "listen"/"unlisten"): init
// watches which TCP ports the guest listens on and tells the host, which then
// forwards the same host port (vmm/port_mirror.h). This is how a container's
// server becomes reachable without a port map, as libkrun's TSI does.
//
// The source is /proc/net/tcp and /proc/net/tcp6 (the latter is absent when
// the guest kernel has no IPv6). Each poll is one pread() per file on a
// descriptor kept open: seq_file regenerates the table when read from offset
// 0. Polls are frequent while the workload is starting (servers usually bind
// within the first seconds) and rarer after.
//
// The parsing and the diffing are pure functions, unit-tested on the host.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.h"

namespace krunlet::init {

// One socket in state LISTEN (TCP_LISTEN, 0x0A in the "st" column).
struct TcpListener {
    bool v6 = false;
    // The bound address in network byte order: 4 bytes for IPv4, 16 for IPv6.
    std::array<uint8_t, 16> addr{};
    uint16_t port = 0;
};

// The LISTEN sockets of one /proc/net/tcp (v6 = false) or /proc/net/tcp6
// (v6 = true) text. Malformed lines are skipped, never fatal: the format is
// the kernel's, but a truncated read can cut the last line.
std::vector<TcpListener> parse_proc_net_tcp(std::string_view text, bool v6);

// For every port, the IPv4 address the host must send connections to so they
// reach a listener there (the "addr" of control_protocol.h "listen"):
//   "0.0.0.0"    some listener is a wildcard (0.0.0.0, ::, ::ffff:0.0.0.0);
//   "a.b.c.d"    otherwise a listener bound to that address, non-loopback
//                addresses before loopback ones, lowest first;
// IPv6-only addresses (::1, global v6) have no IPv4 path and are left out,
// as are ports beyond the first control::kMaxMirroredPorts (lowest kept).
std::map<uint16_t, std::string> reachable_ports(const std::vector<TcpListener>& listeners);

// The control messages that turn the host's view `before` into `after`:
// "unlisten" for ports gone, "listen" for ports new or whose address changed.
std::vector<std::string> listener_changes(const std::map<uint16_t, std::string>& before,
                                          const std::map<uint16_t, std::string>& after);

// The poll schedule: every kFastInterval for kFastPeriod after start(), then
// every kSlowInterval.
class ListenerWatcher {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds kFastInterval{100};
    static constexpr std::chrono::milliseconds kFastPeriod{3000};
    static constexpr std::chrono::milliseconds kSlowInterval{500};

    // `proc_net` is the directory holding tcp and tcp6 (the tests point it at
    // files of their own). The first poll is due at once.
    explicit ListenerWatcher(std::string proc_net = "/proc/net", Clock::time_point start = Clock::now());

    // Milliseconds until the next poll is due (0 when it is due now).
    int timeout_ms(Clock::time_point now = Clock::now()) const;
    // Polls when due and returns the messages to send (usually none).
    std::vector<std::string> poll_if_due(Clock::time_point now = Clock::now());
    // Polls now, whatever the schedule says.
    std::vector<std::string> poll();

    const std::map<uint16_t, std::string>& reported() const { return reported_; }
    // True once neither table could be read (no /proc): the watcher gives up.
    bool broken() const { return broken_; }

private:
    // Reads one table into buf_ from offset 0; false when it cannot.
    bool read_table(UniqueFd& fd, bool& missing, const char* name);

    std::string dir_;
    Clock::time_point start_;
    Clock::time_point next_;
    UniqueFd tcp_, tcp6_;
    bool tcp_missing_ = false, tcp6_missing_ = false;
    bool broken_ = false;
    std::string buf_;        // one table, reused between polls
    size_t table_size_ = 0;  // bytes of buf_ the last read_table() filled
    std::map<uint16_t, std::string> reported_;
};

}  // namespace krunlet::init
