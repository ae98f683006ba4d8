// The VM builder and run loop. Vm::create reads top to bottom: KVM, memory,
// kernel, one attach_* per device, command line and boot structures, vCPUs.
// Vm::run starts the event loop and one thread per vCPU and waits for the
// first of: the exit status from init, a guest reset, a fatal vCPU exit.
#include "vmm/vm.h"

#include <fcntl.h>
#include <linux/virtio_mmio.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "arch/x86/boot_params.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/elf_loader.h"
#include "arch/x86/layout.h"
#include "arch/x86/mptable.h"
#include "arch/x86/vcpu_setup.h"
#include "devices/balloon.h"
#include "devices/console.h"
#include "devices/fs.h"
#include "devices/net.h"
#include "devices/rng.h"
#include "devices/vsock.h"
#include "devices/vsock_unix.h"
#include "init/init_blob.h"
#include "kvm/kvm.h"
#include "memory/guest_memory.h"
#include "net/slirp_backend.h"
#include "sandbox/seccomp.h"
#include "virtiofs/fd_budget.h"
#include "virtiofs/server.h"
#include "vmm/control_channel.h"
#include "vmm/device_slot.h"
#include "vmm/event_loop.h"
#include "vmm/legacy_io.h"
#include "vmm/loop_call.h"
#include "vmm/net_setup.h"
#include "vmm/port_mirror.h"
#include "vmm/signal_forwarder.h"
#include "vmm/volumes.h"

namespace krunlet {

uint64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

namespace {

// vCPU threads are kicked out of KVM_RUN with this signal; its handler does
// nothing, it only makes the ioctl return EINTR (immediate_exit covers the
// race where the signal lands before the ioctl).
int kick_signal() { return SIGRTMIN + 1; }

void install_kick_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa{};
        sa.sa_handler = [](int) {};
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return
        ::sigaction(kick_signal(), &sa, nullptr);
    });
}

// The root share's virtio-fs tag as the guest sees it. The API calls it
// "/dev/root" (libkrun's KRUN_FS_ROOT_TAG), but Linux strips "/dev/" from
// root= and mounts a device-less root (mount_nodev_root in init/do_mounts.c)
// by the remaining name, so the guest-side tag must not start with /dev/.
// That path needs no block layer in the guest kernel.
constexpr const char* kGuestRootTag = "krunlet-root";

// The base kernel command line (DESIGN.md §2). io_delay=none keeps the
// kernel off port 0x80, which is init's timing port.
constexpr const char* kBaseCmdline =
    "reboot=k panic=-1 nomodule console=hvc0 root=krunlet-root rootfstype=virtiofs rw quiet no-kvmapf "
    "io_delay=none init=/init.krun";

// The control service on the vsock device, bridging to ControlChannel.
class ControlService final : public devices::VsockService {
public:
    // `connected` runs once init is connected and has its exec message.
    ControlService(ControlChannel& channel, std::function<void()> connected)
        : channel_(channel), connected_(std::move(connected)) {}
    void on_connect(devices::VsockStream& stream) override {
        if (channel_.connected()) {
            stream.close();  // one control connection per VM
            return;
        }
        stream_ = &stream;
        channel_.on_connect([this](std::span<const uint8_t> b) { return stream_ != nullptr && stream_->send(b); });
        if (connected_) connected_();
    }
    void on_data(devices::VsockStream& stream, std::span<const uint8_t> bytes) override {
        if (&stream == stream_) channel_.on_data(bytes);
    }
    void on_close(devices::VsockStream& stream) override {
        if (&stream != stream_) return;
        stream_ = nullptr;
        channel_.on_close();
    }

private:
    ControlChannel& channel_;
    std::function<void()> connected_;
    devices::VsockStream* stream_ = nullptr;
};

}  // namespace

