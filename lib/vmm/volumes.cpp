#include "vmm/volumes.h"

#include <set>
#include <string>

#include "arch/x86/layout.h"
#include "base/control_protocol.h"

namespace krunlet {
namespace {

constexpr const char* kRootTag = "/dev/root";  // libkrun's KRUN_FS_ROOT_TAG
constexpr const char* kGuestRootTag = "krunlet-root";  // what the guest sees for it (vm.cpp)
constexpr size_t kNonFsDevices = 3;            // console, vsock, rng

}  // namespace

size_t max_fs_shares() { return x86::kMaxVirtioDevices - kNonFsDevices; }

Result<void> check_shares_and_mounts(const VmConfig& config) {
    if (config.shares.size() > max_fs_shares())
        return make_error(ENOSPC, "too many virtio-fs shares (" + std::to_string(config.shares.size()) +
                                      "): at most " + std::to_string(max_fs_shares()) +
                                      ", the root filesystem included");
    std::set<std::string> tags;
    for (const FsShare& s : config.shares) {
        if (s.tag.empty() || s.tag.size() > control::kMaxMountTag)
            return make_error(EINVAL, "virtio-fs share " + s.host_dir + ": the tag must be 1 to 36 bytes long");
        if (s.tag == kGuestRootTag)
            return make_error(EINVAL, "virtio-fs share " + s.host_dir + ": the tag '" + s.tag +
                                          "' is reserved for the root filesystem; choose another");
        if (!tags.insert(s.tag).second)
            return make_error(EINVAL, "two virtio-fs shares have the tag '" + s.tag + "'; tags must be distinct");
    }

    const auto& mounts = config.workload.mounts;
    if (mounts.size() > control::kMaxMounts)
        return make_error(E2BIG, "too many guest mounts (" + std::to_string(mounts.size()) + "): at most " +
                                     std::to_string(control::kMaxMounts));
    for (const VolumeMount& m : mounts) {
        if (const char* why = control::mount_tag_problem(m.tag))
            return make_error(EINVAL, "guest mount of tag '" + m.tag + "': " + why);
        if (const char* why = control::mount_path_problem(m.guest_path))
            return make_error(EINVAL, "guest mount of tag '" + m.tag + "' on '" + m.guest_path + "': " + why);
        if (m.tag == kRootTag)
            return make_error(EINVAL, "guest mount on " + m.guest_path + ": the tag " + kRootTag +
                                          " is the root filesystem, which is already mounted at /");
        if (tags.count(m.tag) == 0)
            return make_error(EINVAL, "guest mount on " + m.guest_path + ": no virtio-fs share has the tag '" +
                                          m.tag + "'; add one with krun_add_virtiofs (or krunlet run --volume)");
    }
    return ok_result();
}

}  // namespace krunlet
