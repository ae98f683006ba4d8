// The OCI runtime command line, read just far enough to act on it.
//
// krun does not re-implement runc's or crun's command line: it finds the
// subcommand and, for create/run, the bundle directory, then hands the
// original arguments to the real runtime. Parsing is deliberately lenient so
// that options podman (or a newer runc) passes and krun does not know about
// still reach the runtime unchanged.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace krunlet::oci {

struct OciArgs {
    // argv without krun's own options (--runtime-path), ready for execv of the
    // real runtime; element 0 is replaced by the runtime's path at exec time.
    std::vector<std::string> forward;
    std::optional<std::string> runtime_path;  // --runtime-path PATH (krun's own)
    std::optional<std::string> log_path;      // --log PATH, to report krun's own errors
    std::string log_format;                   // --log-format (text or json)
    std::string subcommand;                   // empty for `krun --version` / `krun`
    size_t subcommand_index = 0;              // index of the subcommand in `forward`
    std::string bundle;                       // create/run: --bundle/-b, else "." (cwd)
    std::string container_id;                 // first positional after the subcommand
    bool version = false;                     // --version / -v before any subcommand
};

// Parse argv (argv[0] included). Returns the parsed form or a message naming
// the fix for input krun cannot forward (e.g. --runtime-path without a value).
std::variant<OciArgs, std::string> parse_oci_args(const std::vector<std::string>& argv);

// Global options that take a value as the next argument when written without
// '=' (runc: --root --log --log-format --criu --rootless; crun adds
// --cgroup-manager --log-level). Any other option before the subcommand is a
// flag (--debug, --systemd-cgroup, ...) and is forwarded as it is.
bool global_option_takes_value(const std::string& name);

// Subcommand options that take a value when written without '=' (runc and
// crun, create/run/exec/kill/...); used only to skip to the container id.
bool subcommand_option_takes_value(const std::string& name);

}  // namespace krunlet::oci