struct Vm::Impl {
    VmConfig config;
    BootTrace trace;
    std::optional<Kvm> kvm;
    std::optional<VmFd> vm;
    std::optional<GuestMemory> mem;
    std::unique_ptr<EventLoop> loop;
    std::unique_ptr<LoopCall> loop_call;  // vCPUs hand device register writes to the loop
    std::optional<sandbox::ThreadFilters> filters;  // built before any thread starts
    std::vector<std::unique_ptr<DeviceSlot>> slots;
    std::vector<Vcpu> vcpus;
    std::unique_ptr<ControlChannel> control;
    std::shared_ptr<ControlService> control_service;
    std::optional<SignalForwarder> signals;  // made before any thread exists (signal_forwarder.h)
    std::vector<int> pending_signals;        // arrived while init was not connected
    // Listening unix sockets of krun_add_vsock_port2(listen=true). Destroyed before `slots`
    // (declared later), so they unwatch while the vsock env still exists.
    std::vector<std::shared_ptr<devices::VsockUnixBridge>> vsock_listeners;
    // Guest listeners mirrored on host ports; uses the net slot's backend, so declared after `slots`.
    std::unique_ptr<PortMirror> port_mirror;
    x86::KernelCmdline cmdline;

    // How the VM ends: the first request_stop wins.
    std::mutex end_mu;
    std::condition_variable end_cv;
    bool ended = false;
    int end_code = kExitVmmError;
    std::string end_reason;
    bool guest_reset = false;  // decided after the final drain
    std::atomic<bool> stopping{false};
    std::unique_ptr<std::atomic<bool>[]> vcpu_done;  // set by each vCPU thread as it leaves
    UniqueFd null_input;  // the console's input when the caller gives none

    // --- builder steps -------------------------------------------------
    Result<void> attach(std::unique_ptr<LockedDeviceEnv> env, Result<std::unique_ptr<virtio::Device>> dev);
    Result<void> attach_console();
    fs::FdBudget fd_budget;  // per-share fd caps, set before the shares are attached
    Result<void> attach_fs(const FsShare& share);
    Result<void> attach_rng();
    Result<void> attach_balloon();
    Result<void> attach_vsock();
    Result<void> attach_net();
    // On the event loop under the vsock mutex: signals to the workload, in arrival order.
    void forward_signals();
    void flush_signals();

    // --- running -------------------------------------------------------
    void vcpu_main(size_t index);
    void handle_mmio(kvm_run* run);
    void end(int code, std::string reason, bool reset);
};

Result<void> Vm::Impl::attach(std::unique_ptr<LockedDeviceEnv> env, Result<std::unique_ptr<virtio::Device>> dev) {
    if (!dev.ok()) return dev.error();
    auto n = uint32_t(slots.size());
    if (n >= x86::kMaxVirtioDevices) return make_error(ENOSPC, "too many virtio devices");
    uint64_t base = x86::virtio_mmio_addr(n);
    uint32_t gsi = x86::virtio_mmio_gsi(n);
    auto slot = DeviceSlot::create(*vm, *loop, *mem, std::move(env), std::move(dev).value(), base, gsi,
                                   &filters->get(sandbox::Role::kFsWorker));
    if (!slot.ok()) return slot.error();
    KRUNLET_CHECK(cmdline.append_virtio_mmio(base, gsi));
    slots.push_back(std::move(slot).value());
    return {};
}

Result<void> Vm::Impl::attach_console() {
    auto env = std::make_unique<LockedDeviceEnv>(*loop);
    int in = config.console_in;
    if (in < 0) {
        null_input = UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        in = null_input.get();
    }
    auto dev = devices::ConsoleDevice::create(*env, in, config.console_out);
    if (!dev.ok()) return dev.error();
    return attach(std::move(env), std::unique_ptr<virtio::Device>(std::move(dev).value()));
}

