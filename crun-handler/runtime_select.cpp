#include "runtime_select.h"
#include "subprocess.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>

namespace krunlet::oci {
namespace {

bool is_executable_file(const std::string& p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

std::string real(const std::string& p) {
    char buf[PATH_MAX];
    if (::realpath(p.c_str(), buf) == nullptr) return p;
    return buf;
}

Result<SelectedRuntime> explicit_runtime(const std::string& p, const std::string& source, const SelectInputs& in) {
    std::string path = p;
    if (p.find('/') == std::string::npos) {
        auto found = find_in_path(p, in.path_env);
        if (!found)
            return make_error(ENOENT, source + " names '" + p + "', which is not in PATH; give the full path of "
                                                                "runc or crun");
        path = *found;
    }
    if (!is_executable_file(path))
        return make_error(ENOENT, source + " " + path + " is not an executable file; give the full path of runc or "
                                                        "crun");
    if (!in.self_exe.empty() && real(path) == in.self_exe)
        return make_error(ELOOP, source + " " + path + " is krun itself; give the path of runc or crun");
    return SelectedRuntime{path, "from " + source};
}

}  // namespace

std::optional<std::string> find_in_path(const std::string& name, const std::string& path_env) {
    size_t start = 0;
    while (start <= path_env.size()) {
        size_t colon = path_env.find(':', start);
        if (colon == std::string::npos) colon = path_env.size();
        // An empty PATH entry means the current directory.
        std::string candidate = colon == start ? "./" + name : path_env.substr(start, colon - start) + "/" + name;
        if (is_executable_file(candidate)) return candidate;
        start = colon + 1;
    }
    return std::nullopt;
}

bool cgroup_is_hybrid(const std::string& cgroup_root) {
    struct statfs root{}, unified{};
    if (::statfs(cgroup_root.c_str(), &root) != 0) return false;
    if (root.f_type != TMPFS_MAGIC) return false;  // pure v2 (cgroup2fs) or none
    std::string u = cgroup_root + "/unified";
    return ::statfs(u.c_str(), &unified) == 0 && unified.f_type == CGROUP2_SUPER_MAGIC;
}

bool version_runs(const std::string& path) {
    auto r = run_capture({path, "--version"});
    return r && r->succeeded();
}

bool crun_usable(const std::string& crun_path) {
    // The cgroup check first: it is a statfs, and on hybrid hosts crun fails
    // every create with "cgroupv2 in hybrid mode is not supported".
    return !cgroup_is_hybrid() && version_runs(crun_path);
}

Result<SelectedRuntime> select_runtime(const SelectInputs& in) {
    if (in.runtime_path) return explicit_runtime(*in.runtime_path, "--runtime-path", in);
    if (in.env_runtime && !in.env_runtime->empty())
        return explicit_runtime(*in.env_runtime, "KRUNLET_OCI_RUNTIME", in);
    auto usable = in.crun_ok ? in.crun_ok : crun_usable;
    std::string crun_note;
    if (auto crun = find_in_path("crun", in.path_env)) {
        if (in.self_exe.empty() || real(*crun) != in.self_exe) {
            if (usable(*crun)) return SelectedRuntime{*crun, "crun from PATH"};
            crun_note = " (crun at " + *crun + " is not usable here: hybrid cgroups or `crun --version` failed)";
        }
    }
    if (auto runc = find_in_path("runc", in.path_env)) {
        if (in.self_exe.empty() || real(*runc) != in.self_exe)
            return SelectedRuntime{*runc, "runc from PATH" + crun_note};
    }
    return make_error(ENOENT, "no OCI runtime found: install runc or crun (apt-get install runc), or name one "
                              "with --runtime-path or KRUNLET_OCI_RUNTIME" + crun_note);
}

}  // namespace krunlet::oci
