// CPU time of another process's threads, grouped by thread name (krunlet-bench fs).
//
// Each thread's time is the first field of /proc/PID/task/TID/schedstat: nanoseconds on a CPU
// (user + system), finer than the clock ticks of /proc/PID/stat. The kernel brings it up to date
// when the thread leaves the CPU, so a sample is exact for threads that are idle at that moment;
// krunlet-bench samples while the guest sleeps between phases, when the servers are idle too.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "base/result.h"

namespace krunlet::bench {

struct CpuSplit {
    double matched_s = 0;  // threads whose name the predicate accepts
    double other_s = 0;    // every other thread
    double total() const { return matched_s + other_s; }
};

using ThreadNameTest = std::function<bool(const std::string&)>;

// Sums the CPU time of every live thread of `pid`, split by `is_matched(thread name)`.
// Threads that already exited are not counted (nothing here loses threads mid-run).
Result<CpuSplit> sample_threads(pid_t pid, const ThreadNameTest& is_matched);

// The same, in one pass, over three groups: vCPU threads, serving threads, and the rest.
struct CpuGroups {
    double vcpu_s = 0;
    double server_s = 0;
    double other_s = 0;
};
Result<CpuGroups> sample_thread_groups(pid_t pid, const ThreadNameTest& is_vcpu, const ThreadNameTest& is_server);

// Thread-name tests for the vCPU threads of the two VMMs.
bool is_krunlet_vcpu(const std::string& name);  // "vcpu-N" (lib/vmm/vm.cpp)
bool is_qemu_vcpu(const std::string& name);     // "CPU N/KVM"
// krunlet's virtio-fs serving threads: a device that serves its own queues runs them on
// "virtio-N" (lib/vmm/device_slot.cpp), and the fs device is the only one that does.
bool is_krunlet_queue_thread(const std::string& name);

}  // namespace krunlet::bench
