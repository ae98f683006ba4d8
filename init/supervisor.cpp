#include "init/supervisor.h"

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <variant>

#include "init/config.h"
#include "init/log.h"
#include "init/process.h"

namespace krunlet::init {

Result<Supervisor> Supervisor::create() {
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (::sigprocmask(SIG_BLOCK, &chld, &old) < 0) return errno_error("blocking SIGCHLD");
    UniqueFd sfd(::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!sfd.valid()) {
        Error e = errno_error("signalfd(SIGCHLD)");
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        return e;
    }
    return Supervisor(std::move(sfd), old);
}

Supervisor::Supervisor(Supervisor&& o) noexcept
    : sfd_(std::move(o.sfd_)), old_mask_(o.old_mask_), restore_(std::exchange(o.restore_, false)) {}

Supervisor::~Supervisor() {
    if (restore_) ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
}

void Supervisor::handle_message(const std::string& json, pid_t workload) {
    auto msg = parse_control_message(json);
    if (!msg) {
        log_warning("ignoring a bad control message: " + msg.error().message);
        return;
    }
    if (auto* s = std::get_if<SignalMessage>(&*msg)) {
        // The workload may be a zombie not reaped yet; kill() then succeeds
        // and does nothing, which is right.
        if (::kill(workload, s->signo) < 0)
            log_warning("forwarding signal " + std::to_string(s->signo) + " to the workload (pid " +
                        std::to_string(workload) + "): " + std::strerror(errno));
    } else if (std::holds_alternative<ExecMessage>(*msg)) {
        log_warning("ignoring a second exec message: the workload is already running");
    } else {
        log_warning("ignoring a control message of unknown type \"" + std::get<UnknownMessage>(*msg).type + "\"");
    }
}

void Supervisor::drain_messages(ControlChannel& control, pid_t workload) {
    while (true) {
        auto m = control.next();
        if (!m) {
            log_warning(m.error().message + "; signals can no longer be forwarded");
            return;
        }
        if (!m->has_value()) return;
        handle_message(**m, workload);
    }
}

Result<int> Supervisor::run(pid_t workload, ControlChannel* control, ListenerWatcher* listeners) {
    while (true) {
        // Reap first: SIGCHLD may have been merged or may have come before
        // the signalfd was read, so every pass collects all zombies.
        while (true) {
            int status = 0;
            pid_t pid = ::waitpid(-1, &status, WNOHANG);
            if (pid == 0) break;
            if (pid < 0) {
                if (errno == EINTR) continue;
                if (errno == ECHILD)
                    return make_error(ECHILD, "the workload (pid " + std::to_string(workload) +
                                                  ") vanished without an exit status");
                return errno_error("waitpid");
            }
            if (pid == workload) return exit_code_from_wait_status(status);
            // An orphan the workload left behind: reaped, nothing more.
        }

        bool watch_control = control != nullptr && control->open();
        if (watch_control) {
            drain_messages(*control, workload);
            watch_control = control->open();
        }

        if (listeners != nullptr && (control == nullptr || !control->open())) listeners = nullptr;
        if (listeners != nullptr) {
            for (const std::string& m : listeners->poll_if_due()) {
                if (auto sent = control->send(m); !sent) {
                    log_warning(sent.error().message + "; guest ports are no longer reported to the host");
                    listeners = nullptr;
                    break;
                }
            }
        }
        const int timeout = listeners != nullptr ? listeners->timeout_ms() : -1;

        pollfd fds[2] = {{sfd_.get(), POLLIN, 0}, {watch_control ? control->fd() : -1, POLLIN, 0}};
        int r = ::poll(fds, watch_control ? 2 : 1, timeout);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno_error("poll in the init loop");
        }
        if (fds[0].revents != 0) {
            signalfd_siginfo info[16];
            while (::read(sfd_.get(), info, sizeof info) > 0) {
            }
        }
        if (watch_control && fds[1].revents != 0) {
            auto got = control->receive();
            // Whole messages that came with the EOF still count.
            drain_messages(*control, workload);
            if (!got) log_warning(got.error().message + "; signals can no longer be forwarded");
        }
    }
}

}  // namespace krunlet::init
