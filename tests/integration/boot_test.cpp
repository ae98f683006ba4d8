// Boots real microVMs from a busybox rootfs through the krunlet CLI and
// checks what a container user relies on. Each case is one boot (~3 s inside
// the KVM test host), so each checks as much as it can.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <map>
#include <sstream>
#include <string>

#include "vm_runner.h"

using krunlet::test::krunlet_run;
using krunlet::test::ScratchRootfs;

namespace {
// Show what the VMM printed when a check fails.
#define RUN_INFO(r) INFO("status=" << (r).status << "\nstdout:\n" << (r).out << "\nstderr:\n" << (r).err)
}  // namespace

TEST_CASE("echo reaches stdout and exit code 0") {
    ScratchRootfs fs;
    auto r = krunlet_run(fs.path(), {"--boot-trace"}, {"/bin/echo", "hello from krunlet"});
    RUN_INFO(r);
    CHECK(r.status == 0);
    CHECK(r.out == "hello from krunlet\n");
    // Every phase was seen: init's two port writes (start, workload fork) reached the VMM.
    const auto pos = r.err.find("boot-trace: ");
    REQUIRE(pos != std::string::npos);
    std::istringstream line(r.err.substr(pos + 12, r.err.find('\n', pos) - pos - 12));
    std::map<std::string, double> f;
    for (std::string kv; line >> kv;)
        if (auto eq = kv.find('='); eq != std::string::npos) f[kv.substr(0, eq)] = std::stod(kv.substr(eq + 1));
    for (const char* k : {"setup_ms", "kernel_ms", "init_ms", "workload_ms", "total_ms"}) {
        INFO(k);
        CHECK(f[k] > 0);
    }
    CHECK(f["setup_ms"] + f["kernel_ms"] + f["init_ms"] + f["workload_ms"] <= f["total_ms"] + 0.01);
}

TEST_CASE("exit codes: 7, not found 127, not executable 126, SIGKILL 137") {
    ScratchRootfs fs;
    fs.write_file("not-exec", "just data\n");
    {
        auto r = krunlet_run(fs.path(), {}, {"/bin/sh", "-c", "exit 7"});
        RUN_INFO(r);
        CHECK(r.status == 7);
    }
    {
        auto r = krunlet_run(fs.path(), {}, {"/no/such/program"});
        RUN_INFO(r);
        CHECK(r.status == 127);
    }
    {
        auto r = krunlet_run(fs.path(), {}, {"/not-exec"});
        RUN_INFO(r);
        CHECK(r.status == 126);
    }
    {
        auto r = krunlet_run(fs.path(), {}, {"/bin/sh", "-c", "kill -9 $$"});
        RUN_INFO(r);
        CHECK(r.status == 137);
    }
}

TEST_CASE("arguments with spaces and quotes arrive unchanged") {
    ScratchRootfs fs;
    auto r = krunlet_run(fs.path(), {},
                         {"/bin/sh", "-c", "for a in \"$@\"; do printf '[%s]' \"$a\"; done", "sh", "a b",
                          "it's", "\"double\"", "$HOME", "", "tab\there"});
    RUN_INFO(r);
    CHECK(r.status == 0);
    CHECK(r.out == "[a b][it's][\"double\"][$HOME][][tab\there]");
}

TEST_CASE("environment and working directory") {
    ScratchRootfs fs;
    ::mkdir((fs.path() + "/work dir").c_str(), 0755);
    auto r = krunlet_run(fs.path(), {"--env", "FOO=bar baz", "--env", "EMPTY=", "--workdir", "/work dir"},
                         {"/bin/sh", "-c", "echo \"$FOO|${EMPTY-unset}|$(pwd)|$PATH\""});
    RUN_INFO(r);
    CHECK(r.status == 0);
    CHECK(r.out.rfind("bar baz||/work dir|/", 0) == 0);
}

