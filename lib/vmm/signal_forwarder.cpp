#include "vmm/signal_forwarder.h"

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace krunlet {

Result<SignalForwarder> SignalForwarder::create() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : kForwarded) sigaddset(&set, s);
    SignalForwarder f;
    if (int rc = ::pthread_sigmask(SIG_BLOCK, &set, &f.old_mask_); rc != 0) {
        errno = rc;
        return errno_error("signals: pthread_sigmask");
    }
    f.restore_ = true;
    f.fd_ = UniqueFd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!f.fd_.valid()) return errno_error("signals: signalfd");
    return f;
}

SignalForwarder::SignalForwarder(SignalForwarder&& o) noexcept
    : fd_(std::move(o.fd_)), old_mask_(o.old_mask_), restore_(std::exchange(o.restore_, false)) {}

SignalForwarder::~SignalForwarder() {
    fd_.reset();
    // Signals that arrived after the last take() stay pending and would fire with their
    // default action as soon as they are unblocked: that is what the process would have done
    // without us, and the VM is gone by now.
    if (restore_) ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

std::vector<int> SignalForwarder::take() {
    std::vector<int> out;
    signalfd_siginfo si[8];
    for (;;) {
        ssize_t n = ::read(fd_.get(), si, sizeof si);
        if (n <= 0) break;  // EAGAIN: nothing more
        for (size_t i = 0; i < static_cast<size_t>(n) / sizeof si[0]; ++i) out.push_back(static_cast<int>(si[i].ssi_signo));
    }
    return out;
}

}  // namespace krunlet
