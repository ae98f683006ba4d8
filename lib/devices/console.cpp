#include "devices/console.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <variant>

namespace krunlet::devices {

namespace {

// struct virtio_console_config (virtio 1.2 §5.3.4): cols, rows, max_nr_ports,
// emerg_wr. Without F_SIZE / F_MULTIPORT / F_EMERG_WRITE every field reads 0.
constexpr uint32_t kConfigSize = 12;

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

}  // namespace

Result<std::unique_ptr<ConsoleDevice>> ConsoleDevice::create(virtio::DeviceEnv& env, int in_fd, int out_fd) {
    // -1 means "no input" / "discard output".
    if (in_fd >= 0 && !fd_is_open(in_fd))
        return make_error(EBADF, "virtio-console: input fd " + std::to_string(in_fd) +
                                     " is not open (pass -1 for no console input)");
    if (out_fd >= 0 && !fd_is_open(out_fd))
        return make_error(EBADF, "virtio-console: output fd " + std::to_string(out_fd) +
                                     " is not open (pass -1 to discard console output)");
    UniqueFd dup_fd;
    if (in_fd >= 0 && in_fd == out_fd) {
        // One fd number cannot be watched twice (EPOLLIN and EPOLLOUT have
        // separate handlers), so write through a duplicate of it.
        dup_fd.reset(::fcntl(out_fd, F_DUPFD_CLOEXEC, 3));
        if (!dup_fd.valid()) return errno_error("virtio-console: dup of the console fd");
        out_fd = dup_fd.get();
    }
    return std::unique_ptr<ConsoleDevice>(new ConsoleDevice(env, in_fd, out_fd, std::move(dup_fd)));
}

ConsoleDevice::ConsoleDevice(virtio::DeviceEnv& env, int in_fd, int out_fd, UniqueFd out_dup)
    : env_(env), in_fd_(in_fd), out_fd_(out_fd), out_dup_(std::move(out_dup)) {
    if (in_fd_ < 0) input_ = Input::Closed;
    if (out_fd_ < 0) out_broken_ = true;
}

ConsoleDevice::~ConsoleDevice() {
    if (input_ == Input::Watched) env_.unwatch(in_fd_);
    if (out_watched_) env_.unwatch(out_fd_);
}

void ConsoleDevice::read_config(uint32_t offset, std::span<uint8_t> out) const {
    std::fill(out.begin(), out.end(), 0);  // all fields are 0 (see kConfigSize)
    (void)offset;
}

Result<void> ConsoleDevice::activate(const virtio::ActivateArgs& args) {
    if (args.queues.size() != kQueueSizes.size())
        return make_error(EINVAL, "virtio-console: expected 2 queues, transport gave " +
                                      std::to_string(args.queues.size()));
    // A queue the driver left disabled is treated as never having buffers.
    auto live = [&](uint16_t i) { return args.queues[i].active() ? &args.queues[i] : nullptr; };
    rx_ = live(kReceiveQueue);
    tx_ = live(kTransmitQueue);
    irq_ = &args.irq;
    fault_.reset();
    // The driver may have posted buffers before DRIVER_OK.
    start_input();
    pump_tx();
    if (fault_) return *fault_;
    return {};
}

void ConsoleDevice::reset() {
    pause_input();
    rx_chain_.reset();
    // Bytes already copied into pending_ were handed over by the guest and
    // still go out; a chain still held in the ring is the driver's to resend.
    tx_chain_.reset();
    tx_chain_off_ = 0;
    rx_ = tx_ = nullptr;
    irq_ = nullptr;
    fault_.reset();
}

Result<void> ConsoleDevice::queue_notify(uint16_t index) {
    if (fault_) return *fault_;
    if (index == kReceiveQueue)
        start_input();
    else if (index == kTransmitQueue)
        pump_tx();
    if (fault_) return *fault_;
    return {};
}

void ConsoleDevice::drain() {
    for (;;) {
        pump_tx();
        if (!out_blocked_ || out_broken_) return;  // everything written (or undeliverable)
        // Blocking is fine here: the VM is stopping and these are the guest's
        // last words. A reader that takes nothing for kDrainStallMs is gone.
        struct pollfd p {};
        p.fd = out_fd_;
        p.events = POLLOUT;
        int r = ::poll(&p, 1, kDrainStallMs);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            out_broken_ = true;
            pending_.clear();
            pending_off_ = 0;
            pump_tx();  // hand the held chains back, discarding their bytes
            return;
        }
        out_blocked_ = false;
    }
}

