// krunlet-bench boot --runs N ROOTFS
//
// Boots ROOTFS N times with /bin/true through the krunlet CLI (each run is a
// fresh process, as crun would start it) and prints p50/min/max of every
// boot-trace field and of the wall time.
#include "boot_bench.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace krunlet::bench {
namespace {

struct RunResult {
    int status = -1;
    double wall_ms = 0;
    std::map<std::string, double> fields;  // from the boot-trace line
};

// Runs `argv` with stdout to /dev/null and stderr captured.
RunResult run_once(const std::vector<std::string>& argv) {
    RunResult r;
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) return r;
    auto t0 = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid == 0) {
        int null = ::open("/dev/null", O_RDWR);
        ::dup2(null, 0);
        ::dup2(null, 1);
        ::dup2(pipefd[1], 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(pipefd[1]);
    std::string err;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) err.append(buf, size_t(n));
    ::close(pipefd[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    auto pos = err.find("boot-trace:");
    if (pos != std::string::npos) {
        std::istringstream in(err.substr(pos + 11, err.find('\n', pos) - pos - 11));
        std::string kv;
        while (in >> kv) {
            auto eq = kv.find('=');
            if (eq != std::string::npos) r.fields[kv.substr(0, eq)] = std::stod(kv.substr(eq + 1));
        }
    } else if (r.status != 0) {
        std::fprintf(stderr, "%s", err.c_str());
    }
    return r;
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    size_t i = size_t(p * double(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

}  // namespace

int run_boot(int runs, const std::string& rootfs, const std::string& krunlet) {
    std::vector<RunResult> results;
    for (int i = 0; i < runs; ++i) {
        auto r = run_once({krunlet, "run", "--boot-trace", rootfs, "--", "/bin/true"});
        if (r.status != 0 || r.fields.empty()) {
            std::fprintf(stderr, "krunlet-bench: run %d failed (exit %d)\n", i + 1, r.status);
            return 1;
        }
        r.fields["wall_ms"] = r.wall_ms;
        results.push_back(std::move(r));
    }
    std::printf("krunlet-bench boot: %d runs of %s -- /bin/true\n", runs, rootfs.c_str());
    std::printf("%-18s %10s %10s %10s\n", "field", "p50", "min", "max");
    for (const char* f : {"setup_ms", "kernel_ms", "init_ms", "workload_ms", "init_to_exit_ms", "total_ms", "wall_ms"}) {
        std::vector<double> v;
        for (const auto& r : results)
            if (auto it = r.fields.find(f); it != r.fields.end()) v.push_back(it->second);
        if (v.empty()) continue;
        std::printf("%-18s %10.2f %10.2f %10.2f\n", f, percentile(v, 0.5), *std::min_element(v.begin(), v.end()),
                    *std::max_element(v.begin(), v.end()));
    }
    return 0;
}


}  // namespace krunlet::bench
