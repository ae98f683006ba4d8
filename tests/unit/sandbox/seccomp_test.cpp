// Each role's seccomp filter, tested in forked children: every allowed system
// call (with harmless arguments) survives, and forbidden ones kill the whole
// process with SIGSYS.
#include "sandbox/seccomp.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "child.h"

using namespace krunlet;
using namespace krunlet::sandbox;
using krunlet::test::child_log;
using krunlet::test::run_in_child;

namespace {

int kick() { return SIGRTMIN + 1; }

// The parameters Vm::create passes, with a real eventfd for the vCPU's writes.
FilterParams params_for_child(int efd) {
    FilterParams p;
    p.pid = ::getpid();
    p.kick_signal = kick();
    p.vcpu_write_fds = {efd};
    p.console_fds = {0};
    return p;
}

void install_or_die(Role role, SeccompMode mode, const FilterParams& p) {
    auto f = SeccompFilter::build(role, mode, p);
    if (!f.ok()) {
        child_log("build failed: " + f.error().message + "\n");
        ::_exit(3);
    }
    if (auto r = f->install(); !r.ok()) {
        child_log("install failed: " + r.error().message + "\n");
        ::_exit(4);
    }
}

std::atomic<int> g_abrt_handled{0};

// Arguments that make each call fail harmlessly (EBADF, EFAULT, EINVAL):
// -1 everywhere a rule leaves the argument free, the rule's value where it
// constrains it. A few calls need a gentler value to stay harmless.
std::array<uint64_t, 6> harmless_args(const std::string& name, const std::vector<ArgCmp>& alt) {
    std::array<uint64_t, 6> a;
    a.fill(~uint64_t{0});
    if (name == "mmap") a[1] = 0;  // length 0: EINVAL before anything is mapped
    for (const ArgCmp& c : alt) a[c.arg] = (a[c.arg] & ~c.mask) | c.value;
    return a;
}

// Calls every allowed system call of `role` (except the three that end or
// unwind the caller, which are exercised on purpose), then exits 0.
void call_everything(Role role) {
    struct sigaction sa{};
    sa.sa_handler = [](int) { g_abrt_handled.fetch_add(1); };
    ::sigaction(SIGABRT, &sa, nullptr);
    int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    FilterParams p = params_for_child(efd);
    auto rules = role_rules(role, p);
    install_or_die(role, SeccompMode::kKill, p);

    // rt_sigreturn: a handled SIGABRT through the allowed tgkill.
    child_log("tgkill+rt_sigreturn\n");
    ::syscall(SYS_tgkill, ::getpid(), ::syscall(SYS_gettid), SIGABRT);
    if (g_abrt_handled.load() != 1) {
        child_log("the SIGABRT handler did not run\n");
        ::_exit(5);
    }
    for (const SyscallRule& r : rules) {
        if (r.name == "exit" || r.name == "exit_group" || r.name == "rt_sigreturn") continue;
        int nr = ::seccomp_syscall_resolve_name(r.name.c_str());
        std::vector<std::vector<ArgCmp>> alts = r.any_of;
        if (alts.empty()) alts.push_back({});
        for (const auto& alt : alts) {
            auto a = harmless_args(r.name, alt);
            child_log(r.name + "\n");
            ::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        }
    }
    child_log("all done\n");
    // exit is tested by run_in_child's own ending (raw exit, status 0).
}

// A child that installs `role`'s filter and then does `forbidden`.
krunlet::test::ChildResult forbidden_in(Role role, const std::function<void()>& forbidden,
                                        SeccompMode mode = SeccompMode::kKill) {
    return run_in_child([&] {
        int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        install_or_die(role, mode, params_for_child(efd));
        child_log("filter installed\n");
        forbidden();
        child_log("survived\n");
    });
}

bool killed_by_sigsys(const krunlet::test::ChildResult& r) {
    return !r.exited && r.signal == SIGSYS && r.log.find("filter installed") != std::string::npos &&
           r.log.find("survived") == std::string::npos;
}

std::set<std::string> names(Role role) {
    std::set<std::string> out;
    for (const auto& r : role_rules(role, params_for_child(-1)))
        if (r.deny_errno == 0) out.insert(r.name);  // the allowed ones
    return out;
}

}  // namespace

