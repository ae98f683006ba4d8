// What a long-lived VMM process holds, for leak checks across many VM cycles: open fds,
// threads and resident memory of this process, read from /proc/self.
#pragma once

#include <cstddef>
#include <cstdint>

namespace krunlet::load {

struct ProcessUsage {
    size_t fds = 0;       // entries of /proc/self/fd (the directory's own fd not counted)
    size_t threads = 0;   // entries of /proc/self/task
    int64_t rss_kib = 0;  // VmRSS of /proc/self/status
};

// Fields that cannot be read are 0 (no /proc): callers compare samples, so a missing /proc
// shows as "no change" and the caller should check fds > 0.
ProcessUsage sample_process_usage();

}  // namespace krunlet::load
