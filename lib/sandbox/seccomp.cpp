#include "sandbox/seccomp.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/fd.h"

namespace krunlet::sandbox {

namespace {

// ---- building blocks ---------------------------------------------------------

constexpr uint64_t kLow32 = 0xffffffffu;

// An int argument equals v. The kernel reads only the low 32 bits of an int,
// so only those are compared (glibc sign-extends negative ints).
ArgCmp eq32(unsigned arg, int64_t v) { return ArgCmp{arg, kLow32, uint64_t(v) & kLow32}; }
// None of `bits` is set in the argument.
ArgCmp clear(unsigned arg, uint64_t bits) { return ArgCmp{arg, bits, 0}; }

SyscallRule any(const char* name, const char* why = "") { return SyscallRule{name, {}, why}; }
SyscallRule when(const char* name, std::vector<std::vector<ArgCmp>> any_of, const char* why = "") {
    return SyscallRule{name, std::move(any_of), why};
}
// Argument `arg` is one of `values` (32-bit compare).
std::vector<std::vector<ArgCmp>> one_of(unsigned arg, std::initializer_list<int64_t> values) {
    std::vector<std::vector<ArgCmp>> out;
    for (int64_t v : values) out.push_back({eq32(arg, v)});
    return out;
}

// Adds `r` to `list`: a call listed twice is allowed when either entry allows
// it, and an unrestricted entry wins over restricted ones.
void add(std::vector<SyscallRule>& list, SyscallRule r) {
    auto it = std::find_if(list.begin(), list.end(), [&](const SyscallRule& e) { return e.name == r.name; });
    if (it == list.end()) {
        list.push_back(std::move(r));
        return;
    }
    if (it->why.empty()) it->why = r.why;
    if (it->any_of.empty() || r.any_of.empty()) {
        it->any_of.clear();
        return;
    }
    for (auto& alt : r.any_of) it->any_of.push_back(std::move(alt));
}

// ---- the lists -------------------------------------------------------------
// Each role is a union of the groups below. Keep the why of every entry that
// is not self-evident; docs/security.md has the per-role counts.

// What any thread of this process needs to exist, allocate and end.
void basics(std::vector<SyscallRule>& l, const FilterParams& p) {
    add(l, any("futex", "mutexes, condition variables, thread joins"));
    add(l, any("exit", "a thread returning"));
    add(l, any("exit_group", "the process ending (std::exit, _exit)"));
    add(l, any("rt_sigreturn", "return from a signal handler (the vCPU kick)"));
    add(l, any("rt_sigprocmask", "glibc masks signals around thread exit and abort()"));
    add(l, any("restart_syscall", "the kernel resuming a sleep a handled signal interrupted"));
    add(l, any("brk", "malloc"));
    // No new executable memory: nothing in krunlet maps code after start.
    add(l, when("mmap", {{clear(2, PROT_EXEC)}}, "malloc; never PROT_EXEC"));
    add(l, when("mprotect", {{clear(2, PROT_EXEC)}}, "malloc arenas grow in place; never PROT_EXEC"));
    add(l, any("munmap", "free"));
    add(l, any("mremap", "realloc of large blocks"));
    add(l, any("madvise", "free trimming, and glibc releasing a finished thread's stack"));
    add(l, any("clock_gettime", "timestamps, where the vDSO cannot read the clocksource"));
    add(l, any("getpid", "abort() addresses its own process"));
    add(l, any("gettid", "abort() addresses its own thread"));
    add(l, when("tgkill", {{eq32(0, p.pid), eq32(2, SIGABRT)}},
                "abort() (a failed assertion) ends with SIGABRT rather than SIGSYS"));
    add(l, any("sched_getaffinity", "glibc's last way to count CPUs (see cpu_count_probe)"));
}

// glibc's malloc counts the CPUs the first time the process needs more than
// eight arenas (arena_get2 -> __get_nprocs), on whichever thread gets there
// first, possibly a filtered one late in the VM's life. It reads
// /sys/devices/system/cpu/online, then /proc/stat, then asks
// sched_getaffinity. A role with no business opening files gets EACCES for
// openat instead of a kill, so that count falls through to
// sched_getaffinity; any other open on such a thread fails just as safely.
void cpu_count_probe(std::vector<SyscallRule>& l) {
    bool has_openat = std::any_of(l.begin(), l.end(), [](const SyscallRule& r) { return r.name == "openat"; });
    if (!has_openat) {
        SyscallRule r = any("openat", "refused, not fatal: glibc's CPU count (malloc arenas) falls back");
        r.deny_errno = EACCES;
        l.push_back(std::move(r));
    }
}

void vcpu(std::vector<SyscallRule>& l, const FilterParams& p) {
    add(l, when("ioctl", {{eq32(1, long(KVM_RUN))}}, "KVM_RUN only: the vCPU was set up before the thread started"));
    std::vector<std::vector<ArgCmp>> fds{{eq32(0, STDERR_FILENO)}};
    for (int fd : p.vcpu_write_fds) fds.push_back({eq32(0, fd)});
    add(l, when("write", std::move(fds),
                "stderr (logs, the COM1 echo) and the eventfd that hands MMIO writes to the event loop"));
}

// Host-side I/O of the devices: console, vsock and its unix-socket bridges,
// virtio-net's libslirp, virtio-rng, the control channel, forwarded signals.
void devices(std::vector<SyscallRule>& l) {
    add(l, any("epoll_wait"));
    add(l, any("epoll_ctl"));
    add(l, any("read"));
    add(l, any("readv"));
    add(l, any("write"));
    add(l, any("writev"));
    add(l, any("close"));
    add(l, any("poll", "libslirp's socket poll; the console's drain"));
    add(l, any("getrandom", "virtio-rng"));
    add(l, any("timerfd_settime", "libslirp's timers"));
    add(l, when("socket", one_of(0, {AF_UNIX, AF_INET, AF_INET6}),
                "vsock unix bridges (AF_UNIX); libslirp's outgoing flows (AF_INET, AF_INET6)"));
    for (const char* s : {"connect", "accept", "accept4", "bind", "listen", "shutdown", "sendto", "recvfrom",
                          "sendmsg", "recvmsg", "setsockopt", "getsockopt", "getsockname", "getpeername"})
        add(l, any(s, "sockets of the vsock bridges and of libslirp"));
    add(l, when("ioctl", one_of(1, {FIONREAD, FIONBIO}), "libslirp: bytes pending on a UDP socket, non-blocking mode"));
    add(l, when("fcntl", one_of(1, {F_GETFD, F_SETFD, F_GETFL, F_SETFL}), "libslirp: non-blocking and close-on-exec"));
}

// Host configuration the event loop reads: libslirp re-reads /etc/resolv.conf
// to answer the guest's DNS (10.0.2.3). Read-only opens, nothing else.
void config_files(std::vector<SyscallRule>& l) {
    constexpr uint64_t kWriting = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | __O_TMPFILE;
    add(l, when("openat", {{clear(2, kWriting)}}, "libslirp: /etc/resolv.conf, read-only"));
    add(l, any("newfstatat", "libslirp: has resolv.conf changed; stdio's buffer size"));
    add(l, any("fstat", "stdio's buffer size"));
}

// The virtio-fs server (virtiofs/): passthrough of the guest's file operations.
// It runs on each share's queue thread (the fs-worker role).
void fs_server(std::vector<SyscallRule>& l) {
    for (const char* s : {"read", "write", "pread64", "pwrite64", "preadv", "pwritev", "lseek", "close"})
        add(l, any(s));
    add(l, any("openat", "files under the share, one component at a time (host_path.h)"));
    add(l, any("openat2", "the same with RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS"));
    for (const char* s : {"newfstatat", "fstat", "statx", "statfs", "fstatfs", "readlinkat", "getdents64", "mkdirat",
                          "symlinkat", "linkat", "unlinkat", "renameat2", "fchmodat", "fchmod", "fchownat",
                          "utimensat", "ftruncate", "fallocate", "fsync", "fdatasync", "syncfs", "flock",
                          "copy_file_range"})
        add(l, any(s));
    add(l, any("renameat", "glibc's renameat2() with flags 0"));
    add(l, when("mknodat", {{eq32(3, 0)}}, "fifos, sockets and the 0:0 whiteout only: dev must be 0"));
    add(l, when("fcntl",
                one_of(1, {F_GETFL, F_GETFD, F_DUPFD_CLOEXEC, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_GETLK,
                           F_SETLK, F_SETLKW}),
                "POSIX locks on the guest's behalf (OFD locks), a dup for FLUSH"));
    add(l, any("name_to_handle_at", "mount ids of host inodes (virtiofs/mounts.h)"));
    for (const char* s : {"getxattr", "setxattr", "listxattr", "removexattr"})
        add(l, any(s, "xattrs through /proc/self/fd/N (virtiofs/xattr_policy.h)"));
    for (const char* s : {"setfsuid", "setfsgid", "setgroups", "getgroups"})
        add(l, any(s, "creating files as the guest's uid:gid, per thread (virtiofs/fs_creds.h)"));
    add(l, any("capget", "whether this thread may still switch ids (it may not after krun_setuid)"));
}

// The thread that called krun_start_enter, once the VM runs.
void vmm_main(std::vector<SyscallRule>& l, const FilterParams& p) {
    if (p.kick_signal != 0)
        add(l, when("tgkill", {{eq32(0, p.pid), eq32(2, p.kick_signal)}}, "kicking vCPU threads out of KVM_RUN"));
    add(l, any("clock_nanosleep", "the pause between kicks"));
    add(l, any("nanosleep", "the pause between kicks"));
    add(l, any("write", "the console's last bytes, stderr, the loop's stop eventfd"));
    add(l, any("writev", "the console's last bytes"));
    add(l, any("poll", "the console drain waits for a slow reader"));
    add(l, any("close", "tearing the VM down"));
    add(l, any("epoll_ctl", "devices unwatch their fds at teardown"));
    add(l, any("shutdown", "vsock bridges closing their sockets at teardown"));
    add(l, any("unlink", "krun_add_vsock_port2 listening sockets removed at teardown"));
    std::vector<std::vector<ArgCmp>> tty;
    for (int fd : p.console_fds)
        for (long req : {long(TCGETS), long(TCSETS), long(TCSETSW), long(TCSETSF)})
            tty.push_back({eq32(0, fd), eq32(1, req)});
    if (!tty.empty()) add(l, when("ioctl", std::move(tty), "restoring the terminal's settings"));
}

}  // namespace

const char* role_name(Role role) {
    switch (role) {
    case Role::kVcpu: return "vcpu";
    case Role::kEventLoop: return "event-loop";
    case Role::kFsWorker: return "fs-worker";
    case Role::kVmmMain: return "vmm-main";
    }
    return "?";
}

Result<SeccompMode> parse_seccomp_mode(std::string_view value) {
    if (value.empty() || value == "kill") return SeccompMode::kKill;
    if (value == "log") return SeccompMode::kLog;
    return make_error(EINVAL, "KRUNLET_SECCOMP=" + std::string(value) +
                                  ": use kill (the default) or log (debugging only: violations are logged, not fatal)");
}

Result<SeccompMode> seccomp_mode_from_env() {
    const char* v = std::getenv("KRUNLET_SECCOMP");
    return parse_seccomp_mode(v != nullptr ? v : "");
}

std::vector<SyscallRule> role_rules(Role role, const FilterParams& params) {
    FilterParams p = params;
    if (p.pid == 0) p.pid = ::getpid();
    std::vector<SyscallRule> l;
    basics(l, p);
    switch (role) {
    case Role::kVcpu: vcpu(l, p); break;
    case Role::kEventLoop:
        devices(l);
        config_files(l);
        break;
    case Role::kFsWorker: fs_server(l); break;  // read/write also serve its kick and irq eventfds
    case Role::kVmmMain: vmm_main(l, p); break;
    }
    cpu_count_probe(l);
    return l;
}

namespace {

struct CtxDeleter {
    void operator()(void* c) const { ::seccomp_release(c); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

Error seccomp_error(int rc, const std::string& what) {
    return make_error(-rc, "seccomp: " + what + ": " + std::strerror(-rc));
}

}  // namespace

Result<SeccompFilter> SeccompFilter::build(Role role, SeccompMode mode, const FilterParams& params) {
    // The default action kills the whole process: a thread killed alone would
    // leave a VM that hangs instead of failing.
    uint32_t deflt = mode == SeccompMode::kKill ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_LOG;
    Ctx ctx(::seccomp_init(deflt));
    if (!ctx) return make_error(ENOMEM, "seccomp: seccomp_init failed");
    // A system call from another ABI (int 0x80, x32) is never ours.
    if (int rc = ::seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, deflt); rc != 0)
        return seccomp_error(rc, "bad-arch action");
    // Kills are logged by the kernel anyway; this also logs SCMP_ACT_LOG hits.
    if (int rc = ::seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_LOG, 1); rc != 0)
        return seccomp_error(rc, "CTL_LOG attribute");
    // install() sets NO_NEW_PRIVS itself, on its own thread.
    if (int rc = ::seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0); rc != 0)
        return seccomp_error(rc, "CTL_NNP attribute");