TEST_CASE("KRUNLET_SECCOMP accepts kill and log and names both on anything else") {
    CHECK(parse_seccomp_mode("").value() == SeccompMode::kKill);
    CHECK(parse_seccomp_mode("kill").value() == SeccompMode::kKill);
    CHECK(parse_seccomp_mode("log").value() == SeccompMode::kLog);
    for (const char* bad : {"off", "LOG", "1", "log "}) {
        auto r = parse_seccomp_mode(bad);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == EINVAL);
        CHECK(r.error().message.find("kill") != std::string::npos);
        CHECK(r.error().message.find("log") != std::string::npos);
        CHECK(r.error().message.find(std::string("KRUNLET_SECCOMP=") + bad) != std::string::npos);
    }
    ::setenv("KRUNLET_SECCOMP", "permissive", 1);
    CHECK_FALSE(seccomp_mode_from_env().ok());
    ::unsetenv("KRUNLET_SECCOMP");
    CHECK(seccomp_mode_from_env().value() == SeccompMode::kKill);
}

TEST_CASE("every role's filter builds; the syscall count of each") {
    for (Role role : kAllRoles) {
        auto f = SeccompFilter::build(role, SeccompMode::kKill, params_for_child(7));
        REQUIRE_MESSAGE(f.ok(), (f.ok() ? "" : f.error().message));
        CHECK(f->syscall_count() == names(role).size());
        CHECK(f->instruction_count() > f->syscall_count());
        MESSAGE(std::string(role_name(role)) << ": " << f->syscall_count() << " system calls, " << f->instruction_count()
                                << " BPF instructions");
    }
}

TEST_CASE("no role allows a way out: exec, new processes, namespaces, privileges, tracing, kernel code") {
    const char* never[] = {"execve", "execveat", "fork", "vfork", "clone", "clone3", "ptrace", "process_vm_readv",
                           "process_vm_writev", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
                           "capset", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "init_module",
                           "finit_module", "delete_module", "kexec_load", "kexec_file_load", "bpf", "perf_event_open",
                           "userfaultfd", "keyctl", "add_key", "request_key", "prctl", "seccomp", "personality",
                           "io_uring_setup", "open_by_handle_at", "pkey_mprotect", "kill", "tkill", "rt_sigaction",
                           "memfd_create", "mknod", "symlink", "link", "rename", "chmod", "chown", "lchown"};
    for (Role role : kAllRoles) {
        auto allowed = names(role);
        for (const char* n : never) CHECK_MESSAGE(allowed.count(n) == 0, std::string(role_name(role)) << " allows " << n);
    }
}

TEST_CASE("the vCPU role is KVM_RUN and little else") {
    auto rules = role_rules(Role::kVcpu, params_for_child(9));
    auto allowed = names(Role::kVcpu);
    for (const char* n : {"openat", "socket", "connect", "read", "sendmsg", "epoll_wait", "unlinkat", "getrandom"})
        CHECK_MESSAGE(allowed.count(n) == 0, "vcpu allows " << n);
    for (const auto& r : rules) {
        if (r.name == "ioctl") {
            REQUIRE(r.any_of.size() == 1);
            CHECK(r.any_of[0][0].value == uint64_t(KVM_RUN));
        }
        if (r.name == "write") CHECK(r.any_of.size() == 2);  // stderr and the loop-call eventfd
    }
}

