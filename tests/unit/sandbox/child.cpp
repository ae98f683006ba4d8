#include "child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace krunlet::test {

std::string ChildResult::describe() const {
    std::string s;
    if (timed_out) s = "timed out; ";
    if (exited)
        s += "exited with " + std::to_string(code);
    else
        s += std::string("killed by signal ") + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
    return s + "; its log:\n" + log;
}

void child_log(const std::string& s) { [[maybe_unused]] long n = ::syscall(SYS_write, 2, s.data(), s.size()); }

namespace {

double now_s() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

}  // namespace

ChildResult run_in_child_and_watch(const std::function<void()>& body, const std::string& ready_line,
                                   const std::function<void(pid_t)>& watch, int timeout_s) {
    ChildResult res;
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        res.log = "pipe2 failed";
        return res;
    }
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(p[1], 2);
        rlimit no_core{0, 0};
        ::setrlimit(RLIMIT_CORE, &no_core);
        body();
        ::syscall(SYS_exit, 0);
    }
    ::close(p[1]);
    bool watched = ready_line.empty();
    double deadline = now_s() + timeout_s;
    char buf[4096];
    for (;;) {
        int left_ms = int((deadline - now_s()) * 1000);
        if (left_ms <= 0) {
            res.timed_out = true;
            ::kill(pid, SIGKILL);
            break;
        }
        pollfd pfd{p[0], POLLIN, 0};
        if (::poll(&pfd, 1, left_ms) <= 0) continue;
        ssize_t n = ::read(p[0], buf, sizeof buf);
        if (n <= 0) break;  // the child's fd 2 closed: it ended
        res.log.append(buf, size_t(n));
        if (!watched && res.log.find(ready_line) != std::string::npos) {
            watched = true;
            watch(pid);
            ::kill(pid, SIGKILL);
        }
    }
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status)) {
        res.exited = true;
        res.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        res.signal = WTERMSIG(status);
    }
    return res;
}

ChildResult run_in_child(const std::function<void()>& body, int timeout_s) {
    return run_in_child_and_watch(body, "", [](pid_t) {}, timeout_s);
}

}  // namespace krunlet::test
