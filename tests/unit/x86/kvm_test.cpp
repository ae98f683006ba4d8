// Runs tiny guests through Kvm/VmFd/Vcpu. These need /dev/kvm; without it
// each case is reported as skipped (doctest's skip decorator), never passed.
#include "kvm/kvm.h"

#include <doctest/doctest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "arch/x86/boot_params.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/layout.h"
#include "arch/x86/mptable.h"
#include "arch/x86/vcpu_setup.h"

using namespace krunlet;
using namespace krunlet::x86;

namespace {

bool no_kvm() {
    if (::access("/dev/kvm", R_OK | W_OK) == 0) return false;
    std::fprintf(stderr,
                 "x86_unit: SKIPPING the KVM guest tests: /dev/kvm is missing or not accessible "
                 "(load kvm_intel/kvm_amd, or run inside tests/kvm-host/run.sh)\n");
    return true;
}
const bool kNoKvm = no_kvm();

template <class T>
T must(Result<T> r) {
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    return std::move(r).value();
}
void must(Result<void> r) { REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message)); }

// A VM with `ram` bytes of guest RAM registered, slot by region.
struct TestVm {
    Kvm kvm;
    VmFd vm;
    GuestMemory mem;

    static TestVm create(uint64_t ram, bool irqchip) {
        auto kvm = must(Kvm::create());
        auto vm = must(kvm.create_vm());
        auto mem = must(GuestMemory::create(ram, kMmioHoleStart, kMmioHoleEnd));
        uint32_t slot = 0;
        for (const auto& r : mem.regions()) must(vm.set_user_memory_region(slot++, r.gpa, r.size, r.host));
        must(vm.set_tss_addr(kKvmTssAddr));
        must(vm.set_identity_map_addr(kKvmIdentityMapAddr));
        if (irqchip) {
            must(vm.create_irqchip());
            must(vm.create_pit2());
        }
        return TestVm{std::move(kvm), std::move(vm), std::move(mem)};
    }
};

// Real mode at 0000:ip, interrupts off.
void enter_real_mode(const Vcpu& vcpu, uint16_t ip) {
    auto s = must(vcpu.get_sregs());
    s.cs.base = 0;
    s.cs.selector = 0;
    must(vcpu.set_sregs(s));
    kvm_regs r{};
    r.rip = ip;
    r.rflags = 2;
    must(vcpu.set_regs(r));
}

struct IoExit {
    uint16_t port;
    uint8_t value;
};

// Runs until the next exit and expects a 1-byte OUT.
IoExit expect_out(Vcpu& vcpu) {
    uint32_t reason = must(vcpu.run());
    const kvm_run* run = vcpu.run_data();
    if (reason == KVM_EXIT_INTERNAL_ERROR)
        FAIL("KVM_EXIT_INTERNAL_ERROR suberror " << run->internal.suberror);
    REQUIRE_MESSAGE(reason == KVM_EXIT_IO, "exit reason " << reason);
    REQUIRE(run->io.direction == KVM_EXIT_IO_OUT);
    REQUIRE(run->io.size == 1);
    REQUIRE(run->io.count == 1);
    auto data = vcpu.io_data();
    REQUIRE(data.size() == 1);
    return IoExit{run->io.port, data[0]};
}

}  // namespace

TEST_CASE("Kvm::create names the fix when /dev/kvm is missing or wrong") {
    auto r = Kvm::create("/nonexistent/kvm");
    REQUIRE(!r.ok());
    CHECK(r.error().code == ENOENT);
    CHECK(r.error().message.find("modprobe kvm_intel or kvm_amd") != std::string::npos);
    CHECK(r.error().message.find("tests/kvm-host/run.sh") != std::string::npos);
    // A plain file is not a KVM device: the API version ioctl fails.
    char path[] = "/tmp/x86_unit_not_kvm.XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    auto n = Kvm::create(path);
    ::unlink(path);
    REQUIRE(!n.ok());
    CHECK(n.error().message.find("KVM_GET_API_VERSION") != std::string::npos);
}

TEST_CASE("kvm_pvm detection") {
    bool pvm = ::access("/sys/module/kvm_pvm", F_OK) == 0;
    CHECK(Kvm::is_kvm_pvm() == pvm);
    auto r = Kvm::check_can_run_linux();
    CHECK(r.ok() == !pvm);
    if (!r.ok()) {
        CHECK(r.error().message.find("kvm_pvm") != std::string::npos);
        CHECK(r.error().message.find("tests/kvm-host/run.sh") != std::string::npos);
        MESSAGE("this machine's /dev/kvm is kvm_pvm: " << r.error().message);
    }
}