Result<void> Vm::Impl::attach_fs(const FsShare& share) {
    fs::ServerConfig sc;
    sc.root_dir = share.host_dir;
    sc.read_only = share.read_only;
    sc.cache = config.fs_cache.policy;
    sc.entry_timeout = config.fs_cache.entry_timeout;
    sc.attr_timeout = config.fs_cache.attr_timeout;
    sc.max_inodes = fd_budget.max_inodes;
    sc.max_handles = fd_budget.max_handles;
    // Only the root share carries init.
    bool root = share.tag == "/dev/root";
    if (root) sc.init_binary = init_binary();
    auto server = fs::Server::create(std::move(sc));
    if (!server.ok()) return server.error();
    auto dev = devices::FsDevice::create(root ? kGuestRootTag : share.tag, std::move(server).value());
    if (!dev.ok()) return dev.error();
    return attach(nullptr, std::unique_ptr<virtio::Device>(std::move(dev).value()));
}

Result<void> Vm::Impl::attach_rng() {
    auto dev = devices::RngDevice::create();
    if (!dev.ok()) return dev.error();
    return attach(nullptr, std::unique_ptr<virtio::Device>(std::move(dev).value()));
}

Result<void> Vm::Impl::attach_balloon() {
    auto dev = devices::BalloonDevice::create();
    if (!dev.ok()) return dev.error();
    return attach(nullptr, std::unique_ptr<virtio::Device>(std::move(dev).value()));
}

Result<void> Vm::Impl::attach_net() {
    auto env = std::make_unique<LockedDeviceEnv>(*loop);
    auto setup = make_net_backend(*env, config.net, config.log_level);
    if (!setup.ok()) return setup.error();
    net::SlirpBackend* slirp = setup->slirp;
    auto dev = devices::NetDevice::create(std::move(setup->backend), setup->device);
    if (!dev.ok()) return dev.error();
    KRUNLET_CHECK(attach(std::move(env), std::unique_ptr<virtio::Device>(std::move(dev).value())));
    // Without a port map the guest's listeners are mirrored (vmm/port_mirror.h); passt
    // forwards ports itself. The exec message tells init eth0's setup either way.
    ControlChannel::OnListener on_listener;
    if (slirp != nullptr && !config.net.port_map_given) {
        auto log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
        port_mirror = std::make_unique<PortMirror>(locked_slirp_forwarder(slots.back()->transport().mutex(), *slirp),
                                                   config.net.guest_address, config.log_level, log);
        on_listener = [this](const ControlChannel::ListenerEvent& ev) {
            if (ev.addr.empty())
                port_mirror->on_unlisten(ev.port);
            else
                port_mirror->on_listen(ev.port, ev.addr);
        };
    }
    control->set_network(config.net, std::move(on_listener));
    return {};
}

Result<void> Vm::Impl::attach_vsock() {
    auto env = std::make_unique<LockedDeviceEnv>(*loop);
    auto dev = devices::VsockDevice::create(control::kGuestCid);
    if (!dev.ok()) return dev.error();
    bool tty = config.console_out >= 0 && ::isatty(config.console_out) != 0;
    control = std::make_unique<ControlChannel>(config.workload, tty, [this](int code) {
        trace.end_ns = monotonic_ns();
        end(code, "workload exited", false);
    });
    control_service = std::make_shared<ControlService>(*control, [this] { flush_signals(); });
    KRUNLET_CHECK((*dev)->add_service(control::kControlPort, control_service));
    LockedDeviceEnv& vsock_env = *env;  // owned by the device's slot from here on
    devices::VsockDevice& vsock = **dev;
    // Guest -> host unix sockets are services on their port.
    for (const VsockPort& p : config.vsock_ports) {
        if (p.listen) continue;
        if (p.port == control::kControlPort)
            return make_error(EINVAL, "vsock port " + std::to_string(p.port) + " is krunlet's control port; pick another");
        auto bridge = devices::VsockUnixBridge::connect_to(vsock_env, p.path);
        if (!bridge.ok()) return bridge.error();
        KRUNLET_CHECK(vsock.add_service(p.port, *bridge));
    }
    KRUNLET_CHECK(attach(std::move(env), std::unique_ptr<virtio::Device>(std::move(dev).value())));
    // Host -> guest: listening sockets, watched once the slot has given the env its mutex.
    for (const VsockPort& p : config.vsock_ports) {
        if (!p.listen) continue;
        auto bridge = devices::VsockUnixBridge::listen_on(vsock_env, vsock, p.path, p.port);
        if (!bridge.ok()) return bridge.error();
        vsock_listeners.push_back(std::move(*bridge));
    }
    // Signals touch the control stream, so they are read under the vsock device's mutex.
    return vsock_env.watch(signals->fd(), EPOLLIN, [this](uint32_t) { forward_signals(); });
}

