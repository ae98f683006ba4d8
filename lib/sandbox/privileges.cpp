#include "sandbox/privileges.h"

#include <grp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace krunlet::sandbox {

namespace {

Error id_error(const char* call, long id) {
    int e = errno;
    std::string msg = std::string("dropping privileges: ") + call + "(" + std::to_string(id) + "): " + std::strerror(e);
    if (e == EPERM) msg += " (the VMM needs CAP_SETUID and CAP_SETGID for krun_setuid/krun_setgid)";
    return make_error(e, msg);
}

}  // namespace

Result<void> drop_privileges(std::optional<uid_t> uid, std::optional<gid_t> gid) {
    if (!uid && !gid) return {};
    if (uid && *uid == static_cast<uid_t>(-1)) return make_error(EINVAL, "dropping privileges: uid -1 is not a user");
    if (gid && *gid == static_cast<gid_t>(-1)) return make_error(EINVAL, "dropping privileges: gid -1 is not a group");

    // Groups first: they are what setgid() leaves behind, and clearing them
    // needs CAP_SETGID, which setuid() takes away. A caller without the
    // capability and without groups has nothing to clear.
    if (::setgroups(0, nullptr) != 0 && !(errno == EPERM && ::getgroups(0, nullptr) == 0))
        return id_error("setgroups", 0);
    // glibc's set*id run the system call on every thread (and abort if the
    // threads disagree), so the event loop and queue threads change too.
    if (gid && ::setgid(*gid) != 0) return id_error("setgid", long(*gid));
    if (uid && ::setuid(*uid) != 0) return id_error("setuid", long(*uid));

    // Trust, but check (CERT POS37-C): every id moved, and there is no way back.
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (::getresuid(&ru, &eu, &su) != 0 || ::getresgid(&rg, &eg, &sg) != 0)
        return errno_error("dropping privileges: getresuid");
    if (uid && (ru != *uid || eu != *uid || su != *uid))
        return make_error(EPERM, "dropping privileges: the uids are " + std::to_string(ru) + "/" + std::to_string(eu) +
                                     "/" + std::to_string(su) + ", not " + std::to_string(*uid));
    if (gid && (rg != *gid || eg != *gid || sg != *gid))
        return make_error(EPERM, "dropping privileges: the gids are " + std::to_string(rg) + "/" + std::to_string(eg) +
                                     "/" + std::to_string(sg) + ", not " + std::to_string(*gid));
    if (::getgroups(0, nullptr) != 0)
        return make_error(EPERM, "dropping privileges: supplementary groups are still set");
    if (uid && *uid != 0 && ::setuid(0) == 0)
        return make_error(EPERM, "dropping privileges: setuid(0) still works after setuid(" + std::to_string(*uid) + ")");
    return {};
}

}  // namespace krunlet::sandbox
