#include "vmm/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace krunlet {

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
    std::unique_ptr<EventLoop> loop(new EventLoop());
    loop->epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!loop->epoll_.valid()) return errno_error("epoll_create1");
    loop->wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!loop->wake_.valid()) return errno_error("eventfd");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = loop->wake_.get();
    if (::epoll_ctl(loop->epoll_.get(), EPOLL_CTL_ADD, loop->wake_.get(), &ev) != 0)
        return errno_error("epoll_ctl(wake)");
    return loop;
}

Result<void> EventLoop::add(int fd, uint32_t events, Handler handler) {
    std::lock_guard lock(mu_);
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return errno_error("epoll_ctl(ADD)");
    handlers_[fd] = std::make_shared<Handler>(std::move(handler));
    return {};
}

void EventLoop::remove(int fd) {
    std::lock_guard lock(mu_);
    if (handlers_.erase(fd) != 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::run() {
    constexpr int kMaxEvents = 32;
    epoll_event events[kMaxEvents];
    while (!stopping_.load(std::memory_order_acquire)) {
        int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == wake_.get()) continue;
            std::shared_ptr<Handler> h;
            {
                // Copy the handler out so remove() from inside it (or from
                // another thread) cannot destroy it while it runs.
                std::lock_guard lock(mu_);
                auto it = handlers_.find(fd);
                if (it == handlers_.end()) continue;
                h = it->second;
            }
            (*h)(events[i].events);
        }
    }
}

void EventLoop::stop() {
    stopping_.store(true, std::memory_order_release);
    uint64_t one = 1;
    // A full eventfd counter cannot happen: only stop() writes here.
    [[maybe_unused]] ssize_t r = ::write(wake_.get(), &one, sizeof one);
}

}  // namespace krunlet