void Vm::Impl::forward_signals() {
    for (int s : signals->take()) {
        // The same signal twice while nobody in the guest can take it (init not up yet, or
        // gone): the user means it, so the VM ends as the signal would have ended us.
        if (std::find(pending_signals.begin(), pending_signals.end(), s) != pending_signals.end()) {
            end(128 + s, "signal " + std::to_string(s) + " twice before the guest could take it", false);
            return;
        }
        pending_signals.push_back(s);
    }
    flush_signals();
}

void Vm::Impl::flush_signals() {
    size_t sent = 0;
    while (sent < pending_signals.size() && control->send_signal(pending_signals[sent])) ++sent;
    pending_signals.erase(pending_signals.begin(), pending_signals.begin() + static_cast<ptrdiff_t>(sent));
}

Result<std::unique_ptr<Vm>> Vm::create(const VmConfig& config, uint64_t start_ns) {
    auto impl = std::make_unique<Impl>();
    Impl& m = *impl;
    m.config = config;
    m.trace.start_ns = start_ns != 0 ? start_ns : monotonic_ns();
    if (config.vcpus == 0 || config.vcpus > 16) return make_error(EINVAL, "vCPU count must be 1..16");
    if (config.kernel.empty()) return make_error(EINVAL, "no guest kernel");
    KRUNLET_CHECK(check_shares_and_mounts(config));

    KRUNLET_CHECK(Kvm::check_can_run_linux());
    auto seccomp_mode = sandbox::seccomp_mode_from_env();
    if (!seccomp_mode.ok()) return seccomp_mode.error();
    // Before any thread: threads made later inherit the blocked signals.
    auto signals = SignalForwarder::create();
    if (!signals.ok()) return signals.error();
    m.signals.emplace(std::move(*signals));
    auto kvm = Kvm::create();
    if (!kvm.ok()) return kvm.error();
    m.kvm.emplace(std::move(kvm).value());
    auto vm = m.kvm->create_vm();
    if (!vm.ok()) return vm.error();
    m.vm.emplace(std::move(vm).value());

    // Memory: RAM around the MMIO hole, one KVM slot per region.
    auto mem = GuestMemory::create(uint64_t(config.ram_mib) << 20, x86::kMmioHoleStart, x86::kMmioHoleEnd);
    if (!mem.ok()) return mem.error();
    m.mem.emplace(std::move(mem).value());
    // The boot structures (zero page, command line, page tables, MP table) are
    // a few pages below 1 MiB; as a huge page their first write would clear
    // 2 MiB before the first KVM_RUN (about 0.6 ms of the 4 ms to it here).
    m.mem->use_small_pages(0, x86::kHugePageSize);
    uint32_t slot = 0;
    for (const auto& r : m.mem->regions())
        KRUNLET_CHECK(m.vm->set_user_memory_region(slot++, r.gpa, r.size, r.host));
    KRUNLET_CHECK(m.vm->set_tss_addr(x86::kKvmTssAddr));
    KRUNLET_CHECK(m.vm->set_identity_map_addr(x86::kKvmIdentityMapAddr));
    KRUNLET_CHECK(m.vm->create_irqchip());
    KRUNLET_CHECK(m.vm->create_pit2());

    // Only checked here; loaded last (below), once nothing that can plausibly
    // fail is left, because loading may consume the bytes (kMove).
    auto kernel = x86::inspect_elf_kernel(config.kernel);
    if (!kernel.ok()) return kernel.error();

    auto loop = EventLoop::create();
    if (!loop.ok()) return loop.error();
    m.loop = std::move(loop).value();
    auto loop_call = LoopCall::create(*m.loop);
    if (!loop_call.ok()) return loop_call.error();
    m.loop_call = std::move(loop_call).value();
    // Every thread's seccomp filter (docs/security.md), compiled before any device
    // exists (queue threads take theirs) so no libseccomp code runs on a
    // filtered thread.
    sandbox::FilterParams fp;
    fp.kick_signal = kick_signal();
    fp.vcpu_write_fds = {m.loop_call->wake_fd()};
    if (config.console_in >= 0) fp.console_fds = {config.console_in};
    auto filters = sandbox::ThreadFilters::build(*seccomp_mode, fp);
    if (!filters.ok()) return filters.error();
    m.filters.emplace(std::move(filters).value());

    // Devices, in virtio-mmio slot order: the root filesystem first.
    KRUNLET_CHECK(m.cmdline.append(kBaseCmdline));
    KRUNLET_CHECK(m.attach_console());
    // Every share's inode and handle caps must fit in RLIMIT_NOFILE with room for the VMM.
    auto budget = fs::fd_budget(config.shares.size());
    if (!budget.ok()) return budget.error();
    m.fd_budget = *budget;
    for (const auto& share : config.shares) KRUNLET_CHECK(m.attach_fs(share));
    KRUNLET_CHECK(m.attach_vsock());
    KRUNLET_CHECK(m.attach_rng());
    if (config.net.enabled) KRUNLET_CHECK(m.attach_net());
    // Last, so that the other devices keep their slots: free page reporting
    // hands memory the guest freed back to the host (devices/balloon.h).
    KRUNLET_CHECK(m.attach_balloon());
    if (!config.kernel_cmdline_extra.empty()) KRUNLET_CHECK(m.cmdline.append(config.kernel_cmdline_extra));

    // Boot structures: zero page + e820 + command line, MP table.
    KRUNLET_CHECK(x86::write_boot_params(*m.mem, m.cmdline));
    if (auto mp = x86::mp::write_mptable(*m.mem, config.vcpus); !mp.ok()) return mp.error();
    KRUNLET_CHECK(x86::write_boot_tables(*m.mem));

    auto loaded = x86::load_elf_kernel(config.kernel, *m.mem,
                                       config.kernel_pages_movable ? x86::KernelPages::kMove : x86::KernelPages::kCopy);
    if (!loaded.ok()) return loaded.error();

    auto supported = m.kvm->get_supported_cpuid();
    if (!supported.ok()) return supported.error();
    for (uint32_t i = 0; i < config.vcpus; ++i) {
        auto vcpu = m.vm->create_vcpu(i);
        if (!vcpu.ok()) return vcpu.error();
        x86::CpuidConfig cc;
        cc.vcpu_id = i;
        cc.ncpus = config.vcpus;
        cc.tsc_deadline = m.kvm->has_tsc_deadline_timer();
        auto cpuid = x86::filter_cpuid(*supported, cc);
        if (!cpuid.ok()) return cpuid.error();
        if (i == 0)
            KRUNLET_CHECK(x86::setup_boot_vcpu(*vcpu, *cpuid, kernel->entry));
        else
            KRUNLET_CHECK(x86::setup_ap_vcpu(*vcpu, *cpuid));
        m.vcpus.push_back(std::move(vcpu).value());
    }
    install_kick_handler();
    return std::unique_ptr<Vm>(new Vm(std::move(impl)));
}