    SeccompFilter f;
    f.role_ = role;
    f.mode_ = mode;
    auto rules = role_rules(role, params);
    size_t allowed = 0;
    for (const SyscallRule& r : rules) {
        int nr = ::seccomp_syscall_resolve_name(r.name.c_str());
        if (nr == __NR_SCMP_ERROR)
            return make_error(EINVAL, "seccomp: unknown system call name '" + r.name + "' in the " +
                                          role_name(role) + " list");
        // Refusals keep their errno in log mode too: they are part of the design, not a finding.
        const uint32_t action = r.deny_errno != 0 ? SCMP_ACT_ERRNO(uint32_t(r.deny_errno)) : SCMP_ACT_ALLOW;
        if (r.deny_errno == 0) ++allowed;
        if (r.any_of.empty()) {
            if (int rc = ::seccomp_rule_add(ctx.get(), action, nr, 0); rc != 0)
                return seccomp_error(rc, "rule for " + r.name);
            continue;
        }
        for (const auto& alt : r.any_of) {
            std::vector<scmp_arg_cmp> cmps;
            for (const ArgCmp& c : alt) cmps.push_back(scmp_arg_cmp{c.arg, SCMP_CMP_MASKED_EQ, c.mask, c.value});
            if (int rc = ::seccomp_rule_add_array(ctx.get(), action, nr, unsigned(cmps.size()), cmps.data());
                rc != 0)
                return seccomp_error(rc, "rule for " + r.name);
        }
    }
    f.syscall_count_ = allowed;

