#include "proc_cpu.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "base/fd.h"

namespace krunlet::bench {
namespace {

// Small /proc files: one read is enough, and a vanished thread gives "".
std::string read_proc(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return "";
    char buf[512];
    ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, size_t(n)) : "";
}

// Calls add(thread name, CPU seconds) for every live thread of `pid`.
Result<void> for_each_thread(pid_t pid, const std::function<void(const std::string&, double)>& add) {
    std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = ::opendir(task_dir.c_str());
    if (d == nullptr) return errno_error("opening " + task_dir + " (the process is gone)");
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::string base = task_dir + "/" + e->d_name;
        std::string sched = read_proc(base + "/schedstat");
        if (sched.empty()) continue;  // exited between readdir and here
        double s = double(std::strtoull(sched.c_str(), nullptr, 10)) / 1e9;
        std::string name = read_proc(base + "/comm");
        while (!name.empty() && name.back() == '\n') name.pop_back();
        add(name, s);
    }
    ::closedir(d);
    return ok_result();
}

}  // namespace

Result<CpuSplit> sample_threads(pid_t pid, const ThreadNameTest& is_matched) {
    CpuSplit split;
    KRUNLET_CHECK(for_each_thread(pid, [&](const std::string& name, double s) {
        (is_matched(name) ? split.matched_s : split.other_s) += s;
    }));
    return split;
}

Result<CpuGroups> sample_thread_groups(pid_t pid, const ThreadNameTest& is_vcpu, const ThreadNameTest& is_server) {
    CpuGroups g;
    KRUNLET_CHECK(for_each_thread(pid, [&](const std::string& name, double s) {
        (is_vcpu(name) ? g.vcpu_s : is_server(name) ? g.server_s : g.other_s) += s;
    }));
    return g;
}

bool is_krunlet_vcpu(const std::string& name) { return name.rfind("vcpu-", 0) == 0; }

bool is_krunlet_queue_thread(const std::string& name) { return name.rfind("virtio-", 0) == 0; }

bool is_qemu_vcpu(const std::string& name) {
    return name.rfind("CPU ", 0) == 0 && name.size() > 4 && name.find("/KVM") != std::string::npos;
}

}  // namespace krunlet::bench