TEST_CASE("glibc counts CPUs on every role (malloc does, late, on any thread); openat is refused, not fatal") {
    // A VMM died of SIGSYS at teardown: its filtered main thread was the first
    // to need a ninth malloc arena, and glibc read /sys/devices/system/cpu/online.
    for (Role role : kAllRoles) {
        const std::string role_str = role_name(role);
        CAPTURE(role_str);
        const bool may_open = names(role).count("openat") != 0;
        auto r = run_in_child([&] {
            int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            install_or_die(role, SeccompMode::kKill, params_for_child(efd));
            if (::get_nprocs() < 1) ::_exit(6);
            int fd = ::openat(AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC);
            if (!may_open && (fd != -1 || errno != EACCES)) ::_exit(7);
            child_log("counted\n");
        });
        CHECK_MESSAGE((r.exited && r.code == 0 && r.log.find("counted") != std::string::npos), r.describe());
    }
}

TEST_CASE("each role survives every system call on its list") {
    for (Role role : kAllRoles) {
        const std::string role_str = role_name(role);
        CAPTURE(role_str);
        auto r = run_in_child([&] { call_everything(role); });
        CHECK_MESSAGE((r.exited && r.code == 0 && r.log.find("all done") != std::string::npos), r.describe());
    }
}

TEST_CASE("forbidden system calls kill the process with SIGSYS") {
    auto execve = [] {
        char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
        ::syscall(SYS_execve, "/bin/true", argv, environ);
    };
    for (Role role : kAllRoles) {
        const std::string role_str = role_name(role);
        CAPTURE(role_str);
        auto r = forbidden_in(role, execve);
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        r = forbidden_in(role, [] { ::syscall(SYS_mmap, 0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), "mmap(PROT_EXEC): " << r.describe());
        r = forbidden_in(role, [] { ::syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), "ptrace: " << r.describe());
        r = forbidden_in(role, [] { ::syscall(SYS_setuid, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), "setuid: " << r.describe());
        r = forbidden_in(role, [] { ::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), "fork (clone): " << r.describe());
        // A signal other than abort()'s to ourselves: never SIGKILL by mistake.
        r = forbidden_in(role, [] { ::syscall(SYS_tgkill, ::getpid(), ::syscall(SYS_gettid), SIGTERM); });
        CHECK_MESSAGE(killed_by_sigsys(r), "tgkill(SIGTERM): " << r.describe());
    }
    SUBCASE("vCPU: anything but KVM_RUN, and writes elsewhere than stderr") {
        auto r = forbidden_in(Role::kVcpu, [] { ::syscall(SYS_ioctl, 0, TCGETS, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        r = forbidden_in(Role::kVcpu, [] { ::syscall(SYS_ioctl, -1, KVM_GET_REGS, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        // KVM_RUN with junk in the upper half of the request: the kernel would
        // truncate it, the filter compares the low 32 bits only, so this is
        // the same KVM_RUN and is allowed...
        r = forbidden_in(Role::kVcpu, [] { ::syscall(SYS_ioctl, -1, 0x100000000ull | KVM_RUN, 0); });
        CHECK_MESSAGE((r.exited && r.code == 0), r.describe());
        r = forbidden_in(Role::kVcpu, [] { ::syscall(SYS_write, 1, "x", 1); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        // openat is refused with EACCES (glibc's CPU count must survive), never performed.
        r = forbidden_in(Role::kVcpu, [] {
            if (::syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY) != -1 || errno != EACCES) ::_exit(9);
        });
        CHECK_MESSAGE((r.exited && r.code == 0), r.describe());
        r = forbidden_in(Role::kVcpu, [] { ::syscall(SYS_read, 0, nullptr, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
    }
    SUBCASE("event loop: no KVM, no netlink or raw sockets, no device nodes") {
        auto r = forbidden_in(Role::kEventLoop, [] { ::syscall(SYS_ioctl, -1, KVM_RUN, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        r = forbidden_in(Role::kEventLoop, [] { ::syscall(SYS_socket, AF_NETLINK, SOCK_RAW, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        r = forbidden_in(Role::kEventLoop, [] { ::syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        r = forbidden_in(Role::kEventLoop, [] { ::syscall(SYS_mknodat, -1, "x", S_IFBLK | 0600, makedev(8, 0)); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        r = forbidden_in(Role::kEventLoop, [] { ::syscall(SYS_fcntl, -1, F_SETOWN, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        // Files: read-only opens (libslirp's resolv.conf), and not the file server's calls.
        r = forbidden_in(Role::kEventLoop, [] { ::syscall(SYS_openat, AT_FDCWD, "/tmp/x", O_WRONLY | O_CREAT, 0600); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        r = forbidden_in(Role::kEventLoop, [] { ::syscall(SYS_openat, AT_FDCWD, "/nonexistent", O_RDWR); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        r = forbidden_in(Role::kEventLoop, [] { ::syscall(SYS_unlinkat, AT_FDCWD, "/nonexistent", 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        r = forbidden_in(Role::kEventLoop, [] { ::syscall(SYS_openat, AT_FDCWD, "/nonexistent", O_RDONLY); });
        CHECK_MESSAGE((r.exited && r.code == 0), "a read-only open is allowed: " << r.describe());
    }
    SUBCASE("fs worker: no sockets") {
        auto r = forbidden_in(Role::kFsWorker, [] { ::syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
    }
    SUBCASE("VMM main thread: kicks only with the kick signal, terminal ioctls only on the console") {
        auto r = forbidden_in(Role::kVmmMain, [] { ::syscall(SYS_tgkill, ::getpid(), 1, SIGKILL); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        r = forbidden_in(Role::kVmmMain, [] { ::syscall(SYS_ioctl, 5, TCSETS, 0); });
        CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
        // openat is refused with EACCES (glibc's CPU count must survive), never performed.
        r = forbidden_in(Role::kVmmMain, [] {
            if (::syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY) != -1 || errno != EACCES) ::_exit(9);
        });
        CHECK_MESSAGE((r.exited && r.code == 0), r.describe());
    }
}

TEST_CASE("a violation on one thread kills the whole process, not just the thread") {
    auto r = run_in_child([] {
        std::thread t([] {
            int efd = ::eventfd(0, EFD_CLOEXEC);
            install_or_die(Role::kVcpu, SeccompMode::kKill, params_for_child(efd));
            child_log("filter installed\n");
            ::syscall(SYS_getppid);
        });
        t.join();  // with only the thread killed this would wait for ever
        child_log("survived\n");
    }, 20);
    CHECK_MESSAGE(killed_by_sigsys(r), r.describe());
    CHECK_FALSE(r.timed_out);
}

TEST_CASE("KRUNLET_SECCOMP=log: the same violations are allowed (and logged by the kernel)") {
    for (Role role : kAllRoles) {
        const std::string role_str = role_name(role);
        CAPTURE(role_str);
        auto r = forbidden_in(role, [] {
            ::syscall(SYS_getppid);
            ::syscall(SYS_ioctl, -1, TCGETS, 0);
        }, SeccompMode::kLog);
        CHECK_MESSAGE((r.exited && r.code == 0 && r.log.find("survived") != std::string::npos), r.describe());
    }
}

TEST_CASE("after install, /proc shows NoNewPrivs 1 and Seccomp 2 (filter mode)") {
    std::string status;
    auto r = krunlet::test::run_in_child_and_watch(
        [] {
            int efd = ::eventfd(0, EFD_CLOEXEC);
            install_or_die(Role::kVcpu, SeccompMode::kKill, params_for_child(efd));
            child_log("ready\n");
            int word = 0;
            for (;;) ::syscall(SYS_futex, &word, FUTEX_WAIT, 0, nullptr, nullptr, 0);
        },
        "ready",
        [&](pid_t pid) {
            std::ifstream f("/proc/" + std::to_string(pid) + "/status");
            std::stringstream ss;
            ss << f.rdbuf();
            status = ss.str();
        });
    CHECK(status.find("NoNewPrivs:\t1\n") != std::string::npos);
    CHECK(status.find("Seccomp:\t2\n") != std::string::npos);
    CHECK_FALSE(r.timed_out);
}
