#include "net_host_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

namespace krunlet::bench {

Result<std::unique_ptr<StreamPeer>> StreamPeer::unix_socket(const std::string& path) {
    std::unique_ptr<StreamPeer> p(new StreamPeer());
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) return make_error(ENAMETOOLONG, path + " is too long for a unix socket");
    std::memcpy(a.sun_path, path.data(), path.size());
    ::unlink(path.c_str());
    p->listener_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!p->listener_.valid() || ::bind(p->listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(p->listener_.get(), 64) != 0)
        return errno_error("listening on " + path);
    p->path_ = path;
    return p;
}

Result<std::unique_ptr<StreamPeer>> StreamPeer::tcp_loopback() {
    std::unique_ptr<StreamPeer> p(new StreamPeer());
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    socklen_t len = sizeof a;
    if (!p->listener_.valid() || ::bind(p->listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(p->listener_.get(), 64) != 0 ||
        ::getsockname(p->listener_.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
        return errno_error("listening on 127.0.0.1");
    p->port_ = ntohs(a.sin_port);
    return p;
}

StreamPeer::~StreamPeer() {
    // Wakes a thread still in accept(): shutdown of a listening socket makes it fail.
    ::shutdown(listener_.get(), SHUT_RDWR);
    join();
    if (!path_.empty()) ::unlink(path_.c_str());
}

void StreamPeer::start(int conns, std::function<void(int)> serve) {
    join();
    thread_ = std::thread([this, conns, serve = std::move(serve)] {
        for (int i = 0; i < conns; ++i) {
            int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) return;
            int one = 1;
            ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on unix
            ++accepted;
            serve(c);
            ::close(c);
        }
    });
}

void StreamPeer::join() {
    if (thread_.joinable()) thread_.join();
}

void StreamPeer::drain(int fd) {
    std::vector<char> buf(256 * 1024);
    for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;) bytes += uint64_t(n);
}

void StreamPeer::echo(int fd) {
    char b;
    while (::read(fd, &b, 1) == 1)
        if (::write(fd, &b, 1) != 1) return;
}

void StreamPeer::write_n(int fd, uint64_t n) {
    std::vector<char> buf(256 * 1024, 'x');
    while (n > 0) {
        ssize_t k = ::write(fd, buf.data(), std::min<uint64_t>(buf.size(), n));
        if (k <= 0) return;
        n -= uint64_t(k);
    }
}

}  // namespace krunlet::bench
