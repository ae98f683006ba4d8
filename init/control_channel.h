// The guest end of the control channel (lib/base/control_protocol.h): a vsock
// stream to the host, framed with control::frame / control::Decoder.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "base/control_protocol.h"
#include "base/fd.h"
#include "base/result.h"

namespace krunlet::init {

class ControlChannel {
public:
    // Connects to (kHostCid, kControlPort), retrying until `budget` has
    // passed: the host listens before the guest starts, but the vsock device
    // may still be settling when init runs.
    static Result<ControlChannel> connect(std::chrono::milliseconds budget);
    // Adopts any connected stream socket (the unit tests use a socketpair).
    static ControlChannel adopt(UniqueFd fd) { return ControlChannel(std::move(fd)); }

    int fd() const { return fd_.get(); }
    // False once the host closed the stream or broke the framing.
    bool open() const { return fd_.valid() && !closed_; }

    // Reads what has arrived, without blocking. Returns an error when the host
    // closed the stream (ECONNRESET) or sent a bad frame (EPROTO); the channel
    // is then closed for reading, but send() may still work.
    Result<void> receive();
    // The next whole message already received, or nullopt. An error (EPROTO)
    // when the host sent a frame with a bad length; the channel is then closed.
    Result<std::optional<std::string>> next();
    // Waits up to `timeout` for one whole message.
    Result<std::string> wait_message(std::chrono::milliseconds timeout);
    // Sends one framed JSON message (blocking; they are tiny).
    Result<void> send(std::string_view json);
    // After the exit message: waits up to `timeout` for the host to hang up
    // (or stop the VM under us). Returns early on EOF.
    void wait_for_hangup(std::chrono::milliseconds timeout);

private:
    explicit ControlChannel(UniqueFd fd) : fd_(std::move(fd)) {}

    UniqueFd fd_;
    control::Decoder decoder_;
    bool closed_ = false;
};

}  // namespace krunlet::init
