// The libkrun drop-in contract as crun exercises it (DESIGN.md §3), with no
// crun: a child process makes crun's calls on the real libkrun.so.1, in
// crun's order, after crun's isolation steps, and must exit with the
// workload's code.
//
//   crun >= 1.28: dlopen and krun_create_ctx on the host; close every fd >= 3;
//                 into the container's root (here: a private mount namespace
//                 with /dev/kvm, /dev/null and /proc, then chroot), where no
//                 host file, no build tree and no KRUNLET_KERNEL exist; then
//                 krun_set_log_level, krun_add_virtiofs2(/dev/root, "/"),
//                 krun_set_vm_config, krun_start_enter. The workload comes from
//                 /.krun_config.json.
//   crun <= 1.20: dlopen on the host; everything else inside the container:
//                 krun_set_log_level, krun_create_ctx, krun_set_vm_config,
//                 krun_set_root("/"), krun_set_workdir, krun_set_exec,
//                 krun_start_enter. krun_set_exec beats the config's args.
//
// Either way the guest kernel can only come from libkrunlet-kernel.so.1,
// mapped when libkrun.so.1 was loaded.
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "libkrun_dl.h"
#include "vm_runner.h"

using krunlet::test::ScratchRootfs;
using krunlet::test::run_child;

namespace {

enum class Crun { kNew, kOld };

struct Outcome {
    int status = -1;  // exit code, or 128+signal
    std::string out, err;
};

[[noreturn]] void fail(int code, const std::string& what) {
    std::fprintf(stderr, "test: %s: %s\n", what.c_str(), std::strerror(errno));
    ::_exit(code);
}

// crun's container, reduced to what the handler sees: a private mount
// namespace, /dev/kvm (crun adds c 10:232), /dev/null and /proc in the
// rootfs, and the rootfs as "/". Every fd >= 3 is already closed.
void enter_container(const std::string& rootfs) {
    if (::unshare(CLONE_NEWNS) != 0) fail(210, "unshare(CLONE_NEWNS)");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail(211, "make / private");
    for (const char* dev : {"/dev/kvm", "/dev/null"}) {
        std::string target = rootfs + dev;
        int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) fail(212, "create " + target);
        ::close(fd);
        if (::mount(dev, target.c_str(), nullptr, MS_BIND, nullptr) != 0) fail(213, std::string("bind ") + dev);
    }
    // crun mounts the container's /proc; the virtio-fs server reopens files
    // through /proc/self/fd.
    if (::mount("proc", (rootfs + "/proc").c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
        fail(217, "mount proc");
    if (::chroot(rootfs.c_str()) != 0) fail(214, "chroot " + rootfs);
    if (::chdir("/") != 0) fail(215, "chdir /");
    // The point of the exercise: the build tree (with build/lib/krunlet/vmlinux)
    // and the host's kernel are out of reach.
    for (const char* host_path : {KRUNLET_BUILD_DIR "/lib", KRUNLET_BUILD_DIR "/lib/krunlet/vmlinux"}) {
        if (::access(host_path, F_OK) == 0) {
            std::fprintf(stderr, "test: %s is still reachable inside the container\n", host_path);
            ::_exit(216);
        }
    }
}

// The handler: only C API calls after fork(), as crun makes them.
[[noreturn]] void crun_handler(Crun version, const std::string& rootfs, int out_fd, int err_fd) {
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::unsetenv("KRUNLET_KERNEL");
    // crun's libkrun_load: dlopen on the host, before any namespace.
    const krunlet::test::LibkrunDl k = krunlet::test::LibkrunDl::open_or_exit();
    const auto check = krunlet::test::check_or_exit;

    uint32_t ctx = 0;
    if (version == Crun::kNew) ctx = check(k.create_ctx(), "krun_create_ctx (on the host)");
    ::syscall(SYS_close_range, 3, ~0u, 0);
    enter_container(rootfs);
    check(k.set_log_level(1), "krun_set_log_level");
    if (version == Crun::kNew) {
        check(k.add_virtiofs2(ctx, "/dev/root", "/", uint64_t{512} << 20), "krun_add_virtiofs2");
        check(k.set_vm_config(ctx, 1, 256), "krun_set_vm_config");
    } else {
        ctx = check(k.create_ctx(), "krun_create_ctx (in the container)");
        check(k.set_vm_config(ctx, 1, 256), "krun_set_vm_config");
        check(k.set_root(ctx, "/"), "krun_set_root");
        check(k.set_workdir(ctx, "/tmp"), "krun_set_workdir");
        const char* argv[] = {"-c", "echo contract-old in $(pwd); exit 9", nullptr};
        const char* envp[] = {"PATH=/bin:/usr/bin", nullptr};
        check(k.set_exec(ctx, "/bin/sh", argv, envp), "krun_set_exec");
    }
    int32_t rc = k.start_enter(ctx);
    std::fprintf(stderr, "test: krun_start_enter returned %d (%s)\n", rc, std::strerror(-rc));
    ::_exit(203);
}

Outcome run_handler(Crun version, const std::string& rootfs, int timeout_s = 300) {
    auto r = run_child([&](int out_fd, int err_fd) { crun_handler(version, rootfs, out_fd, err_fd); }, timeout_s);
    return Outcome{r.status, r.out, r.err};
}

// What crun writes into the rootfs: the OCI config (trimmed to what init reads).
constexpr const char* kKrunConfig = R"({
  "ociVersion": "1.0.2",
  "process": {
    "args": ["/bin/sh", "-c", "echo contract-new from $(cat /etc/hostname-src) in $(pwd); exit 7"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
    "cwd": "/root",
    "user": {"uid": 0, "gid": 0}
  },
  "hostname": "contract",
  "root": {"path": "rootfs"},
  "mounts": [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}]
})";

bool can_build_container() {
    if (::geteuid() == 0) return true;
    MESSAGE("SKIPPED: a mount namespace and chroot need root, which the KVM test host gives");
    return false;
}

}  // namespace

TEST_CASE("crun >= 1.28: create_ctx on the host, then close_range and chroot; workload from /.krun_config.json") {
    if (!can_build_container()) return;
    ScratchRootfs rootfs;
    rootfs.write_file(".krun_config.json", kKrunConfig);
    rootfs.write_file("etc/hostname-src", "the-rootfs\n");
    auto r = run_handler(Crun::kNew, rootfs.path());
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.status == 7);
    CHECK(r.out.find("contract-new from the-rootfs in /root") != std::string::npos);
    CHECK(r.err.find("test:") == std::string::npos);
}

TEST_CASE("crun <= 1.20: every call inside the chroot, krun_set_exec beats the config's args") {
    if (!can_build_container()) return;
    ScratchRootfs rootfs;
    rootfs.write_file(".krun_config.json", kKrunConfig);  // crun writes it too; set_exec wins
    auto r = run_handler(Crun::kOld, rootfs.path());
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.status == 9);
    CHECK(r.out.find("contract-old in /tmp") != std::string::npos);
    CHECK(r.out.find("contract-new") == std::string::npos);
    CHECK(r.err.find("test:") == std::string::npos);
}
