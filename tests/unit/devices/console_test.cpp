#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "devices/console.h"
#include "harness.h"

using namespace krunlet;
using namespace krunlet::devices;
using namespace krunlet::devices::test;

namespace {

constexpr uint16_t kRx = ConsoleDevice::kReceiveQueue;
constexpr uint16_t kTx = ConsoleDevice::kTransmitQueue;

struct Pipe {
    UniqueFd r, w;
    Pipe() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        r.reset(fds[0]);
        w.reset(fds[1]);
    }
};

void set_nonblock(int fd) { REQUIRE(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) == 0); }

std::string read_available(int fd) {
    std::string out;
    char buf[65536];
    for (;;) {
        struct pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) break;
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

std::string pattern(size_t n, unsigned seed) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed + i / 251) % 26);
    return s;
}

}  // namespace

TEST_CASE("console: create checks its fds; config space is all zeros") {
    LoopEnv env;
    auto bad = ConsoleDevice::create(env, 12345, 1);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().code == EBADF);
    CHECK(bad.error().message.find("input fd 12345") != std::string::npos);

    Pipe out;
    auto dev = ConsoleDevice::create(env, -1, out.w.get());
    REQUIRE(dev.ok());
    CHECK((*dev)->device_type() == 3u);
    CHECK((*dev)->queue_max_sizes().size() == 2);
    uint8_t cfg[12];
    std::memset(cfg, 0xff, sizeof cfg);
    (*dev)->read_config(0, cfg);
    for (uint8_t b : cfg) CHECK(b == 0);
}

TEST_CASE("console: TX bytes reach out_fd in order") {
    LoopEnv env;
    Pipe out;
    auto dev = ConsoleDevice::create(env, -1, out.w.get());
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());

    drv.post_out(kTx, bytes_of("hello "));
    drv.post(kTx, {bytes_of("wor"), bytes_of("ld\n")}, {});  // one chain, two buffers
    REQUIRE(drv.kick(kTx).ok());
    CHECK(read_available(out.r.get()) == "hello world\n");
    auto used = drv.take_used(kTx);
    REQUIRE(used.size() == 2);
    CHECK(used[0].len == 0);
    CHECK(drv.irq.used >= 1);
}

TEST_CASE("console: a full non-blocking pipe loses nothing and bounds host memory") {
    LoopEnv env;
    Pipe out;
    set_nonblock(out.w.get());
    REQUIRE(::fcntl(out.w.get(), F_SETPIPE_SZ, 4096) >= 0);
    // Fill the pipe completely; these bytes come out first.
    size_t prefill = 0;
    {
        std::string junk(65536, 'x');
        ssize_t n;
        while ((n = ::write(out.w.get(), junk.data(), junk.size())) > 0) prefill += static_cast<size_t>(n);
    }
    REQUIRE(prefill > 0);

    auto dev = ConsoleDevice::create(env, -1, out.w.get());
    REQUIRE(dev.ok());
    Driver drv(**dev, 64);
    REQUIRE(drv.activate().ok());

    // 40 chains of 24 KiB (960 KiB), far more than kPendingCap.
    std::string expect;
    for (unsigned i = 0; i < 40; ++i) {
        std::string part = pattern(24 * 1024, i);
        expect += part;
        drv.post_out(kTx, bytes_of(part));
    }
    REQUIRE(drv.kick(kTx).ok());
    CHECK((*dev)->pending_output() <= ConsoleDevice::kPendingCap);
    CHECK(env.watching(out.w.get()));  // waiting for EPOLLOUT
    size_t returned = drv.take_used(kTx).size();
    CHECK(returned < 40);  // back-pressure: the rest stays with the guest

    // Be a slow reader: drain the pipe a little at a time and let the
    // device's EPOLLOUT handler run.
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (got.size() < prefill + expect.size() && std::chrono::steady_clock::now() < deadline) {
        got += read_available(out.r.get());
        env.run_once(10);
        CHECK((*dev)->pending_output() <= ConsoleDevice::kPendingCap);
        returned += drv.take_used(kTx).size();
    }
    REQUIRE(got.size() == prefill + expect.size());
    CHECK(got.substr(0, prefill) == std::string(prefill, 'x'));
    got.erase(0, prefill);
    REQUIRE(got.size() == expect.size());
    CHECK(got == expect);
    returned += drv.take_used(kTx).size();
    CHECK(returned == 40);
    CHECK((*dev)->pending_output() == 0);
    CHECK_FALSE(env.watching(out.w.get()));  // nothing left to wait for
}

