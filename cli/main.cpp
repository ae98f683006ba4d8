// krunlet: run a command from a container root filesystem in a microVM.
//
//   krunlet run [--cpus N] [--memory MIB] [--env K=V]... [--workdir DIR]
//               [--volume HOST:GUEST[:ro]]... [--fs-cache never|auto|always]
//               [--fs-entry-timeout S] [--fs-attr-timeout S]
//               [--boot-trace] ROOTFS [--] COMMAND [ARG...]
//
// Everything goes through the libkrun C API, the same calls crun makes, so
// the CLI doubles as a test of that ABI. The exit status is the workload's.
// The command line itself is parsed in options.cpp.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli/options.h"
#include "libkrun.h"

namespace {

using krunlet::cli::RunOptions;

constexpr int kUsageError = 125;  // like podman/crun: the runtime itself failed

int fail(const std::string& msg) {
    std::fprintf(stderr, "krunlet: %s\n", msg.c_str());
    return kUsageError;
}

// The library reports its own errors on stderr at log level 1 (error);
// a call that failed without saying why still gets a line here.
int check(int32_t rc, const std::string& call) {
    if (rc < 0) {
        std::fprintf(stderr, "krunlet: %s failed: %s\n", call.c_str(), std::strerror(-rc));
        return kUsageError;
    }
    return 0;
}

int run(const RunOptions& o) {
    struct stat st{};
    if (::stat(o.rootfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return fail("rootfs " + o.rootfs + " is not a directory: pass the path of an unpacked container root filesystem");
    // Without a COMMAND the image's own (crun's /.krun_config.json) runs.
    bool has_config = ::access((o.rootfs + "/.krun_config.json").c_str(), F_OK) == 0;
    if (o.command.empty() && !has_config)
        return fail("no command given: use krunlet run ROOTFS -- COMMAND [ARG...]");

    if (int r = check(krun_set_log_level(uint32_t(o.log_level)), "krun_set_log_level")) return r;
    int32_t ctx = krun_create_ctx();
    if (int r = check(ctx, "krun_create_ctx")) return r;
    auto id = uint32_t(ctx);
    if (int r = check(krun_set_vm_config(id, uint8_t(o.cpus), uint32_t(o.memory_mib)), "krun_set_vm_config")) return r;
    if (int r = check(krun_set_root(id, o.rootfs.c_str()), "krun_set_root")) return r;

    // Each volume: a share under a generated tag, and init mounts it.
    for (size_t i = 0; i < o.volumes.size(); ++i) {
        const auto& v = o.volumes[i];
        std::string tag = krunlet::cli::volume_tag(i);
        std::string what = "--volume " + v.host + ":" + v.guest + (v.read_only ? ":ro" : "") + ": ";
        if (int r = check(krun_add_virtiofs3(id, tag.c_str(), v.host.c_str(), 0, v.read_only), what + "krun_add_virtiofs3"))
            return r;
        if (int r = check(krunlet_add_virtiofs_mount(id, tag.c_str(), v.guest.c_str(), v.read_only),
                          what + "krunlet_add_virtiofs_mount"))
            return r;
    }
    for (const auto& v : o.vsock_ports) {
        std::string what = "--vsock-port " + std::to_string(v.port) + ":" + v.path + (v.listen ? ":listen" : "") + ": ";
        if (int r = check(krun_add_vsock_port2(id, v.port, v.path.c_str(), v.listen), what + "krun_add_vsock_port2"))
            return r;
    }
    if (o.net == "passt") {
        // The frames go to passt, which also does the port forwarding (its -t option).
        if (int r = check(krun_add_net_unixstream(id, o.net_socket.c_str(), -1, nullptr, NET_FEATURE_CSUM, 0),
                          "--net passt:" + o.net_socket + ": krun_add_net_unixstream"))
            return r;
    } else if (int r = check(krunlet_set_net(id, o.net.c_str()), "--net " + o.net + ": krunlet_set_net")) {
        return r;
    }
    if (!o.publish.empty()) {
        std::vector<const char*> map;
        for (const auto& p : o.publish) map.push_back(p.c_str());
        map.push_back(nullptr);
        if (int r = check(krun_set_port_map(id, map.data()), "--publish: krun_set_port_map")) return r;
    }
    // Flags win over KRUNLET_FS_*; the library reads those at start.
    if (o.fs_cache || o.fs_entry_timeout || o.fs_attr_timeout) {
        auto c_str = [](const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; };
        if (int r = check(krunlet_set_fs_cache(id, c_str(o.fs_cache), c_str(o.fs_entry_timeout), c_str(o.fs_attr_timeout)),
                          "krunlet_set_fs_cache"))
            return r;
    }

    // The guest gets only what was asked for, plus TERM for a terminal; init
    // supplies PATH and HOME defaults.
    std::vector<std::string> env = o.env;
    if (const char* term = std::getenv("TERM"); term != nullptr && ::isatty(0) != 0)
        env.insert(env.begin(), std::string("TERM=") + term);
    std::vector<const char*> envp;
    for (const auto& e : env) envp.push_back(e.c_str());
    envp.push_back(nullptr);
    if (!o.command.empty()) {
        std::vector<const char*> argv;
        for (size_t i = 1; i < o.command.size(); ++i) argv.push_back(o.command[i].c_str());
        argv.push_back(nullptr);
        if (int r = check(krun_set_exec(id, o.command[0].c_str(), argv.data(), envp.data()), "krun_set_exec"))
            return r;
    } else if (!env.empty()) {
        if (int r = check(krun_set_env(id, envp.data()), "krun_set_env")) return r;
    }
    if (!o.workdir.empty())
        if (int r = check(krun_set_workdir(id, o.workdir.c_str()), "krun_set_workdir")) return r;
    if (o.boot_trace)
        if (int r = check(krunlet_set_boot_trace(id, true), "krunlet_set_boot_trace")) return r;
    if (!o.kernel_cmdline.empty())
        if (int r = check(krunlet_set_kernel_cmdline(id, o.kernel_cmdline.c_str()), "krunlet_set_kernel_cmdline"))
            return r;

    // Returns only when the VM could not start; the library has already said
    // why in one line on stderr.
    krun_start_enter(id);
    return kUsageError;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv, argv + argc);
    auto parsed = krunlet::cli::parse_command_line(args);
    std::fputs(parsed.out.c_str(), stdout);
    std::fputs(parsed.err.c_str(), stderr);
    if (!parsed.run) return parsed.exit_code;
    return run(*parsed.run);
}
