#include "subprocess.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/fd.h"

namespace krunlet::oci {

bool Captured::succeeded() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

Result<Captured> run_capture(const std::vector<std::string>& argv, bool clean_env, size_t limit) {
    if (argv.empty()) return make_error(EINVAL, "run_capture: no program");
    // Built before fork: the child only execs.
    std::vector<char*> cargv;
    for (const auto& s : argv) cargv.push_back(const_cast<char*>(s.c_str()));
    cargv.push_back(nullptr);
    char* empty_env[] = {nullptr};

    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return errno_error("pipe");
    UniqueFd rd(p[0]), wr(p[1]);
    pid_t pid = ::fork();
    if (pid < 0) return errno_error("fork");
    if (pid == 0) {
        int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            ::dup2(null, 0);
            ::dup2(null, 2);
        }
        ::dup2(wr.get(), 1);
        if (clean_env)
            ::execve(cargv[0], cargv.data(), empty_env);
        else
            ::execv(cargv[0], cargv.data());
        ::_exit(127);
    }
    wr.reset();
    Captured c;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(rd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (c.out.size() < limit) c.out.append(buf, std::min(static_cast<size_t>(n), limit - c.out.size()));
    }
    while (::waitpid(pid, &c.status, 0) < 0)
        if (errno != EINTR) return errno_error("waitpid");
    return c;
}

}  // namespace krunlet::oci
