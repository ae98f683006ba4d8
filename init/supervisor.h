// init's wait loop (steps 8 and 9): one poll() over a signalfd for SIGCHLD and
// the control channel. It reaps every child (as pid 1 that includes orphans
// of the workload), forwards {"type":"signal"} messages to the workload,
// reports the guest's TCP listeners when port mirroring is on (the poll's
// timeout is the listener watcher's schedule), and returns the workload's
// exit status once it has exited.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include "base/fd.h"
#include "base/result.h"
#include "init/control_channel.h"
#include "init/listeners.h"

namespace krunlet::init {

class Supervisor {
public:
    // Blocks SIGCHLD (it is then only read through the signalfd). Create this
    // before starting the workload so no SIGCHLD is missed; launch() gives the
    // child a clean signal mask.
    static Result<Supervisor> create();
    Supervisor(Supervisor&& o) noexcept;
    Supervisor& operator=(Supervisor&&) = delete;
    Supervisor(const Supervisor&) = delete;
    ~Supervisor();  // restores the old signal mask

    // Runs until `workload` exits and returns its 0..255 status (exit code, or
    // 128+signal). `control` may be null or closed: then only SIGCHLD is
    // watched. Messages already decoded in `control` are handled first.
    // `listeners` (may be null) is polled on its schedule and its changes are
    // sent over `control`; it stops being polled once sending fails.
    Result<int> run(pid_t workload, ControlChannel* control, ListenerWatcher* listeners = nullptr);

private:
    Supervisor(UniqueFd sfd, sigset_t old_mask) : sfd_(std::move(sfd)), old_mask_(old_mask) {}

    void handle_message(const std::string& json, pid_t workload);
    void drain_messages(ControlChannel& control, pid_t workload);

    UniqueFd sfd_;
    sigset_t old_mask_;
    bool restore_ = true;
};

}  // namespace krunlet::init
