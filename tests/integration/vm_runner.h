// Helpers for integration tests: a scratch rootfs and running the krunlet CLI
// as a child process with captured output.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "guest_ram.h"  // guest_ram_usage, for the tests that used to find it here

namespace krunlet::test {

struct RunResult {
    int status = -1;       // exit code, or 128+signal
    std::string out;       // stdout
    std::string err;       // stderr
    double seconds = 0;    // wall time
};

// Called with the child's pid and its stdout so far, after each chunk of output (to signal
// the child once it printed something, say).
using OutputHook = std::function<void(pid_t pid, const std::string& out)>;

// Run `argv` (argv[0] a path) with stdin from /dev/null, killing it after
// `timeout_s` seconds.
RunResult run_process(const std::vector<std::string>& argv, int timeout_s = 120, const OutputHook& hook = {});

// A "Name:   N kB" field of a /proc file in KiB ("VmRSS" of /proc/PID/status,
// "MemAvailable" of /proc/meminfo), or -1 when it is missing (the process is gone).
long proc_field_kib(const std::string& file, const std::string& field);

// Fork; the child calls `child(out_fd, err_fd)` (the write ends of its stdout and stderr
// pipes), which must exec or _exit. The parent collects both, calls `hook` on stdout, and
// kills the child after `timeout_s` seconds.
RunResult run_child(const std::function<void(int out_fd, int err_fd)>& child, int timeout_s = 120,
                    const OutputHook& hook = {});

// build/bin/krunlet run [opts...] ROOTFS -- cmd...
RunResult krunlet_run(const std::string& rootfs, const std::vector<std::string>& opts,
                      const std::vector<std::string>& cmd, int timeout_s = 120, const OutputHook& hook = {});

// A fresh busybox rootfs under the build tree (shared into the KVM test host),
// removed on destruction.
class ScratchRootfs {
public:
    ScratchRootfs();
    ~ScratchRootfs();
    ScratchRootfs(const ScratchRootfs&) = delete;
    ScratchRootfs& operator=(const ScratchRootfs&) = delete;
    const std::string& path() const { return path_; }
    void write_file(const std::string& rel, const std::string& content) const;
    std::string read_file(const std::string& rel) const;

private:
    std::string path_;
};

}  // namespace krunlet::test