Vm::Vm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Vm::~Vm() = default;

void Vm::Impl::end(int code, std::string reason, bool reset) {
    {
        std::lock_guard lock(end_mu);
        if (ended) return;
        ended = true;
        end_code = code;
        end_reason = std::move(reason);
        guest_reset = reset;
    }
    end_cv.notify_all();
}

void Vm::request_stop(int exit_code, const char* reason) { impl_->end(exit_code, reason, false); }

void Vm::Impl::handle_mmio(kvm_run* run) {
    uint64_t addr = run->mmio.phys_addr;
    uint32_t len = run->mmio.len;
    if (len > sizeof run->mmio.data) return;
    for (auto& s : slots) {
        if (addr < s->base() || addr - s->base() >= virtio::MmioTransport::kWindowSize) continue;
        uint64_t off = addr - s->base();
        std::span<uint8_t> data(run->mmio.data, len);
        virtio::MmioTransport& t = s->transport();
        if (!run->mmio.is_write)
            t.read(off, data);
        else if (off == VIRTIO_MMIO_INTERRUPT_ACK)
            t.write(off, data);  // every interrupt's hot path; it only clears bits
        else
            // A write may activate or reset the device, running device code
            // on guest data: that runs on the event loop, under its seccomp
            // filter, not here (vmm/loop_call.h). False: the VM is stopping.
            loop_call->call([&t, off, data] { t.write(off, data); });
        return;
    }
    // Nothing there: reads see all-ones, as on a real bus.
    if (!run->mmio.is_write) std::memset(run->mmio.data, 0xff, len);
}

