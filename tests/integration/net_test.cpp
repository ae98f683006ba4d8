// The guest's network (issue 4): virtio-net with libslirp. All traffic stays on this
// machine's loopback: the guest reaches the host's 127.0.0.1 as 10.0.2.2, and a published
// port listens on 127.0.0.1.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
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

    const uint16_t published = free_port();
    const std::string script =
        "wget -q -O - http://10.0.2.2:" + std::to_string(host_port) + "/ || echo wget-failed; "
        "mkdir -p /tmp/www && echo served-by-the-guest > /tmp/www/index.html && "
        "httpd -p 8080 -h /tmp/www && echo ready; sleep 60";
    std::string fetched;
    auto hook = [&](pid_t pid, const std::string& out) {
        if (!fetched.empty() || out.find("ready") == std::string::npos) return;
        fetched = http_get(published);
        if (fetched.empty()) fetched = "<nothing>";
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
