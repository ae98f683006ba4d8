// What the guest init runs, and how: parsing of /.krun_config.json and of the
// host's control messages, and the merge of the two (DESIGN.md §3,
// lib/base/control_protocol.h).
//
// Everything here is free of side effects (no file, process or kernel access),
// so it is unit-tested on the host. The callers read the files and apply the
// result.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"

namespace krunlet::init {

// One resource limit. `resource` is the Linux RLIMIT_* number (the "ID" of
// libkrun's krun_set_rlimits strings), and the values are rlim_t (u64; all ones
// is RLIM_INFINITY).
struct Rlimit {
    int resource = 0;
    uint64_t soft = 0;
    uint64_t hard = 0;
};

// "RLIMIT_NOFILE" -> 7. Also accepts the name without the prefix, any case.
Result<int> rlimit_from_name(std::string_view name);
// 7 -> "RLIMIT_NOFILE" (for messages); "RLIMIT_<n>" when unknown.
std::string rlimit_name(int resource);
// The host's form, "ID=CUR:MAX" (libkrun's krun_set_rlimits): ID is the
// numeric RLIMIT_* value (a name like RLIMIT_NOFILE is accepted too), CUR and
// MAX are decimal u64 or "unlimited".
Result<Rlimit> parse_rlimit_spec(std::string_view spec);

// A tmpfs from the OCI "mounts" list, with its options split into mount(2)
// flags and the filesystem's data string.
struct TmpfsMount {
    std::string destination;
    unsigned long flags = 0;  // MS_*
    std::string data;         // "size=65536k,mode=755"
    bool copy_up = false;     // crun's "tmpcopyup": keep the directory's files
    bool has_mode = false;    // data sets mode=, so the root's mode is not copied
};

// OCI mount options -> flags + data. Propagation and bind words are dropped
// (they mean nothing for a fresh tmpfs inside the VM).
TmpfsMount parse_tmpfs_options(std::string destination, const std::vector<std::string>& options);

// A virtio-fs share to mount in the guest: a "virtiofs" entry of the OCI
// "mounts" list (source = tag) or one of the host's volumes from the exec
// message. Tag and destination passed control::mount_tag_problem() and
// control::mount_path_problem().
struct VirtiofsMount {
    std::string tag;
    std::string destination;
    unsigned long flags = 0;  // MS_*; MS_RDONLY for "ro" / "read_only"
    std::string data;         // options for the kernel's virtiofs (e.g. "dax")
};

// The user the workload runs as.
struct UserSpec {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> additional_gids;
    std::optional<mode_t> umask;
};

// What /.krun_config.json says. Every field is optional; absent ones stay empty.
struct ImageConfig {
    std::vector<std::string> args;
    std::vector<std::string> env;
    std::string cwd;
    // process.user when present.
    std::optional<UserSpec> user;
    // Docker-style "User" ("uid", "uid:gid", "name", "name:group"), to be
    // resolved against the image's /etc/passwd and /etc/group.
    std::string docker_user;
    std::vector<Rlimit> rlimits;
    bool terminal = false;
    std::string hostname;
    std::vector<TmpfsMount> tmpfs;
    std::vector<VirtiofsMount> virtiofs;  // at most control::kMaxMounts
};

// Parses the whole OCI config.json (or a Docker-style image config). Errors
// name the field and what it should hold; the caller adds the file name.
Result<ImageConfig> parse_image_config(std::string_view json);

// eth0's static IPv4 setup (the exec message's "net"); the defaults are
// slirp's layout (net/slirp_backend.h), which a passt started with the
// matching options reproduces (docs/networking.md).
struct NetSettings {
    std::string address = "10.0.2.15";
    unsigned prefix = 24;
    std::string gateway = "10.0.2.2";
    std::string dns = "10.0.2.3";
};

// host -> guest {"type":"exec", ...}
struct ExecMessage {
    std::vector<std::string> args;
    std::vector<std::string> env;
    std::string workdir;
    std::vector<Rlimit> rlimits;
    // Whether the host's console is a terminal. When it is not, the guest
    // console is made raw so output reaches a host pipe byte for byte.
    bool tty = true;
    // Volumes to mount (control_protocol.h "mounts"), at most kMaxMounts.
    std::vector<VirtiofsMount> mounts;
    // "net": eth0's setup; unset means the defaults.
    std::optional<NetSettings> net;
    // "mirror_ports": report the guest's TCP listeners (init/listeners.h).
    bool mirror_ports = false;
};
// host -> guest {"type":"signal","signo":N}
struct SignalMessage {
    int signo = 0;
};
// A type this init does not know: ignored, so the host can grow the protocol.
struct UnknownMessage {
    std::string type;
};
using ControlMessage = std::variant<ExecMessage, SignalMessage, UnknownMessage>;

Result<ControlMessage> parse_control_message(std::string_view json);
// guest -> host {"type":"exit","code":N}
std::string exit_message(int code);

// The workload, after merging the image config with the host's exec message.
struct Workload {
    std::vector<std::string> args;
    std::vector<std::string> env;  // without the PATH/HOME/TERM defaults yet
    std::string cwd = "/";
    std::optional<UserSpec> user;  // nullopt: resolve docker_user, else root
    std::string docker_user;
    std::vector<Rlimit> rlimits;   // applied in order; the host's come last
    bool terminal = false;
    std::string hostname = "krunlet";
    std::vector<TmpfsMount> tmpfs;
    std::vector<VirtiofsMount> virtiofs;  // the config's, then the host's
};

// One filesystem init mounts for the workload.
using GuestMount = std::variant<TmpfsMount, VirtiofsMount>;
const std::string& mount_destination(const GuestMount& m);
// The workload's tmpfs and virtio-fs mounts in the order init mounts them:
// parents before children (fewer path components first), so no mount hides
// one made before it; at equal depth the config's tmpfs, then its virtio-fs
// entries, then the host's volumes, each in their own order.
std::vector<GuestMount> mount_order(const Workload& w);

// libkrun's rules (control_protocol.h): non-empty host args win, a host
// workdir wins, host env entries are added and win on equal keys, host rlimits
// are applied after the config's, host volumes are mounted besides the
// config's mounts.
Workload merge_workload(const ImageConfig& image, const ExecMessage* host);

// Sets KEY=VALUE in an environment list: replaces the first entry with that
// key in place, or appends. Later duplicates of the key are dropped.
void env_set(std::vector<std::string>& env, std::string_view entry);
// The value of KEY, if set.
std::optional<std::string_view> env_get(const std::vector<std::string>& env, std::string_view key);

}  // namespace krunlet::init