TEST_CASE("workload from .krun_config.json with a 100 KiB environment") {
    ScratchRootfs fs;
    std::string big(100 * 1024, 'x');
    nlohmann::json cfg = {
        {"ociVersion", "1.0.0"},
        {"hostname", "cfg-host"},
        {"process",
         {{"terminal", false},
          {"user", {{"uid", 0}, {"gid", 0}}},
          {"args", {"/bin/sh", "-c", "echo ${#BIG} $SMALL $(hostname) $(pwd)"}},
          {"env", {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "BIG=" + big, "SMALL=tiny"}},
          {"cwd", "/tmp"}}},
        {"root", {{"path", "rootfs"}}},
    };
    fs.write_file(".krun_config.json", cfg.dump());
    auto r = krunlet_run(fs.path(), {}, {});
    RUN_INFO(r);
    CHECK(r.status == 0);
    CHECK(r.out == std::to_string(big.size()) + " tiny cfg-host /tmp\n");
}

TEST_CASE("files: guest writes reach the host, host files are readable in the guest") {
    ScratchRootfs fs;
    std::string host_data;
    for (int i = 0; i < 20000; ++i) host_data += std::to_string(i) + "\n";
    fs.write_file("from-host.txt", host_data);
    auto r = krunlet_run(fs.path(), {},
                         {"/bin/sh", "-c",
                          "md5sum /from-host.txt; echo 'written in the guest' > /from-guest.txt; "
                          "mkdir -p /d/e && seq 1 5000 > /d/e/seq.txt"});
    RUN_INFO(r);
    CHECK(r.status == 0);
    auto md5 = krunlet::test::run_process({"/usr/bin/md5sum", fs.path() + "/from-host.txt"});
    CHECK(r.out.substr(0, 32) == md5.out.substr(0, 32));
    CHECK(fs.read_file("from-guest.txt") == "written in the guest\n");
    std::string seq;
    for (int i = 1; i <= 5000; ++i) seq += std::to_string(i) + "\n";
    CHECK(fs.read_file("d/e/seq.txt") == seq);
}

TEST_CASE("two vCPUs") {
    ScratchRootfs fs;
    auto r = krunlet_run(fs.path(), {"--cpus", "2"}, {"/bin/sh", "-c", "grep -c ^processor /proc/cpuinfo"});
    RUN_INFO(r);
    CHECK(r.status == 0);
    CHECK(r.out == "2\n");
}

TEST_CASE("guest RAM: 64 MiB and 2 GiB") {
    ScratchRootfs fs;
    for (int mib : {64, 2048}) {
        auto r = krunlet_run(fs.path(), {"--memory", std::to_string(mib)},
                             {"/bin/sh", "-c", "awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo"});
        RUN_INFO(r);
        CHECK(r.status == 0);
        int seen = std::atoi(r.out.c_str());
        // The kernel keeps its own image and reserved areas out of MemTotal.
        CHECK(seen > mib * 7 / 10);
        CHECK(seen <= mib);
    }
}

TEST_CASE("a guest kernel panic ends the VM with the crash code, without waiting for a timeout") {
    ScratchRootfs fs;
    // A later init= wins: the kernel cannot run it and panics. panic=-1 reboots at once; the
    // time is reported, not asserted (the test host is emulated and shared).
    auto r = krunlet_run(fs.path(), {"--kernel-cmdline", "init=/no-such-init"}, {"/bin/true"}, 60);
    RUN_INFO(r);
    CHECK(r.status == 124);
    CHECK(r.err.find("test: killed after timeout") == std::string::npos);
    MESSAGE("panic to exit: " << r.seconds << " s");
}

TEST_CASE("a terminal: the workload gets a tty and output is not mangled") {
    ScratchRootfs fs;
    // script(1) gives krunlet a pseudo-terminal as stdin/stdout, as an
    // interactive `podman run -t` would; -e passes the exit code on.
    std::string cmd = std::string(KRUNLET_BIN_DIR) + "/krunlet run " + fs.path() +
                      " -- /bin/sh -c 'test -t 0 && test -t 1 && echo tty-ok; exit 3'";
    auto r = krunlet::test::run_process({"/usr/bin/script", "-qec", cmd, "/dev/null"});
    RUN_INFO(r);
    CHECK(r.status == 3);
    // One \r\n per line: the guest's tty adds the \r, the host terminal is raw.
    CHECK(r.out == "tty-ok\r\n");
}
