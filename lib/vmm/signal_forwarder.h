// The signals a container runtime or a shell sends to the VMM process, turned into events the
// event loop can forward to the guest workload over the control channel (libkrun has never
// done this: `podman stop` there waits 10 s and then kills the VM).
//
// The signals are blocked and read from a signalfd. A blocked signal is only safe from the
// default action (termination) in threads that block it too, so create() must run before the
// VMM starts any thread: every thread created afterwards inherits the mask.
#pragma once

#include <signal.h>

#include <array>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace krunlet {

class SignalForwarder {
public:
    // What `docker/podman stop`, `kill`, a terminal's hangup and job control send.
    static constexpr std::array<int, 6> kForwarded = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

    // Blocks kForwarded in the calling thread and opens a non-blocking signalfd for them.
    static Result<SignalForwarder> create();

    SignalForwarder(SignalForwarder&& o) noexcept;
    SignalForwarder& operator=(SignalForwarder&&) = delete;
    SignalForwarder(const SignalForwarder&) = delete;
    SignalForwarder& operator=(const SignalForwarder&) = delete;
    // Closes the signalfd and restores the calling thread's previous mask (when destroyed on
    // the thread that created it, as the VMM does).
    ~SignalForwarder();

    int fd() const { return fd_.get(); }
    // The signals that arrived since the last call, in order (the kernel merges repeats of a
    // signal that is still pending).
    std::vector<int> take();

private:
    SignalForwarder() = default;
    UniqueFd fd_;
    sigset_t old_mask_{};
    bool restore_ = false;
};

}  // namespace krunlet