TEST_CASE("console: drain() flushes everything to a blocked non-blocking fd") {
    LoopEnv env;
    Pipe out;
    set_nonblock(out.w.get());
    REQUIRE(::fcntl(out.w.get(), F_SETPIPE_SZ, 4096) >= 0);
    auto dev = ConsoleDevice::create(env, -1, out.w.get());
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());

    std::string expect = pattern(300 * 1024, 3);
    for (size_t off = 0; off < expect.size(); off += 60 * 1024)
        drv.post_out(kTx, bytes_of(std::string_view(expect).substr(off, 60 * 1024)));
    // No kick: drain() must pick up what the guest queued, too.
    std::string got;
    std::thread reader([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        while (got.size() < expect.size()) {
            struct pollfd p{out.r.get(), POLLIN, 0};
            if (::poll(&p, 1, 5000) <= 0) break;
            got += read_available(out.r.get());
        }
    });
    (*dev)->drain();
    reader.join();
    CHECK(got.size() == expect.size());
    CHECK(got == expect);
    CHECK(drv.take_used(kTx).size() == 5);
}

TEST_CASE("console: output to a closed reader is discarded, never stalls the guest") {
    LoopEnv env;
    Pipe out;
    out.r.reset();
    auto dev = ConsoleDevice::create(env, -1, out.w.get());
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());
    // SIGPIPE is the VMM's business (it ignores it); the test process must not die.
    auto old = ::signal(SIGPIPE, SIG_IGN);
    drv.post_out(kTx, bytes_of("lost"));
    drv.post_out(kTx, bytes_of("also lost"));
    REQUIRE(drv.kick(kTx).ok());
    ::signal(SIGPIPE, old);
    CHECK(drv.take_used(kTx).size() == 2);
    CHECK((*dev)->pending_output() == 0);
}

TEST_CASE("console: RX from a pipe reaches posted buffers; nothing is read without a buffer") {
    LoopEnv env;
    Pipe in, out;
    auto dev = ConsoleDevice::create(env, in.r.get(), out.w.get());
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());

    std::string input = pattern(100, 9);
    REQUIRE(::write(in.w.get(), input.data(), input.size()) == 100);

    // No receive buffer yet: the device does not even watch the fd.
    CHECK_FALSE(env.watching(in.r.get()));
    CHECK(env.run_once(0) == 0);

    drv.post_in(kRx, 40);
    drv.post_in(kRx, 40);
    REQUIRE(drv.kick(kRx).ok());
    CHECK(env.watching(in.r.get()));
    std::string got;
    for (int i = 0; i < 10 && got.size() < 80; ++i) {
        env.run_once(100);
        for (auto& u : drv.take_used(kRx)) got += str_of(u.data);
    }
    CHECK(got == input.substr(0, 80));
    // Out of buffers: the rest waits in the pipe, and the fd is not watched
    // (a level-triggered watch would spin).
    env.run_once(20);
    CHECK_FALSE(env.watching(in.r.get()));

    drv.post_in(kRx, 64);
    REQUIRE(drv.kick(kRx).ok());
    env.run_once(100);
    auto used = drv.take_used(kRx);
    REQUIRE(used.size() == 1);
    CHECK(str_of(used[0].data) == input.substr(80));
    CHECK(drv.irq.used >= 2);
}

