// The VMM as crun runs it, and what its /proc entries show while the guest
// runs: a process that closes every inherited fd (crun does close_range),
// dlopen()s libkrun.so.1, configures a context through the C API and calls
// krun_start_enter on its main thread, which never returns. The test reads
// /proc/<vmm>/task/*/status and /proc/<vmm>/fdinfo/* while the workload waits
// for the test's go-ahead (a file the test creates in the rootfs).
//
// Checked: every thread has NO_NEW_PRIVS and a seccomp filter (Seccomp 2),
// every fd the library opened is close-on-exec, and with krun_setuid/
// krun_setgid every thread runs as the new ids with no capabilities, the
// guest's new files belong to them on the host, and KRUNLET_SECCOMP is
// checked.
#include <dirent.h>
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "libkrun_dl.h"
#include "vm_runner.h"

using krunlet::test::krunlet_run;
using krunlet::test::ScratchRootfs;
using krunlet::test::run_child;

namespace {

struct Options {
    std::string rootfs;
    std::string script;  // run by /bin/sh -c in the guest
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    std::vector<std::string> env;  // set in the VMM process before the calls
};

struct Outcome {
    int status = -1;  // exit code, or 128+signal
    std::string out, err;
};

// The crun-style VMM process: everything after fork() is the C API, so it
// runs no test code once krun_start_enter has started the VM.
[[noreturn]] void capi_vmm(const Options& o, int out_fd, int err_fd) {
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::syscall(SYS_close_range, 3, ~0u, 0);  // as crun does before the handler runs
    for (const auto& e : o.env) ::putenv(const_cast<char*>(e.c_str()));
    const krunlet::test::LibkrunDl k = krunlet::test::LibkrunDl::open_or_exit();
    const auto check = krunlet::test::check_or_exit;
    check(k.set_log_level(1), "krun_set_log_level");
    uint32_t ctx = check(k.create_ctx(), "krun_create_ctx");
    check(k.set_vm_config(ctx, 2, 256), "krun_set_vm_config");
    check(k.set_root(ctx, o.rootfs.c_str()), "krun_set_root");
    check(k.set_net(ctx, "none"), "krunlet_set_net");
    if (o.uid) check(k.setuid(ctx, *o.uid), "krun_setuid");
    if (o.gid) check(k.setgid(ctx, *o.gid), "krun_setgid");
    const char* argv[] = {"-c", o.script.c_str(), nullptr};
    const char* envp[] = {"PATH=/bin:/usr/bin", nullptr};
    check(k.set_exec(ctx, "/bin/sh", argv, envp), "krun_set_exec");
    int32_t rc = k.start_enter(ctx);
    std::fprintf(stderr, "test: krun_start_enter returned %d (%s)\n", rc, std::strerror(-rc));
    ::_exit(203);
}

// Runs the VMM; calls `at_ready(pid)` once the guest printed "ready".
Outcome run_capi_vmm(const Options& o, const std::function<void(pid_t)>& at_ready, int timeout_s = 300) {
    bool ready = false;
    auto r = run_child([&](int out_fd, int err_fd) { capi_vmm(o, out_fd, err_fd); }, timeout_s,
                       [&](pid_t pid, const std::string& out) {
                           if (!ready && out.find("ready\n") != std::string::npos) {
                               ready = true;
                               at_ready(pid);
                           }
                       });
    if (!ready) r.err += "\n[test: the guest never printed ready]\n";
    return Outcome{r.status, r.out, r.err};
}

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string field(const std::string& status, const std::string& key) {
    auto at = status.find("\n" + key + ":\t");
    if (at == std::string::npos) return "?";
    at += key.size() + 3;
    auto end = status.find('\n', at);
    std::string v = status.substr(at, end - at);
    while (!v.empty() && v.back() == ' ') v.pop_back();
    return v;
}

struct Task {
    std::string tid, name, status;
};

std::vector<Task> tasks_of(pid_t pid) {
    std::vector<Task> out;
    std::string dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        Task t;
        t.tid = e->d_name;
        t.status = "\n" + slurp(dir + "/" + t.tid + "/status");
        t.name = field(t.status, "Name");
        out.push_back(t);
    }
    ::closedir(d);
    return out;
}

// fd -> "flags" of /proc/<pid>/fdinfo/<fd> (octal; O_CLOEXEC is 02000000).
std::map<int, std::string> fd_flags(pid_t pid) {
    std::map<int, std::string> out;
    std::string dir = "/proc/" + std::to_string(pid) + "/fdinfo";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::string info = "\n" + slurp(dir + "/" + e->d_name);
        out[std::atoi(e->d_name)] = field(info, "flags");
    }
    ::closedir(d);
    return out;
}

std::string fd_target(pid_t pid, int fd) {
    char buf[256] = {};
    ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd)).c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, size_t(n)) : "?";
}

// The guest: makes a file, holds one open (so the fs server has host fds for
// it), says ready, then waits (bounded) for the test's go-ahead.
// (/data, not /tmp: init mounts a tmpfs on /tmp.)
constexpr const char* kWaitingScript =
    "echo made-by-guest > /data/guest-file && exec 3</bin/busybox && echo ready && "
    "i=0; while [ ! -e /data/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; "
    "[ -e /data/go ] && echo done";

// A rootfs with /data, writable by anyone (the dropped VMM included).
struct DataRootfs : ScratchRootfs {
    DataRootfs() {
        std::string data = path() + "/data";
        REQUIRE(::mkdir(data.c_str(), 0777) == 0);
        REQUIRE(::chmod(data.c_str(), 0777) == 0);  // whatever the umask
    }
};

}  // namespace

