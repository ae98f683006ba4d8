#include "init/launch.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "base/control_protocol.h"
#include "base/fd.h"
#include "init/log.h"
#include "init/process.h"

namespace krunlet::init {
namespace {

// What the child writes to the pipe when a step fails.
enum class Stage : int32_t { kRlimit = 1, kMkdir, kSetgroups, kSetgid, kSetuid, kChdir, kExec };

struct ChildReport {
    Stage stage;
    int32_t err;    // errno
    int32_t index;  // which rlimit for kRlimit
};
static_assert(sizeof(ChildReport) == 12, "the report crosses a pipe as raw bytes");

// Everything the child needs, built before fork() so the child only makes
// system calls (init is single-threaded, but this keeps the child simple and
// its failure points few).
struct Prepared {
    std::vector<char*> argv;
    std::vector<char*> envp;
    std::vector<std::string> candidates;
};

Prepared prepare(const LaunchSpec& spec) {
    Prepared p;
    for (const std::string& a : spec.args) p.argv.push_back(const_cast<char*>(a.c_str()));
    p.argv.push_back(nullptr);
    for (const std::string& e : spec.env) p.envp.push_back(const_cast<char*>(e.c_str()));
    p.envp.push_back(nullptr);
    std::string_view path = kDefaultPath;
    if (auto v = env_get(spec.env, "PATH")) path = *v;
    p.candidates = exec_candidates(spec.args.front(), path);
    return p;
}

// mkdir -p, for the working directory only.
int make_dirs(const std::string& path) {
    for (size_t i = 1; i <= path.size(); ++i) {
        if (i != path.size() && path[i] != '/') continue;
        std::string part = path.substr(0, i);
        if (::mkdir(part.c_str(), 0755) < 0 && errno != EEXIST) return errno;
    }
    return 0;
}

[[noreturn]] void child_fail(int pipe_fd, Stage stage, int err, int index = 0) {
    ChildReport r{stage, err, index};
    // The pipe has room for far more than 12 bytes, so this never blocks.
    [[maybe_unused]] ssize_t n = ::write(pipe_fd, &r, sizeof r);
    ::_exit(stage == Stage::kExec ? exit_code_for_exec_errno(err) : control::kExitInitFailed);
}

[[noreturn]] void run_child(const LaunchSpec& spec, const Prepared& p, int pipe_fd) {
    // Step 1: a blocked or ignored signal survives execve(); the workload must
    // start with the defaults, not with init's SIGCHLD handling.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
    }

    // Step 2.
    ::setsid();
    if (::isatty(STDIN_FILENO) && ::ioctl(STDIN_FILENO, TIOCSCTTY, 0) < 0)
        log_warning(std::string("cannot make the console the workload's controlling terminal: ") +
                    std::strerror(errno));

    // Step 3.
    for (size_t i = 0; i < spec.rlimits.size(); ++i) {
        const Rlimit& r = spec.rlimits[i];
        rlimit lim{static_cast<rlim_t>(r.soft), static_cast<rlim_t>(r.hard)};
        if (::setrlimit(static_cast<__rlimit_resource_t>(r.resource), &lim) < 0)
            child_fail(pipe_fd, Stage::kRlimit, errno, static_cast<int>(i));
    }

    // Step 4.
    struct stat st;
    if (::stat(spec.cwd.c_str(), &st) < 0 && errno == ENOENT) {
        if (int err = make_dirs(spec.cwd)) child_fail(pipe_fd, Stage::kMkdir, err);
    }
    if (::setgroups(spec.user.additional_gids.size(), spec.user.additional_gids.data()) < 0)
        child_fail(pipe_fd, Stage::kSetgroups, errno);
    if (::setgid(spec.user.gid) < 0) child_fail(pipe_fd, Stage::kSetgid, errno);
    if (::setuid(spec.user.uid) < 0) child_fail(pipe_fd, Stage::kSetuid, errno);