TEST_CASE("real-mode guest: OUT then HLT" * doctest::skip(kNoKvm)) {
    auto t = TestVm::create(1 * kMiB, /*irqchip=*/false);  // no irqchip: HLT exits to us
    const uint8_t code[] = {
        0xb0, 0x42,  // mov al, 0x42
        0xe6, 0x80,  // out 0x80, al
        0xf4,        // hlt
    };
    REQUIRE(t.mem.write(0x1000, code, sizeof code));
    auto vcpu = must(t.vm.create_vcpu(0));
    CHECK(t.kvm.vcpu_mmap_size() >= sizeof(kvm_run));
    enter_real_mode(vcpu, 0x1000);

    auto io = expect_out(vcpu);
    CHECK(io.port == 0x80);
    CHECK(io.value == 0x42);
    CHECK(must(vcpu.run()) == KVM_EXIT_HLT);
    CHECK(must(vcpu.get_regs()).rip == 0x1005);
}

TEST_CASE("real-mode guest: MMIO exit and ioeventfd" * doctest::skip(kNoKvm)) {
    // 512 KiB of RAM: 0xe0000 is unbacked, so guest writes there are MMIO.
    auto t = TestVm::create(512 * kKiB, false);
    const uint8_t code[] = {
        0xb8, 0x00, 0xe0,        // mov ax, 0xe000
        0x8e, 0xd8,              // mov ds, ax
        0xc6, 0x06, 0x10, 0x00, 0x07,  // mov byte [0x10], 7   -> ioeventfd, no exit
        0xc6, 0x06, 0x20, 0x00, 0x09,  // mov byte [0x20], 9   -> KVM_EXIT_MMIO
        0xf4,                    // hlt
    };
    REQUIRE(t.mem.write(0x1000, code, sizeof code));
    UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    REQUIRE(efd.valid());
    must(t.vm.register_ioeventfd(efd.get(), 0xe0010, 1, uint64_t{7}));
    CHECK(!t.vm.register_ioeventfd(efd.get(), 0xe0010, 3).ok());  // bad length
    auto vcpu = must(t.vm.create_vcpu(0));
    enter_real_mode(vcpu, 0x1000);

    uint32_t reason = must(vcpu.run());
    REQUIRE_MESSAGE(reason == KVM_EXIT_MMIO, "exit reason " << reason);
    const kvm_run* run = vcpu.run_data();
    CHECK(run->mmio.phys_addr == 0xe0020);
    CHECK(run->mmio.is_write == 1);
    CHECK(run->mmio.len == 1);
    CHECK(run->mmio.data[0] == 9);
    uint64_t count = 0;
    REQUIRE(::read(efd.get(), &count, sizeof count) == sizeof count);
    CHECK(count == 1);  // the first write went to the eventfd
    CHECK(must(vcpu.run()) == KVM_EXIT_HLT);
    must(t.vm.unregister_ioeventfd(efd.get(), 0xe0010, 1, uint64_t{7}));
}

