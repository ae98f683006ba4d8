// How many file descriptors the virtio-fs servers of one VM may hold.
//
// Every inode the guest has looked up is an O_PATH fd, and every open file or directory one
// more, so the servers' caps (ServerConfig::max_inodes / max_handles) must fit in the process's
// RLIMIT_NOFILE with room to spare: past its cap a guest gets ENFILE, while the VMM itself must
// never see EMFILE (an eventfd, an accepted vsock socket or a vCPU fd would then fail).
#pragma once

#include <cstddef>

#include "base/result.h"

namespace krunlet::fs {

struct FdBudget {
    size_t max_inodes = 0;  // per share
    size_t max_handles = 0;  // per share
    size_t nofile = 0;       // the soft RLIMIT_NOFILE it was computed from
};

// The most either cap is ever given, whatever the limit allows.
inline constexpr size_t kMaxFdsPerKind = 65536;
// What the VMM keeps for itself on top of the fds open now (vCPUs, eventfds, vsock sockets).
inline constexpr size_t kVmmFdReserve = 256;
// Below this per share a guest could not even run a shell; refuse to start instead.
inline constexpr size_t kMinFdsPerShare = 64;

// Raises the soft RLIMIT_NOFILE to the hard limit (a process may always do that), then splits
// what is left after the fds open now and kVmmFdReserve evenly over `shares` servers, half for
// inodes and half for handles. Fails, naming the fix, when the limit is too low.
Result<FdBudget> fd_budget(size_t shares);

// The arithmetic alone, for tests: `nofile` is the soft limit, `open_now` the fds in use.
Result<FdBudget> split_fd_budget(size_t nofile, size_t open_now, size_t shares);

}  // namespace krunlet::fs
