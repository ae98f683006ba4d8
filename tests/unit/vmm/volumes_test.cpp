// Shares and guest mounts are checked before a VM is built (vmm/volumes.h).
#include <doctest/doctest.h>

#include <string>

#include "base/control_protocol.h"
#include "vmm/volumes.h"

using namespace krunlet;

namespace {

VmConfig with_root() {
    VmConfig c;
    c.shares.push_back(FsShare{"/dev/root", "/", false});
    return c;
}

std::string error(const VmConfig& c) {
    auto r = check_shares_and_mounts(c);
    REQUIRE_FALSE(r.ok());
    return r.error().message;
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("volumes: a share and its mount pass") {
    VmConfig c = with_root();
    c.shares.push_back(FsShare{"krunlet-vol0", "/tmp", true});
    c.workload.mounts.push_back(VolumeMount{"krunlet-vol0", "/data", true});
    c.workload.mounts.push_back(VolumeMount{"krunlet-vol0", "/again/deeper", false});  // one share, two places
    CHECK(check_shares_and_mounts(c).ok());
    CHECK(check_shares_and_mounts(with_root()).ok());
}

TEST_CASE("volumes: a mount must name a share, not the root, with a usable tag and path") {
    VmConfig c = with_root();
    c.workload.mounts.push_back(VolumeMount{"nope", "/data", false});
    CHECK(contains(error(c), "no virtio-fs share has the tag 'nope'"));

    c.workload.mounts = {VolumeMount{"/dev/root", "/data", false}};
    CHECK(contains(error(c), "is the root filesystem"));

    c.shares.push_back(FsShare{"v", "/tmp", false});
    for (const char* bad : {"relative", "/", "/a/../b", ""}) {
        INFO(bad);
        c.workload.mounts = {VolumeMount{"v", bad, false}};
        CHECK(contains(error(c), "guest mount of tag 'v'"));
    }
    c.workload.mounts = {VolumeMount{"has space", "/x", false}};
    CHECK(contains(error(c), "printable ASCII"));
}

TEST_CASE("volumes: limits on shares and mounts, distinct tags, the guest's root tag is reserved") {
    VmConfig c = with_root();
    for (size_t i = 1; i < max_fs_shares(); ++i) c.shares.push_back(FsShare{"t" + std::to_string(i), "/tmp", false});
    CHECK(check_shares_and_mounts(c).ok());
    c.shares.push_back(FsShare{"one-too-many", "/tmp", false});
    CHECK(contains(error(c), "too many virtio-fs shares"));

    VmConfig d = with_root();
    d.shares.push_back(FsShare{"same", "/tmp", false});
    d.shares.push_back(FsShare{"same", "/usr", false});
    CHECK(contains(error(d), "tags must be distinct"));

    VmConfig r = with_root();
    r.shares.push_back(FsShare{"krunlet-root", "/tmp", false});
    CHECK(contains(error(r), "reserved"));

    VmConfig m = with_root();
    m.shares.push_back(FsShare{"v", "/tmp", false});
    for (size_t i = 0; i <= control::kMaxMounts; ++i)
        m.workload.mounts.push_back(VolumeMount{"v", "/m" + std::to_string(i), false});
    CHECK(contains(error(m), "too many guest mounts"));
    m.workload.mounts.pop_back();
    CHECK(check_shares_and_mounts(m).ok());
}

TEST_CASE("mount tag and path rules (control_protocol.h)") {
    CHECK(control::mount_tag_problem("krunlet-vol0") == nullptr);
    CHECK(control::mount_tag_problem(std::string(36, 'a')) == nullptr);
    CHECK(control::mount_tag_problem(std::string(37, 'a')) != nullptr);
    CHECK(control::mount_tag_problem("") != nullptr);
    CHECK(control::mount_tag_problem("a b") != nullptr);
    CHECK(control::mount_tag_problem(std::string("a\0b", 3)) != nullptr);
    CHECK(control::mount_tag_problem("caf\xc3\xa9") != nullptr);

    CHECK(control::mount_path_problem("/data") == nullptr);
    CHECK(control::mount_path_problem("/a/b/c/") == nullptr);
    CHECK(control::mount_path_problem("/a//b") == nullptr);
    CHECK(control::mount_path_problem("/.hidden/..dots") == nullptr);
    for (const char* bad : {"", "data", "/", "///", "/.", "/..", "/a/./b", "/a/../b", "/a/.."}) {
        INFO(bad);
        CHECK(control::mount_path_problem(bad) != nullptr);
    }
    CHECK(control::mount_path_problem(std::string("/a\0b", 4)) != nullptr);
    CHECK(control::mount_path_problem("/" + std::string(4094, 'a')) == nullptr);
    CHECK(control::mount_path_problem("/" + std::string(4095, 'a')) != nullptr);
}