TEST_CASE("KVM_RUN interrupted: immediate_exit and a signal" * doctest::skip(kNoKvm)) {
    auto t = TestVm::create(1 * kMiB, false);
    const uint8_t spin[] = {0xeb, 0xfe};  // jmp $
    REQUIRE(t.mem.write(0x1000, spin, sizeof spin));
    auto vcpu = must(t.vm.create_vcpu(0));
    enter_real_mode(vcpu, 0x1000);

    // immediate_exit set before entry: KVM_RUN returns at once.
    vcpu.request_exit();
    CHECK(must(vcpu.run()) == KVM_EXIT_INTR);
    vcpu.clear_exit_request();

    // The stop path the VMM uses: flag, then a signal to the vCPU thread. A
    // handler (not SIG_IGN) is needed for the signal to interrupt the ioctl.
    struct sigaction sa{};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    struct sigaction old{};
    REQUIRE(::sigaction(SIGUSR1, &sa, &old) == 0);
    uint32_t reason = 0;
    bool ok = false;
    auto t0 = std::chrono::steady_clock::now();
    std::thread th([&] {
        auto r = vcpu.run();
        ok = r.ok();
        if (ok) reason = *r;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    vcpu.request_exit();
    ::pthread_kill(th.native_handle(), SIGUSR1);
    th.join();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    ::sigaction(SIGUSR1, &old, nullptr);
    CHECK(ok);
    CHECK(reason == KVM_EXIT_INTR);
    CHECK(ms < 5000);
    MESSAGE("spinning vCPU stopped by signal after " << ms << " ms (50 ms of it deliberate)");
}

TEST_CASE("irqchip, PIT, irqfd registration and AP state" * doctest::skip(kNoKvm)) {
    auto t = TestVm::create(16 * kMiB, /*irqchip=*/true);
    UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    REQUIRE(efd.valid());
    must(t.vm.register_irqfd(efd.get(), virtio_mmio_gsi(0)));
    CHECK(!t.vm.register_irqfd(efd.get(), virtio_mmio_gsi(0)).ok());  // already registered
    must(t.vm.unregister_irqfd(efd.get(), virtio_mmio_gsi(0)));

    auto supported = must(t.kvm.get_supported_cpuid());
    CHECK(supported.size() > 5);
    auto bsp = must(t.vm.create_vcpu(0));
    auto ap = must(t.vm.create_vcpu(1));
    for (uint32_t id : {0u, 1u}) {
        CpuidConfig cfg;
        cfg.vcpu_id = id;
        cfg.ncpus = 2;
        cfg.tsc_deadline = t.kvm.has_tsc_deadline_timer();
        cfg.pvm_workarounds = Kvm::is_kvm_pvm();
        auto cpuid = must(filter_cpuid(supported, cfg));
        must(id == 0 ? setup_ap_vcpu(bsp, cpuid) : setup_ap_vcpu(ap, cpuid));
    }
    // With the in-kernel irqchip an AP waits for INIT/SIPI.
    CHECK(must(ap.get_mp_state()).mp_state == KVM_MP_STATE_UNINITIALIZED);
    CHECK(must(bsp.get_mp_state()).mp_state == KVM_MP_STATE_RUNNABLE);
    // LINT0 = ExtINT, LINT1 = NMI.
    auto lapic = must(ap.get_lapic());
    uint32_t lint0, lint1;
    std::memcpy(&lint0, lapic.regs + 0x350, 4);
    std::memcpy(&lint1, lapic.regs + 0x360, 4);
    CHECK(((lint0 >> 8) & 7) == 7);
    CHECK(((lint1 >> 8) & 7) == 4);
    // The MSRs read back.
    const uint32_t misc_enable = 0x1a0, mtrr_def = 0x2ff;
    auto msrs = must(ap.get_msrs(std::vector<uint32_t>{misc_enable, mtrr_def}));
    CHECK((msrs[0].data & 1) == 1);
    CHECK(msrs[1].data == ((1u << 11) | 6));
}

// A few bytes of 64-bit code started exactly as a vmlinux would be: long
// mode via vcpu_setup, rsi = zero page, the boot stack, identity paging.
TEST_CASE("long-mode guest through the 64-bit boot setup" * doctest::skip(kNoKvm)) {
    auto t = TestVm::create(64 * kMiB, /*irqchip=*/true);
    const uint64_t entry = 0x100000, probe = 0x3000000;  // code at 1 MiB, data at 48 MiB
    const uint8_t code[] = {
        0x48, 0x89, 0xf0,                          // mov rax, rsi
        0x48, 0xc1, 0xe8, 0x08,                    // shr rax, 8
        0xe6, 0x80,                                // out 0x80, al        ; 0x70 (zero page >> 8)
        0x6a, 0x42,                                // push 0x42           ; uses the boot stack
        0x58,                                      // pop rax
        0xe6, 0x81,                                // out 0x81, al        ; 0x42
        0x8a, 0x04, 0x25, 0x00, 0x00, 0x00, 0x03,  // mov al, [0x3000000] ; through the page tables
        0xe6, 0x82,                                // out 0x82, al
        0xc6, 0x04, 0x25, 0x10, 0x00, 0x00, 0x03, 0x99,  // mov byte [0x3000010], 0x99
        0xe6, 0x83,                                // out 0x83, al        ; done
        0xf4, 0xeb, 0xfd,                          // 1: hlt; jmp 1b
    };
    REQUIRE(t.mem.write(entry, code, sizeof code));
    const uint8_t marker = 0x5c;
    REQUIRE(t.mem.write(probe, &marker, 1));

    must(write_boot_tables(t.mem));
    KernelCmdline cl;
    must(cl.append("console=hvc0"));
    must(write_boot_params(t.mem, cl));
    must(mp::write_mptable(t.mem, 1));

    auto vcpu = must(t.vm.create_vcpu(0));
    CpuidConfig cfg;
    cfg.tsc_deadline = t.kvm.has_tsc_deadline_timer();
    cfg.pvm_workarounds = Kvm::is_kvm_pvm();
    auto cpuid = must(filter_cpuid(must(t.kvm.get_supported_cpuid()), cfg));
    auto t0 = std::chrono::steady_clock::now();
    must(setup_boot_vcpu(vcpu, cpuid, entry));
    auto setup_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();

    auto s = must(vcpu.get_sregs());
    CHECK((s.efer & (1 << 10)) != 0);  // LMA
    CHECK(s.cs.l == 1);
    CHECK(s.cs.selector == kBootCodeSelector);
    CHECK(s.ds.selector == kBootDataSelector);
    CHECK(s.cr3 == kPml4Addr);

    auto e1 = expect_out(vcpu);
    CHECK(e1.port == 0x80);
    CHECK(e1.value == (kZeroPageAddr >> 8));
    auto e2 = expect_out(vcpu);
    CHECK(e2.port == 0x81);
    CHECK(e2.value == 0x42);
    auto e3 = expect_out(vcpu);
    CHECK(e3.port == 0x82);
    CHECK(e3.value == marker);
    auto e4 = expect_out(vcpu);
    CHECK(e4.port == 0x83);
    CHECK(*t.mem.translate(probe + 0x10, 1) == 0x99);
    auto regs = must(vcpu.get_regs());
    CHECK(regs.rsp == kBootStackTop);
    CHECK(regs.rsi == kZeroPageAddr);
    std::string where = Kvm::is_kvm_pvm() ? " (under kvm_pvm)" : "";
    MESSAGE("long-mode guest ran" << where << "; boot vCPU setup took " << setup_us << " us");
}
