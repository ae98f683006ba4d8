#include "init/config.h"

#include <sys/mount.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <csignal>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "base/control_protocol.h"

namespace krunlet::init {
namespace {

using nlohmann::json;

Error bad(std::string message) { return make_error(EINVAL, std::move(message)); }

// nlohmann's type_name(), with "absent" for a missing member.
std::string kind(const json& j) { return j.is_discarded() ? "nothing" : j.type_name(); }

// A member of an object, or nullptr when it is missing or null (Docker writes
// "Cmd": null for "not set", so null means absent everywhere).
const json* member(const json& obj, const char* key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

Result<std::string> as_string(const json& j, const std::string& where) {
    if (!j.is_string()) return bad(where + " must be a string, not " + kind(j));
    return j.get<std::string>();
}

Result<bool> as_bool(const json& j, const std::string& where) {
    if (!j.is_boolean()) return bad(where + " must be true or false, not " + kind(j));
    return j.get<bool>();
}

// An unsigned integer in [0, max].
Result<uint64_t> as_uint(const json& j, const std::string& where, uint64_t max) {
    if (j.is_number_unsigned()) {
        auto v = j.get<uint64_t>();
        if (v <= max) return v;
        return bad(where + " is " + std::to_string(v) + ", above the largest allowed value " +
                   std::to_string(max));
    }
    if (j.is_number_integer()) return bad(where + " must not be negative (it is " + j.dump() + ")");
    return bad(where + " must be a non-negative integer, not " + kind(j));
}

Result<std::vector<std::string>> as_string_array(const json& j, const std::string& where) {
    if (!j.is_array()) return bad(where + " must be an array of strings, not " + kind(j));
    std::vector<std::string> out;
    out.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i) {
        if (!j[i].is_string())
            return bad(where + "[" + std::to_string(i) + "] must be a string, not " + kind(j[i]));
        out.push_back(j[i].get<std::string>());
    }
    return out;
}

// Environment entries must be KEY=VALUE with a non-empty key: execve() would
// pass anything else on, and the workload would see garbage.
Result<std::vector<std::string>> as_env(const json& j, const std::string& where) {
    auto env = as_string_array(j, where);
    if (!env) return env.error();
    for (size_t i = 0; i < env->size(); ++i) {
        const std::string& e = (*env)[i];
        auto eq = e.find('=');
        if (eq == std::string::npos || eq == 0) {
            std::string shown = e.size() > 64 ? e.substr(0, 64) + "..." : e;
            return bad(where + "[" + std::to_string(i) + "] is \"" + shown +
                       "\"; an environment entry must look like KEY=VALUE");
        }
        if (e.find('\0') != std::string::npos)
            return bad(where + "[" + std::to_string(i) + "] contains a NUL byte");
    }
    return env;
}

Result<std::vector<std::string>> as_args(const json& j, const std::string& where) {
    auto args = as_string_array(j, where);
    if (!args) return args.error();
    for (size_t i = 0; i < args->size(); ++i)
        if ((*args)[i].find('\0') != std::string::npos)
            return bad(where + "[" + std::to_string(i) + "] contains a NUL byte");
    return args;
}

// mount(8)'s words for the generic MS_* flags, shared by tmpfs and virtiofs.
struct MountFlagWord {
    const char* word;
    unsigned long set;
    unsigned long clear;
};
constexpr MountFlagWord kMountFlagWords[] = {
    {"ro", MS_RDONLY, 0},          {"rw", 0, MS_RDONLY},
    {"nosuid", MS_NOSUID, 0},      {"suid", 0, MS_NOSUID},
    {"nodev", MS_NODEV, 0},        {"dev", 0, MS_NODEV},
    {"noexec", MS_NOEXEC, 0},      {"exec", 0, MS_NOEXEC},
    {"sync", MS_SYNCHRONOUS, 0},   {"async", 0, MS_SYNCHRONOUS},
    {"dirsync", MS_DIRSYNC, 0},    {"noatime", MS_NOATIME, 0},
    {"atime", 0, MS_NOATIME},      {"nodiratime", MS_NODIRATIME, 0},
    {"diratime", 0, MS_NODIRATIME}, {"relatime", MS_RELATIME, 0},
    {"norelatime", 0, MS_RELATIME}, {"strictatime", MS_STRICTATIME, 0},
    {"nostrictatime", 0, MS_STRICTATIME}, {"lazytime", MS_LAZYTIME, 0},
    {"nolazytime", 0, MS_LAZYTIME}, {"mand", MS_MANDLOCK, 0},
    {"nomand", 0, MS_MANDLOCK},
};
// Words that only make sense for the host's mount tree or for other
// runtimes' labelling: a fresh mount in the guest has nothing to do with them.
constexpr const char* kIgnoredMountWords[] = {
    "defaults", "private", "rprivate", "shared", "rshared", "slave", "rslave",
    "unbindable", "runbindable", "bind", "rbind", "z", "Z", "U", "idmap", "tmpcopyup", "notmpcopyup",
};

// Applies a generic flag word (later words override earlier ones, as with
// mount(8)) or drops an ignored one; false when the word is the
// filesystem's own.
bool apply_generic_mount_option(const std::string& o, unsigned long& flags) {
    for (const MountFlagWord& f : kMountFlagWords) {
        if (o == f.word) {
            flags = (flags & ~f.clear) | f.set;
            return true;
        }
    }
    return std::find(std::begin(kIgnoredMountWords), std::end(kIgnoredMountWords), o) !=
           std::end(kIgnoredMountWords);
}

constexpr uint64_t kMaxId = std::numeric_limits<uint32_t>::max() - 1;  // (uid_t)-1 means "unchanged"

Result<UserSpec> parse_oci_user(const json& u) {
    if (!u.is_object()) return bad("process.user must be an object, not " + kind(u));
    UserSpec spec;
    if (const json* v = member(u, "uid")) {
        auto r = as_uint(*v, "process.user.uid", kMaxId);
        if (!r) return r.error();
        spec.uid = static_cast<uid_t>(*r);
    }
    if (const json* v = member(u, "gid")) {
        auto r = as_uint(*v, "process.user.gid", kMaxId);
        if (!r) return r.error();
        spec.gid = static_cast<gid_t>(*r);
    }
    if (const json* v = member(u, "additionalGids")) {
        if (!v->is_array())
            return bad("process.user.additionalGids must be an array of integers, not " + kind(*v));
        for (size_t i = 0; i < v->size(); ++i) {
            auto r = as_uint((*v)[i], "process.user.additionalGids[" + std::to_string(i) + "]", kMaxId);
            if (!r) return r.error();
            spec.additional_gids.push_back(static_cast<gid_t>(*r));
        }
    }
    if (const json* v = member(u, "umask")) {
        auto r = as_uint(*v, "process.user.umask", 0777);
        if (!r) return r.error();
        spec.umask = static_cast<mode_t>(*r);
    }
    return spec;
}

Result<std::vector<Rlimit>> parse_oci_rlimits(const json& list) {
    if (!list.is_array()) return bad("process.rlimits must be an array of objects, not " + kind(list));
    std::vector<Rlimit> out;
    for (size_t i = 0; i < list.size(); ++i) {
        std::string where = "process.rlimits[" + std::to_string(i) + "]";
        const json& item = list[i];
        if (!item.is_object()) return bad(where + " must be an object, not " + kind(item));
        const json* type = member(item, "type");
        if (type == nullptr) return bad(where + " has no \"type\" (e.g. \"RLIMIT_NOFILE\")");
        auto name = as_string(*type, where + ".type");
        if (!name) return name.error();
        auto res = rlimit_from_name(*name);
        if (!res) return bad(where + ".type: " + res.error().message);
        Rlimit r;
        r.resource = *res;
        for (auto [key, dst] : {std::pair{"soft", &r.soft}, std::pair{"hard", &r.hard}}) {
            const json* v = member(item, key);
            if (v == nullptr) return bad(where + " has no \"" + key + "\" value");
            auto n = as_uint(*v, where + "." + key, std::numeric_limits<uint64_t>::max());
            if (!n) return n.error();
            *dst = *n;
        }
        if (r.soft > r.hard)
            return bad(where + " (" + *name + ") has soft " + std::to_string(r.soft) + " above hard " +
                       std::to_string(r.hard) + "; the soft limit may not exceed the hard one");
        out.push_back(r);
    }
    return out;
}

// A "virtiofs" entry of the OCI "mounts" list: the source is the share's tag.
Result<VirtiofsMount> parse_virtiofs_mount(const json& m, const std::string& where) {
    VirtiofsMount v;
    const json* src = member(m, "source");
    if (src == nullptr) return bad(where + " (virtiofs) has no \"source\" (the share's tag)");
    auto tag = as_string(*src, where + ".source");
    if (!tag) return tag.error();
    if (const char* why = control::mount_tag_problem(*tag))
        return bad(where + ".source \"" + tag->substr(0, 64) + "\" is not a usable virtio-fs tag: " + why);
    v.tag = std::move(*tag);
    const json* dst = member(m, "destination");
    if (dst == nullptr) return bad(where + " (virtiofs) has no \"destination\"");
    auto path = as_string(*dst, where + ".destination");
    if (!path) return path.error();
    if (const char* why = control::mount_path_problem(*path))
        return bad(where + ".destination \"" + path->substr(0, 256) + "\" cannot be a mount point: " + why);
    v.destination = std::move(*path);
    if (const json* o = member(m, "options")) {
        auto r = as_string_array(*o, where + ".options");
        if (!r) return r.error();
        for (const std::string& word : *r) {
            if (word.empty() || apply_generic_mount_option(word, v.flags)) continue;
            // The rest is virtiofs's own (dax, ...); the kernel rejects what it does not know.
            if (!v.data.empty()) v.data += ',';
            v.data += word;
        }
    }
    return v;
}

Result<void> parse_mounts(const json& list, ImageConfig& c) {
    if (!list.is_array()) return bad("mounts must be an array of objects, not " + kind(list));
    for (size_t i = 0; i < list.size(); ++i) {
        std::string where = "mounts[" + std::to_string(i) + "]";
        const json& m = list[i];
        if (!m.is_object()) return bad(where + " must be an object, not " + kind(m));
        const json* type = member(m, "type");
        if (type == nullptr || !type->is_string()) continue;
        const std::string& t = type->get_ref<const std::string&>();
        if (t == "virtiofs") {
            if (c.virtiofs.size() == control::kMaxMounts)
                return bad(where + ": more than " + std::to_string(control::kMaxMounts) + " virtiofs mounts");
            auto v = parse_virtiofs_mount(m, where);
            if (!v) return v.error();
            c.virtiofs.push_back(std::move(*v));
            continue;
        }
        if (t != "tmpfs") continue;
        const json* dst = member(m, "destination");
        if (dst == nullptr) return bad(where + " (tmpfs) has no \"destination\"");
        auto path = as_string(*dst, where + ".destination");
        if (!path) return path.error();
        if (path->empty() || path->front() != '/')
            return bad(where + ".destination \"" + *path + "\" must be an absolute path");
        std::vector<std::string> options;
        if (const json* o = member(m, "options")) {
            auto r = as_string_array(*o, where + ".options");
            if (!r) return r.error();
            options = std::move(*r);
        }
        c.tmpfs.push_back(parse_tmpfs_options(std::move(*path), options));
    }
    return ok_result();
}

// The exec message's "mounts": [{"tag", "path", "read_only"}] (control_protocol.h).
Result<std::vector<VirtiofsMount>> parse_exec_mounts(const json& list) {
    if (!list.is_array()) return bad("exec.mounts must be an array of objects, not " + kind(list));
    if (list.size() > control::kMaxMounts)
        return bad("exec.mounts has " + std::to_string(list.size()) + " entries; at most " +
                   std::to_string(control::kMaxMounts) + " are allowed");
    std::vector<VirtiofsMount> out;
    for (size_t i = 0; i < list.size(); ++i) {
        std::string where = "exec.mounts[" + std::to_string(i) + "]";
        const json& m = list[i];
        if (!m.is_object()) return bad(where + " must be an object, not " + kind(m));
        VirtiofsMount v;
        const json* tag = member(m, "tag");
        if (tag == nullptr) return bad(where + " has no \"tag\"");
        auto t = as_string(*tag, where + ".tag");
        if (!t) return t.error();
        if (const char* why = control::mount_tag_problem(*t))
            return bad(where + ".tag \"" + t->substr(0, 64) + "\": " + why);
        v.tag = std::move(*t);
        const json* path = member(m, "path");
        if (path == nullptr) return bad(where + " has no \"path\"");
        auto p = as_string(*path, where + ".path");
        if (!p) return p.error();
        if (const char* why = control::mount_path_problem(*p))
            return bad(where + ".path \"" + p->substr(0, 256) + "\": " + why);
        v.destination = std::move(*p);
        if (const json* ro = member(m, "read_only")) {
            auto r = as_bool(*ro, where + ".read_only");
            if (!r) return r.error();
            if (*r) v.flags |= MS_RDONLY;
        }
        out.push_back(std::move(v));
    }
    return out;
}

// Docker-style fields: at the top level, or under "config" as in an image's
// config blob. The first object that has the key wins.
const json* docker_field(const json& root, const char* key) {
    if (const json* v = member(root, key)) return v;
    if (const json* c = member(root, "config")) return member(*c, key);
    return nullptr;
}

Result<uint64_t> parse_u64(std::string_view s) {
    if (s == "unlimited" || s == "infinity") return std::numeric_limits<uint64_t>::max();
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || p != s.data() + s.size())
        return bad("\"" + std::string(s) + "\" is not a decimal number or \"unlimited\"");
    return v;
}

struct RlimitNameEntry {
    const char* name;
    int resource;
};
constexpr std::array<RlimitNameEntry, 16> kRlimitNames{{
    {"RLIMIT_CPU", RLIMIT_CPU},         {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_DATA", RLIMIT_DATA},       {"RLIMIT_STACK", RLIMIT_STACK},
    {"RLIMIT_CORE", RLIMIT_CORE},       {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC},     {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},     {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME},
}};
static_assert(RLIMIT_NLIMITS == 16, "the rlimit name table must list every RLIMIT_*");

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
           });
}

}  // namespace

