// The exported libkrun C ABI. Each function validates its arguments, updates
// the context, and returns 0 or -errno; no exception crosses this boundary.
// Only krun_start_enter ends the process, with the workload's exit code.
#include "libkrun.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "base/control_protocol.h"
#include "capi/context.h"
#include "sandbox/privileges.h"
#include "vmm/terminal.h"
#include "vmm/vm.h"
#include "vmm/port_specs.h"
#include "vmm/volumes.h"

extern char** environ;

namespace {

using krunlet::capi::Context;
using krunlet::capi::ContextTable;
using krunlet::PortForward;
using krunlet::VsockPort;
using krunlet::parse_port_forward;
namespace control = krunlet::control;

constexpr uint32_t kMaxVcpus = 16;
constexpr uint32_t kMinRamMib = 32;
constexpr uint32_t kMaxRamMib = 256 * 1024;
constexpr size_t kMaxTagLen = 36;  // virtio 1.2 §5.11.4: tag is 36 bytes

void log_error(const std::string& msg) { krunlet::capi::log_at(KRUN_LOG_LEVEL_ERROR, msg); }

// Runs fn and turns any exception (allocation failure) into -ENOMEM.
template <class Fn>
int32_t guarded(Fn&& fn) noexcept {
    try {
        return fn();
    } catch (...) {
        return -ENOMEM;
    }
}

std::vector<std::string> string_list(const char* const* list) {
    std::vector<std::string> out;
    for (; list != nullptr && *list != nullptr; ++list) out.emplace_back(*list);
    return out;
}

int32_t check_dir(const char* path, const char* what) {
    if (path == nullptr || *path == '\0') return -EINVAL;
    struct stat st{};
    if (::stat(path, &st) != 0) {
        int e = errno;
        log_error(std::string(what) + " " + path + ": " + std::strerror(e));
        return -e;
    }
    if (!S_ISDIR(st.st_mode)) {
        log_error(std::string(what) + " " + path + " is not a directory");
        return -ENOTDIR;
    }
    return 0;
}

int32_t add_share(uint32_t ctx_id, const char* tag, const char* path, bool read_only) {
    if (tag == nullptr || *tag == '\0' || std::strlen(tag) > kMaxTagLen) return -EINVAL;
    if (int32_t r = check_dir(path, "virtio-fs share"); r != 0) return r;
    // log_error takes the table's lock: never call it inside with().
    int32_t rc = ContextTable::instance().with(ctx_id, [&](Context& c) {
        for (auto& s : c.config.shares) {
            if (s.tag == tag) {
                s.host_dir = path;
                s.read_only = read_only;
                return 0;
            }
        }
        if (c.config.shares.size() >= krunlet::max_fs_shares()) return -ENOSPC;  // said below, outside the lock
        krunlet::FsShare share{tag, path, read_only};
        // The root always goes first: it gets the first virtio-mmio slot.
        if (share.tag == KRUN_FS_ROOT_TAG)
            c.config.shares.insert(c.config.shares.begin(), share);
        else
            c.config.shares.push_back(share);
        return 0;
    });
    if (rc == -ENOSPC)
        log_error(std::string("virtio-fs share ") + path + ": at most " + std::to_string(krunlet::max_fs_shares()) +
                  " shares fit, the root filesystem included");
    return rc;
}

bool valid_rlimit(const std::string& s) {
    // "ID=CUR:MAX", all decimal.
    auto eq = s.find('='), colon = s.find(':');
    if (eq == std::string::npos || colon == std::string::npos || eq == 0 || colon < eq + 2 ||
        colon + 1 >= s.size())
        return false;
    auto digits = [](std::string_view v) {
        return !v.empty() && v.find_first_not_of("0123456789") == std::string_view::npos;
    };
    std::string_view v(s);
    return digits(v.substr(0, eq)) && digits(v.substr(eq + 1, colon - eq - 1)) && digits(v.substr(colon + 1));
}

void print_boot_trace(const krunlet::BootTrace& t) {
    auto ms = [](uint64_t a, uint64_t b) { return (b > a && a != 0) ? double(b - a) / 1e6 : 0.0; };
    std::fprintf(stderr,
                 "boot-trace: setup_ms=%.3f kernel_ms=%.3f init_ms=%.3f workload_ms=%.3f init_to_exit_ms=%.3f "
                 "total_ms=%.3f\n",
                 ms(t.start_ns, t.first_run_ns), ms(t.first_run_ns, t.init_ns), ms(t.init_ns, t.workload_ns),
                 ms(t.workload_ns, t.end_ns), ms(t.init_ns, t.end_ns), ms(t.start_ns, t.end_ns));
}

}  // namespace

