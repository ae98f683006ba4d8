// The guest's network (issue 4): virtio-net with libslirp. All traffic stays on this
// machine's loopback: the guest reaches the host's 127.0.0.1 as 10.0.2.2, a published
// port listens on 127.0.0.1, and without --publish the guest's listeners are mirrored on the
// same host ports (wildcard ones on 0.0.0.0, loopback-only ones on 127.0.0.1).
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <thread>

#include "vm_runner.h"

using krunlet::test::krunlet_run;
using krunlet::test::ScratchRootfs;

namespace {
#define NET_RUN_INFO(r) INFO("status=" << (r).status << "\nstdout:\n" << (r).out << "\nstderr:\n" << (r).err)

int listen_loopback(uint16_t& port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 4) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    return fd;
}

uint16_t free_port() {
    uint16_t p = 0;
    ::close(listen_loopback(p));
    return p;
}

// GET / from 127.0.0.1:port, bounded in time; returns the whole response or "".
std::string http_get(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    std::string out;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        const std::string req = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
        (void)::write(fd, req.data(), req.size());
        pollfd p{fd, POLLIN, 0};
        char buf[4096];
        while (::poll(&p, 1, 20000) == 1) {
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0) break;
            out.append(buf, static_cast<size_t>(n));
        }
    }
    ::close(fd);
    return out;
}
}  // namespace

TEST_CASE("net: the guest fetches from a host server via 10.0.2.2, and a published guest server is reached") {
    ScratchRootfs fs;
    // The host's server: one request, one fixed answer.
    uint16_t host_port = 0;
    int lfd = listen_loopback(host_port);
    std::atomic<bool> served{false};
    std::thread server([&] {
        pollfd p{lfd, POLLIN, 0};
        if (::poll(&p, 1, 120000) != 1) return;
        int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        char buf[2048];
        (void)::read(c, buf, sizeof buf);
        const std::string resp = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello-from-the-host\n";
        (void)::write(c, resp.data(), resp.size());
        ::close(c);
        served = true;
    });

    uint16_t published = free_port();
    while (published == 8080) published = free_port();
    const std::string script =
        "wget -q -O - http://10.0.2.2:" + std::to_string(host_port) + "/ || echo wget-failed; "
        "mkdir -p /tmp/www && echo served-by-the-guest > /tmp/www/index.html && "
        "httpd -p 8080 -h /tmp/www && echo ready; sleep 60";
    std::string fetched;
    bool mirrored = true;
    auto hook = [&](pid_t pid, const std::string& out) {
        if (!fetched.empty() || out.find("ready") == std::string::npos) return;
        fetched = http_get(published);
        if (fetched.empty()) fetched = "<nothing>";
        // A port map turns mirroring off: the guest's 8080 stays off the host's 8080, even
        // after init's listener polls (every 100 ms at first) have long seen it.
        ::usleep(1500 * 1000);
        mirrored = !http_get(8080).empty();
        ::kill(pid, SIGTERM);
    };
    auto r = krunlet_run(fs.path(), {"--publish", std::to_string(published) + ":8080"}, {"/bin/sh", "-c", script},
                         180, hook);
    ::shutdown(lfd, SHUT_RDWR);
    server.join();
    ::close(lfd);
    NET_RUN_INFO(r);
    CHECK(served);
    CHECK(r.out.find("hello-from-the-host") != std::string::npos);
    CHECK(fetched.find("200 OK") != std::string::npos);
    CHECK(fetched.find("served-by-the-guest") != std::string::npos);
    CHECK_FALSE(mirrored);
    CHECK(r.status == 143);  // sleep got the forwarded SIGTERM
}

TEST_CASE("net: --net none leaves only loopback; a taken published port is a warning, not a failure") {
    ScratchRootfs fs;
    uint16_t taken = 0;
    int holder = listen_loopback(taken);
    {
        auto r = krunlet_run(fs.path(), {"--net", "none"}, {"/bin/sh", "-c", "test -e /sys/class/net/eth0 && echo has-eth0; echo done"});
        NET_RUN_INFO(r);
        CHECK(r.status == 0);
        CHECK(r.out == "done\n");
    }
    {
        auto r = krunlet_run(fs.path(), {"--publish", std::to_string(taken) + ":80"},
                             {"/bin/sh", "-c", "test -e /sys/class/net/eth0 && echo has-eth0"});
        NET_RUN_INFO(r);
        CHECK(r.status == 0);
        CHECK(r.out == "has-eth0\n");
        CHECK(r.err.find("port " + std::to_string(taken)) != std::string::npos);
    }
    ::close(holder);
}

