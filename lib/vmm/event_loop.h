// The VMM's single epoll event loop: device queue kicks (ioeventfd), host-side
// device I/O (stdin, sockets) and the control channel all run on its thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "base/fd.h"
#include "base/result.h"

namespace krunlet {

class EventLoop {
public:
    using Handler = std::function<void(uint32_t events)>;

    static Result<std::unique_ptr<EventLoop>> create();

    // Register `fd` for `events` (EPOLLIN, ...). Callable from any thread;
    // handlers run only on the loop thread.
    Result<void> add(int fd, uint32_t events, Handler handler);
    // Stop watching `fd`. Safe to call from inside a handler.
    void remove(int fd);

    // Run until stop() is called.
    void run();
    // Wake the loop and make run() return. Callable from any thread.
    void stop();

private:
    EventLoop() = default;
    UniqueFd epoll_;
    UniqueFd wake_;  // eventfd that stop() writes
    std::atomic<bool> stopping_{false};
    std::mutex mu_;
    std::unordered_map<int, std::shared_ptr<Handler>> handlers_;
};

}  // namespace krunlet