Result<int> rlimit_from_name(std::string_view name) {
    for (const auto& e : kRlimitNames) {
        std::string_view full = e.name;
        if (iequal(name, full) || iequal(name, full.substr(7))) return e.resource;
    }
    return bad("unknown resource limit \"" + std::string(name) + "\" (expected e.g. RLIMIT_NOFILE)");
}

std::string rlimit_name(int resource) {
    for (const auto& e : kRlimitNames)
        if (e.resource == resource) return e.name;
    return "RLIMIT_" + std::to_string(resource);
}

Result<Rlimit> parse_rlimit_spec(std::string_view spec) {
    auto fail = [&](const std::string& why) {
        return bad("rlimit \"" + std::string(spec) + "\": " + why + " (expected ID=CUR:MAX, e.g. 7=1024:4096)");
    };
    auto eq = spec.find('=');
    if (eq == std::string_view::npos) return fail("no '='");
    auto colon = spec.find(':', eq + 1);
    if (colon == std::string_view::npos) return fail("no ':' between CUR and MAX");
    std::string_view id = spec.substr(0, eq);
    Rlimit r;
    int num = -1;
    auto [p, ec] = std::from_chars(id.data(), id.data() + id.size(), num);
    if (!id.empty() && ec == std::errc{} && p == id.data() + id.size()) {
        if (num < 0 || num >= RLIMIT_NLIMITS)
            return fail("resource " + std::to_string(num) + " is out of range 0.." +
                        std::to_string(RLIMIT_NLIMITS - 1));
        r.resource = num;
    } else {
        auto byname = rlimit_from_name(id);
        if (!byname) return fail(byname.error().message);
        r.resource = *byname;
    }
    auto cur = parse_u64(spec.substr(eq + 1, colon - eq - 1));
    if (!cur) return fail("CUR " + cur.error().message);
    auto max = parse_u64(spec.substr(colon + 1));
    if (!max) return fail("MAX " + max.error().message);
    if (*cur > *max) return fail("CUR is above MAX");
    r.soft = *cur;
    r.hard = *max;
    return r;
}

