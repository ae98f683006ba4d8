// Mounts inside the shared tree (DESIGN.md §4 "Inodes"; issue 3, "Submounts and volumes").
//
// A share may contain other mounts: crun serves the container's "/" whose volumes are bind
// mounts, and whose /proc, /sys and /dev are the *host container's* pseudo filesystems. Two
// things follow:
//   - identity: an object is (st_dev, st_ino, mount id). Two bind mounts of one directory have
//     the same (dev, ino) but are different places for the guest, so they must be different
//     inodes or the guest's dentry cache would conflate them;
//   - confinement: some filesystems must never be reached through the share at all (writing
//     /proc/sys or /sys of the host, creating device nodes in the host's devtmpfs, ...).
//
// Policy for a refused mount (see may_enter()): a LOOKUP that would cross into it is answered
// with an empty directory that cannot be changed — not with an error. Why: the guest mounts its
// own /proc, /sys and /dev over exactly these mount points, and mount(2) in the guest has to
// LOOKUP the mount point first; EACCES there would break every container whose rootfs is "/".
// An empty directory gives the guest a place to mount on and nothing of the host. A refused
// mount whose root is not a directory (a bind-mounted /proc or device file) gets EACCES.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/fd.h"
#include "base/result.h"

namespace krunlet::fs {

// stat plus the id of the mount the object was found on (mountinfo's first field).
struct MountedStat {
    struct stat st {};
    uint64_t mnt_id = 0;
};

// Marks a MountedStat whose mount id could not be had from the name alone (see stat_at()).
inline constexpr uint64_t kUnknownMount = ~uint64_t{0};

class Mounts {
public:
    // Opens /proc/self (fdinfo and mountinfo) and probes statx(STATX_MNT_ID) (Linux 5.8).
    static Result<Mounts> create();

    // No-follow, no-automount stat of the single component `name` in `dirfd`. Crossing a mount
    // point lands on the mounted root, as the guest's own path walk would. mnt_id is
    // kUnknownMount when this kernel gives mount ids only for open fds; use stat_fd() then.
    Result<MountedStat> stat_at(int dirfd, const char* name) const;

    // The same for the object behind an O_PATH fd; the mount id is always known (statx,
    // else name_to_handle_at, else /proc/self/fdinfo).
    Result<MountedStat> stat_fd(int fd) const;

    // Whether the guest may see into the mount `ms.mnt_id`, whose root (or any object on it)
    // `fd` names. Refused: procfs, sysfs, cgroup/cgroup2, devpts, mqueue, debugfs, tracefs,
    // securityfs, bpf, configfs, fusectl, pstore, efivarfs, binfmt_misc, nsfs, selinuxfs,
    // smackfs, resctrl, autofs and devtmpfs. devtmpfs reports TMPFS_MAGIC, so a tmpfs verdict
    // also reads the mount's type from /proc/self/mountinfo; if that fails the mount is refused.
    // Verdicts are cached per (mount id, st_dev).
    bool may_enter(int fd, const MountedStat& ms);

    bool has_statx_mnt_id() const { return statx_mnt_id_; }

    Mounts(Mounts&& o) noexcept
        : proc_self_(std::move(o.proc_self_)), statx_mnt_id_(o.statx_mnt_id_), verdicts_(std::move(o.verdicts_)) {}
    Mounts& operator=(Mounts&&) = delete;

private:
    Mounts() = default;
    // Mount id through the handle API or fdinfo; `name` may be "" (AT_EMPTY_PATH on `fd`).
    bool mnt_id_by_handle(int dirfd, const char* name, uint64_t& out) const;
    bool mnt_id_by_fdinfo(int fd, uint64_t& out) const;
    // The filesystem type column of /proc/self/mountinfo for mount `id` ("" if not found).
    std::string mount_fstype(uint64_t id) const;
    bool decide(int fd, uint64_t mnt_id) const;

    UniqueFd proc_self_;
    bool statx_mnt_id_ = false;
    std::mutex mu_;
    std::unordered_map<uint64_t, std::pair<dev_t, bool>> verdicts_;  // mnt id → (dev, allowed)
};

// Filesystem magics (statfs f_type) of the pseudo filesystems the guest must never reach.
bool is_refused_fs_magic(uint64_t f_type);

// The attributes the guest sees for a refused mount point: an empty directory, mode 0555,
// nlink 2, size 0, with the mount root's owner, times and inode number.
struct stat refused_mount_attr(const struct stat& root);

}  // namespace krunlet::fs
