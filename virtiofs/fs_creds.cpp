#include "virtiofs/fs_creds.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "virtiofs/fs_api.h"

namespace krunlet::fs {

namespace {

// setfsuid/setfsgid never report errors; they return the previous id. Passing -1 (an invalid
// id) changes nothing and so reads the current one.
uid_t current_fsuid() { return static_cast<uid_t>(::syscall(SYS_setfsuid, -1)); }
gid_t current_fsgid() { return static_cast<gid_t>(::syscall(SYS_setfsgid, -1)); }

}  // namespace

bool FsCreds::can_switch() {
    __user_cap_header_struct hdr{};
    hdr.version = _LINUX_CAPABILITY_VERSION_3;
    hdr.pid = 0;
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capget, &hdr, data) != 0) return false;
    auto has = [&](int cap) { return (data[cap / 32].effective & (1u << (cap % 32))) != 0; };
    return has(CAP_SETUID) && has(CAP_SETGID);
}

FsIds FsCreds::current() { return FsIds{current_fsuid(), current_fsgid()}; }

Result<FsCreds> FsCreds::enter(bool enabled, uid_t uid, gid_t gid) {
    // Asked again each time: the VMM may have dropped to an unprivileged user
    // since the server started (krun_setuid), and then files get its ids.
    return enter(enabled && can_switch(), uid, gid, current());
}

Result<FsCreds> FsCreds::enter(bool enabled, uid_t uid, gid_t gid, FsIds own) {
    FsCreds c;
    if (!enabled || (uid == own.uid && gid == own.gid)) return c;
    uid_t cur_uid = current_fsuid();
    gid_t cur_gid = current_fsgid();
    if (uid == cur_uid && gid == cur_gid) return c;

    // From here on the destructor of `c` undoes whatever step succeeded, on every path.
    c.active_ = true;
    c.old_uid_ = cur_uid;
    c.old_gid_ = cur_gid;

    long n = ::syscall(SYS_getgroups, 0, nullptr);
    if (n < 0) return errno_error("virtio-fs: getgroups");
    if (n > 0) {
        c.old_groups_.resize(static_cast<size_t>(n));
        n = ::syscall(SYS_getgroups, n, c.old_groups_.data());
        if (n < 0) return errno_error("virtio-fs: getgroups");
        c.old_groups_.resize(static_cast<size_t>(n));
        if (::syscall(SYS_setgroups, 0, nullptr) != 0) return errno_error("virtio-fs: setgroups");
        c.groups_dropped_ = true;
    }
    // Group first: changing fsuid away from 0 drops the capabilities setfsgid would need.
    ::syscall(SYS_setfsgid, gid);
    if (current_fsgid() != gid) return fail(EPERM);
    ::syscall(SYS_setfsuid, uid);
    if (current_fsuid() != uid) return fail(EPERM);
    return c;
}

FsCreds::FsCreds(FsCreds&& o) noexcept
    : active_(std::exchange(o.active_, false)),
      groups_dropped_(std::exchange(o.groups_dropped_, false)),
      old_uid_(o.old_uid_),
      old_gid_(o.old_gid_),
      old_groups_(std::move(o.old_groups_)) {}

FsCreds::~FsCreds() {
    if (!active_) return;
    // fsuid first: going back to the old fsuid (0 for a root server) restores the filesystem
    // capabilities the switch cleared.
    ::syscall(SYS_setfsuid, old_uid_);
    ::syscall(SYS_setfsgid, old_gid_);
    if (groups_dropped_) ::syscall(SYS_setgroups, old_groups_.size(), old_groups_.data());
}

}  // namespace krunlet::fs
