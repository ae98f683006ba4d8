// The krunlet command line, parsed into plain data (no side effects but
// stat() of the --volume directories), so tests/unit/cli can check every
// form and error without booting anything. main.cpp turns the result into
// libkrun C API calls.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace krunlet::cli {

// --volume HOST:GUEST[:ro|rw]
struct Volume {
    std::string host;   // an existing directory on the host
    std::string guest;  // absolute mount point in the guest
    bool read_only = false;
};

// --vsock-port PORT:PATH[:listen]
struct VsockPortOption {
    uint32_t port = 0;
    std::string path;
    bool listen = false;
};

// One --vsock-port value. The error names the flag and the expected form.
std::variant<VsockPortOption, std::string> parse_vsock_port_option(std::string_view spec);

struct RunOptions {
    int cpus = 1;
    int memory_mib = 512;
    std::vector<std::string> env;
    std::string workdir;
    bool boot_trace = false;
    std::string kernel_cmdline;
    int log_level = 1;
    std::string rootfs;
    std::vector<Volume> volumes;
    std::vector<std::string> publish;         // "HOST:GUEST", checked by krun_set_port_map
    std::vector<VsockPortOption> vsock_ports;
    std::string net = "slirp";                // "slirp", "none", or "passt" (then net_socket is set)
    std::string net_socket;                   // --net passt:PATH: passt's socket
    // The virtio-fs cache knobs; unset ones are left to KRUNLET_FS_* and then
    // to the policy's defaults. Timeouts in the "seconds[.fraction]" text the
    // library takes.
    std::optional<std::string> fs_cache;
    std::optional<std::string> fs_entry_timeout;
    std::optional<std::string> fs_attr_timeout;
    std::vector<std::string> command;  // empty: the image's, from /.krun_config.json
};

// One --net value: "slirp", "none" or "passt:PATH" into `o.net` / `o.net_socket`. The error
// names the flag and the accepted forms.
std::optional<std::string> parse_net_option(std::string_view spec, RunOptions& o);

// The guest tag of the n-th --volume.
std::string volume_tag(size_t index);

// One --volume value. The error says what is wrong and names the flag.
std::variant<Volume, std::string> parse_volume(std::string_view spec);

struct ParseResult {
    std::optional<RunOptions> run;  // set when the VM should be started
    int exit_code = 0;              // otherwise: exit with this (0 after --help)
    std::string out;                // what to print on stdout (help)
    std::string err;                // what to print on stderr (errors)
};

// Parses a whole command line (args[0] is the program name).
ParseResult parse_command_line(const std::vector<std::string>& args);

}  // namespace krunlet::cli