TEST_CASE("console: EOF on input stops reading for good") {
    LoopEnv env;
    Pipe in, out;
    auto dev = ConsoleDevice::create(env, in.r.get(), out.w.get());
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());
    REQUIRE(::write(in.w.get(), "bye", 3) == 3);
    in.w.reset();  // EOF after the data

    drv.post_in(kRx, 16);
    drv.post_in(kRx, 16);
    REQUIRE(drv.kick(kRx).ok());
    for (int i = 0; i < 5 && (*dev)->input_open(); ++i) env.run_once(100);
    CHECK_FALSE((*dev)->input_open());
    CHECK_FALSE(env.watching(in.r.get()));
    auto used = drv.take_used(kRx);
    REQUIRE(used.size() == 1);
    CHECK(str_of(used[0].data) == "bye");
    // Further kicks do nothing.
    drv.post_in(kRx, 16);
    REQUIRE(drv.kick(kRx).ok());
    CHECK(env.watch_count() == 0);
}

TEST_CASE("console: /dev/null and regular files as input (epoll refuses them)") {
    LoopEnv env;
    Pipe out;
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(null.valid());
    {
        auto dev = ConsoleDevice::create(env, null.get(), out.w.get());
        REQUIRE(dev.ok());
        Driver drv(**dev);
        REQUIRE(drv.activate().ok());
        drv.post_in(kRx, 16);
        REQUIRE(drv.kick(kRx).ok());
        CHECK_FALSE((*dev)->input_open());
        CHECK(env.watch_count() == 0);
        CHECK(drv.take_used(kRx).empty());
    }

    char path[] = "/tmp/krunlet-console-XXXXXX";
    UniqueFd file(::mkstemp(path));
    REQUIRE(file.valid());
    ::unlink(path);
    std::string content = pattern(10000, 1);
    REQUIRE(::write(file.get(), content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    REQUIRE(::lseek(file.get(), 0, SEEK_SET) == 0);
    auto dev = ConsoleDevice::create(env, file.get(), out.w.get());
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());
    std::string got;
    for (int round = 0; round < 10 && (*dev)->input_open(); ++round) {
        drv.post_in(kRx, 4096);
        REQUIRE(drv.kick(kRx).ok());
        for (auto& u : drv.take_used(kRx)) got += str_of(u.data);
    }
    CHECK(got == content);
    CHECK_FALSE((*dev)->input_open());
}

TEST_CASE("console: one socket for input and output") {
    LoopEnv env;
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    UniqueFd mine(sv[0]), theirs(sv[1]);
    auto dev = ConsoleDevice::create(env, theirs.get(), theirs.get());
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());
    drv.post_in(kRx, 32);
    REQUIRE(drv.kick(kRx).ok());
    drv.post_out(kTx, bytes_of("out"));
    REQUIRE(drv.kick(kTx).ok());
    char buf[8] = {};
    REQUIRE(::read(mine.get(), buf, sizeof buf) == 3);
    CHECK(std::string(buf, 3) == "out");
    REQUIRE(::write(mine.get(), "in", 2) == 2);
    env.run_once(100);
    auto used = drv.take_used(kRx);
    REQUIRE(used.size() == 1);
    CHECK(str_of(used[0].data) == "in");
}

TEST_CASE("console: reset stops input; a new activation resumes it") {
    LoopEnv env;
    Pipe in, out;
    auto dev = ConsoleDevice::create(env, in.r.get(), out.w.get());
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());
    drv.post_in(kRx, 16);
    REQUIRE(drv.kick(kRx).ok());
    CHECK(env.watching(in.r.get()));
    drv.reset();
    CHECK_FALSE(env.watching(in.r.get()));
    REQUIRE(::write(in.w.get(), "x", 1) == 1);
    CHECK(env.run_once(0) == 0);
}

TEST_CASE("console: a receive queue the driver left disabled is simply never used") {
    LoopEnv env;
    Pipe in, out;
    auto dev = ConsoleDevice::create(env, in.r.get(), out.w.get());
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate(virtio::kFeatureVersion1, /*skip=*/kRx).ok());
    CHECK(env.watch_count() == 0);
    drv.post_out(kTx, bytes_of("tx only"));
    REQUIRE(drv.kick(kTx).ok());
    CHECK(read_available(out.r.get()) == "tx only");
}
