// Running a test step in a forked child, so a seccomp filter or a privilege
// drop never touches the test process itself.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

namespace krunlet::test {

struct ChildResult {
    bool exited = false;  // exit() or _exit()
    int code = -1;        // its status, when exited
    int signal = 0;       // the signal that killed it, otherwise
    std::string log;      // everything it wrote to fd 2
    bool timed_out = false;

    std::string describe() const;
};

// Forks; the child gets a pipe as fd 2 (read back into `log`), no core dumps,
// runs `body`, then ends with the raw exit system call (status 0), which
// every filter allows. `body` may end the child itself. The parent waits at
// most `timeout_s` seconds, then kills it.
ChildResult run_in_child(const std::function<void()>& body, int timeout_s = 30);

// Logs `s` on fd 2 with one raw write() (allowed in every role).
void child_log(const std::string& s);

// Runs `body` in a child, like run_in_child, but calls `watch(pid)` from the
// parent once the child has logged `ready_line`, then kills it.
ChildResult run_in_child_and_watch(const std::function<void()>& body, const std::string& ready_line,
                                   const std::function<void(pid_t)>& watch, int timeout_s = 30);

}  // namespace krunlet::test
