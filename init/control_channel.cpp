#include "init/control_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
// <linux/vm_sockets.h> needs <sys/socket.h> first.
#include <linux/vm_sockets.h>

#include <cerrno>
#include <thread>

namespace krunlet::init {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    // Rounded up, so a wait never ends before its deadline.
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

}  // namespace

Result<ControlChannel> ControlChannel::connect(std::chrono::milliseconds budget) {
    const auto deadline = Clock::now() + budget;
    Error last = make_error(ETIMEDOUT, "no attempt was made");
    int attempts = 0;
    while (true) {
        ++attempts;
        UniqueFd s(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!s.valid()) {
            last = errno_error("socket(AF_VSOCK)");
            // The kernel has no vsock at all: waiting will not bring it.
            if (last.code == EAFNOSUPPORT) break;
        } else {
            // One attempt may not outlast the budget (the vsock default is 2 s).
            timeval tv{};
            auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
            if (left < 10000) left = 10000;
            tv.tv_sec = left / 1000000;
            tv.tv_usec = left % 1000000;
            ::setsockopt(s.get(), AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof tv);
            sockaddr_vm addr{};
            addr.svm_family = AF_VSOCK;
            addr.svm_cid = control::kHostCid;
            addr.svm_port = control::kControlPort;
            int r;
            do {
                r = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
            } while (r < 0 && errno == EINTR);
            if (r == 0) return ControlChannel(std::move(s));
            last = errno_error("connect to vsock " + std::to_string(control::kHostCid) + ":" +
                               std::to_string(control::kControlPort));
        }
        if (Clock::now() + std::chrono::milliseconds(50) > deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (last.code == EAFNOSUPPORT)
        last.message += " (the guest kernel needs CONFIG_VSOCKETS and CONFIG_VIRTIO_VSOCKETS)";
    else
        last.message += " (gave up after " + std::to_string(attempts) + " attempts over " +
                        std::to_string(budget.count()) + " ms)";
    return last;
}

Result<void> ControlChannel::receive() {
    if (!open()) return make_error(ECONNRESET, "the control channel is closed");
    char buf[16384];
    while (true) {
        ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            // The Decoder bounds every frame (kMaxControlMessage), so a broken host
            // cannot make init buffer without limit.
            decoder_.feed(std::string_view(buf, static_cast<size_t>(n)));
            continue;
        }
        if (n == 0) {
            closed_ = true;
            return make_error(ECONNRESET, "the host closed the control channel");
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return ok_result();
        closed_ = true;
        return errno_error("reading the control channel");
    }
}

Result<std::optional<std::string>> ControlChannel::next() {
    auto m = decoder_.next();
    if (!m && decoder_.broken()) {
        closed_ = true;
        return make_error(EPROTO, "the host sent a control frame with a bad length (0 or above " +
                                      std::to_string(control::kMaxControlMessage) + " bytes)");
    }
    return m;
}

Result<std::string> ControlChannel::wait_message(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
        auto m = next();
        if (!m) return m.error();
        if (m->has_value()) return std::move(**m);
        if (!open()) return make_error(ECONNRESET, "the host closed the control channel");
        pollfd p{fd_.get(), POLLIN, 0};
        int r = ::poll(&p, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return errno_error("poll on the control channel");
        if (r == 0)
            return make_error(ETIMEDOUT, "no message from the host within " + std::to_string(timeout.count()) + " ms");
        auto got = receive();
        // Bytes that arrived together with the EOF still count.
        if (!got) {
            auto last = next();
            if (last && last->has_value()) return std::move(**last);
            return got.error();
        }
    }
}

Result<void> ControlChannel::send(std::string_view json) {
    if (!fd_.valid()) return make_error(ENOTCONN, "the control channel is not connected");
    std::string frame = control::frame(json);
    size_t done = 0;
    while (done < frame.size()) {
        ssize_t n = ::send(fd_.get(), frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_error("writing the control channel");
        done += static_cast<size_t>(n);
    }
    return ok_result();
}

void ControlChannel::wait_for_hangup(std::chrono::milliseconds timeout) {
    if (!fd_.valid()) return;
    const auto deadline = Clock::now() + timeout;
    char scratch[4096];
    while (true) {
        int left = remaining_ms(deadline);
        if (left == 0) return;
        pollfd p{fd_.get(), POLLIN, 0};
        int r = ::poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return;
        ssize_t n = ::recv(fd_.get(), scratch, sizeof scratch, MSG_DONTWAIT);
        if (n == 0) return;  // the host hung up: it has the exit code
        if (n < 0 && errno != EINTR && errno != EAGAIN) return;
    }
}

}  // namespace krunlet::init