extern "C" {

int32_t krun_set_log_level(uint32_t level) {
    if (level > KRUN_LOG_LEVEL_TRACE) return -EINVAL;
    ContextTable::instance().set_log_level(level);
    return 0;
}

int32_t krun_create_ctx(void) {
    return guarded([] {
        auto ctx = std::make_unique<Context>();
        ctx->created_ns = krunlet::monotonic_ns();
        // crun >= 1.21 creates the context with its own environment on the
        // host; krun_start_enter reads the container's too (it wins).
        ctx->fs_cache_env = krunlet::fs_cache_knobs_from_env();
        // Find the kernel now. Usually it is the one built into
        // libkrunlet-kernel.so.1, already mapped by the loader (free); a file
        // ($KRUNLET_KERNEL) is mapped here because crun >= 1.21 calls this on
        // the host, before the container's mount namespace hides it.
        auto k = krunlet::KernelFile::open_default();
        if (k.ok())
            ctx->kernel.emplace(std::move(k).value());
        else
            ctx->kernel_error = k.error().message;
        return ContextTable::instance().create(std::move(ctx));
    });
}

int32_t krun_free_ctx(uint32_t ctx_id) {
    return ContextTable::instance().take(ctx_id) ? 0 : -ENOENT;
}

int32_t krun_set_vm_config(uint32_t ctx_id, uint8_t num_vcpus, uint32_t ram_mib) {
    if (num_vcpus == 0 || num_vcpus > kMaxVcpus) {
        log_error("vCPU count must be 1.." + std::to_string(kMaxVcpus));
        return -EINVAL;
    }
    if (ram_mib < kMinRamMib || ram_mib > kMaxRamMib) {
        log_error("guest RAM must be " + std::to_string(kMinRamMib) + ".." + std::to_string(kMaxRamMib) + " MiB");
        return -EINVAL;
    }
    return ContextTable::instance().with(ctx_id, [&](Context& c) {
        c.config.vcpus = num_vcpus;
        c.config.ram_mib = ram_mib;
        return 0;
    });
}

int32_t krun_set_root(uint32_t ctx_id, const char* root_path) {
    return guarded([&] { return add_share(ctx_id, KRUN_FS_ROOT_TAG, root_path, false); });
}

int32_t krun_add_virtiofs(uint32_t ctx_id, const char* c_tag, const char* c_path) {
    return guarded([&] { return add_share(ctx_id, c_tag, c_path, false); });
}

int32_t krun_add_virtiofs2(uint32_t ctx_id, const char* c_tag, const char* c_path, uint64_t) {
    return guarded([&] { return add_share(ctx_id, c_tag, c_path, false); });
}

int32_t krun_add_virtiofs3(uint32_t ctx_id, const char* c_tag, const char* c_path, uint64_t, bool read_only) {
    return guarded([&] { return add_share(ctx_id, c_tag, c_path, read_only); });
}

int32_t krun_set_exec(uint32_t ctx_id, const char* exec_path, const char* const argv[], const char* const envp[]) {
    if (exec_path == nullptr || *exec_path == '\0') return -EINVAL;
    return guarded([&] {
        std::vector<std::string> args{exec_path};
        for (auto& a : string_list(argv)) args.push_back(std::move(a));
        auto env = string_list(envp != nullptr ? envp : environ);
        return ContextTable::instance().with(ctx_id, [&](Context& c) {
            c.config.workload.args = std::move(args);
            c.config.workload.env = std::move(env);
            return 0;
        });
    });
}

int32_t krun_set_env(uint32_t ctx_id, const char* const envp[]) {
    return guarded([&] {
        auto env = string_list(envp != nullptr ? envp : environ);
        for (const auto& e : env)
            if (e.find('=') == std::string::npos || e.front() == '=') return -EINVAL;
        return ContextTable::instance().with(ctx_id, [&](Context& c) {
            c.config.workload.env = std::move(env);
            return 0;
        });
    });
}

int32_t krun_set_workdir(uint32_t ctx_id, const char* workdir_path) {
    if (workdir_path == nullptr || *workdir_path == '\0') return -EINVAL;
    return guarded([&] {
        return ContextTable::instance().with(ctx_id, [&](Context& c) {
            c.config.workload.workdir = workdir_path;
            return 0;
        });
    });
}

int32_t krun_set_rlimits(uint32_t ctx_id, const char* const rlimits[]) {
    return guarded([&] {
        auto list = string_list(rlimits);
        for (const auto& r : list) {
            if (!valid_rlimit(r)) {
                log_error("bad rlimit \"" + r + "\": use RESOURCE=CUR:MAX with numbers, e.g. 7=1024:4096");
                return -EINVAL;
            }
        }
        return ContextTable::instance().with(ctx_id, [&](Context& c) {
            c.config.workload.rlimits = std::move(list);
            return 0;
        });
    });
}

int32_t krun_set_console_output(uint32_t ctx_id, const char* c_filepath) {
    if (c_filepath == nullptr || *c_filepath == '\0') return -EINVAL;
    return guarded([&] {
        krunlet::UniqueFd fd(::open(c_filepath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (!fd.valid()) {
            int e = errno;
            log_error(std::string("console output ") + c_filepath + ": " + std::strerror(e));
            return -e;
        }
        return ContextTable::instance().with(ctx_id, [&](Context& c) {
            c.console_out_file = std::move(fd);
            c.config.console_out = c.console_out_file.get();
            c.config.console_in = -1;  // libkrun ignores stdin in this mode
            return 0;
        });
    });
}

int32_t krun_setuid(uint32_t ctx_id, uid_t uid) {
    if (uid == static_cast<uid_t>(-1)) return -EINVAL;
    return ContextTable::instance().with(ctx_id, [&](Context& c) {
        c.run_as_uid = uid;
        return 0;
    });
}

int32_t krun_setgid(uint32_t ctx_id, gid_t gid) {
    if (gid == static_cast<gid_t>(-1)) return -EINVAL;
    return ContextTable::instance().with(ctx_id, [&](Context& c) {
        c.run_as_gid = gid;
        return 0;
    });
}

int32_t krun_add_vsock_port2(uint32_t ctx_id, uint32_t port, const char* c_filepath, bool listen) {
    if (c_filepath == nullptr || *c_filepath == '\0') return -EINVAL;
    return guarded([&] {
        std::string path = c_filepath;
        if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
            log_error("vsock port " + std::to_string(port) + ": socket path '" + path + "' is longer than " +
                      std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes; use a shorter one");
            return -ENAMETOOLONG;
        }
        if (port == control::kControlPort || port == 0xffffffffu) {
            log_error("vsock port " + std::to_string(port) + " is reserved (krunlet's control port or VMADDR_PORT_ANY)");
            return -EINVAL;
        }
        return ContextTable::instance().with(ctx_id, [&](Context& c) {
            for (const VsockPort& p : c.config.vsock_ports) {
                if (p.port == port && p.listen == listen) return -EEXIST;
                if (p.path == path) return -EEXIST;
            }
            c.config.vsock_ports.push_back(VsockPort{port, std::move(path), listen});
            return 0;
        });
    });
}

int32_t krun_add_vsock_port(uint32_t ctx_id, uint32_t port, const char* c_filepath) {
    return krun_add_vsock_port2(ctx_id, port, c_filepath, false);
}

int32_t krun_set_port_map(uint32_t ctx_id, const char* const port_map[]) {
    return guarded([&] {
        std::vector<PortForward> ports;
        for (const auto& spec : string_list(port_map)) {
            auto f = parse_port_forward(spec);
            if (!f.ok()) {
                log_error(f.error().message);
                return -EINVAL;
            }
            ports.push_back(*f);
        }
        return ContextTable::instance().with(ctx_id, [&](Context& c) {
            c.config.net.ports = std::move(ports);
            c.config.net.port_map_given = true;  // even empty: no mirroring of guest listeners
            return 0;
        });
    });
}

int32_t krun_add_net_unixstream(uint32_t ctx_id, const char* c_path, int fd, uint8_t* const c_mac, uint32_t features,
                                uint32_t flags) {
    return guarded([&]() -> int32_t {
        // Exactly one of a path to connect to and a connected socket.
        if ((c_path == nullptr) == (fd < 0)) {
            log_error("krun_add_net_unixstream: give either a socket path or a connected fd, not both or neither");
            return -EINVAL;
        }
        if (const uint32_t unknown = features & ~uint32_t{COMPAT_NET_FEATURES}; unknown != 0) {
            char bits[16];
            std::snprintf(bits, sizeof bits, "0x%x", unknown);
            log_error(std::string("krun_add_net_unixstream: unknown feature bits ") + bits +
                      " (known: the NET_FEATURE_* of libkrun.h)");
            return -EINVAL;
        }
        if ((flags & NET_FLAG_VFKIT) != 0) {
            log_error("krun_add_net_unixstream: NET_FLAG_VFKIT is the datagram socket handshake; a stream socket has none");
            return -EINVAL;
        }
        if ((flags & NET_FLAG_DHCP_CLIENT) != 0) {
            // crun asks for it first and retries without it on -EINVAL: only a warning.
            if (ContextTable::instance().log_level() >= KRUN_LOG_LEVEL_WARN)
                std::fprintf(stderr, "krunlet: krun_add_net_unixstream: NET_FLAG_DHCP_CLIENT is not supported: init gives "
                                     "eth0 a static address (10.0.2.15/24 via 10.0.2.2, see docs/networking.md); call "
                                     "again without it\n");
            return -EINVAL;
        }
        if (flags != 0) {
            log_error("krun_add_net_unixstream: unknown flags 0x" + std::to_string(flags));
            return -EINVAL;
        }
        krunlet::NetConfig net;
        if (c_mac != nullptr) {
            std::copy(c_mac, c_mac + 6, net.mac.begin());
            if ((net.mac[0] & 1) != 0 || std::all_of(net.mac.begin(), net.mac.end(), [](uint8_t b) { return b == 0; })) {
                log_error("krun_add_net_unixstream: the MAC address must be a unicast, non-zero address");
                return -EINVAL;
            }
        }
        krunlet::UniqueFd owned;
        if (c_path != nullptr) {
            size_t len = std::strlen(c_path);
            if (len == 0 || len >= sizeof(sockaddr_un{}.sun_path)) {
                log_error(std::string("krun_add_net_unixstream: socket path \"") + c_path + "\" must be 1.." +
                          std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes long");
                return len == 0 ? -EINVAL : -ENAMETOOLONG;
            }
            net.unixstream_path = c_path;
        } else {
            int type = 0;
            socklen_t tlen = sizeof type;
            if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0) {
                int e = errno;
                log_error("krun_add_net_unixstream: fd " + std::to_string(fd) + ": " + std::strerror(e) +
                          " (give a connected stream socket, such as passt's)");
                return -e;
            }
            if (type != SOCK_STREAM) {
                log_error("krun_add_net_unixstream: fd " + std::to_string(fd) + " is not a stream socket");
                return -EINVAL;
            }
            // The context keeps its own copy: the caller may close theirs (libkrun takes ownership of
            // it; a copy serves both conventions).
            owned = krunlet::UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
            if (!owned.valid()) return -errno;
        }
        net.enabled = true;
        net.backend = krunlet::NetBackendKind::UnixStream;
        net.tx_checksum = (features & NET_FEATURE_CSUM) != 0;
        int32_t rc = ContextTable::instance().with(ctx_id, [&](Context& c) {
            if (c.config.net.enabled && c.config.net.backend == krunlet::NetBackendKind::UnixStream) return -EEXIST;
            // Keep what other calls set (a port map is passt's business, but harmless).
            net.ports = std::move(c.config.net.ports);
            net.port_map_given = c.config.net.port_map_given;
            net.unixstream_fd = owned.get();
            c.net_fd = std::move(owned);
            c.config.net = std::move(net);
            return 0;
        });
        if (rc == -EEXIST) log_error("krun_add_net_unixstream: the VM already has its one network device");
        return rc;
    });
}

int32_t krunlet_set_net(uint32_t ctx_id, const char* mode) {
    if (mode == nullptr) return -EINVAL;
    std::string m = mode;
    if (m != "slirp" && m != "none") {
        log_error("network \"" + m + "\": use slirp or none");
        return -EINVAL;
    }
    return ContextTable::instance().with(ctx_id, [&](Context& c) {
        c.config.net.enabled = m == "slirp";
        return 0;
    });
}

int32_t krun_get_max_vcpus(void) { return int32_t(kMaxVcpus); }

int32_t krunlet_set_boot_trace(uint32_t ctx_id, bool enabled) {
    return ContextTable::instance().with(ctx_id, [&](Context& c) {
        c.boot_trace = enabled;
        return 0;
    });
}

int32_t krunlet_set_kernel_cmdline(uint32_t ctx_id, const char* extra) {
    if (extra == nullptr) return -EINVAL;
    return guarded([&] {
        return ContextTable::instance().with(ctx_id, [&](Context& c) {
            c.config.kernel_cmdline_extra = extra;
            return 0;
        });
    });
}

int32_t krunlet_add_virtiofs_mount(uint32_t ctx_id, const char* c_tag, const char* guest_path, bool read_only) {
    if (c_tag == nullptr || guest_path == nullptr) return -EINVAL;
    return guarded([&] {
        std::string tag = c_tag, path = guest_path;
        if (const char* why = krunlet::control::mount_tag_problem(tag)) {
            log_error("guest mount of tag '" + tag + "': " + why);
            return -EINVAL;
        }
        if (const char* why = krunlet::control::mount_path_problem(path)) {
            log_error("guest mount of tag '" + tag + "' on '" + path + "': " + why);
            return -EINVAL;
        }
        if (tag == KRUN_FS_ROOT_TAG) {
            log_error("guest mount on " + path + ": " KRUN_FS_ROOT_TAG " is the root filesystem, already mounted at /");
            return -EINVAL;
        }
        int32_t rc = ContextTable::instance().with(ctx_id, [&](Context& c) {
            auto& mounts = c.config.workload.mounts;
            if (mounts.size() >= krunlet::control::kMaxMounts) return -E2BIG;
            mounts.push_back(krunlet::VolumeMount{tag, path, read_only});
            return 0;
        });
        if (rc == -E2BIG)
            log_error("guest mount on " + path + ": at most " + std::to_string(krunlet::control::kMaxMounts) +
                      " guest mounts");
        return rc;
    });
}

int32_t krunlet_set_fs_cache(uint32_t ctx_id, const char* policy, const char* entry_timeout,
                             const char* attr_timeout) {
    return guarded([&] {
        krunlet::FsCacheKnobs k;
        for (auto [name, value, dst] : {std::tuple{"policy", policy, &k.policy},
                                        std::tuple{"entry_timeout", entry_timeout, &k.entry_timeout},
                                        std::tuple{"attr_timeout", attr_timeout, &k.attr_timeout}}) {
            if (value == nullptr) continue;
            if (auto r = krunlet::check_program_knob(name, value); !r) {
                log_error(r.error().message);
                return -EINVAL;
            }
            *dst = value;
        }
        return ContextTable::instance().with(ctx_id, [&](Context& c) {
            c.fs_cache = krunlet::overlay(c.fs_cache, k);
            return 0;
        });
    });
}

int32_t krun_start_enter(uint32_t ctx_id) {
    std::unique_ptr<Context> ctx = ContextTable::instance().take(ctx_id);
    if (!ctx) return -ENOENT;
    int code = krunlet::kExitVmmError;
    try {
        auto& cfg = ctx->config;
        cfg.log_level = int(ContextTable::instance().log_level());
        if (cfg.shares.empty() || cfg.shares.front().tag != KRUN_FS_ROOT_TAG) {
            log_error("no root filesystem: call krun_set_root (or krun_add_virtiofs with tag /dev/root)");
            return -EINVAL;
        }
        if (auto r = krunlet::check_shares_and_mounts(cfg); !r) {
            log_error(r.error().message);
            return -r.error().code;
        }
        // The environment now (inside the container, for crun) over the one
        // krun_create_ctx saw; what the program set wins over both.
        auto env = krunlet::overlay(ctx->fs_cache_env, krunlet::fs_cache_knobs_from_env());
        auto fs_cache = krunlet::resolve_fs_cache(ctx->fs_cache, env);
        if (!fs_cache) {
            log_error(fs_cache.error().message);
            return -fs_cache.error().code;
        }
        cfg.fs_cache = *fs_cache;
        if (!ctx->kernel) {
            auto k = krunlet::KernelFile::open_default();
            if (!k.ok()) {
                log_error(ctx->kernel_error.empty() ? k.error().message : ctx->kernel_error);
                return -k.error().code;
            }
            ctx->kernel.emplace(std::move(k).value());
        }
        if (!ctx->kernel->intact()) {
            log_error("the guest kernel's pages went to a VM that failed to start in this process; "
                      "krun_start_enter starts one VM per process: start a new process");
            return -EINVAL;
        }
        cfg.kernel = ctx->kernel->bytes();
        // This call never returns on success, so nothing reads the kernel
        // again: guest RAM takes its pages instead of a copy (both kinds of
        // KernelFile are private read-only file mappings).
        cfg.kernel_pages_movable = true;
        // krun_set_kernel's words go after krunlet_set_kernel_cmdline's (later words win).
        if (!ctx->set_kernel_cmdline.empty()) {
            if (!cfg.kernel_cmdline_extra.empty()) cfg.kernel_cmdline_extra += ' ';
            cfg.kernel_cmdline_extra += ctx->set_kernel_cmdline;
        }
        // This process is now the VMM: a console reader that goes away must
        // give the console device EPIPE, not kill us.
        ::signal(SIGPIPE, SIG_IGN);
        auto vm = krunlet::Vm::create(cfg, ctx->created_ns);
        if (!vm.ok()) {
            log_error(vm.error().message);
            return -vm.error().code;
        }
        // The kernel is in guest RAM now, and this process runs no other VM:
        // what was not moved need not stay in this VMM's page tables.
        ctx->kernel->release_pages();
        // Everything that needs the caller's privileges is open; the guest has
        // not run yet, and no thread has a seccomp filter (which would refuse
        // set*id). The virtio-fs server notices the lost capabilities and
        // creates files as these ids from now on (docs/security.md).
        if (auto r = krunlet::sandbox::drop_privileges(ctx->run_as_uid, ctx->run_as_gid); !r) {
            log_error(r.error().message);
            return -r.error().code;
        }
        krunlet::VmOutcome outcome;
        {
            krunlet::RawTerminal raw(cfg.console_in);
            // This thread never returns to the caller: it is filtered too.
            outcome = (*vm)->run(krunlet::VmRunOptions{.sandbox_caller = true});
        }
        const char* env_trace = std::getenv("KRUNLET_BOOT_TRACE");
        if (ctx->boot_trace || (env_trace != nullptr && std::strcmp(env_trace, "1") == 0))
            print_boot_trace(outcome.trace);
        if (!outcome.status_from_guest) log_error(outcome.reason);
        code = outcome.exit_code;
    } catch (...) {
        log_error("out of memory while starting the VM");
    }
    std::fflush(stdout);
    std::exit(code);
}

}  // extern "C"
