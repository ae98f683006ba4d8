// The libkrun C ABI's argument checking, through the real libkrun.so.1.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "libkrun.h"

TEST_CASE("contexts: create, configure, free") {
    int32_t ctx = krun_create_ctx();
    REQUIRE(ctx >= 0);
    auto id = uint32_t(ctx);
    CHECK(krun_set_vm_config(id, 2, 256) == 0);
    CHECK(krun_set_vm_config(id, 0, 256) == -EINVAL);
    CHECK(krun_set_vm_config(id, 17, 256) == -EINVAL);
    CHECK(krun_set_vm_config(id, 1, 4) == -EINVAL);
    CHECK(krun_set_root(id, "/") == 0);
    CHECK(krun_set_root(id, "/no/such/dir") == -ENOENT);
    CHECK(krun_set_root(id, "/etc/passwd") == -ENOTDIR);
    CHECK(krun_set_root(id, nullptr) == -EINVAL);
    CHECK(krun_add_virtiofs(id, "data", "/tmp") == 0);
    CHECK(krun_add_virtiofs(id, "", "/tmp") == -EINVAL);
    CHECK(krun_add_virtiofs(id, std::string(37, 't').c_str(), "/tmp") == -EINVAL);
    CHECK(krun_add_virtiofs2(id, KRUN_FS_ROOT_TAG, "/", 512u << 20) == 0);
    CHECK(krun_add_virtiofs3(id, "ro", "/usr", 0, true) == 0);

    const char* argv[] = {"-c", "true", nullptr};
    const char* envp[] = {"A=1", nullptr};
    CHECK(krun_set_exec(id, "/bin/sh", argv, envp) == 0);
    CHECK(krun_set_exec(id, nullptr, argv, envp) == -EINVAL);
    CHECK(krun_set_exec(id, "", argv, envp) == -EINVAL);
    const char* bad_env[] = {"NOEQUALS", nullptr};
    CHECK(krun_set_env(id, bad_env) == -EINVAL);
    CHECK(krun_set_env(id, envp) == 0);
    CHECK(krun_set_workdir(id, "/tmp") == 0);
    CHECK(krun_set_workdir(id, nullptr) == -EINVAL);

    const char* good_rl[] = {"7=1024:4096", "6=10:20", nullptr};
    CHECK(krun_set_rlimits(id, good_rl) == 0);
    for (const char* bad : {"7=1024", "=1:2", "x=1:2", "7=a:2", "7=1:", "7"}) {
        const char* rl[] = {bad, nullptr};
        INFO(bad);
        CHECK(krun_set_rlimits(id, rl) == -EINVAL);
    }
    char out[] = "/tmp/krunlet-capi-XXXXXX";
    int fd = ::mkstemp(out);
    REQUIRE(fd >= 0);
    ::close(fd);
    CHECK(krun_set_console_output(id, out) == 0);
    CHECK(krun_set_console_output(id, "/no/such/dir/file") == -ENOENT);
    ::unlink(out);

    CHECK(krun_free_ctx(id) == 0);
    CHECK(krun_free_ctx(id) == -ENOENT);
    CHECK(krun_set_vm_config(id, 1, 256) == -ENOENT);
    CHECK(krun_start_enter(id) == -ENOENT);
}

TEST_CASE("log level and limits") {
    CHECK(krun_set_log_level(0) == 0);
    CHECK(krun_set_log_level(6) == -EINVAL);
    CHECK(krun_get_max_vcpus() == 16);
    CHECK(krun_set_log_level(1) == 0);
}

TEST_CASE("start_enter without a root fails with -EINVAL and does not exit") {
    CHECK(krun_set_log_level(0) == 0);
    int32_t ctx = krun_create_ctx();
    REQUIRE(ctx >= 0);
    CHECK(krun_start_enter(uint32_t(ctx)) == -EINVAL);
    CHECK(krun_set_log_level(1) == 0);
}
