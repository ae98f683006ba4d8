#include "cli/options.h"

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "base/control_protocol.h"

namespace krunlet::cli {
namespace {

constexpr int kUsageError = 125;  // like podman/crun: the runtime itself failed
// Largest cache timeout the library accepts (virtiofs/cache_policy.h: one year).
constexpr double kMaxCacheTimeoutS = 31536000;

// Seconds as the library's "seconds[.fraction]" text, to the nanosecond.
std::string seconds_text(double s) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9f", s);
    return buf;
}

}  // namespace

std::string volume_tag(size_t index) { return "krunlet-vol" + std::to_string(index); }

std::variant<Volume, std::string> parse_volume(std::string_view spec) {
    std::string shown = "--volume " + std::string(spec);
    std::vector<std::string_view> parts;
    for (size_t start = 0;;) {
        size_t colon = spec.find(':', start);
        parts.push_back(spec.substr(start, colon == std::string_view::npos ? colon : colon - start));
        if (colon == std::string_view::npos) break;
        start = colon + 1;
    }
    if (parts.size() < 2 || parts.size() > 3)
        return shown + ": expected HOST:GUEST or HOST:GUEST:ro (paths with ':' are not supported)";
    Volume v;
    v.host = parts[0];
    v.guest = parts[1];
    if (parts.size() == 3) {
        if (parts[2] == "ro")
            v.read_only = true;
        else if (parts[2] != "rw")
            return shown + ": unknown option '" + std::string(parts[2]) + "'; the third field may be ro or rw";
    }
    if (v.host.empty()) return shown + ": HOST is empty; give the host directory to share";
    struct stat st{};
    if (::stat(v.host.c_str(), &st) != 0)
        return shown + ": host directory " + v.host + ": " + std::strerror(errno) +
               " (HOST must be an existing directory)";
    if (!S_ISDIR(st.st_mode)) return shown + ": " + v.host + " is not a directory (HOST must be a directory)";
    if (const char* why = control::mount_path_problem(v.guest))
        return shown + ": GUEST '" + v.guest + "' cannot be a mount point: " + why;
    return v;
}

std::optional<std::string> parse_net_option(std::string_view spec, RunOptions& o) {
    if (spec == "slirp" || spec == "none") {
        o.net = std::string(spec);
        o.net_socket.clear();
        return std::nullopt;
    }
    if (spec.starts_with("passt:")) {
        std::string_view path = spec.substr(6);
        // sockaddr_un.sun_path holds 108 bytes with the NUL.
        if (path.empty() || path.size() > 107)
            return "--net " + std::string(spec) + ": use passt:PATH with the path of passt's socket (1 to 107 "
                   "bytes), e.g. --net passt:/tmp/passt.sock";
        o.net = "passt";
        o.net_socket = std::string(path);
        return std::nullopt;
    }
    return "--net " + std::string(spec) + ": use slirp (the built-in user-mode network), none (loopback only) or "
           "passt:PATH (frames to a running passt's socket, passt -s PATH)";
}

std::variant<VsockPortOption, std::string> parse_vsock_port_option(std::string_view spec) {
    const std::string shown = "--vsock-port " + std::string(spec);
    const std::string form = ": use PORT:PATH or PORT:PATH:listen, e.g. 5000:/run/app.sock";
    size_t colon = spec.find(':');
    if (colon == std::string_view::npos) return shown + form;
    std::string port_text(spec.substr(0, colon));
    char* end = nullptr;
    errno = 0;
    unsigned long long port = std::strtoull(port_text.c_str(), &end, 10);
    if (port_text.empty() || *end != '\0' || errno != 0 || port < 1 || port > 0xfffffffeull)
        return shown + ": PORT must be a number from 1 to 4294967294" + form;
    std::string_view path = spec.substr(colon + 1);
    VsockPortOption o;
    o.port = static_cast<uint32_t>(port);
    if (path.ends_with(":listen")) {
        o.listen = true;
        path.remove_suffix(7);
    }
    if (path.empty()) return shown + ": PATH is empty" + form;
    o.path = std::string(path);
    return o;
}

