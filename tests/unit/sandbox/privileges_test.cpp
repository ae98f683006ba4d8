// The privilege drop behind krun_setuid/krun_setgid, in forked children (it
// cannot be undone). Needs root, as crun's VMM has; otherwise reported skipped.
#include "sandbox/privileges.h"

#include <dirent.h>
#include <doctest/doctest.h>
#include <grp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include "child.h"
#include "virtiofs/fs_creds.h"

using namespace krunlet;
using krunlet::test::child_log;
using krunlet::test::run_in_child;

namespace {

bool not_root() {
    if (::geteuid() == 0) return false;
    std::fprintf(stderr, "sandbox_unit: SKIPPING the privilege-drop tests: they need root (CAP_SETUID/CAP_SETGID)\n");
    return true;
}
const bool kNotRoot = not_root();

// "Uid:\t65534\t65534\t65534\t65534" of every task of this process.
std::vector<std::string> task_lines(const std::string& key) {
    std::vector<std::string> out;
    DIR* d = ::opendir("/proc/self/task");
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/status");
        std::string line;
        while (std::getline(f, line))
            if (line.rfind(key, 0) == 0) out.push_back(line);
    }
    ::closedir(d);
    return out;
}

void fail(const std::string& why) {
    child_log("FAIL: " + why + "\n");
    ::_exit(1);
}

}  // namespace

TEST_CASE("drop_privileges: groups, gid, uid on every thread, and no way back" * doctest::skip(kNotRoot)) {
    auto r = run_in_child([] {
        gid_t extra[] = {4, 27};
        if (::setgroups(2, extra) != 0) fail("setgroups for the test");
        // A thread that exists before the drop, as the event loop or a queue
        // thread would: it must change too.
        std::atomic<bool> done{false};
        std::thread t([&] {
            while (!done.load()) ::usleep(1000);
        });
        auto d = sandbox::drop_privileges(65534, 65534);
        if (!d.ok()) fail(d.error().message);
        for (const auto& l : task_lines("Uid:"))
            if (l != "Uid:\t65534\t65534\t65534\t65534") fail("a task still has " + l);
        for (const auto& l : task_lines("Gid:"))
            if (l != "Gid:\t65534\t65534\t65534\t65534") fail("a task still has " + l);
        for (auto l : task_lines("Groups:")) {
            while (!l.empty() && l.back() == ' ') l.pop_back();  // the kernel ends the list with a space
            if (l != "Groups:\t") fail("a task still has " + l);
        }
        for (const auto& l : task_lines("CapEff:"))
            if (l != "CapEff:\t0000000000000000") fail("a task still has " + l);
        if (task_lines("Uid:").size() != 2) fail("expected 2 tasks");
        if (::setuid(0) == 0 || ::setgid(0) == 0) fail("got root back");
        // The virtio-fs server no longer switches to the guest's ids: files
        // it creates from now on belong to 65534 (docs/security.md).
        auto c = fs::FsCreds::enter(true, 1234, 1234);
        if (!c.ok()) fail("FsCreds::enter after the drop: " + c.error().message);
        if (::syscall(SYS_setfsuid, -1) != 65534) fail("fsuid changed after the drop");
        done = true;
        t.join();
        child_log("dropped\n");
    });
    CHECK_MESSAGE((r.exited && r.code == 0 && r.log.find("dropped") != std::string::npos), r.describe());
}

TEST_CASE("drop_privileges: only the ids asked for change" * doctest::skip(kNotRoot)) {
    auto r = run_in_child([] {
        auto d = sandbox::drop_privileges(std::nullopt, 65534);
        if (!d.ok()) fail(d.error().message);
        if (::getuid() != 0 || ::getgid() != 65534 || ::getegid() != 65534) fail("wrong ids after a gid-only drop");
        if (::getgroups(0, nullptr) != 0) fail("groups not cleared");
        child_log("ok\n");
    });
    CHECK_MESSAGE((r.exited && r.code == 0), r.describe());
}

TEST_CASE("drop_privileges: an unprivileged process gets EPERM naming the capability" * doctest::skip(kNotRoot)) {
    auto r = run_in_child([] {
        if (!sandbox::drop_privileges(65534, 65534).ok()) fail("first drop");
        auto d = sandbox::drop_privileges(1000, 1000);
        if (d.ok()) fail("a second drop to other ids worked");
        if (d.error().code != EPERM) fail("code " + std::to_string(d.error().code));
        if (d.error().message.find("CAP_SETGID") == std::string::npos) fail("message: " + d.error().message);
        // Asking for what the process already is works without privileges.
        if (auto same = sandbox::drop_privileges(65534, 65534); !same.ok()) fail("same ids: " + same.error().message);
        child_log("ok\n");
    });
    CHECK_MESSAGE((r.exited && r.code == 0), r.describe());
}

TEST_CASE("drop_privileges: -1 is not an id, and nothing asked is nothing done") {
    CHECK(sandbox::drop_privileges(uid_t(-1), std::nullopt).error().code == EINVAL);
    CHECK(sandbox::drop_privileges(std::nullopt, gid_t(-1)).error().code == EINVAL);
    uid_t before = ::getuid();
    CHECK(sandbox::drop_privileges(std::nullopt, std::nullopt).ok());
    CHECK(::getuid() == before);
}
