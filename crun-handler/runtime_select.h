// Which low-level OCI runtime krun hands the command to.
//
// Order (docs/oci-runtime.md):
//   1. --runtime-path PATH (krun's own global option, never forwarded);
//   2. the KRUNLET_OCI_RUNTIME environment variable;
//   3. crun from PATH, if it is usable here: the host's cgroup layout is one
//      crun accepts (crun refuses the "hybrid" layout, cgroup v1 with a cgroup2
//      mount at /sys/fs/cgroup/unified) and `crun --version` exits 0;
//   4. runc from PATH.
// The probe is deterministic and has no side effects, so every subcommand of
// one container (create, start, state, kill, delete) picks the same runtime
// and finds the container's state where the previous one left it.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "base/result.h"

namespace krunlet::oci {

struct SelectInputs {
    std::optional<std::string> runtime_path;  // --runtime-path
    std::optional<std::string> env_runtime;   // KRUNLET_OCI_RUNTIME
    std::string path_env;                     // $PATH
    std::string self_exe;                     // realpath of krun itself, never chosen
    // Is crun usable on this host? Defaults to crun_usable() below.
    std::function<bool(const std::string& crun_path)> crun_ok;
};

struct SelectedRuntime {
    std::string path;
    std::string reason;  // for --debug and error messages
};

Result<SelectedRuntime> select_runtime(const SelectInputs& in);

// The executable `name` in the ':'-separated `path_env`, if any.
std::optional<std::string> find_in_path(const std::string& name, const std::string& path_env);

// True when the cgroup hierarchy at `cgroup_root` is the hybrid layout (a
// tmpfs holding v1 controllers plus a cgroup2 mount at "unified").
bool cgroup_is_hybrid(const std::string& cgroup_root = "/sys/fs/cgroup");

// Runs `path --version` with all stdio on /dev/null; true when it exits 0.
bool version_runs(const std::string& path);

// The default crun probe: not hybrid, and `crun --version` exits 0.
bool crun_usable(const std::string& crun_path);

}  // namespace krunlet::oci
