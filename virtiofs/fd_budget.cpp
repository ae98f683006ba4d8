// File descriptor budget of the virtio-fs servers (see fd_budget.h).
#include "virtiofs/fd_budget.h"

#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>
#include <string>

namespace krunlet::fs {

namespace {

// The fds this process has open, counted in /proc/self/fd (the directory's own fd included,
// which errs on the safe side).
size_t open_fd_count() {
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return kVmmFdReserve;  // no /proc: assume a busy process
    size_t n = 0;
    while (const dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n;
}

}  // namespace

Result<FdBudget> split_fd_budget(size_t nofile, size_t open_now, size_t shares) {
    if (shares == 0) return FdBudget{0, 0, nofile};
    const size_t reserved = open_now + kVmmFdReserve;
    const size_t per_share = nofile > reserved ? (nofile - reserved) / shares : 0;
    if (per_share < kMinFdsPerShare) {
        return make_error(EMFILE, "virtio-fs: the open-file limit (RLIMIT_NOFILE " + std::to_string(nofile) +
                                      ") leaves too few descriptors for " + std::to_string(shares) +
                                      " shared director" + (shares == 1 ? "y" : "ies") + "; raise it to at least " +
                                      std::to_string(reserved + shares * kMinFdsPerShare) +
                                      " (e.g. `ulimit -n 65536`, or a higher RLIMIT_NOFILE for the container)");
    }
    const size_t half = std::min(per_share / 2, kMaxFdsPerKind);
    return FdBudget{half, half, nofile};
}

Result<FdBudget> fd_budget(size_t shares) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return errno_error("virtio-fs: getrlimit(RLIMIT_NOFILE)");
    if (rl.rlim_cur < rl.rlim_max) {
        // The kernel refuses more than fs.nr_open, and infinity is not a count: more than
        // enough for every share's caps is all that is needed.
        rlimit want = rl;
        const rlim_t enough = static_cast<rlim_t>(2 * kMaxFdsPerKind * std::max<size_t>(shares, 1) + 4096);
        want.rlim_cur = std::min(rl.rlim_max, std::max(rl.rlim_cur, enough));
        if (::setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
    }
    const size_t nofile = rl.rlim_cur == RLIM_INFINITY ? size_t{1} << 20 : static_cast<size_t>(rl.rlim_cur);
    return split_fd_budget(nofile, open_fd_count(), shares);
}

}  // namespace krunlet::fs
