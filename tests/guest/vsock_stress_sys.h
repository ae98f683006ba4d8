// System helpers of krunlet-vsockstress (guest side): output lines, sockets, clocks.
#pragma once

#include <arpa/inet.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace krunlet::vsockstress {

// One line on stdout with a single write(2): lines from concurrent threads never interleave
// and nothing waits in a stdio buffer when the VM ends.
[[gnu::format(printf, 1, 2)]] inline void say(const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = std::vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = static_cast<size_t>(n) < sizeof buf - 1 ? static_cast<size_t>(n) : sizeof buf - 2;
    buf[len++] = '\n';
    for (size_t off = 0; off < len;) {
        ssize_t k = ::write(1, buf + off, len - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return;
        off += static_cast<size_t>(k);
    }
}

inline double now_s() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

inline void sleep_ms(long ms) {
    timespec ts{ms / 1000, (ms % 1000) * 1000000};
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// An address to connect to: AF_VSOCK (cid, port) or IPv4 (host, port).
struct Target {
    bool tcp = false;
    uint32_t cid = VMADDR_CID_HOST;
    std::string host;  // dotted IPv4, for tcp
    uint32_t port = 0;
    std::string text() const {
        return tcp ? "tcp:" + host + ":" + std::to_string(port)
                   : "vsock:" + std::to_string(cid) + ":" + std::to_string(port);
    }
};

// A connected blocking socket, or -1 with errno set.
inline int connect_to(const Target& t) {
    int fd = ::socket(t.tcp ? AF_INET : AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int rc;
    if (t.tcp) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(t.port));
        if (::inet_pton(AF_INET, t.host.c_str(), &a.sin_addr) != 1) {
            ::close(fd);
            errno = EINVAL;
            return -1;
        }
        int one = 1;  // the round-trip phases send small messages
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
        sockaddr_vm a{};
        a.svm_family = AF_VSOCK;
        a.svm_cid = t.cid;
        a.svm_port = t.port;
        rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    if (rc != 0) {
        int e = errno;
        ::close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

// A listening AF_VSOCK socket on `port` (any CID), or -1 with errno set.
inline int vsock_listen(uint32_t port, int backlog) {
    int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_vm a{};
    a.svm_family = AF_VSOCK;
    a.svm_cid = VMADDR_CID_ANY;
    a.svm_port = port;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, backlog) != 0) {
        int e = errno;
        ::close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

}  // namespace krunlet::vsockstress
