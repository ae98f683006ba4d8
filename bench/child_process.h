// A child process for krunlet-bench: spawned with posix_spawn, stdin from /dev/null, stdout on a
// pipe the parent reads line by line, stderr kept in a memfd for error messages. Killed and
// reaped by the destructor if it is still running, so no error path leaves a VM behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace krunlet::bench {

using Clock = std::chrono::steady_clock;

class Child {
public:
    // argv[0] must be a path (no PATH search). stdout goes to a pipe when capture_stdout is
    // set, else to /dev/null.
    static Result<Child> spawn(const std::vector<std::string>& argv, bool capture_stdout);

    Child(Child&& o) noexcept;
    Child& operator=(Child&&) = delete;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child();

    pid_t pid() const { return pid_; }
    bool running() const { return pid_ > 0 && !status_; }

    // The next complete stdout line (without "\r\n"), or nullopt at EOF or at `deadline`.
    // A trailing partial line is returned at EOF.
    std::optional<std::string> next_line(Clock::time_point deadline);
    bool stdout_eof() const { return eof_; }

    // The exit status as a shell reports it (128+N for signal N), or nullopt if the child is
    // still running at `deadline`.
    std::optional<int> wait_until(Clock::time_point deadline);
    // SIGKILL (if still running) and reap; returns the status.
    int kill_and_wait();

    // The end of what the child wrote on stderr (at most `max` bytes).
    std::string stderr_tail(size_t max = 4096) const;

private:
    Child() = default;
    pid_t pid_ = -1;
    std::optional<int> status_;
    UniqueFd out_;
    UniqueFd err_;
    std::string buf_;
    bool eof_ = false;
};

// `name` if it contains a '/', else the first match on $PATH; "" if none is executable.
std::string find_program(const std::string& name);

}  // namespace krunlet::bench
