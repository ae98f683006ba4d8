// Checks on a VmConfig's virtio-fs shares and the guest mounts that name them,
// made before anything is built so a bad volume is one clear error instead of
// a guest that fails half-way through its boot.
#pragma once

#include <cstddef>

#include "base/result.h"
#include "vmm/vm_config.h"

namespace krunlet {

// Every virtio device takes one virtio-mmio slot; console, vsock and rng take
// three, the rest can be shares (the root included).
size_t max_fs_shares();

// Shares: at most max_fs_shares(), tags 1..36 bytes and distinct. Mounts: at
// most control::kMaxMounts, valid tags and guest paths
// (control::mount_tag_problem / mount_path_problem), each naming a share
// other than the root. Errors say which entry and how to fix it.
Result<void> check_shares_and_mounts(const VmConfig& config);

}  // namespace krunlet