void ConsoleDevice::fail(virtio::QueueError e, const char* which) {
    fault_ = make_error(EIO, std::string("virtio-console: ") + which + ": " + virtio::to_string(e));
    // Stop touching the rings until the transport resets us.
    pause_input();
    rx_chain_.reset();
    tx_chain_.reset();
    rx_ = tx_ = nullptr;
}

void ConsoleDevice::signal(virtio::Queue& q) {
    if (irq_ != nullptr && q.needs_interrupt()) irq_->signal_used();
}

// --- input: in_fd -> receiveq0 ---

void ConsoleDevice::start_input() {
    if (input_ == Input::Closed || rx_ == nullptr) return;
    if (!rx_chain_) {
        auto popped = rx_->pop();
        if (auto* err = std::get_if<virtio::QueueError>(&popped)) {
            fail(*err, "receiveq");
            return;
        }
        if (std::holds_alternative<std::monostate>(popped)) {
            pause_input();  // nowhere to put input: leave it in the fd
            return;
        }
        rx_chain_ = std::get<virtio::DescriptorChain>(std::move(popped));
    }
    if (input_ == Input::Idle) {
        auto r = env_.watch(in_fd_, EPOLLIN, [this](uint32_t) { read_input(); });
        if (r.ok()) {
            input_ = Input::Watched;
        } else if (r.error().code == EPERM) {
            // epoll refuses regular files and /dev/null: they are always
            // readable, so read them whenever the guest posts buffers.
            input_ = Input::OnDemand;
        } else {
            close_input();
            return;
        }
    }
    // A watched fd is read from its handler; reading here too could block
    // on a blocking fd with nothing to read.
    if (input_ == Input::OnDemand) read_input();
}

void ConsoleDevice::pause_input() {
    if (input_ == Input::Watched) {
        env_.unwatch(in_fd_);
        input_ = Input::Idle;
    }
}

void ConsoleDevice::close_input() {
    if (input_ == Input::Watched) env_.unwatch(in_fd_);
    input_ = Input::Closed;
}

void ConsoleDevice::read_input() {
    bool used = false;
    while (input_ != Input::Closed) {
        if (!rx_chain_) {
            if (rx_ == nullptr) {
                pause_input();
                break;
            }
            auto popped = rx_->pop();
            if (auto* err = std::get_if<virtio::QueueError>(&popped)) {
                fail(*err, "receiveq");
                break;
            }
            if (std::holds_alternative<std::monostate>(popped)) {
                // Nowhere to put input: stop reading until the next kick, so
                // the bytes stay in the fd (nothing is read and dropped).
                pause_input();
                break;
            }
            rx_chain_ = std::get<virtio::DescriptorChain>(std::move(popped));
        }
        if (rx_chain_->writable_bytes() == 0) {
            // guest-controlled: a receive buffer without writable space.
            rx_->add_used(std::move(*rx_chain_), 0);
            rx_chain_.reset();
            used = true;
            continue;
        }
        auto iov = rx_chain_->writable_iovecs();
        ssize_t n = ::readv(in_fd_, iov.data(), static_cast<int>(std::min<size_t>(iov.size(), IOV_MAX)));
        if (n > 0) {
            rx_->add_used(std::move(*rx_chain_), static_cast<uint32_t>(n));
            rx_chain_.reset();
            used = true;
            // One read per readiness event: a second could block a blocking fd.
            if (input_ == Input::Watched) break;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // keep the chain, wait
        // EOF (n == 0) or a dead fd (EIO from a hung-up tty, ...): no more input.
        close_input();
    }
    if (used && rx_ != nullptr) signal(*rx_);
}

// --- output: transmitq0 -> out_fd ---

bool ConsoleDevice::write_out(const uint8_t* data, size_t len, size_t& done) {
    while (done < len) {
        ssize_t n = ::write(out_fd_, data + done, len - done);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            out_blocked_ = true;
            return false;
        }
        // EPIPE, EIO, ...: the reader is gone; console output is discarded
        // from now on rather than stalling the guest forever.
        out_broken_ = true;
        return false;
    }
    return true;
}

