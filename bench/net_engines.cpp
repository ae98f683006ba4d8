#include "net_engines.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <iterator>

#include "child_process.h"
#include "engine_common.h"
#include "proc_cpu.h"

namespace krunlet::bench {
namespace {

using Sampler = std::function<Result<NetPhaseCpu>()>;

NetPhaseCpu minus(const NetPhaseCpu& a, const NetPhaseCpu& b) {
    return {a.vmm_other_s - b.vmm_other_s, a.vhost_s - b.vhost_s, a.vcpu_s - b.vcpu_s};
}

// CPU seconds of each thread of `pid`, keyed "name/tid" (for --verbose).
std::map<std::string, double> thread_table(pid_t pid) {
    std::map<std::string, double> t;
    std::string dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return t;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::ifstream comm(dir + "/" + e->d_name + "/comm"), sched(dir + "/" + e->d_name + "/schedstat");
        std::string name;
        unsigned long long ns = 0;
        std::getline(comm, name);
        if (sched >> ns) t[name + "/" + e->d_name] = double(ns) / 1e9;
    }
    ::closedir(d);
    return t;
}

// Reads the guest console until the VMM closes it, sampling CPU at every phase marker
// (the guest pauses --settle-ms after each, so the threads are idle when sampled).
Result<NetEngineRun> drive(Child& vmm, const Sampler& sample, const NetEngineConfig& cfg, const std::string& label,
                           Clock::time_point start) {
    NetEngineRun run;
    std::map<std::string, double> threads_at_begin;
    std::map<std::string, NetPhaseCpu> begun;
    ConsoleReader reader{"netbench", {"cmdline"}, label, cfg.timeout_s, cfg.verbose,
                         [&](bool begin, const std::string& phase) -> Result<void> {
                             auto s = sample();
                             if (!s.ok())
                                 return make_error(s.error().code, label + ": sampling CPU time: " + s.error().message);
                             if (begin)
                                 begun[phase] = *s;
                             else if (auto it = begun.find(phase); it != begun.end())
                                 run.cpu[phase] = minus(*s, it->second);
                             if (cfg.verbose && begin) threads_at_begin = thread_table(vmm.pid());
                             if (cfg.verbose && !begin) {
                                 std::string line;
                                 for (const auto& [name, secs] : thread_table(vmm.pid())) {
                                     auto b = threads_at_begin.find(name);
                                     double d = secs - (b == threads_at_begin.end() ? 0 : b->second);
                                     if (d >= 0.0005) line += " " + name + "=" + std::to_string(d).substr(0, 6);
                                 }
                                 std::fprintf(stderr, "[%s] host CPU s by thread in %s:%s\n", label.c_str(),
                                              phase.c_str(), line.c_str());
                             }
                             return ok_result();
                         }};
    auto rep = read_console(vmm, start, reader);
    if (!rep.ok()) return rep.error();
    run.results = std::move(rep->results);
    run.info = std::move(rep->info);
    run.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    // QEMU ends through a guest reboot (reboot=t + -no-reboot), krunlet with the workload's status.
    if (auto end = check_run_end(*rep, vmm, label, "benchmark", label == "krunlet"); !end.ok()) return end.error();
    return run;
}

std::vector<std::string> guest_words(const NetEngineConfig& cfg) {
    std::vector<std::string> v = cfg.bench_args;
    v.push_back("--vsock-port");
    v.push_back(std::to_string(cfg.vsock_port));
    v.push_back("--tcp-port");
    v.push_back(std::to_string(cfg.tcp_port));
    return v;
}

// The vhost worker threads of `qemu_pid`: kernel threads named "vhost-<pid>" (Linux 6.1).
double vhost_cpu(pid_t qemu_pid) {
    const std::string want = "vhost-" + std::to_string(qemu_pid);
    double total = 0;
    DIR* d = ::opendir("/proc");
    if (d == nullptr) return 0;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::ifstream comm(std::string("/proc/") + e->d_name + "/comm");
        std::string name;
        std::getline(comm, name);
        if (name != want) continue;
        if (auto s = sample_threads(pid_t(std::atoi(e->d_name)), [](const std::string&) { return false; }); s.ok())
            total += s->other_s;
    }
    ::closedir(d);
    return total;
}

}  // namespace

