#include "fs_engines.h"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <deque>
#include <functional>

#include "child_process.h"
#include "engine_common.h"
#include "fs_workload.h"
#include "proc_cpu.h"
#include "virtiofsd_process.h"

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

// Reads the guest console until the VMM closes it, sampling CPU at every phase marker.
Result<EngineRun> drive(Child& vmm, const Sampler& sample, pid_t server_pid, const EngineConfig& cfg,
                        const std::string& label, Clock::time_point start) {
    EngineRun run;
    std::map<std::string, PhaseCpu> begun;
    ConsoleReader reader{"fsbench", {"cmdline", "root_mount"}, label, cfg.timeout_s, cfg.verbose,
                         [&](bool begin, const std::string& phase) -> Result<void> {
                             auto s = sample();
                             if (!s.ok())
                                 return make_error(s.error().code, label + ": sampling CPU time: " + s.error().message);
                             if (cfg.verbose)
                                 std::fprintf(stderr, "[%s] host: server CPU %.3f s, vCPUs %.3f s, server fds %zu\n",
                                              label.c_str(), s->server_s, s->vcpu_s, fd_count(server_pid));
                             if (begin)
                                 begun[phase] = *s;
                             else if (auto it = begun.find(phase); it != begun.end())
                                 run.cpu[phase] = minus(*s, it->second);
                             return ok_result();
                         }};
    auto rep = read_console(vmm, start, reader);
    if (!rep.ok()) return rep.error();
    run.results = std::move(rep->results);
    run.info = std::move(rep->info);
    run.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    if (auto end = check_run_end(*rep, vmm, label, "workload", true); !end.ok()) return end.error();
    return run;
}

std::vector<std::string> guest_argv(const EngineConfig& cfg) {
    std::vector<std::string> v{WorkDir::kGuestBinary};
    v.insert(v.end(), cfg.guest_args.begin(), cfg.guest_args.end());
    return v;
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
        auto g = sample_thread_groups(pid, is_krunlet_vcpu, is_krunlet_queue_thread);
        if (!g.ok()) return g.error();
        return PhaseCpu{g->server_s, g->other_s, g->vcpu_s};
    };
    return drive(vmm, sample, pid, cfg, "krunlet", start);
}

Result<EngineRun> run_qemu(const EngineConfig& cfg) {
    auto start = Clock::now();
    auto vfs = Virtiofsd::start(cfg.virtiofsd, cfg.rootfs);
    if (!vfs.ok()) return vfs.error();
    const std::string& sock = vfs->socket();

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
    pid_t vfs_pid = vfs->process().pid();
    Sampler sample = [qemu_pid, vfs_pid]() -> Result<PhaseCpu> {
        auto server = sample_threads(vfs_pid, [](const std::string&) { return false; });
        if (!server.ok()) return server.error();
        auto vmm = sample_threads(qemu_pid, is_qemu_vcpu);
        if (!vmm.ok()) return vmm.error();
        return PhaseCpu{server->other_s, vmm->other_s, vmm->matched_s};
    };
    auto run = drive(*qemu, sample, vfs_pid, cfg, "qemu", start);
    if (!run.ok() && !vfs->process().stderr_tail().empty())
        return make_error(run.error().code,
                          run.error().message + "virtiofsd stderr:\n" + vfs->process().stderr_tail());
    return run;
}

std::string qemu_settings_summary() {
    return "QEMU: -M microvm,acpi=off -enable-kvm -cpu host, memfd RAM share=on, vhost-user-fs-device, "
           "serial console, guest program as init.\n" +
           std::string(virtiofsd_settings_summary());
}

}  // namespace krunlet::bench
