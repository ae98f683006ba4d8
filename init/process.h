// Pure helpers that prepare the workload process and read its fate: user
// lookup in the image's /etc/passwd text, the final environment, the execvp-like
// search list, and the exit-code rules of DESIGN.md §3.
//
// No side effects: the caller reads the files and runs the process.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "init/config.h"

namespace krunlet::init {

inline constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// One line of /etc/passwd.
struct PasswdEntry {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string home;
};

// Lookups in the text of an /etc/passwd or /etc/group file. Malformed lines are
// skipped, as libc does.
std::optional<PasswdEntry> passwd_by_name(std::string_view passwd, std::string_view name);
std::optional<PasswdEntry> passwd_by_uid(std::string_view passwd, uid_t uid);
std::optional<gid_t> group_by_name(std::string_view group, std::string_view name);
// The groups that list `user` as a member (what initgroups() would add).
std::vector<gid_t> groups_with_member(std::string_view group, std::string_view user);

// Docker's "User": "", "uid", "uid:gid", "name", "name:group", "uid:group"...
// Names are looked up in the image's files; a name that is not there is an
// error that says to use a number.
Result<UserSpec> resolve_docker_user(std::string_view spec, std::string_view passwd, std::string_view group);

// The workload's environment: the merged list plus PATH (kDefaultPath) and
// HOME when unset, and TERM=xterm when it runs on a terminal and TERM is unset.
std::vector<std::string> finalize_env(std::vector<std::string> env, std::string_view home, bool terminal);

// The paths execvp() would try for `file`: itself when it holds a '/', else
// each PATH element in turn (an empty element is the current directory).
std::vector<std::string> exec_candidates(std::string_view file, std::string_view path);
// Whether execvp() moves on to the next PATH element after this errno.
bool exec_error_continues_search(int err);

// The final 0..255 status:
//   exited      -> its code
//   signalled   -> 128 + signal
int exit_code_from_wait_status(int wait_status);
// exec failures: ENOENT -> 127 (not found); anything else (EACCES, ENOEXEC,
// EISDIR, EPERM...) -> 126 (cannot execute).
int exit_code_for_exec_errno(int err);

}  // namespace krunlet::init
