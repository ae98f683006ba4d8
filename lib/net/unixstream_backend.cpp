#include "net/unixstream_backend.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace krunlet::net {
namespace {

constexpr size_t kLengthSize = 4;  // the big-endian length before every frame
// Reads per wake-up before the loop gets a turn (level-triggered: the rest
// is read on the next one).
constexpr int kReadsPerRound = 64;

uint32_t load_be32(const uint8_t* p) {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

}  // namespace

Result<std::unique_ptr<UnixStreamBackend>> UnixStreamBackend::connect(virtio::DeviceEnv& env, const std::string& path,
                                                                       Options options) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path)
        return make_error(ENAMETOOLONG, "network socket path \"" + path + "\" must be 1.." +
                                            std::to_string(sizeof addr.sun_path - 1) + " bytes long");
    std::memcpy(addr.sun_path, path.data(), path.size());
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) return errno_error("socket(AF_UNIX, SOCK_STREAM)");
    int r;
    do {
        r = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        Error e = errno_error("connecting to the network socket " + path);
        e.message += " (is passt running? start it first, e.g. passt -f -4 -a 10.0.2.15 -n 24 -g 10.0.2.2 "
                     "--dns-forward 10.0.2.3 -s " + path + "; see docs/networking.md)";
        return e;
    }
    return adopt(env, std::move(s), std::move(options));
}

Result<std::unique_ptr<UnixStreamBackend>> UnixStreamBackend::adopt(virtio::DeviceEnv& env, UniqueFd fd,
                                                                     Options options) {
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
        if (errno == ENOTSOCK) return make_error(ENOTSOCK, "the network fd is not a socket (give passt's stream socket)");
        return errno_error("getsockopt(SO_TYPE) on the network fd");
    }
    if (type != SOCK_STREAM)
        return make_error(EINVAL, "the network fd is not a stream socket (passt's qemu socket is SOCK_STREAM; "
                                  "datagram sockets are krun_add_net_unixgram's)");
    int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0)
        return errno_error("making the network socket non-blocking");
    ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    if (!ep.valid()) return errno_error("epoll_create1 for the network socket");
    std::unique_ptr<UnixStreamBackend> b(new UnixStreamBackend(env, std::move(fd), std::move(ep), std::move(options)));
    b->update_interest();
    if (b->interest_ == 0) return errno_error("epoll_ctl for the network socket");
    return b;
}

UnixStreamBackend::UnixStreamBackend(virtio::DeviceEnv& env, UniqueFd sock, UniqueFd epoll, Options options)
    : env_(env), sock_(std::move(sock)), epoll_(std::move(epoll)), options_(std::move(options)),
      rx_(kLengthSize + kMaxFrameSize + kRxChunk) {}

UnixStreamBackend::~UnixStreamBackend() {
    if (started_) env_.unwatch(epoll_.get());
}

void UnixStreamBackend::set_sink(FrameSink* sink) {
    sink_ = sink;
    rx_paused_ = false;
}

Result<void> UnixStreamBackend::start() {
    if (started_) return {};
    KRUNLET_CHECK(env_.watch(epoll_.get(), EPOLLIN, [this](uint32_t) { run_once(); }));
    started_ = true;
    // Frames may already be waiting (the peer wrote before the guest was up).
    run_once();
    return {};
}

void UnixStreamBackend::run_once() {
    // Empty the private epoll's ready list; the state decides what to do.
    epoll_event evs[4];
    [[maybe_unused]] int n = ::epoll_wait(epoll_.get(), evs, 4, 0);
    if (!sock_.valid()) return;
    flush();
    if (sock_.valid() && !rx_paused_) read_frames();
    update_interest();
}