Result<NetEngineRun> run_net_krunlet(const NetEngineConfig& cfg) {
    std::vector<std::string> argv{cfg.krunlet,
                                  "run",
                                  "--cpus",
                                  std::to_string(cfg.cpus),
                                  "--memory",
                                  std::to_string(cfg.memory_mib),
                                  "--vsock-port",
                                  std::to_string(cfg.vsock_port) + ":" + cfg.vsock_unix,
                                  cfg.rootfs,
                                  "--",
                                  kNetGuestPath};
    for (auto& w : guest_words(cfg)) argv.push_back(w);
    auto start = Clock::now();
    auto child = Child::spawn(argv, true);
    if (!child.ok()) return child.error();
    pid_t pid = child->pid();
    Sampler sample = [pid]() -> Result<NetPhaseCpu> {
        auto s = sample_threads(pid, is_krunlet_vcpu);
        if (!s.ok()) return s.error();
        return NetPhaseCpu{s->other_s, 0, s->matched_s};
    };
    return drive(*child, sample, cfg, "krunlet", start);
}

Result<NetEngineRun> run_net_qemu(const NetEngineConfig& cfg) {
    // No "--" before init's words: QEMU appends its virtio_mmio.device= words last, and the
    // kernel would hand them to init. Words without '=' or '.' reach init in order.
    std::string append = "reboot=t panic=-1 nomodule console=ttyS0 quiet no-kvmapf io_delay=none rdinit=/init --pid1";
    for (auto& w : guest_words(cfg)) append += " " + w;
    std::string mem = std::to_string(cfg.memory_mib) + "M";
    std::vector<std::string> argv{
        cfg.qemu,
        "-M", "microvm,acpi=off,x-option-roms=off,rtc=off,pcie=off,isa-serial=on",
        "-enable-kvm", "-cpu", "host",
        "-smp", std::to_string(cfg.cpus),
        "-m", mem,
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        // Names the vCPU threads "CPU N/KVM", so their time can be told apart.
        "-name", "krunlet-netbench,debug-threads=on",
        "-serial", "stdio",
        "-kernel", cfg.kernel,
        "-initrd", cfg.initramfs,
        "-append", append,
        "-global", "virtio-mmio.force-legacy=false",
        "-device", "vhost-vsock-device,guest-cid=3",
        "-netdev", "user,id=n0",
        "-device", "virtio-net-device,netdev=n0"};
    auto start = Clock::now();
    auto child = Child::spawn(argv, true);
    if (!child.ok()) return child.error();
    pid_t pid = child->pid();
    Sampler sample = [pid]() -> Result<NetPhaseCpu> {
        auto s = sample_threads(pid, is_qemu_vcpu);
        if (!s.ok()) return s.error();
        return NetPhaseCpu{s->other_s, vhost_cpu(pid), s->matched_s};
    };
    return drive(*child, sample, cfg, "qemu", start);
}

Result<void> write_net_initramfs(const std::string& path, const std::string& guest_binary) {
    std::ifstream in(guest_binary, std::ios::binary);
    if (!in) return make_error(ENOENT, "cannot read " + guest_binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The "newc" cpio format the kernel unpacks (Documentation/driver-api/early-userspace/
    // buffer-format.rst): a 110-byte ASCII header, the name, both padded to 4 bytes.
    std::string out;
    uint32_t ino = 1;
    auto pad = [&] { out.append((4 - out.size() % 4) % 4, '\0'); };
    auto entry = [&](const std::string& name, uint32_t mode, const std::string& body, uint32_t rmaj = 0,
                     uint32_t rmin = 0) {
        char h[111];
        std::snprintf(h, sizeof h, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino++, mode, 0u, 0u,
                      (mode & 0170000) == 0040000 ? 2u : 1u, 0u, uint32_t(body.size()), 0u, 0u, rmaj, rmin,
                      uint32_t(name.size() + 1), 0u);
        out.append(h, 110);
        out.append(name);
        out.push_back('\0');
        pad();
        out.append(body);
        pad();
    };
    entry("dev", 0040755, "");
    entry("dev/console", 0020600, "", 5, 1);
    entry("proc", 0040555, "");
    entry("sys", 0040555, "");
    entry("init", 0100755, data);
    entry("TRAILER!!!", 0, "");
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(out.data(), std::streamsize(out.size()));
    if (!f) return make_error(EIO, "writing " + path);
    return ok_result();
}

std::string net_qemu_settings_summary() {
    return "QEMU: -M microvm,acpi=off -enable-kvm -cpu host, serial console, the guest program as the init of an "
           "initramfs,\n  vhost-vsock-device (guest CID 3; the host server listens on AF_VSOCK), -netdev user + "
           "virtio-net-device, modern virtio-mmio.";
}

}  // namespace krunlet::bench