void Vm::Impl::vcpu_main(size_t index) {
    Vcpu& vcpu = vcpus[index];
    char name[16];
    std::snprintf(name, sizeof name, "vcpu-%zu", index);
    ::pthread_setname_np(::pthread_self(), name);
    LegacyIo io(config.log_level >= 4);
    // Before the first KVM_RUN: from here on the guest drives this thread.
    if (auto r = filters->get(sandbox::Role::kVcpu).install(); !r.ok()) {
        end(kExitVmmError, r.error().message, false);
        return;
    }
    if (index == 0) {
        trace.first_run_ns = monotonic_ns();
        if (config.log_level >= 3) {
            // The wall-clock stamp lets bench/compare.sh measure from the
            // process's exec, which happened before start_ns (krun_create_ctx).
            timespec wall{};
            ::clock_gettime(CLOCK_REALTIME, &wall);
            std::fprintf(stderr, "krunlet: first KVM_RUN %.3f ms after start (realtime %lld.%06ld)\n",
                         double(trace.first_run_ns - trace.start_ns) / 1e6, static_cast<long long>(wall.tv_sec),
                         wall.tv_nsec / 1000);
        }
    }
    while (!stopping.load(std::memory_order_acquire)) {
        auto r = vcpu.run();
        if (!r.ok()) {
            end(kExitVmmError, "KVM_RUN failed: " + r.error().message, false);
            return;
        }
        kvm_run* run = vcpu.run_data();
        switch (*r) {
        case KVM_EXIT_INTR:
            break;  // kicked: the loop condition decides
        case KVM_EXIT_IO: {
            auto data = vcpu.io_data();
            size_t size = run->io.size;
            bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
            for (size_t off = 0; size != 0 && off + size <= data.size(); off += size) {
                auto ev = io.access(run->io.port, is_write, data.subspan(off, size));
                if (ev == PortEvent::InitStarted && trace.init_ns == 0) trace.init_ns = monotonic_ns();
                if (ev == PortEvent::WorkloadStarting && trace.workload_ns == 0) trace.workload_ns = monotonic_ns();
                if (ev == PortEvent::Reset) {
                    end(kExitGuestCrashed, "the guest reset the machine", true);
                    return;
                }
            }
            break;
        }
        case KVM_EXIT_MMIO:
            handle_mmio(run);
            break;
        case KVM_EXIT_SHUTDOWN:
            end(kExitGuestCrashed, "the guest triple-faulted (KVM_EXIT_SHUTDOWN)", true);
            return;
        case KVM_EXIT_SYSTEM_EVENT:
            end(kExitGuestCrashed, "the guest asked for a system reset or shutdown", true);
            return;
        case KVM_EXIT_HLT:
            // With the in-kernel LAPIC, HLT is handled by KVM; seeing it here
            // means the vCPU can never wake.
            end(kExitGuestCrashed, "the guest halted for good", true);
            return;
        case KVM_EXIT_FAIL_ENTRY:
            end(kExitVmmError,
                "KVM could not enter the guest (hardware reason 0x" +
                    std::to_string(run->fail_entry.hardware_entry_failure_reason) + ")",
                false);
            return;
        case KVM_EXIT_INTERNAL_ERROR:
            end(kExitVmmError, "KVM internal error (suberror " + std::to_string(run->internal.suberror) + ")", false);
            return;
        default:
            end(kExitVmmError, "unexpected KVM exit reason " + std::to_string(*r), false);
            return;
        }
    }
}