void UnixStreamBackend::read_frames() {
    for (int round = 0; round < kReadsPerRound; ++round) {
        if (!deliver() || rx_paused_) return;
        // What is left is less than one whole frame: move it to the front so a
        // maximal frame always fits behind it.
        if (rx_begin_ != 0) {
            std::memmove(rx_.data(), rx_.data() + rx_begin_, rx_end_ - rx_begin_);
            rx_end_ -= rx_begin_;
            rx_begin_ = 0;
        }
        ssize_t got = ::recv(sock_.get(), rx_.data() + rx_end_, rx_.size() - rx_end_, MSG_DONTWAIT);
        if (got > 0) {
            rx_end_ += static_cast<size_t>(got);
            continue;
        }
        if (got == 0) {
            // A partial frame left behind is lost with the link.
            take_down("the peer closed the network socket");
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        take_down(std::string("reading the network socket: ") + std::strerror(errno));
        return;
    }
    deliver();
}

bool UnixStreamBackend::deliver() {
    while (rx_end_ - rx_begin_ >= kLengthSize) {
        // peer-controlled: the length decides how much more is read as a frame.
        const uint32_t len = load_be32(rx_.data() + rx_begin_);
        if (len == 0 || len > kMaxFrameSize) {
            take_down("the peer sent a frame length of " + std::to_string(len) + " bytes (valid: 1.." +
                      std::to_string(kMaxFrameSize) + "); it does not speak the 4-byte big-endian length format");
            return false;
        }
        if (rx_end_ - rx_begin_ < kLengthSize + len) break;
        std::span<const uint8_t> frame(rx_.data() + rx_begin_ + kLengthSize, len);
        if (len < kEthHeaderSize) {
            ++stats_.rx_runts;
        } else if (sink_ == nullptr) {
            ++stats_.rx_unsunk;
        } else if (!sink_->can_receive()) {
            // Leave it here, and the rest in the socket, until sink_ready().
            rx_paused_ = true;
            return true;
        } else {
            ++stats_.frames_to_guest;
            sink_->receive(frame);
            if (!sock_.valid()) return false;  // the sink's re-entry took the link down
        }
        rx_begin_ += kLengthSize + len;
    }
    if (rx_begin_ == rx_end_) rx_begin_ = rx_end_ = 0;
    return true;
}

void UnixStreamBackend::sink_ready() {
    if (!rx_paused_ || !sock_.valid()) return;
    rx_paused_ = false;
    if (deliver()) update_interest();
}

Result<void> UnixStreamBackend::send_to_host(std::span<const uint8_t> frame) {
    if (!sock_.valid()) {
        ++stats_.tx_dropped;
        return make_error(ENOTCONN, "the network link is down: " + stats_.down_reason);
    }
    if (frame.size() < kEthHeaderSize || frame.size() > kMaxFrameSize)
        return make_error(EMSGSIZE, "network frame of " + std::to_string(frame.size()) + " bytes");
    const uint32_t len = static_cast<uint32_t>(frame.size());
    const uint8_t header[kLengthSize] = {uint8_t(len >> 24), uint8_t(len >> 16), uint8_t(len >> 8), uint8_t(len)};
    size_t written = 0;
    if (tx_queued() == 0) {
        // The common case: the socket has room and nothing is queued.
        iovec iov[2] = {{const_cast<uint8_t*>(header), kLengthSize},
                        {const_cast<uint8_t*>(frame.data()), frame.size()}};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = 2;
        ssize_t n;
        do {
            n = ::sendmsg(sock_.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            take_down(std::string("writing the network socket: ") + std::strerror(errno));
            ++stats_.tx_dropped;
            return make_error(ENOTCONN, "the network link is down: " + stats_.down_reason);
        }
        written = n < 0 ? 0 : static_cast<size_t>(n);
        if (written == kLengthSize + frame.size()) {
            ++stats_.frames_to_host;
            return {};
        }
    } else if (tx_queued() + kLengthSize + frame.size() > kTxLimit) {
        ++stats_.tx_dropped;
        return make_error(ENOBUFS, "the network socket's peer is not reading; frame dropped");
    }
    // Queue the rest: a frame already begun on the wire must be finished, or
    // the stream's framing would be lost, so the limit only applies above.
    for (size_t i = written; i < kLengthSize; ++i) tx_.push_back(header[i]);
    const size_t from = written > kLengthSize ? written - kLengthSize : 0;
    tx_.insert(tx_.end(), frame.begin() + static_cast<ptrdiff_t>(from), frame.end());
    ++stats_.frames_to_host;
    update_interest();
    return {};
}

void UnixStreamBackend::flush() {
    while (tx_queued() != 0) {
        ssize_t n = ::send(sock_.get(), tx_.data() + tx_sent_, tx_queued(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            tx_sent_ += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        take_down(std::string("writing the network socket: ") + std::strerror(n < 0 ? errno : EPIPE));
        return;
    }
    if (tx_sent_ == tx_.size()) {
        tx_.clear();
        tx_sent_ = 0;
    } else if (tx_sent_ > tx_.size() / 2) {
        tx_.erase(tx_.begin(), tx_.begin() + static_cast<ptrdiff_t>(tx_sent_));
        tx_sent_ = 0;
    }
}

void UnixStreamBackend::update_interest() {
    if (!sock_.valid()) return;
    uint32_t want = (rx_paused_ ? 0u : uint32_t{EPOLLIN}) | (tx_queued() != 0 ? uint32_t{EPOLLOUT} : 0u);
    if (want == interest_) return;
    // With no interest the socket leaves the epoll set: a hung-up peer would
    // otherwise report EPOLLHUP on every round while the guest has no room.
    if (want == 0) {
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, sock_.get(), nullptr);
        interest_ = 0;
        return;
    }
    epoll_event ev{};
    ev.events = want;
    ev.data.fd = sock_.get();
    int op = interest_ == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (::epoll_ctl(epoll_.get(), op, sock_.get(), &ev) == 0) interest_ = want;
}

void UnixStreamBackend::take_down(std::string why) {
    if (!sock_.valid()) return;
    if (interest_ != 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, sock_.get(), nullptr);
    interest_ = 0;
    sock_.reset();
    tx_.clear();
    tx_sent_ = 0;
    rx_begin_ = rx_end_ = 0;
    stats_.down_reason = why;
    if (options_.on_down) options_.on_down(why);
}

}  // namespace krunlet::net
