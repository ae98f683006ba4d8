// A NetBackend on libslirp, the user-mode TCP/IP stack QEMU uses: guest
// networking without root, TAP devices or a helper process. The guest's
// TCP/UDP flows become ordinary sockets of the VMM in the VMM's own network
// namespace; ICMP echo uses unprivileged ping sockets where the host allows.
//
// Default network (QEMU's user networking): 10.0.2.0/24, gateway and host
// alias 10.0.2.2 (which also reaches the host's 127.0.0.1), DNS proxy
// 10.0.2.3, guest 10.0.2.15 (what slirp's DHCP hands out). IPv4 only.
//
// Event loop: slirp's sockets, a timerfd (slirp's TCP timers and its own
// timers) and a kick eventfd all sit in one private epoll instance, and only
// that epoll fd is registered with the DeviceEnv. Each wake-up runs one cycle
// on the loop thread: poll() the descriptors slirp asked for last time with
// a zero timeout, let slirp handle them, ask slirp what to watch next
// (slirp_pollfds_fill) and re-arm the timer. Nothing blocks. A frame from the
// guest goes straight into slirp_input() and then kicks a cycle, so sockets
// slirp opened for it are watched before the loop sleeps again.
//
// Guest frames are hostile input to libslirp's C parser. One filter sits in
// front of it: IPv4 fragments are dropped (libslirp 4.7.0 crashes on a lone
// last fragment; see is_ipv4_fragment in the .cpp).
#pragma once

#include <poll.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "net/backend.h"
#include "virtio/device.h"

struct Slirp;

namespace krunlet::net {

struct SlirpOptions {
    std::string network = "10.0.2.0";  // the guest network, with prefix_len
    unsigned prefix_len = 24;
    std::string host = "10.0.2.2";     // gateway; connections to it go to the host's loopback
    std::string dns = "10.0.2.3";      // DNS proxy to the host's resolv.conf servers
    std::string guest = "10.0.2.15";   // first DHCP address; the default port-forward target
    unsigned mtu = 1500;               // slirp's IF_MTU; the guest's eth0 must not exceed it
    bool host_loopback = true;         // false: 10.0.2.2 no longer reaches 127.0.0.1
    // The guest's MAC until its first frame shows the one it really uses
    // (only needed to forward to guest loopback addresses, see add_hostfwd).
    std::array<uint8_t, 6> guest_mac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
};

class SlirpBackend final : public NetBackend {
public:
    // `env` must outlive the backend.
    static Result<std::unique_ptr<SlirpBackend>> create(virtio::DeviceEnv& env, const SlirpOptions& options);
    ~SlirpBackend() override;
    SlirpBackend(const SlirpBackend&) = delete;
    SlirpBackend& operator=(const SlirpBackend&) = delete;

    // Forward TCP connections made to host_addr:host_port on the host to
    // guest_port on the guest address. The host socket listens at once. A
    // port that is taken (or not allowed) returns an error naming it; the
    // caller logs it and the VM runs without that forward.
    Result<void> add_hostfwd(std::string_view host_addr, uint16_t host_port, uint16_t guest_port);
    Result<void> add_hostfwd(uint16_t host_port, uint16_t guest_port) {
        return add_hostfwd("127.0.0.1", host_port, guest_port);
    }
    // The same, to `guest_addr` instead of the guest's address. A loopback
    // guest_addr (127.0.0.0/8; the guest must accept it on eth0, see
    // init/network.h allow_loopback_on_eth0) works too: the guest never
    // answers ARP for loopback addresses, so slirp is told that the guest's
    // MAC owns it, as a frame from the guest would.
    Result<void> add_hostfwd(std::string_view host_addr, uint16_t host_port, std::string_view guest_addr,
                             uint16_t guest_port);
    // Stops the forward listening on host_addr:host_port (connections already
    // made go on). ENOENT when there is none.
    Result<void> remove_hostfwd(std::string_view host_addr, uint16_t host_port);

    // NetBackend
    void set_sink(FrameSink* sink) override { sink_ = sink; }
    Result<void> start() override;
    Result<void> send_to_host(std::span<const uint8_t> frame) override;

    // Run one cycle now (the event handler does this; tests may too).
    void poll_once();

    struct Stats {
        uint64_t frames_to_host = 0;
        uint64_t frames_to_guest = 0;
        uint64_t frames_unsunk = 0;    // slirp produced a frame while no sink was attached
        uint64_t fragments_dropped = 0;  // IPv4 fragments from the guest (see send_to_host)
        uint64_t cycles = 0;
        uint64_t guest_errors = 0;     // slirp's reports of guest misbehaviour
        std::string last_guest_error;
    };
    const Stats& stats() const { return stats_; }
    // How many host sockets slirp asked to watch in the last cycle.
    size_t watched_sockets() const { return pollfds_.size(); }

private:
    struct Timer;
    explicit SlirpBackend(virtio::DeviceEnv& env);  // in the .cpp, where Timer is complete

    void kick();
    void teach_arp(uint32_t ip_be);
    void refill();
    void sync_epoll();
    void arm_timer(uint32_t timeout_ms);
    void run_due_timers();

    // The libslirp callbacks (SlirpCb) and poll helpers, in the .cpp.
    friend struct SlirpGlue;

    virtio::DeviceEnv& env_;
    std::vector<std::unique_ptr<Timer>> timers_;  // before slirp_: freed after slirp_cleanup()
    Slirp* slirp_ = nullptr;       // owned: slirp_cleanup() in the destructor
    uint32_t guest_addr_ = 0;      // network byte order
    std::array<uint8_t, 6> guest_mac_{};  // the source of the guest's last frame (or the option)
    uint32_t host_addr_ = 0;       // slirp's own address (10.0.2.2), network byte order
    UniqueFd epoll_;               // slirp's sockets + timer_ + kick_
    UniqueFd timer_;               // timerfd, CLOCK_MONOTONIC, absolute
    UniqueFd kick_;                // eventfd: "run a cycle soon"
    bool started_ = false;
    bool kick_pending_ = false;
    int64_t armed_ns_ = -1;        // timer_'s deadline, -1 when disarmed
    std::vector<struct pollfd> pollfds_;           // what slirp asked for in the last fill
    std::unordered_map<int, uint32_t> registered_;  // fd -> epoll events registered in epoll_
    FrameSink* sink_ = nullptr;
    Stats stats_;
};

}  // namespace krunlet::net