bool ConsoleDevice::flush_pending() {
    if (out_broken_) {
        pending_.clear();
        pending_off_ = 0;
        return true;
    }
    if (pending_off_ < pending_.size()) {
        size_t done = pending_off_;
        bool all = write_out(pending_.data(), pending_.size(), done);
        pending_off_ = done;
        if (!all && !out_broken_) return false;
    }
    pending_.clear();
    pending_off_ = 0;
    out_blocked_ = false;
    return true;
}

size_t ConsoleDevice::write_chain(const virtio::DescriptorChain& chain, size_t offset) {
    // Gather the chain's readable buffers from `offset` on. The bytes are
    // guest-controlled; their addresses were validated by Queue::pop().
    std::vector<struct iovec> iov;
    size_t skip = offset;
    for (const auto& b : chain.readable()) {
        if (skip >= b.len) {
            skip -= b.len;
            continue;
        }
        iov.push_back({b.data + skip, b.len - skip});
        skip = 0;
    }
    size_t first = 0;
    while (first < iov.size()) {
        int cnt = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
        ssize_t n = ::writev(out_fd_, iov.data() + first, cnt);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            out_blocked_ = true;
            break;
        }
        if (n <= 0) {
            out_broken_ = true;
            break;
        }
        offset += static_cast<size_t>(n);
        // Advance past what the kernel took, possibly mid-buffer.
        auto left = static_cast<size_t>(n);
        while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
        if (left > 0) {
            iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
            iov[first].iov_len -= left;
        }
    }
    return offset;
}

void ConsoleDevice::pump_tx() {
    flush_pending();
    bool used = false;
    for (;;) {
        if (!tx_chain_) {
            if (tx_ == nullptr) break;
            auto popped = tx_->pop();
            if (auto* err = std::get_if<virtio::QueueError>(&popped)) {
                fail(*err, "transmitq");
                break;
            }
            if (std::holds_alternative<std::monostate>(popped)) break;
            tx_chain_ = std::get<virtio::DescriptorChain>(std::move(popped));
            tx_chain_off_ = 0;
        }
        const size_t total = tx_chain_->readable_bytes();
        if (out_broken_) {
            tx_chain_off_ = total;  // discard
        } else if (!out_blocked_ && pending_output() == 0) {
            tx_chain_off_ = write_chain(*tx_chain_, tx_chain_off_);
            if (out_broken_) tx_chain_off_ = total;
        }
        const size_t rest = total - tx_chain_off_;
        if (rest > 0 && pending_output() + rest <= kPendingCap) {
            // Copy the unwritten tail so the guest gets its buffer back now.
            if (pending_off_ > 0) {
                pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(pending_off_));
                pending_off_ = 0;
            }
            size_t at = pending_.size();
            pending_.resize(at + rest);
            tx_chain_->copy_from_readable(tx_chain_off_, std::span<uint8_t>(pending_.data() + at, rest));
            tx_chain_off_ = total;
        }
        if (tx_chain_off_ < total) break;  // too big to buffer: hold it until out_fd drains
        // tx_ may have been dropped by fail() only on a pop error, never here.
        tx_->add_used(std::move(*tx_chain_), 0);
        tx_chain_.reset();
        used = true;
    }
    if (used && tx_ != nullptr) signal(*tx_);

    // Wait for EPOLLOUT exactly while something is waiting for out_fd.
    bool want = out_blocked_ && !out_broken_;
    if (want && !out_watched_) {
        auto r = env_.watch(out_fd_, EPOLLOUT, [this](uint32_t) {
            out_blocked_ = false;
            pump_tx();
        });
        if (r.ok()) {
            out_watched_ = true;
        } else {
            // Cannot wait for this fd: drop its output rather than stall the guest.
            out_broken_ = true;
            pump_tx();  // hands the held chain back
        }
    } else if (!want && out_watched_) {
        env_.unwatch(out_fd_);
        out_watched_ = false;
    }
}

}  // namespace krunlet::devices
