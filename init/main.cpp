// krunlet's guest init, /init.krun: pid 1 in the microVM.
//
// It sets up the guest (mounts, console, loopback, hostname), learns the
// workload from the host's exec message and the rootfs's /.krun_config.json,
// runs it as a child, reaps every zombie while forwarding the host's signals,
// and reports the exit status over the control channel before it resets the VM.
// Each step lives in its own file; this one only puts them in order and
// decides what is fatal. Exit codes follow DESIGN.md §3.
#include <signal.h>
#include <sys/reboot.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <exception>
#include <optional>
#include <variant>

#include "base/control_protocol.h"
#include "init/config.h"
#include "init/control_channel.h"
#include "init/guest_setup.h"
#include "init/launch.h"
#include "init/listeners.h"
#include "init/log.h"
#include "init/mounts.h"
#include "init/network.h"
#include "init/process.h"
#include "init/supervisor.h"

namespace krunlet::init {
namespace {

using std::chrono::milliseconds;

constexpr const char* kConfigPath = "/.krun_config.json";
// crun writes the whole OCI config (about 10 KB); environments of megabytes
// are legal, so the cap is only a guard against a runaway file.
constexpr size_t kConfigLimit = 64u << 20;
constexpr size_t kPasswdLimit = 16u << 20;
// The host listens before the guest boots; this only covers a vsock device
// that is still settling.
constexpr milliseconds kConnectBudget{1000};
// The host sends "exec" right after accepting; under nested emulation the
// guest can be slow to read it, hence the generous wait.
constexpr milliseconds kExecWait{10000};
// After "exit" the host stops the VM; reset it ourselves if it has not.
constexpr milliseconds kHangupWait{1000};

class Init {
public:
    [[noreturn]] void run();
    // Prints `krunlet-init: <message>`, reports 125 and resets the VM.
    [[noreturn]] void fatal(const std::string& message);

private:
    void connect_control(bool quiet);
    std::optional<ExecMessage> read_exec_message();
    ImageConfig read_image_config();
    UserSpec resolve_user(const Workload& w, std::string& home);
    [[noreturn]] void finish(int code);