TmpfsMount parse_tmpfs_options(std::string destination, const std::vector<std::string>& options) {
    TmpfsMount m;
    m.destination = std::move(destination);
    for (const std::string& o : options) {
        if (o.empty()) continue;
        if (o == "tmpcopyup") {
            m.copy_up = true;
            continue;
        }
        if (o == "notmpcopyup") {
            m.copy_up = false;
            continue;
        }
        if (apply_generic_mount_option(o, m.flags)) continue;
        // Everything else (size=, mode=, uid=, nr_inodes=, huge=...) is tmpfs's
        // own; the kernel rejects what it does not know, with a clear EINVAL.
        if (o.rfind("mode=", 0) == 0) m.has_mode = true;
        if (!m.data.empty()) m.data += ',';
        m.data += o;
    }
    return m;
}

Result<ImageConfig> parse_image_config(std::string_view text) {
    json root;
    try {
        root = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
        return bad(std::string("not valid JSON: ") + e.what());
    }
    if (!root.is_object()) return bad("must hold a JSON object, not " + kind(root));

    ImageConfig c;
    const json* process = member(root, "process");
    if (process != nullptr && !process->is_object())
        return bad("process must be an object, not " + kind(*process));
    const json empty = json::object();
    const json& p = process != nullptr ? *process : empty;

    // OCI first; the Docker-style fields fill in what OCI leaves out.
    if (const json* v = member(p, "args")) {
        auto r = as_args(*v, "process.args");
        if (!r) return r.error();
        c.args = std::move(*r);
    }
    if (c.args.empty()) {
        for (const char* key : {"Entrypoint", "Cmd"}) {
            const json* v = docker_field(root, key);
            if (v == nullptr) continue;
            // Docker also allows a single string for both (shell form).
            if (v->is_string()) {
                std::string command = v->get<std::string>();
                // The same rule as for the array form: execve() would cut the word at the NUL.
                if (command.find('\0') != std::string::npos) return bad(std::string(key) + " contains a NUL byte");
                c.args.insert(c.args.end(), {"/bin/sh", "-c", std::move(command)});
                continue;
            }
            auto r = as_args(*v, key);
            if (!r) return r.error();
            c.args.insert(c.args.end(), r->begin(), r->end());
        }
    }

    if (const json* v = member(p, "env")) {
        auto r = as_env(*v, "process.env");
        if (!r) return r.error();
        c.env = std::move(*r);
    } else if (const json* d = docker_field(root, "Env")) {
        auto r = as_env(*d, "Env");
        if (!r) return r.error();
        c.env = std::move(*r);
    }

    if (const json* v = member(p, "cwd")) {
        auto r = as_string(*v, "process.cwd");
        if (!r) return r.error();
        c.cwd = std::move(*r);
    }
    if (c.cwd.empty()) {
        if (const json* d = docker_field(root, "WorkingDir")) {
            auto r = as_string(*d, "WorkingDir");
            if (!r) return r.error();
            c.cwd = std::move(*r);
        }
    }
    if (!c.cwd.empty() && c.cwd.front() != '/')
        return bad("the working directory \"" + c.cwd + "\" must be an absolute path");

    if (const json* v = member(p, "user")) {
        auto r = parse_oci_user(*v);
        if (!r) return r.error();
        c.user = std::move(*r);
    } else if (const json* d = docker_field(root, "User")) {
        auto r = as_string(*d, "User");
        if (!r) return r.error();
        c.docker_user = std::move(*r);
    }

    if (const json* v = member(p, "rlimits")) {
        auto r = parse_oci_rlimits(*v);
        if (!r) return r.error();
        c.rlimits = std::move(*r);
    }
    if (const json* v = member(p, "terminal")) {
        auto r = as_bool(*v, "process.terminal");
        if (!r) return r.error();
        c.terminal = *r;
    }
    if (const json* v = member(root, "hostname")) {
        auto r = as_string(*v, "hostname");
        if (!r) return r.error();
        c.hostname = std::move(*r);
    }
    if (const json* v = member(root, "mounts")) {
        auto r = parse_mounts(*v, c);
        if (!r) return r.error();
    }
    return c;
}

