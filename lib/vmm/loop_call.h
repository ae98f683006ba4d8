// Running a function on the event loop thread for another thread, and waiting
// for it.
//
// Why: a vCPU thread that exits on an MMIO write to a device's Status register
// would otherwise activate or reset the device itself, and activation runs
// device code on guest data (packets queued before DRIVER_OK, sockets opened
// for them). That work belongs on the event loop, whose seccomp filter allows
// it; the vCPU filter then needs little beyond KVM_RUN (docs/security.md). The
// hand-over is synchronous, so the guest sees the register write done when its
// MMIO exit completes, exactly as before.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "base/fd.h"
#include "base/result.h"
#include "vmm/event_loop.h"

namespace krunlet {

class LoopCall {
public:
    // Registers an eventfd with `loop`; `loop` must outlive this object.
    static Result<std::unique_ptr<LoopCall>> create(EventLoop& loop);
    ~LoopCall();
    LoopCall(const LoopCall&) = delete;
    LoopCall& operator=(const LoopCall&) = delete;

    // Runs `fn` on the loop thread and returns once it has run (true). Returns
    // false, without running it, when cancel() came first. Must not be called
    // from the loop thread itself (it would wait for itself).
    bool call(const std::function<void()>& fn);
    // The VM is stopping: calls not yet started return false at once, and so
    // does every later call. A call already running finishes first.
    void cancel();
    // The eventfd a caller writes to wake the loop (a vCPU's seccomp filter
    // allows write() on it).
    int wake_fd() const { return wake_.get(); }

private:
    struct Pending {
        const std::function<void()>* fn;
        enum { kQueued, kRunning, kDone, kDropped } state = kQueued;
    };
    explicit LoopCall(EventLoop& loop) : loop_(loop) {}
    void run_pending();  // on the loop thread

    EventLoop& loop_;
    UniqueFd wake_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Pending*> queue_;
    bool cancelled_ = false;
};

}  // namespace krunlet