    // Step 5.
    if (spec.user.umask) ::umask(*spec.user.umask);
    if (::chdir(spec.cwd.c_str()) < 0) child_fail(pipe_fd, Stage::kChdir, errno);

    // Step 6: execvp()'s search, over the workload's PATH rather than init's.
    int err = ENOENT;
    bool saw_eacces = false;
    for (const std::string& c : p.candidates) {
        ::execve(c.c_str(), p.argv.data(), p.envp.data());
        err = errno;
        if (err == EACCES) saw_eacces = true;
        if (!exec_error_continues_search(err)) break;
    }
    if (saw_eacces && exec_error_continues_search(err)) err = EACCES;
    child_fail(pipe_fd, Stage::kExec, err);
}

std::string describe(const LaunchSpec& spec, const ChildReport& r) {
    std::string why = std::strerror(r.err);
    const UserSpec& u = spec.user;
    switch (r.stage) {
        case Stage::kRlimit: {
            if (r.index < 0 || static_cast<size_t>(r.index) >= spec.rlimits.size()) break;
            const Rlimit& l = spec.rlimits[static_cast<size_t>(r.index)];
            return "setrlimit " + rlimit_name(l.resource) + " soft=" + std::to_string(l.soft) +
                   " hard=" + std::to_string(l.hard) + ": " + why +
                   " (lower the limit in the container's rlimits/ulimits)";
        }
        case Stage::kMkdir:
            return "creating the working directory \"" + spec.cwd + "\": " + why;
        case Stage::kSetgroups:
            return "setgroups (" + std::to_string(u.additional_gids.size()) + " groups): " + why;
        case Stage::kSetgid:
            return "setgid(" + std::to_string(u.gid) + "): " + why;
        case Stage::kSetuid:
            return "setuid(" + std::to_string(u.uid) + "): " + why;
        case Stage::kChdir:
            return "chdir to the working directory \"" + spec.cwd + "\" as uid " + std::to_string(u.uid) +
                   ": " + why;
        case Stage::kExec: {
            std::string msg = "exec \"" + spec.args.front() + "\": " + why;
            if (spec.args.front().find('/') == std::string::npos) {
                auto path = env_get(spec.env, "PATH");
                msg += " (searched PATH=" + std::string(path ? *path : kDefaultPath) + ")";
            }
            if (r.err == E2BIG) msg += " (the arguments and environment are too large for execve)";
            return msg;
        }
    }
    return "starting the workload failed in an unknown step: " + why;
}

}  // namespace

std::variant<pid_t, LaunchFailure> launch(const LaunchSpec& spec) {
    if (spec.args.empty() || spec.args.front().empty())
        return LaunchFailure{control::kExitNotFound, "the command to run is empty"};
    Prepared prepared = prepare(spec);

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0)
        return LaunchFailure{control::kExitInitFailed, std::string("pipe2: ") + std::strerror(errno)};
    UniqueFd rd(fds[0]);
    UniqueFd wr(fds[1]);

    pid_t pid = ::fork();
    if (pid < 0) return LaunchFailure{control::kExitInitFailed, std::string("fork: ") + std::strerror(errno)};
    if (pid == 0) {
        rd.reset();
        run_child(spec, prepared, wr.get());
    }
    wr.reset();

    // EOF without a report: execve() succeeded and closed the pipe.
    ChildReport report{};
    size_t got = 0;
    while (got < sizeof report) {
        ssize_t n = ::read(rd.get(), reinterpret_cast<char*>(&report) + got, sizeof report - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<size_t>(n);
    }
    if (got == 0) return pid;

    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof report)
        return LaunchFailure{control::kExitInitFailed, "the workload's child sent a truncated failure report"};
    int code = report.stage == Stage::kExec ? exit_code_for_exec_errno(report.err) : control::kExitInitFailed;
    return LaunchFailure{code, describe(spec, report)};
}

}  // namespace krunlet::init
