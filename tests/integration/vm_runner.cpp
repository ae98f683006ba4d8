#include "vm_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace krunlet::test {

RunResult run_process(const std::vector<std::string>& argv, int timeout_s, const OutputHook& hook) {
    return run_child(
        [&argv](int out_fd, int err_fd) {
            int null = ::open("/dev/null", O_RDONLY);
            ::dup2(null, 0);
            ::dup2(out_fd, 1);
            ::dup2(err_fd, 2);
            std::vector<char*> args;
            for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        },
        timeout_s, hook);
}

RunResult run_child(const std::function<void(int out_fd, int err_fd)>& child, int timeout_s, const OutputHook& hook) {
    RunResult r;
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    std::fflush(nullptr);  // nothing buffered is written twice
    auto t0 = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork");
    if (pid == 0) {
        child(out[1], err[1]);
        ::_exit(127);  // `child` must not return; if it does, say so by the status
    }
    ::close(out[1]);
    ::close(err[1]);
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    auto deadline = t0 + std::chrono::seconds(timeout_s);
    bool killed = false;
    while (open_fds > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 && !killed) {
            ::kill(pid, SIGKILL);
            killed = true;
        }
        int n = ::poll(fds, 2, killed ? 1000 : int(left.count()));
        if (n < 0) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            char buf[65536];
            ssize_t k = ::read(fds[i].fd, buf, sizeof buf);
            if (k <= 0) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            } else {
                (i == 0 ? r.out : r.err).append(buf, size_t(k));
                if (i == 0 && hook) hook(pid, r.out);
            }
        }
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (killed) r.err += "\n[test: killed after timeout]\n";
    return r;
}

RunResult krunlet_run(const std::string& rootfs, const std::vector<std::string>& opts,
                      const std::vector<std::string>& cmd, int timeout_s, const OutputHook& hook) {
    std::vector<std::string> argv{std::string(KRUNLET_BIN_DIR) + "/krunlet", "run"};
    argv.insert(argv.end(), opts.begin(), opts.end());
    argv.push_back(rootfs);
    if (!cmd.empty()) {
        argv.push_back("--");
        argv.insert(argv.end(), cmd.begin(), cmd.end());
    }
    return run_process(argv, timeout_s, hook);
}

ScratchRootfs::ScratchRootfs() {
    std::string base = std::string(KRUNLET_BUILD_DIR) + "/test-rootfs";
    ::mkdir(base.c_str(), 0755);
    std::string tmpl = base + "/rootfs-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
    path_ = tmpl;
    auto r = run_process({"/bin/sh", std::string(KRUNLET_SOURCE_DIR) + "/tests/make-rootfs.sh", path_});
    if (r.status != 0) throw std::runtime_error("make-rootfs.sh failed: " + r.err);
}

ScratchRootfs::~ScratchRootfs() { run_process({"/bin/rm", "-rf", path_}); }

void ScratchRootfs::write_file(const std::string& rel, const std::string& content) const {
    std::ofstream f(path_ + "/" + rel, std::ios::binary);
    f << content;
}

std::string ScratchRootfs::read_file(const std::string& rel) const {
    std::ifstream f(path_ + "/" + rel, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

long proc_field_kib(const std::string& file, const std::string& field) {
    std::ifstream f(file);
    for (std::string line; std::getline(f, line);)
        if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
    return -1;
}

}  // namespace krunlet::test
