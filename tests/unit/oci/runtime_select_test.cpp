// Choosing runc or crun (crun-handler/runtime_select.h).
#include <doctest/doctest.h>

#include "helpers.h"
#include "runtime_select.h"

using namespace krunlet::oci;

namespace {

// A fake runtime: a shell script exiting with `code` on --version.
std::string fake(const std::string& dir, const std::string& name, int code = 0) {
    std::string p = dir + "/" + name;
    write_text(p, "#!/bin/sh\nexit " + std::to_string(code) + "\n", 0755);
    return p;
}

}  // namespace

TEST_CASE("--runtime-path beats KRUNLET_OCI_RUNTIME, which beats PATH") {
    TempDir t;
    std::string a = fake(t.path, "a"), b = fake(t.path, "b");
    fake(t.path, "crun");
    SelectInputs in;
    in.path_env = t.path;
    in.crun_ok = [](const std::string&) { return true; };
    in.runtime_path = a;
    in.env_runtime = b;
    auto r = select_runtime(in);
    REQUIRE(r.ok());
    CHECK(r->path == a);
    in.runtime_path.reset();
    r = select_runtime(in);
    REQUIRE(r.ok());
    CHECK(r->path == b);
    in.env_runtime = "";  // empty means unset
    r = select_runtime(in);
    REQUIRE(r.ok());
    CHECK(r->path == t.path + "/crun");
}

TEST_CASE("a bare name in KRUNLET_OCI_RUNTIME is looked up in PATH; a missing one is a clear error") {
    TempDir t;
    fake(t.path, "runc");
    SelectInputs in;
    in.path_env = t.path;
    in.env_runtime = "runc";
    auto r = select_runtime(in);
    REQUIRE(r.ok());
    CHECK(r->path == t.path + "/runc");
    in.env_runtime = t.path + "/nope";
    r = select_runtime(in);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("KRUNLET_OCI_RUNTIME") != std::string::npos);
    in.env_runtime.reset();
    in.runtime_path = "nothere";
    r = select_runtime(in);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("--runtime-path") != std::string::npos);
}

TEST_CASE("crun when the probe accepts it, else runc") {
    TempDir t;
    fake(t.path, "crun");
    fake(t.path, "runc");
    SelectInputs in;
    in.path_env = "/nonexistent:" + t.path;
    in.crun_ok = [](const std::string&) { return true; };
    CHECK(select_runtime(in)->path == t.path + "/crun");
    in.crun_ok = [](const std::string&) { return false; };
    auto r = select_runtime(in);
    REQUIRE(r.ok());
    CHECK(r->path == t.path + "/runc");
    CHECK(r->reason.find("not usable") != std::string::npos);
}

TEST_CASE("nothing found: the message says what to install") {
    TempDir t;
    SelectInputs in;
    in.path_env = t.path;
    auto r = select_runtime(in);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("install runc or crun") != std::string::npos);
}

TEST_CASE("krun itself is never chosen") {
    TempDir t;
    std::string self = fake(t.path, "runc");
    SelectInputs in;
    in.path_env = t.path;
    in.self_exe = self;
    CHECK_FALSE(select_runtime(in).ok());
    in.runtime_path = self;
    auto r = select_runtime(in);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("krun itself") != std::string::npos);
}

TEST_CASE("the default probe: --version must succeed") {
    TempDir t;
    CHECK(version_runs(fake(t.path, "good", 0)));
    CHECK_FALSE(version_runs(fake(t.path, "bad", 1)));
    CHECK_FALSE(version_runs(t.path + "/missing"));
    // Not a cgroup tree at all: not hybrid.
    CHECK_FALSE(cgroup_is_hybrid(t.path));
    if (!cgroup_is_hybrid()) {
        MESSAGE("this host's cgroups are not hybrid");
    } else {
        CHECK_FALSE(crun_usable(fake(t.path, "crun", 0)));  // hybrid host: crun is never usable
    }
}

TEST_CASE("find_in_path skips directories and non-executables") {
    TempDir t;
    ::mkdir((t.path + "/d").c_str(), 0755);
    ::mkdir((t.path + "/d/runc").c_str(), 0755);
    write_text(t.path + "/runc", "x", 0644);
    CHECK_FALSE(find_in_path("runc", t.path + "/d:" + t.path).has_value());
    ::chmod((t.path + "/runc").c_str(), 0755);
    CHECK(find_in_path("runc", t.path + "/d:" + t.path) == t.path + "/runc");
}