ParseResult parse_command_line(const std::vector<std::string>& args) {
    ParseResult result;
    CLI::App app{"krunlet: run a container's command in a KVM microVM"};
    app.require_subcommand(1);
    RunOptions o;
    std::vector<std::string> volume_specs;
    std::vector<std::string> vsock_specs;
    std::string fs_cache;
    double entry_timeout = -1, attr_timeout = -1;
    auto* run = app.add_subcommand("run", "boot ROOTFS in a microVM and run COMMAND in it");
    run->add_option("--cpus", o.cpus, "vCPUs (1-16)")->check(CLI::Range(1, 16));
    run->add_option("--memory", o.memory_mib, "guest RAM in MiB")->check(CLI::Range(32, 262144));
    // Repeatable options take one value per occurrence, so that ROOTFS after
    // them is never read as a second value.
    run->add_option("--env", o.env, "KEY=VALUE for the workload (repeatable)")->allow_extra_args(false);
    run->add_option("--workdir", o.workdir, "working directory inside the guest");
    run->add_option("--volume,-v", volume_specs,
                    "HOST:GUEST[:ro] share the host directory HOST at GUEST in the guest, read-only with :ro "
                    "(repeatable)")
        ->allow_extra_args(false);
    run->add_option("--publish,-p", o.publish,
                    "HOST:GUEST forward host TCP port HOST (on 127.0.0.1) to guest port GUEST (repeatable)")
        ->allow_extra_args(false);
    run->add_option("--vsock-port", vsock_specs,
                    "PORT:PATH guest connections to vsock PORT reach the host unix socket PATH; "
                    "PORT:PATH:listen host clients of PATH reach the guest's listener on PORT (repeatable)")
        ->allow_extra_args(false);
    std::string net_spec = "slirp";
    run->add_option("--net", net_spec,
                    "guest network: slirp (user-mode, the default; guest listeners are mirrored on the same host "
                    "ports unless --publish is given), none, or passt:PATH (a running passt's socket)");
    run->add_option("--fs-cache", fs_cache,
                    "guest caching of every virtio-fs share: never (host changes seen at once), auto "
                    "(close-to-open, the default), always (only for files nothing else changes); "
                    "default $KRUNLET_FS_CACHE")
        ->check(CLI::IsMember({"never", "auto", "always"}));
    run->add_option("--fs-entry-timeout", entry_timeout,
                    "seconds the guest may trust a file name (default: the policy's, or $KRUNLET_FS_ENTRY_TIMEOUT)")
        ->check(CLI::Range(0.0, kMaxCacheTimeoutS));
    run->add_option("--fs-attr-timeout", attr_timeout,
                    "seconds the guest may trust file attributes (default: the policy's, or "
                    "$KRUNLET_FS_ATTR_TIMEOUT)")
        ->check(CLI::Range(0.0, kMaxCacheTimeoutS));
    run->add_option("--kernel-cmdline", o.kernel_cmdline, "words appended to the guest kernel command line");
    run->add_option("--log-level", o.log_level,
                    "0 off, 1 error (default), 2 warn, 3 info, 4 debug (guest serial too), 5 trace")
        ->check(CLI::Range(0, 5));
    run->add_flag("--boot-trace", o.boot_trace, "print boot timing to stderr when the VM ends");
    run->add_option("rootfs", o.rootfs, "unpacked container root filesystem")->required();
    run->add_option("command", o.command,
                    "the command and its arguments (default: the image's, from /.krun_config.json)");
    // Everything after ROOTFS is the command, options included.
    run->positionals_at_end();

    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    try {
        app.parse(int(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
        std::ostringstream out, err;
        int code = app.exit(e, out, err);
        result.out = out.str();
        result.err = err.str();
        result.exit_code = code == 0 ? 0 : kUsageError;
        return result;
    }
    auto fail = [&](const std::string& msg) {
        result.err = "krunlet: " + msg + "\n";
        result.exit_code = kUsageError;
        return result;
    };

    if (!o.command.empty() && o.command.front() == "--") o.command.erase(o.command.begin());
    for (const auto& e : o.env)
        if (e.find('=') == std::string::npos || e.front() == '=') return fail("--env " + e + " is not KEY=VALUE");
    for (const auto& spec : volume_specs) {
        auto v = parse_volume(spec);
        if (auto* msg = std::get_if<std::string>(&v)) return fail(*msg);
        o.volumes.push_back(std::get<Volume>(std::move(v)));
    }
    if (auto msg = parse_net_option(net_spec, o)) return fail(*msg);
    for (const auto& spec : vsock_specs) {
        auto v = parse_vsock_port_option(spec);
        if (auto* msg = std::get_if<std::string>(&v)) return fail(*msg);
        o.vsock_ports.push_back(std::get<VsockPortOption>(std::move(v)));
    }
    // CLI::Range lets NaN through (every comparison with it is false).
    for (auto [flag, value] : {std::pair{"--fs-entry-timeout", entry_timeout}, std::pair{"--fs-attr-timeout", attr_timeout}})
        if (run->count(flag) != 0 && !std::isfinite(value))
            return fail(std::string(flag) + " must be a number of seconds from 0 to 31536000");
    if (run->count("--fs-cache") != 0) o.fs_cache = fs_cache;
    if (run->count("--fs-entry-timeout") != 0) o.fs_entry_timeout = seconds_text(entry_timeout);
    if (run->count("--fs-attr-timeout") != 0) o.fs_attr_timeout = seconds_text(attr_timeout);
    result.run = std::move(o);
    return result;
}

}  // namespace krunlet::cli