    std::optional<ControlChannel> control_;
    bool tried_connect_ = false;
};

void Init::run() {
    announce_start();

    std::vector<std::string> warnings;
    auto mounted = mount_system(warnings);
    // Even without /dev mounted, an existing /dev/console in the image works.
    auto console = open_console();
    if (!console) warnings.push_back(console.error().message + " (init's messages may be lost)");
    for (const std::string& w : warnings) log_warning(w);
    if (!mounted) fatal(mounted.error().message);

    if (auto lo = bring_up_loopback(); !lo) log_warning(lo.error().message);

    connect_control(false);
    std::optional<ExecMessage> host = read_exec_message();
    if (host && !host->tty) {
        if (auto raw = make_console_raw(); !raw) log_warning(raw.error().message);
    }
    ImageConfig image = read_image_config();
    Workload w = merge_workload(image, host ? &*host : nullptr);
    if (w.args.empty())
        fatal("no workload to run: neither the host (krun_set_exec) nor /.krun_config.json "
              "(process.args, or Entrypoint/Cmd) names a command");

    if (auto h = set_hostname(w.hostname); !h) log_warning(h.error().message);
    // The config's tmpfs and virtio-fs mounts and the host's volumes. A
    // volume that cannot be mounted is fatal: the workload would otherwise
    // write into the rootfs what was meant for the host directory.
    for (const GuestMount& m : mount_order(w)) {
        if (const auto* t = std::get_if<TmpfsMount>(&m)) {
            if (tmpfs_is_replaced_by_init(*t)) continue;
            if (auto r = mount_tmpfs(*t); !r) fatal(r.error().message);
        } else if (auto r = mount_virtiofs(std::get<VirtiofsMount>(m)); !r) {
            fatal(r.error().message);
        }
    }

    // After the mounts: /etc may be a volume. A network problem is worth a warning, not the
    // workload.
    const NetSettings net_settings = host && host->net ? *host->net : NetSettings{};
    bool has_eth0 = false;
    if (auto net = configure_eth0(net_settings); !net) {
        log_warning(net.error().message);
    } else if (*net) {
        has_eth0 = true;
        if (auto dns = ensure_resolver(net_settings.dns); !dns) log_warning(dns.error().message);
    }
    // Port mirroring (init/listeners.h): only when the host asked, which it
    // does only when it can forward ports to eth0.
    std::optional<ListenerWatcher> listeners;
    if (has_eth0 && host && host->mirror_ports && control_) {
        if (auto lo = allow_loopback_on_eth0(); !lo) log_warning(lo.error().message);
        listeners.emplace();
    }

    LaunchSpec spec;
    std::string home;
    spec.user = resolve_user(w, home);
    spec.args = std::move(w.args);
    spec.env = finalize_env(std::move(w.env), home, w.terminal);
    spec.cwd = w.cwd;
    spec.rlimits = std::move(w.rlimits);

    // Before the fork, so that no SIGCHLD can slip past the signalfd.
    auto supervisor = Supervisor::create();
    if (!supervisor) fatal(supervisor.error().message);
    announce_workload();
    auto launched = launch(spec);
    if (auto* failure = std::get_if<LaunchFailure>(&launched)) {
        log_line(failure->message);
        finish(failure->exit_code);
    }
    auto status = supervisor->run(std::get<pid_t>(launched), control_ ? &*control_ : nullptr,
                                  listeners ? &*listeners : nullptr);
    if (!status) fatal(status.error().message);
    finish(*status);
}

void Init::connect_control(bool quiet) {
    tried_connect_ = true;
    auto c = ControlChannel::connect(kConnectBudget);
    if (c) {
        control_.emplace(std::move(*c));
        return;
    }
    if (!quiet)
        log_line("control channel: " + c.error().message +
                 "; running /.krun_config.json's workload without the host's settings, and the exit code "
                 "cannot reach the host");
}

std::optional<ExecMessage> Init::read_exec_message() {
    if (!control_) return std::nullopt;
    auto text = control_->wait_message(kExecWait);
    if (!text) fatal("control channel: waiting for the exec message: " + text.error().message);
    auto msg = parse_control_message(*text);
    if (!msg) fatal("control channel: " + msg.error().message);
    auto* exec = std::get_if<ExecMessage>(&*msg);
    if (exec == nullptr)
        fatal("control channel: the host's first message must be {\"type\":\"exec\"}, got: " + text->substr(0, 200));
    return std::move(*exec);
}

ImageConfig Init::read_image_config() {
    auto text = read_file(kConfigPath, kConfigLimit);
    if (!text) {
        if (text.error().code == ENOENT) return {};
        fatal(text.error().message);
    }
    auto config = parse_image_config(*text);
    if (!config) fatal(std::string(kConfigPath) + ": " + config.error().message);
    return std::move(*config);
}

UserSpec Init::resolve_user(const Workload& w, std::string& home) {
    // The image's own files, for Docker-style user names and for HOME; both
    // are optional (busybox images may have no /etc/group).
    auto read_optional = [&](const char* path) -> std::string {
        auto r = read_file(path, kPasswdLimit);
        if (r) return std::move(*r);
        if (r.error().code != ENOENT) log_warning(r.error().message);
        return {};
    };
    std::string passwd = read_optional("/etc/passwd");
    UserSpec user;
    if (w.user) {
        user = *w.user;
    } else {
        std::string group = w.docker_user.empty() ? std::string() : read_optional("/etc/group");
        auto r = resolve_docker_user(w.docker_user, passwd, group);
        if (!r) fatal(std::string(kConfigPath) + ": " + r.error().message);
        user = std::move(*r);
    }
    auto entry = passwd_by_uid(passwd, user.uid);
    home = entry && !entry->home.empty() ? entry->home : "/";
    return user;
}

void Init::fatal(const std::string& message) {
    log_line(message);
    // Even an early failure should reach the host as 125, not as a bare reset.
    if (!tried_connect_) connect_control(true);
    finish(control::kExitInitFailed);
}

void Init::finish(int code) {
    // The workload is gone; what it left running goes with it (and cannot
    // write behind sync()'s back). kill(-1) spares init itself.
    ::kill(-1, SIGKILL);
    ::tcdrain(STDOUT_FILENO);
    ::sync();
    if (control_) {
        if (auto sent = control_->send(exit_message(code)); sent) {
            control_->wait_for_hangup(kHangupWait);
        } else {
            log_line("reporting exit code " + std::to_string(code) + " to the host: " + sent.error().message);
        }
    } else {
        log_line("the workload's exit code is " + std::to_string(code) +
                 " (not reported: there is no control channel)");
        ::tcdrain(STDOUT_FILENO);
    }
    ::reboot(RB_AUTOBOOT);
    // Only reached when the reset is refused (not pid 1, or no CAP_SYS_BOOT):
    // exiting makes the kernel panic, and panic=-1 resets the VM.
    log_line(std::string("reboot: ") + std::strerror(errno));
    ::_exit(code);
}

}  // namespace
}  // namespace krunlet::init

int main() {
    krunlet::init::Init init;
    try {
        init.run();
    } catch (const std::exception& e) {
        // Only allocation can throw here; pid 1 must still report and reset
        // rather than die (which would panic the guest kernel).
        init.fatal(std::string("internal error: ") + e.what());
    }
}
