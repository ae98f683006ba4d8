// Creating files as the guest's caller: a per-thread switch of fsuid/fsgid.
//
// Files, directories, symlinks and nodes the guest creates must belong to the uid/gid in the
// request's fuse_in_header. The kernel keeps credentials per thread, and the raw setfsuid,
// setfsgid and setgroups system calls change only the calling thread (glibc's setgroups wrapper
// would change every thread, so it is not used). Supplementary groups are dropped first:
// otherwise the server's own groups would grant the guest's uid access it doesn't have
// (CVE-2022-0358, virtiofsd).
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"

namespace krunlet::fs {

// The ids a thread creates files as.
struct FsIds {
    uid_t uid = 0;
    gid_t gid = 0;
};

class FsCreds {
public:
    // Whether this process may switch at all (CAP_SETUID and CAP_SETGID in its effective set).
    // Without them the switch is skipped silently and new files get the server's ids.
    static bool can_switch();
    // The calling thread's fsuid and fsgid (two system calls).
    static FsIds current();

    // RAII: while alive, the calling thread creates files as uid:gid with no supplementary
    // groups; the destructor restores the thread's previous fsuid, fsgid and groups. When
    // `enabled` is false, or uid:gid are `own` (the thread's fs ids, as the caller sampled them
    // with current(): the server's, since every switch is undone), nothing changes and no
    // system call is made. Fails with EPERM if the kernel refuses the switch (the create must
    // then not happen).
    static Result<FsCreds> enter(bool enabled, uid_t uid, gid_t gid, FsIds own);
    // The same, asking the kernel for `enabled && can_switch()` and `own` first (three more
    // system calls): for callers that cannot know whether the process dropped privileges.
    static Result<FsCreds> enter(bool enabled, uid_t uid, gid_t gid);

    FsCreds(FsCreds&& o) noexcept;
    FsCreds& operator=(FsCreds&&) = delete;
    FsCreds(const FsCreds&) = delete;
    FsCreds& operator=(const FsCreds&) = delete;
    ~FsCreds();

private:
    FsCreds() = default;
    bool active_ = false;
    bool groups_dropped_ = false;
    uid_t old_uid_ = 0;
    gid_t old_gid_ = 0;
    std::vector<gid_t> old_groups_;
};

}  // namespace krunlet::fs
