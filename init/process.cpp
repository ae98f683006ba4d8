#include "init/process.h"

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <limits>

#include "base/control_protocol.h"

namespace krunlet::init {
namespace {

// Calls fn(fields) for each line of a colon-separated database file with at
// least `min_fields` fields.
template <size_t N, class Fn>
void for_each_record(std::string_view text, Fn&& fn) {
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (line.empty() || line.front() == '#') continue;
        std::array<std::string_view, N> f{};
        size_t i = 0;
        for (; i < N; ++i) {
            size_t c = line.find(':');
            f[i] = line.substr(0, c);
            if (c == std::string_view::npos) {
                ++i;
                break;
            }
            line.remove_prefix(c + 1);
        }
        if (i < N) continue;  // too few fields: skip, as getpwent() does
        if (fn(f)) return;
    }
}

std::optional<uint32_t> parse_id(std::string_view s) {
    uint32_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
    if (v == std::numeric_limits<uint32_t>::max()) return std::nullopt;  // (uid_t)-1 is "no change"
    return v;
}

template <class Pred>
std::optional<PasswdEntry> find_passwd(std::string_view passwd, Pred&& pred) {
    std::optional<PasswdEntry> found;
    // name:password:uid:gid:gecos:home:shell
    for_each_record<7>(passwd, [&](const std::array<std::string_view, 7>& f) {
        auto uid = parse_id(f[2]);
        auto gid = parse_id(f[3]);
        if (!uid || !gid) return false;
        PasswdEntry e{std::string(f[0]), *uid, *gid, std::string(f[5])};
        if (!pred(e)) return false;
        found = std::move(e);
        return true;
    });
    return found;
}

}  // namespace

std::optional<PasswdEntry> passwd_by_name(std::string_view passwd, std::string_view name) {
    return find_passwd(passwd, [&](const PasswdEntry& e) { return e.name == name; });
}

std::optional<PasswdEntry> passwd_by_uid(std::string_view passwd, uid_t uid) {
    return find_passwd(passwd, [&](const PasswdEntry& e) { return e.uid == uid; });
}

std::optional<gid_t> group_by_name(std::string_view group, std::string_view name) {
    std::optional<gid_t> found;
    // name:password:gid:members
    for_each_record<4>(group, [&](const std::array<std::string_view, 4>& f) {
        if (f[0] != name) return false;
        found = parse_id(f[2]);
        return found.has_value();
    });
    return found;
}

std::vector<gid_t> groups_with_member(std::string_view group, std::string_view user) {
    std::vector<gid_t> out;
    for_each_record<4>(group, [&](const std::array<std::string_view, 4>& f) {
        auto gid = parse_id(f[2]);
        if (!gid) return false;
        std::string_view members = f[3];
        while (!members.empty()) {
            size_t c = members.find(',');
            if (members.substr(0, c) == user) {
                if (std::find(out.begin(), out.end(), *gid) == out.end()) out.push_back(*gid);
                break;
            }
            members = c == std::string_view::npos ? std::string_view{} : members.substr(c + 1);
        }
        return false;
    });
    return out;
}

Result<UserSpec> resolve_docker_user(std::string_view spec, std::string_view passwd, std::string_view group) {
    UserSpec u;
    if (spec.empty()) return u;
    size_t colon = spec.find(':');
    std::string_view user = spec.substr(0, colon);
    std::optional<std::string_view> grp;
    if (colon != std::string_view::npos) grp = spec.substr(colon + 1);

    std::optional<PasswdEntry> entry;
    if (auto uid = parse_id(user)) {
        u.uid = *uid;
        entry = passwd_by_uid(passwd, *uid);
    } else {
        entry = passwd_by_name(passwd, user);
        if (!entry)
            return make_error(EINVAL, "User \"" + std::string(user) +
                                          "\" is not in the image's /etc/passwd; give a numeric uid instead");
        u.uid = entry->uid;
    }
    // Docker: without a group, the primary group from /etc/passwd (else 0),
    // plus the groups that list the user by name.
    if (entry) {
        u.gid = entry->gid;
        if (!grp) u.additional_gids = groups_with_member(group, entry->name);
    }
    if (grp) {
        if (auto gid = parse_id(*grp)) {
            u.gid = *gid;
        } else if (auto g = group_by_name(group, *grp)) {
            u.gid = *g;
        } else {
            return make_error(EINVAL, "group \"" + std::string(*grp) +
                                          "\" of User is not in the image's /etc/group; give a numeric gid instead");
        }
    }
    return u;
}

std::vector<std::string> finalize_env(std::vector<std::string> env, std::string_view home, bool terminal) {
    if (!env_get(env, "PATH")) env.push_back(std::string("PATH=") + kDefaultPath);
    if (!env_get(env, "HOME")) env.push_back("HOME=" + std::string(home.empty() ? "/" : home));
    if (terminal && !env_get(env, "TERM")) env.emplace_back("TERM=xterm");
    return env;
}

std::vector<std::string> exec_candidates(std::string_view file, std::string_view path) {
    if (file.empty()) return {};
    if (file.find('/') != std::string_view::npos) return {std::string(file)};
    std::vector<std::string> out;
    while (true) {
        size_t c = path.find(':');
        std::string_view dir = path.substr(0, c);
        if (dir.empty()) dir = ".";
        std::string p(dir);
        if (p.back() != '/') p += '/';
        p.append(file);
        out.push_back(std::move(p));
        if (c == std::string_view::npos) break;
        path.remove_prefix(c + 1);
    }
    return out;
}

bool exec_error_continues_search(int err) {
    // glibc's execvp() tries the next element after these and remembers
    // EACCES; anything else (ENOEXEC, E2BIG, ENOMEM...) is final.
    switch (err) {
        case ENOENT:
        case ENOTDIR:
        case EACCES:
        case ESTALE:
        case ENODEV:
        case ETIMEDOUT:
        case ELOOP:
        case ENAMETOOLONG:
            return true;
        default:
            return false;
    }
}

int exit_code_from_wait_status(int wait_status) {
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
    // Stopped or continued: waitpid() without WUNTRACED never reports these,
    // so seeing one is init's own bug.
    return control::kExitInitFailed;
}

int exit_code_for_exec_errno(int err) {
    return err == ENOENT ? control::kExitNotFound : control::kExitCannotExecute;
}

}  // namespace krunlet::init
