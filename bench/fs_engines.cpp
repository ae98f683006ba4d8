#include "fs_engines.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <deque>
#include <functional>
#include <thread>

#include "child_process.h"
#include "fs_workload.h"
#include "proc_cpu.h"

namespace krunlet::bench {
namespace {

using Sampler = std::function<Result<PhaseCpu>()>;

// Open descriptors of `pid` (for --verbose: each inode the guest holds is one in the server).
size_t fd_count(pid_t pid) {
    std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return 0;
    size_t n = 0;
    while (const dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
    return n;
}

constexpr const char* kQemuTag = "fsbench-root";

PhaseCpu minus(const PhaseCpu& a, const PhaseCpu& b) {
    return {a.server_s - b.server_s, a.vmm_other_s - b.vmm_other_s, a.vcpu_s - b.vcpu_s};
}

// "K=V K=V ..." into a map; values that are not numbers are skipped.
void parse_pairs(const std::string& s, std::map<std::string, double>& out) {
    size_t pos = 0;
    while (pos < s.size()) {
        size_t end = s.find(' ', pos);
        if (end == std::string::npos) end = s.size();
        std::string kv = s.substr(pos, end - pos);
        if (auto eq = kv.find('='); eq != std::string::npos && eq > 0) {
            char* stop = nullptr;
            double v = std::strtod(kv.c_str() + eq + 1, &stop);
            if (stop != kv.c_str() + eq + 1 && *stop == '\0') out[kv.substr(0, eq)] = v;
        }
        pos = end + 1;
    }
}

std::string join_lines(const std::deque<std::string>& lines) {
    std::string s;
    for (const auto& l : lines) s += "  | " + l + "\n";
    return s;
}

// Reads the guest console until the VMM closes it, sampling CPU at every phase marker.
Result<EngineRun> drive(Child& vmm, const Sampler& sample, pid_t server_pid, const EngineConfig& cfg,
                        const std::string& label, Clock::time_point start) {
    EngineRun run;
    const auto deadline = start + std::chrono::seconds(cfg.timeout_s);
    std::map<std::string, PhaseCpu> begun;
    std::deque<std::string> recent;  // for error messages
    bool done = false;
    std::string failure;
    while (auto line = vmm.next_line(deadline)) {
        if (cfg.verbose) std::fprintf(stderr, "[%s] %s\n", label.c_str(), line->c_str());
        recent.push_back(*line);
        if (recent.size() > 30) recent.pop_front();
        auto at = line->find("fsbench ");
        if (at == std::string::npos) continue;
        std::string msg = line->substr(at + 8);
        auto word_after = [&](size_t n) { return msg.substr(n, msg.find(' ', n) - n); };
        if (msg.rfind("begin ", 0) == 0 || msg.rfind("end ", 0) == 0) {
            bool begin = msg[0] == 'b';
            std::string phase = word_after(begin ? 6 : 4);
            auto s = sample();
            if (!s.ok()) return make_error(s.error().code, label + ": sampling CPU time: " + s.error().message);
            if (cfg.verbose)
                std::fprintf(stderr, "[%s] host: server CPU %.3f s, vCPUs %.3f s, server fds %zu\n", label.c_str(),
                             s->server_s, s->vcpu_s, fd_count(server_pid));
            if (begin)
                begun[phase] = *s;
            else if (auto it = begun.find(phase); it != begun.end())
                run.cpu[phase] = minus(*s, it->second);
        } else if (msg.rfind("result ", 0) == 0) {
            std::string phase = word_after(7);
            parse_pairs(msg.substr(7 + phase.size()), run.results[phase]);
        } else if (msg.rfind("info ", 0) == 0) {
            // "cmdline=" and "root_mount=" take the rest of the line; other lines hold K=V pairs.
            std::string rest = msg.substr(5);
            for (size_t pos = 0; pos < rest.size();) {
                size_t eq = rest.find('=', pos);
                if (eq == std::string::npos) break;
                std::string key = rest.substr(pos, eq - pos);
                bool whole = key == "cmdline" || key == "root_mount";
                size_t end = whole ? rest.size() : std::min(rest.find(' ', eq), rest.size());
                run.info[key] = rest.substr(eq + 1, end - eq - 1);
                pos = end + 1;
            }
        } else if (msg == "done") {
            done = true;
        } else if (msg.rfind("failed: ", 0) == 0) {
            failure = msg.substr(8);
        }
    }
    if (!vmm.stdout_eof()) {
        vmm.kill_and_wait();
        return make_error(ETIMEDOUT, label + ": no end after " + std::to_string(cfg.timeout_s) +
                                         " s (raise --timeout); last console lines:\n" + join_lines(recent));
    }
    auto status = vmm.wait_until(Clock::now() + std::chrono::seconds(30));
    if (!status) status = vmm.kill_and_wait();
    run.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    if (!failure.empty()) return make_error(EIO, label + ": the guest workload failed: " + failure);
    if (!done || *status != 0)
        return make_error(EIO, label + " ended with status " + std::to_string(*status) +
                                   (done ? "" : " before the workload finished") + "; last console lines:\n" +
                                   join_lines(recent) + "stderr:\n" + vmm.stderr_tail());
    return run;
}

std::vector<std::string> guest_argv(const EngineConfig& cfg) {
    std::vector<std::string> v{WorkDir::kGuestBinary};
    v.insert(v.end(), cfg.guest_args.begin(), cfg.guest_args.end());
    return v;
}

// A private directory for virtiofsd's socket, removed with what is in it.
class SocketDir {
public:
    static Result<SocketDir> create() {
        const char* tmp = std::getenv("TMPDIR");
        std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/krunlet-fsbench-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) return errno_error("mkdtemp " + tmpl);
        SocketDir d;
        d.dir_ = tmpl;
        return d;
    }
    SocketDir(SocketDir&& o) noexcept : dir_(std::exchange(o.dir_, std::string())) {}
    SocketDir(const SocketDir&) = delete;
    SocketDir& operator=(const SocketDir&) = delete;
    SocketDir& operator=(SocketDir&&) = delete;
    ~SocketDir() {
        if (dir_.empty()) return;
        (void)remove_tree(dir_);
        // virtiofsd locks its socket with a pid file named after the socket's path, '/' turned
        // into '.', under /run/virtiofsd (its local state dir), and leaves it there.
        std::string name = socket();
        std::replace(name.begin(), name.end(), '/', '.');
        ::unlink(("/run/virtiofsd/" + name + ".pid").c_str());
    }
    std::string socket() const { return dir_ + "/virtiofsd.sock"; }

private:
    SocketDir() = default;
    std::string dir_;
};

Result<void> wait_for_socket(const std::string& path, Child& owner) {
    auto until = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < until) {
        struct stat st{};
        if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return ok_result();
        if (owner.wait_until(Clock::now())) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return make_error(EIO, "virtiofsd did not create " + path + "; its stderr:\n" + owner.stderr_tail());
}

}  // namespace

Result<EngineRun> run_krunlet(const EngineConfig& cfg) {
    std::vector<std::string> argv{cfg.krunlet, "run", "--cpus", std::to_string(cfg.cpus), "--memory",
                                  std::to_string(cfg.memory_mib), cfg.rootfs, "--"};
    for (auto& a : guest_argv(cfg)) argv.push_back(a);
    auto start = Clock::now();
    auto child = Child::spawn(argv, true);
    if (!child.ok()) return child.error();
    Child& vmm = *child;
    pid_t pid = vmm.pid();
    Sampler sample = [pid]() -> Result<PhaseCpu> {
        auto s = sample_threads(pid, is_krunlet_vcpu);
        if (!s.ok()) return s.error();
        return PhaseCpu{s->other_s, 0, s->matched_s};
    };
    return drive(vmm, sample, pid, cfg, "krunlet", start);
}

Result<EngineRun> run_qemu(const EngineConfig& cfg) {
    auto sock_dir = SocketDir::create();
    if (!sock_dir.ok()) return sock_dir.error();
    std::string sock = sock_dir->socket();
    // Settings that match krunlet's server (docs/bench.md, "What is matched").
    std::vector<std::string> vfs_argv{cfg.virtiofsd,
                                      "--socket-path=" + sock,
                                      "--thread-pool-size=0",
                                      "-o", "source=" + cfg.rootfs,
                                      "-o", "cache=auto",
                                      "-o", "sandbox=chroot",
                                      "-o", "xattr",
                                      "-o", "no_killpriv_v2",
                                      "-o", "no_posix_lock",
                                      "-o", "no_flock",
                                      "-o", "no_writeback",
                                      "-o", "readdirplus",
                                      "-o", "log_level=warn"};
    auto start = Clock::now();
    auto vfs = Child::spawn(vfs_argv, false);
    if (!vfs.ok()) return vfs.error();
    KRUNLET_CHECK(wait_for_socket(sock, *vfs));

    // No "--" before init's arguments: QEMU appends its virtio_mmio.device= words at the end,
    // and the kernel would hand them to init instead of parsing them. Words the kernel does not
    // know and that hold no '=' (and no '.') go to init's argv anyway, in order; the guest
    // program parses them strictly, so a word the kernel kept for itself shows up as an error.
    std::string append =
        "reboot=t panic=-1 nomodule console=ttyS0 root=" + std::string(kQemuTag) +
        " rootfstype=virtiofs rw quiet no-kvmapf io_delay=none init=" + WorkDir::kGuestBinary + " --pid1";
    for (const auto& a : cfg.guest_args) append += " " + a;
    std::string mem = std::to_string(cfg.memory_mib) + "M";
    std::vector<std::string> qemu_argv{
        cfg.qemu,
        "-M", "microvm,acpi=off,x-option-roms=off,rtc=off,pcie=off,isa-serial=on",
        "-enable-kvm", "-cpu", "host",
        "-smp", std::to_string(cfg.cpus),
        "-m", mem,
        "-object", "memory-backend-memfd,id=mem,size=" + mem + ",share=on",
        "-numa", "node,memdev=mem",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        // Names the vCPU threads "CPU N/KVM", so their time can be told apart.
        "-name", "krunlet-fsbench,debug-threads=on",
        "-serial", "stdio",
        "-kernel", cfg.kernel,
        "-append", append,
        // libvhost-user (virtiofsd) refuses legacy virtio-mmio devices (DESIGN.md §6).
        "-global", "virtio-mmio.force-legacy=false",
        "-chardev", "socket,id=vfs,path=" + sock,
        "-device", std::string("vhost-user-fs-device,chardev=vfs,tag=") + kQemuTag};
    auto qemu = Child::spawn(qemu_argv, true);
    if (!qemu.ok()) return qemu.error();
    pid_t qemu_pid = qemu->pid();
    pid_t vfs_pid = vfs->pid();
    Sampler sample = [qemu_pid, vfs_pid]() -> Result<PhaseCpu> {
        auto server = sample_threads(vfs_pid, [](const std::string&) { return false; });
        if (!server.ok()) return server.error();
        auto vmm = sample_threads(qemu_pid, is_qemu_vcpu);
        if (!vmm.ok()) return vmm.error();
        return PhaseCpu{server->other_s, vmm->other_s, vmm->matched_s};
    };
    auto run = drive(*qemu, sample, vfs_pid, cfg, "qemu", start);
    // virtiofsd leaves when QEMU closes the vhost-user socket.
    if (!vfs->wait_until(Clock::now() + std::chrono::seconds(10))) vfs->kill_and_wait();
    if (!run.ok() && !vfs->stderr_tail().empty())
        return make_error(run.error().code, run.error().message + "virtiofsd stderr:\n" + vfs->stderr_tail());
    return run;
}

std::string qemu_settings_summary() {
    return "QEMU: -M microvm,acpi=off -enable-kvm -cpu host, memfd RAM share=on, vhost-user-fs-device, "
           "serial console, guest program as init.\n"
           "virtiofsd: cache=auto, sandbox=chroot, --thread-pool-size=0 (one serving thread, like krunlet), "
           "xattr, no_killpriv_v2, no_posix_lock, no_flock, no_writeback, readdirplus.";
}

}  // namespace krunlet::bench