TEST_CASE("crun-style VMM: every thread has NO_NEW_PRIVS and a seccomp filter, every fd is close-on-exec") {
    DataRootfs rootfs;
    std::vector<Task> tasks;
    std::map<int, std::string> flags;
    std::map<int, std::string> targets;
    std::string main_status;
    auto r = run_capi_vmm(Options{rootfs.path(), kWaitingScript, std::nullopt, std::nullopt, {}}, [&](pid_t pid) {
        tasks = tasks_of(pid);
        main_status = "\n" + slurp("/proc/" + std::to_string(pid) + "/status");
        flags = fd_flags(pid);
        for (const auto& [fd, f] : flags) targets[fd] = fd_target(pid, fd);
        rootfs.write_file("data/go", "");
    });
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.status == 0);
    CHECK(r.out.find("done") != std::string::npos);
    // The main thread is what /proc/<pid>/status shows.
    CHECK(field(main_status, "NoNewPrivs") == "1");
    CHECK(field(main_status, "Seccomp") == "2");
    // The main thread, 2 vCPUs and the event loop at least.
    CHECK(tasks.size() >= 4);
    std::map<std::string, int> names;
    for (const Task& t : tasks) {
        ++names[t.name];
        CHECK_MESSAGE(field(t.status, "NoNewPrivs") == "1", "task " << t.tid << " (" << t.name << ")");
        CHECK_MESSAGE(field(t.status, "Seccomp") == "2", "task " << t.tid << " (" << t.name << ")");
    }
    CHECK(names["vcpu-0"] == 1);
    CHECK(names["vcpu-1"] == 1);
    CHECK(names["event-loop"] == 1);
    std::string listing;
    for (const Task& t : tasks)
        listing += t.tid + " " + t.name + " filters=" + field(t.status, "Seccomp_filters") + "; ";
    MESSAGE("VMM threads: " << listing);
    // Every fd but stdin/stdout/stderr came from the library (all others were
    // closed before the first call), including the fs server's for the
    // guest's open file.
    size_t library_fds = 0;
    for (const auto& [fd, f] : flags) {
        if (fd <= 2) continue;
        ++library_fds;
        unsigned long v = std::strtoul(f.c_str(), nullptr, 8);
        CHECK_MESSAGE((v & O_CLOEXEC) != 0, "fd " << fd << " (" << targets[fd] << ") flags " << f);
    }
    MESSAGE("the VMM held " << library_fds << " fds of its own while the guest ran");
    CHECK(library_fds >= 10);
}

TEST_CASE("krun_setuid/krun_setgid: the VMM runs as 65534 before the guest starts; guest files are 65534's") {
    if (::geteuid() != 0) {
        MESSAGE("SKIPPED: dropping to another uid needs root, which the KVM test host gives");
        return;
    }
    DataRootfs rootfs;
    // mkdtemp made the root 0700; nobody needs to read it.
    REQUIRE(::chmod(rootfs.path().c_str(), 0755) == 0);
    std::vector<Task> tasks;
    auto r = run_capi_vmm(Options{rootfs.path(), kWaitingScript, 65534, 65534, {}}, [&](pid_t pid) {
        tasks = tasks_of(pid);
        rootfs.write_file("data/go", "");
    });
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.status == 0);
    CHECK(r.out.find("done") != std::string::npos);
    CHECK(tasks.size() >= 4);
    for (const Task& t : tasks) {
        INFO("task " << t.tid << " (" << t.name << ")");
        CHECK(field(t.status, "Uid") == "65534\t65534\t65534\t65534");
        CHECK(field(t.status, "Gid") == "65534\t65534\t65534\t65534");
        CHECK(field(t.status, "Groups") == "");
        CHECK(field(t.status, "CapEff") == "0000000000000000");
        CHECK(field(t.status, "CapPrm") == "0000000000000000");
        CHECK(field(t.status, "NoNewPrivs") == "1");
        CHECK(field(t.status, "Seccomp") == "2");
    }
    // What the guest created belongs to the VMM's new ids on the host.
    struct stat st{};
    REQUIRE(::stat((rootfs.path() + "/data/guest-file").c_str(), &st) == 0);
    CHECK(st.st_uid == 65534);
    CHECK(st.st_gid == 65534);
    CHECK(rootfs.read_file("data/guest-file") == "made-by-guest\n");
}

TEST_CASE("KRUNLET_SECCOMP: log still runs the guest; an unknown value fails before it, naming the choices") {
    DataRootfs rootfs;
    ::setenv("KRUNLET_SECCOMP", "sometimes", 1);
    auto bad = krunlet_run(rootfs.path(), {}, {"/bin/true"}, 120);
    ::unsetenv("KRUNLET_SECCOMP");
    CHECK(bad.status == 125);
    CHECK_MESSAGE(bad.err.find("KRUNLET_SECCOMP=sometimes: use kill (the default) or log") != std::string::npos, bad.err);

    std::string seccomp;
    auto r = run_capi_vmm(Options{rootfs.path(), kWaitingScript, std::nullopt, std::nullopt, {"KRUNLET_SECCOMP=log"}},
                          [&](pid_t pid) {
                              seccomp = field("\n" + slurp("/proc/" + std::to_string(pid) + "/status"), "Seccomp");
                              rootfs.write_file("data/go", "");
                          });
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.status == 0);
    CHECK(seccomp == "2");  // filtered, only logging
}
