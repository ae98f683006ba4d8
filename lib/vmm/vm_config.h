// Everything needed to start one microVM, gathered by the C API (or a test)
// before Vm::create. Plain data: no fds, no KVM.
#pragma once

#include <array>
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

// Where the guest's Ethernet frames go (lib/net/backend.h).
enum class NetBackendKind {
    Slirp,       // libslirp in the VMM (net/slirp_backend.h)
    UnixStream,  // a passt-style stream socket (net/unixstream_backend.h)
};

struct NetConfig {
    bool enabled = true;             // virtio-net (off: the guest has loopback only)
    NetBackendKind backend = NetBackendKind::Slirp;
    std::string host_addr = "127.0.0.1";  // where forwarded ports listen
    std::vector<PortForward> ports;
    // A port map was given (krun_set_port_map, --publish), even an empty one.
    // Without one, the guest's TCP listeners are mirrored on the same host
    // ports (vmm/port_mirror.h; slirp only: passt forwards ports itself).
    bool port_map_given = false;
    // UnixStream: the socket to connect to (passt -s PATH), or an already
    // connected one (crun's passt fd; borrowed: Vm::create duplicates it).
    std::string unixstream_path;
    int unixstream_fd = -1;
    // The guest's MAC address (virtio-net config space).
    std::array<uint8_t, 6> mac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    // VIRTIO_NET_F_CSUM offered (krun_add_net_unixstream's NET_FEATURE_CSUM).
    bool tx_checksum = true;
    // eth0's static setup, sent to init in the exec message. The defaults are
    // slirp's network; with passt, run it with the matching options
    // (docs/networking.md).
    std::string guest_address = "10.0.2.15";
    unsigned guest_prefix = 24;
    std::string gateway = "10.0.2.2";
    std::string dns = "10.0.2.3";
};

struct VmConfig {
    uint32_t vcpus = 1;
    uint32_t ram_mib = 512;
    std::span<const uint8_t> kernel;   // ELF vmlinux, kept alive by the caller
    // The kernel bytes are a private file mapping nobody reads again: its
    // pages are moved into guest RAM instead of copied (x86::KernelPages::kMove;
    // krun_start_enter sets it). The bytes have holes once Vm::create returns.
    bool kernel_pages_movable = false;
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
    uint64_t workload_ns = 0;    // init's write just before it forks the workload
    uint64_t end_ns = 0;         // the exit status arrived / the VM ended
};

struct VmOutcome {
    int exit_code = kExitVmmError;
    bool status_from_guest = false;  // init reported it over the control channel
    std::string reason;              // how the VM ended, for logs
    BootTrace trace;
};

}  // namespace krunlet
