#include "vmm/loop_call.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace krunlet {

Result<std::unique_ptr<LoopCall>> LoopCall::create(EventLoop& loop) {
    std::unique_ptr<LoopCall> c(new LoopCall(loop));
    c->wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!c->wake_.valid()) return errno_error("eventfd for loop calls");
    LoopCall* self = c.get();
    KRUNLET_CHECK(loop.add(c->wake_.get(), EPOLLIN, [self](uint32_t) { self->run_pending(); }));
    return c;
}

LoopCall::~LoopCall() { loop_.remove(wake_.get()); }

bool LoopCall::call(const std::function<void()>& fn) {
    Pending p{&fn};
    {
        std::lock_guard lock(mu_);
        if (cancelled_) return false;
        queue_.push_back(&p);
    }
    uint64_t one = 1;
    // EAGAIN would mean the counter is near 2^64: the loop is awake anyway.
    [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&p] { return p.state == Pending::kDone || p.state == Pending::kDropped; });
    return p.state == Pending::kDone;
}

void LoopCall::cancel() {
    {
        std::lock_guard lock(mu_);
        cancelled_ = true;
        for (Pending* p : queue_) p->state = Pending::kDropped;
        queue_.clear();
    }
    cv_.notify_all();
}

void LoopCall::run_pending() {
    uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(wake_.get(), &count, sizeof count);
    for (;;) {
        Pending* p;
        {
            std::lock_guard lock(mu_);
            if (queue_.empty()) return;
            p = queue_.front();
            queue_.pop_front();
            p->state = Pending::kRunning;
        }
        (*p->fn)();  // outside our lock: fn takes the device's own mutex
        {
            std::lock_guard lock(mu_);
            p->state = Pending::kDone;
        }
        cv_.notify_all();
    }
}

}  // namespace krunlet
