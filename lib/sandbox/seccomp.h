// Per-thread seccomp allow-lists (docs/security.md).
//
// Every thread krunlet starts installs a filter of its own before it touches
// guest data: the vCPU threads, the event loop (the devices and the virtio-fs
// server), virtio-fs queue threads, and the thread that called
// krun_start_enter once the VM runs. Anything not on its role's list kills the
// whole process (SECCOMP_RET_KILL_PROCESS) and the kernel logs the system call
// (audit type 1326 in dmesg); KRUNLET_SECCOMP=log logs instead of killing,
// for finding a missing entry while debugging.
//
// The filters are compiled to BPF once, on the thread that builds the VM, so
// no libseccomp code runs on a filtered thread; install() is two system calls.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace krunlet::sandbox {

enum class Role {
    kVcpu,       // KVM_RUN and the MMIO/port exits it returns
    kEventLoop,  // device host I/O: console, vsock and its unix bridges, libslirp, rng, signals
    kFsWorker,   // a virtio-fs queue thread: the file server and its kick/irq eventfds
    kVmmMain,    // krun_start_enter's thread after start: waits, stops, drains, exits
};
inline constexpr Role kAllRoles[] = {Role::kVcpu, Role::kEventLoop, Role::kFsWorker, Role::kVmmMain};
const char* role_name(Role role);

enum class SeccompMode {
    kKill,  // default: a system call off the list kills the process and is logged
    kLog,   // KRUNLET_SECCOMP=log: it is logged and allowed (debugging only)
};
// "kill" or "log"; anything else is EINVAL with a message naming the choices.
Result<SeccompMode> parse_seccomp_mode(std::string_view value);
// KRUNLET_SECCOMP, unset or empty meaning kill.
Result<SeccompMode> seccomp_mode_from_env();

// Run-time values some rules depend on.
struct FilterParams {
    pid_t pid = 0;                    // this process (tgkill's first argument); 0: getpid()
    int kick_signal = 0;              // sent by the main thread to stop vCPUs; 0: none allowed
    std::vector<int> vcpu_write_fds;  // fds a vCPU may write besides stderr (the loop-call eventfd)
    std::vector<int> console_fds;     // terminals whose settings the main thread restores
};

// (args[arg] & mask) == value.
struct ArgCmp {
    unsigned arg;
    uint64_t mask;
    uint64_t value;
};
// One allowed system call. With `any_of` empty every argument is allowed;
// otherwise the call is allowed when all comparisons of one entry hold.
struct SyscallRule {
    std::string name;  // libseccomp's name for it on x86_64
    std::vector<std::vector<ArgCmp>> any_of;
    std::string why;   // for the non-obvious entries
    // Not 0: the call is refused with this errno instead of allowed. Only for
    // calls glibc makes on its own and copes with failing (see role_rules).
    int deny_errno = 0;
};
// The list of `role`, one entry per system call (the allowed ones and the
// few refused with an errno rather than fatal).
std::vector<SyscallRule> role_rules(Role role, const FilterParams& params);

// A compiled filter for one role.
class SeccompFilter {
public:
    static Result<SeccompFilter> build(Role role, SeccompMode mode, const FilterParams& params);

    // Sets NO_NEW_PRIVS and loads the filter on the calling thread only
    // (threads started afterwards inherit it; running ones are unaffected).
    Result<void> install() const;

    Role role() const { return role_; }
    SeccompMode mode() const { return mode_; }
    size_t syscall_count() const { return syscall_count_; }  // allowed calls
    size_t instruction_count() const { return prog_.size(); }

private:
    SeccompFilter() = default;
    Role role_ = Role::kVcpu;
    SeccompMode mode_ = SeccompMode::kKill;
    size_t syscall_count_ = 0;
    std::vector<sock_filter> prog_;
};

// One filter per role, built together before any VM thread starts.
class ThreadFilters {
public:
    static Result<ThreadFilters> build(SeccompMode mode, const FilterParams& params);
    const SeccompFilter& get(Role role) const { return filters_[static_cast<size_t>(role)]; }

private:
    std::vector<SeccompFilter> filters_;  // indexed by Role
};

}  // namespace krunlet::sandbox
