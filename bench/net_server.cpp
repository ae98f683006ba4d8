#include "net_server.h"

#include <arpa/inet.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "../tests/guest/vsock_stress_peer.h"

namespace krunlet::bench {
namespace {

Result<UniqueFd> listen_on(int family, const sockaddr* addr, socklen_t len, const std::string& what) {
    UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return errno_error("socket for " + what);
    int one = 1;
    if (family == AF_INET) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), addr, len) != 0) return errno_error("bind " + what);
    if (::listen(fd.get(), 128) != 0) return errno_error("listen on " + what);
    return fd;
}

}  // namespace

Result<std::unique_ptr<NetServer>> NetServer::start(const std::string& unix_path, uint32_t vsock_port) {
    std::unique_ptr<NetServer> s(new NetServer());
    if (!unix_path.empty()) {
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        if (unix_path.size() >= sizeof a.sun_path)
            return make_error(ENAMETOOLONG, "unix socket path " + unix_path + " is too long; set TMPDIR to a shorter directory");
        std::memcpy(a.sun_path, unix_path.data(), unix_path.size());
        ::unlink(unix_path.c_str());
        auto fd = listen_on(AF_UNIX, reinterpret_cast<sockaddr*>(&a), sizeof a, unix_path);
        if (!fd.ok()) return fd.error();
        s->unix_ = std::move(*fd);
        s->unix_path_ = unix_path;
    }
    if (vsock_port != 0) {
        sockaddr_vm a{};
        a.svm_family = AF_VSOCK;
        a.svm_cid = VMADDR_CID_ANY;
        a.svm_port = vsock_port;
        auto fd = listen_on(AF_VSOCK, reinterpret_cast<sockaddr*>(&a), sizeof a,
                            "vsock port " + std::to_string(vsock_port) +
                                " (is vhost_vsock loaded? inside the KVM test host it is)");
        if (!fd.ok()) return fd.error();
        s->vsock_ = std::move(*fd);
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    auto fd = listen_on(AF_INET, reinterpret_cast<sockaddr*>(&a), sizeof a, "127.0.0.1 (TCP)");
    if (!fd.ok()) return fd.error();
    s->tcp_ = std::move(*fd);
    socklen_t len = sizeof a;
    if (::getsockname(s->tcp_.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) return errno_error("getsockname");
    s->tcp_port_ = ntohs(a.sin_port);
    s->stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
    if (!s->stop_.valid()) return errno_error("eventfd");
    s->acceptor_ = std::thread([p = s.get()] { p->accept_loop(); });
    return s;
}

NetServer::~NetServer() {
    if (acceptor_.joinable()) {
        uint64_t one = 1;
        (void)!::write(stop_.get(), &one, sizeof one);
        acceptor_.join();
    }
    reap(true);
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

std::vector<std::string> NetServer::take_errors() {
    std::lock_guard lock(mu_);
    return std::exchange(errors_, {});
}

void NetServer::reap(bool all) {
    for (auto it = workers_.begin(); it != workers_.end();) {
        if (all || it->done) {
            it->thread.join();
            it = workers_.erase(it);
        } else {
            ++it;
        }
    }
}

void NetServer::accept_loop() {
    std::vector<pollfd> fds{{stop_.get(), POLLIN, 0}};
    for (const UniqueFd* l : {&unix_, &vsock_, &tcp_})
        if (l->valid()) fds.push_back({l->get(), POLLIN, 0});
    for (;;) {
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[0].revents) return;
        reap(false);
        for (size_t i = 1; i < fds.size(); ++i) {
            if (!fds[i].revents) continue;
            int c = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) continue;
            if (fds[i].fd == tcp_.get()) {
                int one = 1;  // round trips of one byte must not wait for Nagle
                ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            }
            Worker& w = workers_.emplace_back();
            w.thread = std::thread([this, c, &w] {
                vsockstress::set_io_timeout(c, 600);
                auto o = vsockstress::serve_one(c);
                ::close(c);
                if (!o.ok) {
                    std::lock_guard lock(mu_);
                    errors_.push_back(o.error);
                }
                w.done = true;
            });
        }
    }
}

}  // namespace krunlet::bench