namespace {

// The exec message's "net": {"address","prefix","gateway","dns"}, all required.
Result<NetSettings> parse_exec_net(const json& j) {
    if (!j.is_object()) return bad("exec.net must be an object, not " + kind(j));
    NetSettings n;
    for (auto [key, field] : {std::pair{"address", &n.address}, {"gateway", &n.gateway}, {"dns", &n.dns}}) {
        const json* v = member(j, key);
        if (v == nullptr) return bad(std::string("exec.net has no \"") + key + "\"");
        auto r = as_string(*v, std::string("exec.net.") + key);
        if (!r) return r.error();
        if (!control::is_dotted_quad(*r))
            return bad(std::string("exec.net.") + key + " \"" + *r + "\" is not an IPv4 address like 10.0.2.15");
        *field = std::move(*r);
    }
    const json* p = member(j, "prefix");
    if (p == nullptr) return bad("exec.net has no \"prefix\"");
    auto prefix = as_uint(*p, "exec.net.prefix", 32);
    if (!prefix) return prefix.error();
    if (*prefix == 0) return bad("exec.net.prefix must be 1..32");
    n.prefix = static_cast<unsigned>(*prefix);
    return n;
}

}  // namespace

Result<ControlMessage> parse_control_message(std::string_view text) {
    json m;
    try {
        m = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
        return bad(std::string("control message is not valid JSON: ") + e.what());
    }
    if (!m.is_object()) return bad("control message must be a JSON object, not " + kind(m));
    const json* type = member(m, "type");
    if (type == nullptr) return bad("control message has no \"type\"");
    auto t = as_string(*type, "control message \"type\"");
    if (!t) return t.error();

    if (*t == "exec") {
        ExecMessage e;
        if (const json* v = member(m, "args")) {
            auto r = as_args(*v, "exec.args");
            if (!r) return r.error();
            e.args = std::move(*r);
        }
        if (const json* v = member(m, "env")) {
            auto r = as_env(*v, "exec.env");
            if (!r) return r.error();
            e.env = std::move(*r);
        }
        if (const json* v = member(m, "workdir")) {
            auto r = as_string(*v, "exec.workdir");
            if (!r) return r.error();
            if (!r->empty() && r->front() != '/')
                return bad("exec.workdir \"" + *r + "\" must be an absolute path");
            e.workdir = std::move(*r);
        }
        if (const json* v = member(m, "rlimits")) {
            auto specs = as_string_array(*v, "exec.rlimits");
            if (!specs) return specs.error();
            for (const std::string& s : *specs) {
                auto r = parse_rlimit_spec(s);
                if (!r) return bad("exec.rlimits: " + r.error().message);
                e.rlimits.push_back(*r);
            }
        }
        if (const json* v = member(m, "tty")) {
            if (!v->is_boolean()) return bad("exec.tty must be true or false, not " + kind(*v));
            e.tty = v->get<bool>();
        }
        if (const json* v = member(m, "mounts")) {
            auto r = parse_exec_mounts(*v);
            if (!r) return r.error();
            e.mounts = std::move(*r);
        }
        if (const json* v = member(m, "net")) {
            auto r = parse_exec_net(*v);
            if (!r) return r.error();
            e.net = std::move(*r);
        }
        if (const json* v = member(m, "mirror_ports")) {
            auto r = as_bool(*v, "exec.mirror_ports");
            if (!r) return r.error();
            e.mirror_ports = *r;
        }
        return ControlMessage{std::move(e)};
    }
    if (*t == "signal") {
        const json* v = member(m, "signo");
        if (v == nullptr) return bad("signal message has no \"signo\"");
        auto n = as_uint(*v, "signal.signo", static_cast<uint64_t>(SIGRTMAX));
        if (!n) return n.error();
        if (*n == 0) return bad("signal.signo must be a signal number from 1 to " + std::to_string(SIGRTMAX));
        return ControlMessage{SignalMessage{static_cast<int>(*n)}};
    }
    return ControlMessage{UnknownMessage{std::move(*t)}};
}

