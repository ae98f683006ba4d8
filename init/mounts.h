// The guest's own filesystems (step 2 of init's job), the config's tmpfs
// mounts and the virtio-fs volumes. The rootfs is a virtio-fs share of a
// container image: it has no device nodes and may lack /proc, /sys, /dev or
// /tmp, so mount points are created when missing and nothing from the image
// is needed.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "init/config.h"

namespace krunlet::init {

// Mounts /proc, /sys, /dev (devtmpfs; a tmpfs with the basic nodes when the
// kernel has no devtmpfs), /dev/pts, /dev/shm and, when /tmp is missing or
// empty, a tmpfs on /tmp; adds the /dev/fd and /dev/std* links. What is
// already mounted is left alone. An error for /proc, /sys or /dev (init cannot
// work without them); the optional ones only add to `warnings`.
Result<void> mount_system(std::vector<std::string>& warnings);

// One tmpfs from the config's "mounts". The destination is created when
// missing; with copy_up (crun's "tmpcopyup") the directory's files are copied
// into the new tmpfs so the mount does not hide them.
Result<void> mount_tmpfs(const TmpfsMount& m);

// One virtio-fs share (a host volume, or a "virtiofs" entry of the config):
// `mount -t virtiofs TAG DESTINATION`, with the destination created when
// missing. Errors name the tag and the path.
Result<void> mount_virtiofs(const VirtiofsMount& m);

// True when the config's tmpfs is one init already provides in a better form
// (podman lists a tmpfs /dev; init's devtmpfs replaces it).
bool tmpfs_is_replaced_by_init(const TmpfsMount& m);

}  // namespace krunlet::init
