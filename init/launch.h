// Starting the workload as a child of init (step 7 of init's job).
//
// The child, in order:
//   1. clears the signal mask and dispositions init used;
//   2. setsid(), then makes stdin its controlling tty when stdin is a tty, so
//      the shell gets job control and ^C reaches it;
//   3. applies the rlimits (before dropping privileges: raising a hard limit
//      needs CAP_SYS_RESOURCE);
//   4. creates the working directory when it is missing (as root, mode 0755,
//      as runc does), then setgroups / setgid / setuid;
//   5. sets the umask when the config gives one, then chdir()s as the workload
//      user, so a directory it may not enter is an error here, not later;
//   6. searches PATH (the workload's own PATH) like execvp() and execve()s.
// A failure in any step is sent to init through a close-on-exec pipe, and the
// parent turns it into the exit code:
//   exec failed: ENOENT -> 127, anything else -> 126;
//   steps 2-5 (rlimits, identity, working directory) -> 125, because the
//   command itself was never tried: the container's setup failed.
#pragma once

#include <sys/types.h>

#include <string>
#include <variant>
#include <vector>

#include "init/config.h"

namespace krunlet::init {

struct LaunchSpec {
    std::vector<std::string> args;  // args[0] is the command
    std::vector<std::string> env;   // final (finalize_env)
    std::string cwd = "/";
    UserSpec user;
    std::vector<Rlimit> rlimits;
};

struct LaunchFailure {
    int exit_code = 0;     // 125, 126 or 127
    std::string message;   // "exec \"foo\": No such file or directory"
};

// The running child's pid, or why it never got to run (the child is reaped).
// The caller must have SIGCHLD handled (or blocked for a signalfd) already.
std::variant<pid_t, LaunchFailure> launch(const LaunchSpec& spec);

}  // namespace krunlet::init