VmOutcome Vm::run(const VmRunOptions& options) {
    Impl& m = *impl_;
    std::thread loop_thread([&m] {
        ::pthread_setname_np(::pthread_self(), "event-loop");
        if (auto r = m.filters->get(sandbox::Role::kEventLoop).install(); !r.ok()) {
            m.end(kExitVmmError, r.error().message, false);
            return;
        }
        m.loop->run();
    });
    std::vector<std::thread> threads;
    m.vcpu_done = std::make_unique<std::atomic<bool>[]>(m.vcpus.size());
    for (size_t i = 0; i < m.vcpus.size(); ++i) {
        threads.emplace_back([&m, i] {
            m.vcpu_main(i);
            m.vcpu_done[i].store(true, std::memory_order_release);
        });
    }
    // Every thread of the VM exists: the caller may now lose clone() & co.
    if (options.sandbox_caller) {
        if (auto r = m.filters->get(sandbox::Role::kVmmMain).install(); !r.ok())
            m.end(kExitVmmError, r.error().message, false);
    }

    {
        std::unique_lock lock(m.end_mu);
        m.end_cv.wait(lock, [&m] { return m.ended; });
    }
    // Stop every vCPU: flag, immediate_exit, then a kick for those inside
    // KVM_RUN (repeated until each thread has left).
    m.stopping.store(true, std::memory_order_release);
    m.loop_call->cancel();  // a vCPU waiting for the loop gives up (if the loop is gone)
    for (auto& v : m.vcpus) v.request_exit();
    for (size_t i = 0; i < threads.size(); ++i) {
        // A kick can land just before the thread enters KVM_RUN; then
        // immediate_exit makes it return at once. Re-kick until it has left.
        while (!m.vcpu_done[i].load(std::memory_order_acquire)) {
            ::pthread_kill(threads[i].native_handle(), kick_signal());
            timespec ts{0, 200'000};
            ::nanosleep(&ts, nullptr);
        }
        threads[i].join();
    }
    m.loop->stop();
    loop_thread.join();

    // Finish what the guest already handed over (console output, a status
    // message still in the vsock queue).
    for (auto& s : m.slots) s->transport().drain();
    if (m.config.log_level >= 4) {
        for (auto& s : m.slots) {
            auto& t = s->transport();
            auto st = t.stats();
            std::fprintf(stderr,
                         "krunlet: device type %u at 0x%llx: status 0x%x, bad accesses %llu, invalid status %llu, "
                         "refused FEATURES_OK %llu, ignored kicks %llu, needs-reset %llu%s%s\n",
                         t.device().device_type(), (unsigned long long)s->base(), t.status(),
                         (unsigned long long)st.bad_accesses, (unsigned long long)st.invalid_status_writes,
                         (unsigned long long)st.refused_features_ok, (unsigned long long)st.ignored_notifies,
                         (unsigned long long)st.needs_reset, st.last_problem.empty() ? "" : ": ",
                         st.last_problem.c_str());
        }
    }

    VmOutcome out;
    std::lock_guard lock(m.end_mu);
    out.reason = m.end_reason;
    if (m.control && m.control->exit_code()) {
        out.exit_code = *m.control->exit_code();
        out.status_from_guest = true;
        if (m.trace.end_ns == 0) m.trace.end_ns = monotonic_ns();
    } else {
        out.exit_code = m.end_code;
        m.trace.end_ns = monotonic_ns();
    }
    out.trace = m.trace;
    return out;
}

}  // namespace krunlet
