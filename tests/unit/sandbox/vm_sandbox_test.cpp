// A whole Vm through the internal API, without booting Linux to user space:
// Vm::create opens everything (every fd must be close-on-exec), then Vm::run
// starts the guest kernel for a moment with every VM thread filtered, and
// request_stop ends it. On kvm_pvm (this machine's /dev/kvm, DESIGN.md §6)
// the kernel only gets through its first steps, which is all this needs.
#include "vmm/vm.h"

#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "child.h"
#include "kvm/kvm.h"
#include "vmm/kernel_file.h"

using namespace krunlet;
using krunlet::test::child_log;

namespace {

bool no_kvm() {
    if (::access("/dev/kvm", R_OK | W_OK) == 0) return false;
    std::fprintf(stderr, "sandbox_unit: SKIPPING the Vm tests: /dev/kvm is missing or not accessible\n");
    return true;
}
const bool kNoKvm = no_kvm();

std::set<int> open_fds() {
    std::set<int> out;
    DIR* d = ::opendir("/proc/self/fd");
    REQUIRE(d != nullptr);
    int self = ::dirfd(d);
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        int fd = std::atoi(e->d_name);
        if (fd != self) out.insert(fd);
    }
    ::closedir(d);
    return out;
}

std::string fd_target(int fd) {
    char buf[256] = {};
    ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, size_t(n)) : "?";
}

uint16_t free_tcp_port() {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(s);
    return ntohs(a.sin_port);
}

// name -> (NoNewPrivs, Seccomp) of every task of this process.
std::multimap<std::string, std::pair<std::string, std::string>> task_sandbox() {
    std::multimap<std::string, std::pair<std::string, std::string>> out;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream f(e.path() / "status");
        std::string line, name, nnp, sc;
        while (std::getline(f, line)) {
            if (line.rfind("Name:\t", 0) == 0) name = line.substr(6);
            if (line.rfind("NoNewPrivs:\t", 0) == 0) nnp = line.substr(12);
            if (line.rfind("Seccomp:\t", 0) == 0) sc = line.substr(9);
        }
        out.emplace(name, std::make_pair(nnp, sc));
    }
    return out;
}

// A VM with every kind of fd the library opens at setup: KVM, memory, the
// event loop, a virtio-fs share, the console, vsock with a listening unix
// socket, and slirp with a published port.
struct Fixture {
    std::string dir;
    std::optional<KernelFile> kernel;
    VmConfig config;

    Fixture() {
        if (Kvm::is_kvm_pvm()) ::setenv("KRUNLET_ALLOW_KVM_PVM", "1", 1);  // see the file comment
        char tmpl[] = "/tmp/krunlet-sandbox-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        std::filesystem::create_directory(dir + "/root");
        REQUIRE_MESSAGE(std::string(KRUNLET_TEST_KERNEL) != "",
                        "configure with -DKRUNLET_KERNEL_IMAGE=<vmlinux> (setup.sh does)");
        auto k = KernelFile::open(KRUNLET_TEST_KERNEL);
        REQUIRE_MESSAGE(k.ok(), (k.ok() ? "" : k.error().message));
        kernel.emplace(std::move(k).value());
        config.vcpus = 2;
        config.ram_mib = 64;
        config.kernel = kernel->bytes();
        config.shares.push_back(FsShare{"/dev/root", dir + "/root", false});
        config.vsock_ports.push_back(VsockPort{5000, dir + "/vsock.sock", true});
        config.net.enabled = true;
        config.net.ports.push_back(PortForward{free_tcp_port(), 80});
        config.console_in = -1;
        config.console_out = -1;
        config.workload.args = {"/bin/true"};
    }
    ~Fixture() { std::filesystem::remove_all(dir); }
};

}  // namespace

TEST_CASE("every fd Vm::create opens is close-on-exec, and all are gone after" * doctest::skip(kNoKvm)) {
    Fixture fx;
    auto before = open_fds();
    {
        auto vm = Vm::create(fx.config);
        REQUIRE_MESSAGE(vm.ok(), (vm.ok() ? "" : vm.error().message));
        auto during = open_fds();
        size_t opened = 0;
        for (int fd : during) {
            if (before.count(fd) != 0) continue;
            ++opened;
            int flags = ::fcntl(fd, F_GETFD);
            CHECK_MESSAGE((flags >= 0 && (flags & FD_CLOEXEC) != 0),
                          "fd " << fd << " (" << fd_target(fd) << ") is not close-on-exec");
        }
        MESSAGE("Vm::create opened " << opened << " fds");
        CHECK(opened >= 10);  // kvm, vm, 2 vcpus, epoll, eventfds, share, sockets...
    }
    CHECK(open_fds() == before);
}

TEST_CASE("Vm::run filters every VM thread but not the caller, and stops cleanly" * doctest::skip(kNoKvm)) {
    Fixture fx;
    auto vm = Vm::create(fx.config);
    REQUIRE_MESSAGE(vm.ok(), (vm.ok() ? "" : vm.error().message));
    VmOutcome out;
    std::thread runner([&] { out = (*vm)->run(); });
    // Let the guest kernel start; look at the threads while it runs.
    std::multimap<std::string, std::pair<std::string, std::string>> tasks;
    for (int i = 0; i < 100; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        tasks = task_sandbox();
        if (tasks.count("vcpu-0") + tasks.count("vcpu-1") + tasks.count("event-loop") == 3) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    (*vm)->request_stop(77, "stopped by the test");
    runner.join();
    CHECK_MESSAGE(out.exit_code == 77, "the VM ended by itself: " << out.reason);
    for (const char* name : {"vcpu-0", "vcpu-1", "event-loop"}) {
        auto it = tasks.find(name);
        REQUIRE_MESSAGE(it != tasks.end(), name << " not seen");
        CHECK_MESSAGE(it->second == std::make_pair(std::string("1"), std::string("2")),
                      name << ": NoNewPrivs " << it->second.first << ", Seccomp " << it->second.second);
    }
    // Neither the test's main thread nor the one that called Vm::run.
    size_t unfiltered = 0;
    for (const auto& [name, v] : tasks)
        if (v.second == "0") ++unfiltered;
    CHECK(unfiltered >= 2);
    // And the test process itself never got NO_NEW_PRIVS.
    std::ifstream st("/proc/self/status");
    std::stringstream ss;
    ss << st.rdbuf();
    CHECK(ss.str().find("NoNewPrivs:\t0\n") != std::string::npos);
}

TEST_CASE("Vm::run with sandbox_caller filters the calling thread too and the VMM ends normally" *
          doctest::skip(kNoKvm)) {
    Fixture fx;
    auto r = krunlet::test::run_in_child([&] {
        auto vm = Vm::create(fx.config);
        if (!vm.ok()) {
            child_log("create: " + vm.error().message + "\n");
            ::_exit(2);
        }
        // Stops the VM from a thread that exists before any filter.
        std::thread stopper([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(800));
            (*vm)->request_stop(42, "stopped by the test");
        });
        VmOutcome out = (*vm)->run(VmRunOptions{.sandbox_caller = true});
        stopper.join();
        child_log("ended: " + out.reason + "\n");
        // The filtered caller tears the VM down and exits, as krun_start_enter does.
        vm->reset();
        std::exit(out.exit_code);
    }, 60);
    CHECK_MESSAGE((r.exited && r.code == 42), r.describe());
}
