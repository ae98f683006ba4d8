// krunlet-launch's own failures (crun-handler/launcher.cpp): every one exits
// 125 with a one-line reason, before any VM exists. The success path (a
// booted guest) is covered by oci_runc_e2e where KVM can run Linux.
#include <doctest/doctest.h>
#include <dlfcn.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "exec_guard.h"
#include "helpers.h"

namespace {

struct Run {
    int code = -1;
    std::string out;
};

// Runs the launcher with `args` (shell words) and an empty environment, so
// no LD_LIBRARY_PATH can lead it to a libkrun.so.1.
Run launch(const std::string& args) {
    std::string cmd = std::string("env -i ") + KRUNLET_TEST_LAUNCHER + " " + args + " 2>&1";
    Run r;
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[512];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    int status = ::pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

}  // namespace

TEST_CASE("bad launcher options exit 125 and say what is wrong") {
    Run r = launch("--cpus 17");
    CHECK(r.code == 125);
    CHECK(r.out.find("--cpus 17") != std::string::npos);
    r = launch("--ram-mib lots");
    CHECK(r.code == 125);
    CHECK(r.out.find("whole number") != std::string::npos);
    r = launch("--bogus 1");
    CHECK(r.code == 125);
    CHECK(r.out.find("unknown option --bogus") != std::string::npos);
    r = launch("--cpus");
    CHECK(r.code == 125);
    CHECK(r.out.find("needs a value") != std::string::npos);
}

TEST_CASE("without libkrun.so.1 on its library path the launcher names the problem") {
    // With env -i the launcher sees only the system library path; if a
    // libkrun.so.1 is installed there, this case cannot be set up.
    if (void* sys = ::dlopen("libkrun.so.1", RTLD_LAZY)) {
        ::dlclose(sys);
        MESSAGE("SKIPPED: a libkrun.so.1 is installed system-wide");
        return;
    }
    Run r = launch("--log-level 1");
    CHECK(r.code == 125);
    CHECK(r.out.find("cannot load libkrun.so.1") != std::string::npos);
}

TEST_CASE("exec guard: only bundles krun rewrote count as krun containers") {
    TempDir t;
    CHECK_FALSE(krunlet::oci::bundle_is_krun(t.path));  // no config.json
    write_text(t.path + "/config.json", R"({"annotations": {"run.oci.handler": "krun"}})");
    CHECK_FALSE(krunlet::oci::bundle_is_krun(t.path));  // annotated but not (yet) rewritten
    write_text(t.path + "/config.json", R"({"annotations": {"org.krunlet.oci.rewritten": "1"}})");
    CHECK(krunlet::oci::bundle_is_krun(t.path));
    write_text(t.path + "/config.json", "garbage");
    CHECK_FALSE(krunlet::oci::bundle_is_krun(t.path));
}
