// virtio-console (virtio 1.2 §5.3), one port without VIRTIO_CONSOLE_F_MULTIPORT:
// receiveq0 (queue 0, host -> guest) and transmitq0 (queue 1, guest -> host).
// The guest sees it as hvc0.
//
// Output (TX): bytes go to out_fd. A partial write or EAGAIN never loses data:
// what does not fit is copied into a pending buffer of at most kPendingCap
// bytes, and once that is full the device keeps the current chain and stops
// taking new ones until out_fd drains (watched for EPOLLOUT). The guest then
// waits, which is the back-pressure a console needs.
//
// Input (RX): in_fd is read only when the guest has posted a receive buffer,
// straight into that buffer, so no byte is ever read without a place to put
// it. With no buffer posted the device stops watching in_fd and resumes on the
// next receiveq kick. An fd epoll cannot watch (a regular file, /dev/null) is
// read on demand instead; EOF or a read error ends input for good. The device
// never touches termios (the CLI owns raw mode) nor the fds' O_NONBLOCK flag
// (stdin/stdout share their open file description with other processes).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "virtio/device.h"

namespace krunlet::devices {

class ConsoleDevice final : public virtio::Device {
public:
    // in_fd and out_fd stay owned by the caller and must outlive the device;
    // so must `env`.
    static Result<std::unique_ptr<ConsoleDevice>> create(virtio::DeviceEnv& env, int in_fd, int out_fd);
    ~ConsoleDevice() override;
    ConsoleDevice(const ConsoleDevice&) = delete;
    ConsoleDevice& operator=(const ConsoleDevice&) = delete;

    uint32_t device_type() const override { return virtio::kDeviceConsole; }
    uint64_t device_features() const override { return 0; }  // no SIZE, MULTIPORT, EMERG_WRITE
    std::span<const uint16_t> queue_max_sizes() const override { return kQueueSizes; }
    void read_config(uint32_t offset, std::span<uint8_t> out) const override;
    Result<void> activate(const virtio::ActivateArgs& args) override;
    Result<void> queue_notify(uint16_t index) override;
    void reset() override;
    void drain() override;

    static constexpr uint16_t kReceiveQueue = 0;
    static constexpr uint16_t kTransmitQueue = 1;
    // Guest output buffered while out_fd is not writable.
    static constexpr size_t kPendingCap = 64 * 1024;
    // drain() gives up on an out_fd that accepts nothing for this long.
    static constexpr int kDrainStallMs = 10'000;

    // For tests and diagnostics.
    size_t pending_output() const { return pending_.size() - pending_off_; }
    bool input_open() const { return input_ != Input::Closed; }

private:
    ConsoleDevice(virtio::DeviceEnv& env, int in_fd, int out_fd, UniqueFd out_dup);
    static constexpr std::array<uint16_t, 2> kQueueSizes{256, 256};

    enum class Input {
        Idle,      // not watched: no receive buffer, or not active
        Watched,   // registered with env for EPOLLIN
        OnDemand,  // epoll refuses the fd; read whenever buffers are posted
        Closed,    // EOF or error: never read again
    };

    void start_input();
    void pause_input();
    void close_input();
    void read_input();

    void pump_tx();
    bool flush_pending();  // false when out_fd would block
    size_t write_chain(const virtio::DescriptorChain& chain, size_t offset);
    bool write_out(const uint8_t* data, size_t len, size_t& done);
    void set_output_blocked(bool blocked);
    void signal(virtio::Queue& q);
    void fail(virtio::QueueError e, const char* which);

    virtio::DeviceEnv& env_;
    int in_fd_;
    int out_fd_;
    UniqueFd out_dup_;  // out_fd_ when the caller passed the same fd for both

    virtio::Queue* rx_ = nullptr;  // valid between activate() and reset()
    virtio::Queue* tx_ = nullptr;
    virtio::Interrupt* irq_ = nullptr;

    Input input_ = Input::Idle;
    std::optional<virtio::DescriptorChain> rx_chain_;  // popped, waiting for input

    std::vector<uint8_t> pending_;  // output not yet accepted by out_fd
    size_t pending_off_ = 0;
    std::optional<virtio::DescriptorChain> tx_chain_;  // partly written, too big to buffer
    size_t tx_chain_off_ = 0;
    bool out_blocked_ = false;  // waiting for EPOLLOUT (or poll() in drain)
    bool out_watched_ = false;
    bool out_broken_ = false;   // out_fd failed for good: output is discarded

    // A ring fault found outside queue_notify() (in an fd handler); reported
    // by the next queue_notify() so the transport marks NEEDS_RESET.
    std::optional<Error> fault_;
};

}  // namespace krunlet::devices
