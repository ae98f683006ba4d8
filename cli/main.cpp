// krunlet: run a command from a container root filesystem in a microVM.
//
//   krunlet run [--cpus N] [--memory MIB] [--env K=V]... [--workdir DIR]
//               [--boot-trace] ROOTFS [--] COMMAND [ARG...]
//
// Everything goes through the libkrun C API, the same calls crun makes, so
// the CLI doubles as a test of that ABI. The exit status is the workload's.
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "libkrun.h"

namespace {

constexpr int kUsageError = 125;  // like podman/crun: the runtime itself failed

int fail(const std::string& msg) {
    std::fprintf(stderr, "krunlet: %s\n", msg.c_str());
    return kUsageError;
}

// The library reports its own errors on stderr at log level 1 (error);
// a call that failed without saying why still gets a line here.
int check(int32_t rc, const char* call) {
    if (rc < 0) {
        std::fprintf(stderr, "krunlet: %s failed: %s\n", call, std::strerror(-rc));
        return kUsageError;
    }
    return 0;
}

struct RunOptions {
    int cpus = 1;
    int memory_mib = 512;
    std::vector<std::string> env;
    std::string workdir;
    bool boot_trace = false;
    std::string kernel_cmdline;
    int log_level = 1;
    std::string rootfs;
};

int run(const RunOptions& o, std::vector<std::string> command) {
    if (!command.empty() && command.front() == "--") command.erase(command.begin());
    struct stat st{};
    if (::stat(o.rootfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return fail("rootfs " + o.rootfs + " is not a directory: pass the path of an unpacked container root filesystem");
    // Without a COMMAND the image's own (crun's /.krun_config.json) runs.
    bool has_config = ::access((o.rootfs + "/.krun_config.json").c_str(), F_OK) == 0;
    if (command.empty() && !has_config)
        return fail("no command given: use krunlet run ROOTFS -- COMMAND [ARG...]");
    for (const auto& e : o.env)
        if (e.find('=') == std::string::npos || e.front() == '=')
            return fail("--env " + e + " is not KEY=VALUE");

    if (int r = check(krun_set_log_level(uint32_t(o.log_level)), "krun_set_log_level")) return r;
    int32_t ctx = krun_create_ctx();
    if (int r = check(ctx, "krun_create_ctx")) return r;
    auto id = uint32_t(ctx);
    if (int r = check(krun_set_vm_config(id, uint8_t(o.cpus), uint32_t(o.memory_mib)), "krun_set_vm_config")) return r;
    if (int r = check(krun_set_root(id, o.rootfs.c_str()), "krun_set_root")) return r;

    // The guest gets only what was asked for, plus TERM for a terminal; init
    // supplies PATH and HOME defaults.
    std::vector<std::string> env = o.env;
    if (const char* term = std::getenv("TERM"); term != nullptr && ::isatty(0) != 0)
        env.insert(env.begin(), std::string("TERM=") + term);
    std::vector<const char*> envp;
    for (const auto& e : env) envp.push_back(e.c_str());
    envp.push_back(nullptr);
    if (!command.empty()) {
        std::vector<const char*> argv;
        for (size_t i = 1; i < command.size(); ++i) argv.push_back(command[i].c_str());
        argv.push_back(nullptr);
        if (int r = check(krun_set_exec(id, command[0].c_str(), argv.data(), envp.data()), "krun_set_exec"))
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
    CLI::App app{"krunlet: run a container's command in a KVM microVM"};
    app.require_subcommand(1);
    RunOptions o;
    auto* run_cmd = app.add_subcommand("run", "boot ROOTFS in a microVM and run COMMAND in it");
    run_cmd->add_option("--cpus", o.cpus, "vCPUs (1-16)")->check(CLI::Range(1, 16));
    run_cmd->add_option("--memory", o.memory_mib, "guest RAM in MiB")->check(CLI::Range(32, 262144));
    run_cmd->add_option("--env", o.env, "KEY=VALUE for the workload (repeatable)");
    run_cmd->add_option("--workdir", o.workdir, "working directory inside the guest");
    run_cmd->add_option("--kernel-cmdline", o.kernel_cmdline, "words appended to the guest kernel command line");
    run_cmd->add_option("--log-level", o.log_level, "0 off, 1 error (default), 2 warn, 3 info, 4 debug (guest serial too), 5 trace")
        ->check(CLI::Range(0, 5));
    run_cmd->add_flag("--boot-trace", o.boot_trace, "print boot timing to stderr when the VM ends");
    std::vector<std::string> command;
    run_cmd->add_option("rootfs", o.rootfs, "unpacked container root filesystem")->required();
    run_cmd->add_option("command", command, "the command and its arguments (default: the image's, from /.krun_config.json)");
    // Everything after ROOTFS is the command, options included.
    run_cmd->positionals_at_end();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : kUsageError;
    }
    return run(o, std::move(command));
}
