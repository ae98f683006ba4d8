// Everything needed to start one microVM, gathered by the C API (or a test)
// before Vm::create. Plain data: no fds, no KVM.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "virtiofs/cache_policy.h"

namespace krunlet {

// A directory shared with the guest over virtio-fs.
struct FsShare {
    std::string tag;        // the mount tag; "/dev/root" is the root filesystem
    std::string host_dir;   // host directory to serve
    bool read_only = false;
};

// A share init mounts in the guest before the workload starts (the exec
// message's "mounts", control_protocol.h).
struct VolumeMount {
    std::string tag;         // an FsShare's tag (not the root's)
    std::string guest_path;  // absolute mount point in the guest; created when missing
    bool read_only = false;  // mounted MS_RDONLY (the share itself decides what the host allows)
};

// How much the guest may cache of every share (virtiofs/cache_policy.h).
// Unset timeouts take the policy's defaults.
struct FsCacheSettings {
    fs::CachePolicy policy = fs::CachePolicy::Auto;
    std::optional<std::chrono::nanoseconds> entry_timeout;
    std::optional<std::chrono::nanoseconds> attr_timeout;
};

// The workload init runs; sent over the control channel (control_protocol.h).
// Empty fields mean "take it from /.krun_config.json".
struct Workload {
    std::vector<std::string> args;     // argv, args[0] is the program
    std::vector<std::string> env;      // "K=V"
    std::string workdir;
    std::vector<std::string> rlimits;  // "ID=CUR:MAX"
    std::vector<VolumeMount> mounts;   // at most control::kMaxMounts
};

// A guest vsock port tied to a host unix socket (krun_add_vsock_port / _port2).
// listen = false: guest connections to `port` reach the socket at `path`;
// listen = true: host clients of `path` (created by the VMM) reach the guest's listener on `port`.
struct VsockPort {
    uint32_t port = 0;
    std::string path;
    bool listen = false;
};

// A host TCP port forwarded to a guest port through the user-mode network
// (krun_set_port_map, --publish HOST:GUEST).
struct PortForward {
    uint16_t host = 0;
    uint16_t guest = 0;
};

struct NetConfig {
    bool enabled = true;             // virtio-net with libslirp (10.0.2.15/24, gateway 10.0.2.2)
    std::string host_addr = "127.0.0.1";  // where forwarded ports listen
    std::vector<PortForward> ports;
};

struct VmConfig {
    uint32_t vcpus = 1;
    uint32_t ram_mib = 512;
    std::span<const uint8_t> kernel;   // ELF vmlinux, kept alive by the caller
    std::string kernel_cmdline_extra;  // appended to the built-in command line
    std::vector<FsShare> shares;       // shares[0] should be the root ("/dev/root")
    FsCacheSettings fs_cache;          // applies to every share
    std::vector<VsockPort> vsock_ports;
    NetConfig net;
    Workload workload;
    int console_in = 0;                // hvc0 input (the caller's stdin)
    int console_out = 1;               // hvc0 output (the caller's stdout)
    int log_level = 1;                 // libkrun levels: 0 off .. 5 trace
};

// The VMM's own exit codes, next to the workload's (DESIGN.md §3).
inline constexpr int kExitVmmError = 125;       // krunlet or init failed
inline constexpr int kExitGuestCrashed = 124;   // kernel panic / triple fault: no status from init

// Boot timing from the debug port write of init (DESIGN.md §2), in ns of
// CLOCK_MONOTONIC; 0 when the event did not happen.
struct BootTrace {
    uint64_t start_ns = 0;       // Vm::create entry (or earlier, if the caller says)
    uint64_t first_run_ns = 0;   // the boot vCPU's first KVM_RUN
    uint64_t init_ns = 0;        // init's first write to the debug port
    uint64_t end_ns = 0;         // the exit status arrived / the VM ended
};

struct VmOutcome {
    int exit_code = kExitVmmError;
    bool status_from_guest = false;  // init reported it over the control channel
    std::string reason;              // how the VM ended, for logs
    BootTrace trace;
};

}  // namespace krunlet
