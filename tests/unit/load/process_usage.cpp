#include "process_usage.h"

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace krunlet::load {

namespace {

// Entries of a /proc directory other than "." and "..", leaving out the fd that reads it.
size_t count_entries(const char* path, bool skip_own_fd) {
    DIR* d = ::opendir(path);
    if (d == nullptr) return 0;
    const std::string own = std::to_string(::dirfd(d));
    size_t n = 0;
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        if (skip_own_fd && own == e->d_name) continue;
        ++n;
    }
    ::closedir(d);
    return n;
}

int64_t vm_rss_kib() {
    std::ifstream f("/proc/self/status");
    for (std::string line; std::getline(f, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
    return 0;
}

}  // namespace

ProcessUsage sample_process_usage() {
    ProcessUsage u;
    u.fds = count_entries("/proc/self/fd", true);
    u.threads = count_entries("/proc/self/task", false);
    u.rss_kib = vm_rss_kib();
    return u;
}

}  // namespace krunlet::load
