// A NetBackend over a connected stream unix socket in QEMU's "stream" netdev
// format, which passt speaks (and gvproxy's -listen-qemu): every Ethernet
// frame, in both directions, is preceded by its length as a 4-byte big-endian
// integer. No virtio header travels. This is what krun_add_net_unixstream
// attaches, and what crun hands over when a container asks for passt.
//
// The peer is another process and treated as untrusted: a length of 0 or above
// kMaxFrameSize cannot be resynchronised, so it takes the link down (logged,
// the socket closed, the guest sees a silent wire) instead of crashing or
// guessing. A frame shorter than an Ethernet header is dropped and counted.
//
// Buffers are bounded in both directions: the receive buffer holds at most one
// maximal frame plus what one read brings, and frames for a guest with no room
// stay in the socket (reading pauses until the sink says sink_ready()); frames
// for the host are queued up to kTxLimit bytes and dropped beyond it (the
// guest's TCP resends), which is what a full wire does.
//
// Event loop: the socket sits in a private epoll instance whose interest
// follows the state (EPOLLIN while the sink has room, EPOLLOUT while frames
// wait), and only that epoll fd is registered with the DeviceEnv.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "net/backend.h"
#include "virtio/device.h"

namespace krunlet::net {

class UnixStreamBackend final : public NetBackend {
public:
    // Frames queued for the host beyond this are dropped.
    static constexpr size_t kTxLimit = 1u << 20;
    // Bytes one read may bring on top of a whole maximal frame.
    static constexpr size_t kRxChunk = 256u << 10;

    struct Options {
        // Called once when the link goes down, with the reason (the VMM logs it).
        std::function<void(std::string_view why)> on_down;
    };

    // Connects to the stream socket at `path` (passt -s PATH).
    static Result<std::unique_ptr<UnixStreamBackend>> connect(virtio::DeviceEnv& env, const std::string& path,
                                                               Options options = {});
    // Takes a connected stream socket (crun's passt fd). Refuses anything but
    // a SOCK_STREAM socket.
    static Result<std::unique_ptr<UnixStreamBackend>> adopt(virtio::DeviceEnv& env, UniqueFd fd,
                                                             Options options = {});
    ~UnixStreamBackend() override;
    UnixStreamBackend(const UnixStreamBackend&) = delete;
    UnixStreamBackend& operator=(const UnixStreamBackend&) = delete;

    // NetBackend
    void set_sink(FrameSink* sink) override;
    Result<void> start() override;
    Result<void> send_to_host(std::span<const uint8_t> frame) override;
    void sink_ready() override;

    // One round of I/O (the event handler does this; tests may too).
    void run_once();

    bool link_up() const { return sock_.valid(); }
    struct Stats {
        uint64_t frames_to_host = 0;
        uint64_t frames_to_guest = 0;
        uint64_t tx_dropped = 0;      // queue full, or the link was down
        uint64_t rx_runts = 0;        // shorter than an Ethernet header
        uint64_t rx_unsunk = 0;       // arrived while no sink was attached
        std::string down_reason;      // why the link went down, if it did
    };
    const Stats& stats() const { return stats_; }
    size_t tx_queued() const { return tx_.size() - tx_sent_; }

private:
    UnixStreamBackend(virtio::DeviceEnv& env, UniqueFd sock, UniqueFd epoll, Options options);

    void read_frames();
    // Hands whole frames to the sink while it has room; false on a bad length.
    bool deliver();
    void flush();
    void update_interest();
    void take_down(std::string why);

    virtio::DeviceEnv& env_;
    UniqueFd sock_;
    UniqueFd epoll_;
    Options options_;
    FrameSink* sink_ = nullptr;
    bool started_ = false;
    uint32_t interest_ = 0;  // events registered for sock_ in epoll_

    std::vector<uint8_t> rx_;  // received bytes [rx_begin_, rx_end_)
    size_t rx_begin_ = 0;
    size_t rx_end_ = 0;
    bool rx_paused_ = false;   // the sink had no room

    std::vector<uint8_t> tx_;  // framed bytes for the host; [tx_sent_, size) still to write
    size_t tx_sent_ = 0;
    Stats stats_;
};

}  // namespace krunlet::net
