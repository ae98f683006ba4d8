#include <doctest/doctest.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <thread>

#include "vmm/event_loop.h"

TEST_CASE("event loop: handlers run on the loop thread until stop()") {
    auto loop = krunlet::EventLoop::create();
    REQUIRE(loop.ok());
    krunlet::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    int hits = 0;
    REQUIRE((*loop)->add(efd.get(), EPOLLIN, [&](uint32_t) {
                        uint64_t v;
                        REQUIRE(::read(efd.get(), &v, sizeof v) == sizeof v);
                        if (++hits == 3) (*loop)->remove(efd.get());  // removal from inside a handler
                    }).ok());
    std::thread t([&] { (*loop)->run(); });
    for (int i = 0; i < 5; ++i) {
        uint64_t one = 1;
        REQUIRE(::write(efd.get(), &one, sizeof one) == sizeof one);
        ::usleep(20000);
    }
    (*loop)->stop();
    t.join();
    CHECK(hits == 3);
    // Adding the same fd twice is an error, not a silent replace.
    REQUIRE((*loop)->add(efd.get(), EPOLLIN, [](uint32_t) {}).ok());
    CHECK_FALSE((*loop)->add(efd.get(), EPOLLIN, [](uint32_t) {}).ok());
}