std::string exit_message(int code) { return json{{"type", "exit"}, {"code", code}}.dump(); }

std::optional<std::string_view> env_get(const std::vector<std::string>& env, std::string_view key) {
    for (const std::string& e : env) {
        std::string_view v = e;
        if (v.size() > key.size() && v.substr(0, key.size()) == key && v[key.size()] == '=')
            return v.substr(key.size() + 1);
    }
    return std::nullopt;
}

void env_set(std::vector<std::string>& env, std::string_view entry) {
    std::string_view key = entry.substr(0, entry.find('='));
    auto same_key = [&](const std::string& e) {
        return e.size() > key.size() && std::string_view(e).substr(0, key.size()) == key && e[key.size()] == '=';
    };
    auto it = std::find_if(env.begin(), env.end(), same_key);
    if (it == env.end()) {
        env.emplace_back(entry);
        return;
    }
    it->assign(entry);
    env.erase(std::remove_if(std::next(it), env.end(), same_key), env.end());
}

Workload merge_workload(const ImageConfig& image, const ExecMessage* host) {
    Workload w;
    w.args = image.args;
    if (host != nullptr && !host->args.empty()) w.args = host->args;

    // Keyed by name so a big environment (100 KiB and more) merges in linear
    // time. This also folds the config's own duplicate keys: the last value
    // wins, in the place where the key first appeared.
    std::unordered_map<std::string, size_t> index;
    auto add = [&](const std::string& e) {
        auto [it, inserted] = index.try_emplace(e.substr(0, e.find('=')), w.env.size());
        if (inserted)
            w.env.push_back(e);
        else
            w.env[it->second] = e;
    };
    w.env.reserve(image.env.size() + (host != nullptr ? host->env.size() : 0));
    for (const std::string& e : image.env) add(e);
    if (host != nullptr)
        for (const std::string& e : host->env) add(e);

    if (!image.cwd.empty()) w.cwd = image.cwd;
    if (host != nullptr && !host->workdir.empty()) w.cwd = host->workdir;

    w.user = image.user;
    w.docker_user = image.docker_user;
    w.rlimits = image.rlimits;
    if (host != nullptr) w.rlimits.insert(w.rlimits.end(), host->rlimits.begin(), host->rlimits.end());
    w.terminal = image.terminal;
    if (!image.hostname.empty()) w.hostname = image.hostname;
    w.tmpfs = image.tmpfs;
    w.virtiofs = image.virtiofs;
    if (host != nullptr) w.virtiofs.insert(w.virtiofs.end(), host->mounts.begin(), host->mounts.end());
    return w;
}

const std::string& mount_destination(const GuestMount& m) {
    return std::visit([](const auto& v) -> const std::string& { return v.destination; }, m);
}

std::vector<GuestMount> mount_order(const Workload& w) {
    std::vector<GuestMount> out;
    out.reserve(w.tmpfs.size() + w.virtiofs.size());
    out.insert(out.end(), w.tmpfs.begin(), w.tmpfs.end());
    out.insert(out.end(), w.virtiofs.begin(), w.virtiofs.end());
    auto depth = [](const std::string& path) {
        size_t n = 0;
        for (size_t i = 0; i < path.size(); ++i)
            if (path[i] != '/' && (i == 0 || path[i - 1] == '/')) ++n;
        return n;
    };
    std::stable_sort(out.begin(), out.end(), [&](const GuestMount& a, const GuestMount& b) {
        return depth(mount_destination(a)) < depth(mount_destination(b));
    });
    return out;
}

}  // namespace krunlet::init
