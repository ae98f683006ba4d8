// Dropping the VMM to an unprivileged user before the guest runs
// (krun_setuid / krun_setgid; docs/security.md).
#pragma once

#include <sys/types.h>

#include <optional>

#include "base/result.h"

namespace krunlet::sandbox {

// Clears the supplementary groups, then setgid(gid), then setuid(uid), for
// every thread of the process (glibc signals each one), and checks the
// result: every real, effective, saved (and fs) id is the new one and, for a
// uid other than 0, setuid(0) fails. Absent ids are left alone, but the groups
// are cleared whenever either is given. Call it before any thread installs a
// seccomp filter (those do not allow set*id). EPERM when the process lacks
// CAP_SETGID/CAP_SETUID for the change, with a message saying so.
Result<void> drop_privileges(std::optional<uid_t> uid, std::optional<gid_t> gid);

}  // namespace krunlet::sandbox
