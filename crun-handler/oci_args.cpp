#include "oci_args.h"

#include <array>
#include <string_view>

namespace krunlet::oci {
namespace {

// "--name=value" -> ("name", "value"); "-b" -> ("b", nullopt). runc's option
// library (urfave/cli) accepts one or two dashes for every option.
struct Split {
    std::string name;
    std::optional<std::string> value;
};

std::optional<Split> split_option(const std::string& arg) {
    if (arg.size() < 2 || arg[0] != '-' || arg == "--") return std::nullopt;
    std::string_view body(arg);
    body.remove_prefix(body[1] == '-' ? 2 : 1);
    Split s;
    size_t eq = body.find('=');
    if (eq == std::string_view::npos) {
        s.name = std::string(body);
    } else {
        s.name = std::string(body.substr(0, eq));
        s.value = std::string(body.substr(eq + 1));
    }
    return s;
}

template <size_t N>
bool in(const std::array<std::string_view, N>& set, const std::string& name) {
    for (std::string_view s : set)
        if (s == name) return true;
    return false;
}

}  // namespace

bool global_option_takes_value(const std::string& name) {
    static constexpr std::array<std::string_view, 9> kValued = {
        "root", "log", "log-format", "log-level", "criu", "rootless", "cgroup-manager", "runtime-path",
        "debug-log"};
    return in(kValued, name);
}

bool subcommand_option_takes_value(const std::string& name) {
    // create/run/exec/checkpoint/restore/update/ps/events options with a value.
    static constexpr std::array<std::string_view, 44> kValued = {
        "bundle", "b", "console-socket", "pid-file", "preserve-fds", "cwd", "env", "e", "process", "p",
        "process-label", "apparmor", "user", "u", "additional-gids", "g", "cap", "c", "cgroup",
        "image-path", "work-path", "parent-path", "page-server", "manage-cgroups-mode", "empty-ns",
        "status-fd", "lsm-profile", "lsm-mount-context", "resources", "r", "blkio-weight", "cpu-period",
        "cpu-quota", "cpu-share", "cpu-rt-period", "cpu-rt-runtime", "cpuset-cpus", "cpuset-mems",
        "memory", "memory-reservation", "memory-swap", "pids-limit", "interval", "format"};
    return in(kValued, name);
}

std::variant<OciArgs, std::string> parse_oci_args(const std::vector<std::string>& argv) {
    OciArgs a;
    a.bundle = ".";
    if (argv.empty()) return std::string("empty argument vector");
    a.forward.push_back(argv[0]);

    size_t i = 1;
    // Global options, up to the first argument that is not an option.
    for (; i < argv.size(); ++i) {
        const std::string& arg = argv[i];
        auto opt = split_option(arg);
        if (!opt) break;
        const bool valued = global_option_takes_value(opt->name);
        std::optional<std::string> value = opt->value;
        bool value_is_next = false;
        if (valued && !value) {
            if (i + 1 >= argv.size())
                return "option " + arg + " needs a value (e.g. " + arg + " /path)";
            value = argv[i + 1];
            value_is_next = true;
        }
        if (opt->name == "runtime-path") {
            // krun's own option: consumed, never forwarded (runc would reject it).
            if (value->empty()) return std::string("--runtime-path needs a path to runc or crun");
            a.runtime_path = *value;
        } else {
            if (opt->name == "log") a.log_path = *value;
            if (opt->name == "log-format") a.log_format = *value;
            if (opt->name == "version" || opt->name == "v") a.version = true;
            a.forward.push_back(arg);
            if (value_is_next) a.forward.push_back(*value);
        }
        if (value_is_next) ++i;
    }
    if (i < argv.size() && argv[i] == "--") {
        a.forward.push_back(argv[i]);
        ++i;
    }
    if (i >= argv.size()) return a;

    a.subcommand = argv[i];
    a.subcommand_index = a.forward.size();
    a.forward.push_back(argv[i]);
    ++i;

    // Subcommand arguments: forwarded unchanged; read --bundle and the id.
    bool only_positional = false;
    for (; i < argv.size(); ++i) {
        const std::string& arg = argv[i];
        a.forward.push_back(arg);
        if (!only_positional && arg == "--") {
            only_positional = true;
            continue;
        }
        auto opt = only_positional ? std::nullopt : split_option(arg);
        if (!opt) {
            if (a.container_id.empty()) a.container_id = arg;
            continue;
        }
        std::optional<std::string> value = opt->value;
        if (!value && subcommand_option_takes_value(opt->name)) {
            if (i + 1 >= argv.size()) return "option " + arg + " of " + a.subcommand + " needs a value";
            value = argv[++i];
            a.forward.push_back(*value);
        }
        if (opt->name == "bundle" || opt->name == "b") {
            if (value->empty()) return std::string("--bundle needs a directory (the one holding config.json)");
            a.bundle = *value;
        }
    }
    return a;
}

}  // namespace krunlet::oci