    // libseccomp 2.5 exports BPF only to a file descriptor.
    UniqueFd mem(::memfd_create("krunlet-seccomp", MFD_CLOEXEC));
    if (!mem.valid()) return errno_error("seccomp: memfd_create");
    if (int rc = ::seccomp_export_bpf(ctx.get(), mem.get()); rc != 0) return seccomp_error(rc, "export");
    off_t size = ::lseek(mem.get(), 0, SEEK_CUR);
    if (size <= 0 || size % off_t(sizeof(sock_filter)) != 0 || size > off_t(BPF_MAXINSNS * sizeof(sock_filter)))
        return make_error(EINVAL, "seccomp: exported filter has an odd size (" + std::to_string(size) + " bytes)");
    f.prog_.resize(size_t(size) / sizeof(sock_filter));
    if (::pread(mem.get(), f.prog_.data(), size_t(size), 0) != size) return errno_error("seccomp: reading the filter");
    return f;
}

Result<void> SeccompFilter::install() const {
    // Without NO_NEW_PRIVS an unprivileged thread may not load a filter, and
    // with it no execve can gain privileges (setuid binaries, file caps).
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno_error("seccomp: PR_SET_NO_NEW_PRIVS");
    sock_fprog prog{};
    prog.len = static_cast<unsigned short>(prog_.size());
    prog.filter = const_cast<sock_filter*>(prog_.data());
    // FLAG_LOG: log every action but ALLOW (kills are logged regardless).
    long rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, &prog);
    if (rc != 0 && errno == EINVAL) rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);  // < 4.14
    if (rc != 0)
        return errno_error(std::string("seccomp: loading the ") + role_name(role_) + " filter (is seccomp enabled in this kernel?)");
    return {};
}

Result<ThreadFilters> ThreadFilters::build(SeccompMode mode, const FilterParams& params) {
    ThreadFilters t;
    for (Role r : kAllRoles) {
        static_assert(static_cast<size_t>(Role::kVcpu) == 0);
        auto f = SeccompFilter::build(r, mode, params);
        if (!f.ok()) return f.error();
        t.filters_.push_back(std::move(f).value());
    }
    return t;
}

}  // namespace krunlet::sandbox