namespace {

// Whether this process could listen on addr:port right now.
bool can_listen(const char* addr, uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, addr, &a.sin_addr);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd, 1) == 0;
    ::close(fd);
    return ok;
}

// GET / from 127.0.0.1:port until the answer holds `want`, for up to `seconds`.
std::string http_get_until(uint16_t port, const std::string& want, int seconds) {
    std::string got;
    for (int i = 0; i < seconds * 10; ++i) {
        got = http_get(port);
        if (got.find(want) != std::string::npos) return got;
        ::usleep(100 * 1000);
    }
    return got;
}

bool refused_within(uint16_t port, int seconds) {
    for (int i = 0; i < seconds * 10; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        bool refused = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno == ECONNREFUSED;
        ::close(fd);
        if (refused) return true;
        ::usleep(100 * 1000);
    }
    return false;
}

}  // namespace

TEST_CASE("net: without --publish the guest's listeners are mirrored, follow the guest, and a taken port is a log line") {
    ScratchRootfs fs;
    // A host port someone else holds on every address.
    int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    REQUIRE(::bind(holder, reinterpret_cast<sockaddr*>(&any), sizeof any) == 0);
    REQUIRE(::listen(holder, 4) == 0);
    socklen_t len = sizeof any;
    ::getsockname(holder, reinterpret_cast<sockaddr*>(&any), &len);
    const uint16_t taken = ntohs(any.sin_port);
    uint16_t wide = free_port(), lo = free_port();
    while (lo == wide || lo == taken) lo = free_port();
    while (wide == taken) wide = free_port();

    const std::string script =
        // The files first, as a list of their own: "a && b && httpd &" would put the whole list
        // in the background, racing the other servers' start against the mkdir.
        "mkdir -p /tmp/www /tmp/lo && echo served-by-mirroring > /tmp/www/index.html && "
        "echo loopback-only > /tmp/lo/index.html || exit 1; "
        "httpd -f -p " + std::to_string(wide) + " -h /tmp/www & w=$!; "
        "httpd -f -p 127.0.0.1:" + std::to_string(lo) + " -h /tmp/lo & "
        "httpd -f -p " + std::to_string(taken) + " -h /tmp/www & "
        "trap 'kill $w; echo stopped' USR1; trap 'echo bye; exit 7' TERM; "
        "sleep 1; echo ready; while :; do sleep 30 & wait $!; done";
    struct {
        std::string wide, lo;
        bool wide_on_all = false, lo_on_loopback_only = false, removed = false;
        bool signalled = false, done = false;
    } seen;
    auto hook = [&](pid_t pid, const std::string& out) {
        if (!seen.signalled && out.find("ready") != std::string::npos) {
            seen.wide = http_get_until(wide, "served-by-mirroring", 20);
            seen.lo = http_get_until(lo, "loopback-only", 20);
            // Where the host listens: the wildcard listener on every address (so even
            // 127.0.0.2 is taken), the loopback-only one on 127.0.0.1 alone.
            seen.wide_on_all = !can_listen("127.0.0.2", wide);
            seen.lo_on_loopback_only = !can_listen("127.0.0.1", lo) && can_listen("127.0.0.2", lo);
            seen.signalled = true;
            ::kill(pid, SIGUSR1);  // the guest stops the wildcard server
        } else if (seen.signalled && !seen.done && out.find("stopped") != std::string::npos) {
            seen.removed = refused_within(wide, 20);
            seen.done = true;
            ::kill(pid, SIGTERM);
        }
    };
    auto r = krunlet_run(fs.path(), {}, {"/bin/sh", "-c", script}, 240, hook);
    ::close(holder);
    NET_RUN_INFO(r);
    CHECK(seen.wide.find("200 OK") != std::string::npos);
    CHECK(seen.wide.find("served-by-mirroring") != std::string::npos);
    CHECK(seen.lo.find("loopback-only") != std::string::npos);
    CHECK(seen.wide_on_all);
    CHECK(seen.lo_on_loopback_only);
    CHECK(seen.removed);  // the guest stopped listening: the host port is released
    // The taken port: one clear line naming it; the guest ran on and exited its own way.
    const std::string line = "guest TCP port " + std::to_string(taken) + " is not mirrored";
    CHECK(r.err.find(line) != std::string::npos);
    CHECK(r.err.find("stays unreachable from the host") != std::string::npos);
    CHECK(r.err.find(line, r.err.find(line) + 1) == std::string::npos);  // once
    CHECK(r.out.find("bye") != std::string::npos);
    CHECK(r.status == 7);
    // init's listener polls print nothing on the console.
    CHECK(r.out.find("krunlet-init") == std::string::npos);
}
