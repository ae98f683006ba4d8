// Move-only owners for the three KVM file descriptors: the system (/dev/kvm),
// one VM and one vCPU (Documentation/virt/kvm/api.rst).
//
// Each object owns its fd (and the vCPU its mmap()ed `struct kvm_run`), so a
// VM is torn down by dropping its objects in reverse order. Every ioctl wrapper
// returns a Result whose message names the ioctl and, where there is one, the
// fix. Nothing here knows about x86 boot: lib/arch/x86 builds on top of it.
//
// C++ caveat: Linux 6.1's uapi headers give kvm_cpuid2, kvm_msrs,
// kvm_msr_list, kvm_irq_routing and kvm_signal_mask a wrong layout in C++
// (__DECLARE_FLEX_ARRAY adds a 1-byte member before the array), and the
// matching ioctl numbers encode the wrong size. Never pass those structs to
// the kernel directly; kvm.cpp uses its own headers for them.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace krunlet {

class VmFd;
class Vcpu;

// The system fd. Opening it checks the API version and every capability the
// VMM relies on, so later code can use them without asking again.
class Kvm {
public:
    static constexpr int kApiVersion = 12;  // KVM_GET_API_VERSION has been 12 since 2.6.22

    static Result<Kvm> create(const char* path = "/dev/kvm");

    // True when /dev/kvm is served by kvm_pvm (a software hypervisor). It runs
    // tiny real-mode guests, but Linux user space cannot run under it
    // (DESIGN.md §6).
    static bool is_kvm_pvm();
    // An error that explains the above when is_kvm_pvm(), else ok. The VMM
    // calls this before it boots Linux; tests of bare guests don't.
    static Result<void> check_can_run_linux();

    Kvm(Kvm&&) noexcept = default;
    Kvm& operator=(Kvm&&) noexcept = default;

    int fd() const { return fd_.get(); }
    // KVM_CHECK_EXTENSION: 0 when absent, else a capability-specific value.
    int check_extension(long cap) const;
    bool has_tsc_deadline_timer() const { return tsc_deadline_; }
    size_t vcpu_mmap_size() const { return vcpu_mmap_size_; }

    // KVM_GET_SUPPORTED_CPUID: every leaf KVM can present to a guest.
    Result<std::vector<kvm_cpuid_entry2>> get_supported_cpuid() const;

    Result<VmFd> create_vm() const;

private:
    Kvm() = default;
    UniqueFd fd_;
    size_t vcpu_mmap_size_ = 0;
    bool tsc_deadline_ = false;
};

// One VM. Set up order for x86 (api.rst): memory, TSS/identity-map addresses,
// irqchip, PIT, then vCPUs (KVM_CREATE_IRQCHIP must precede KVM_CREATE_VCPU).
class VmFd {
public:
    VmFd(VmFd&&) noexcept = default;
    VmFd& operator=(VmFd&&) noexcept = default;

    int fd() const { return fd_.get(); }

    // `host` must stay mapped for the VM's lifetime (GuestMemory owns it).
    Result<void> set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host,
                                        uint32_t flags = 0) const;
    // Intel VMX needs three pages (TSS) and one page (identity-mapped page
    // table for unrestricted-guest-less real mode) of guest physical address
    // space that no RAM or device uses. Harmless on AMD.
    Result<void> set_tss_addr(uint64_t gpa) const;
    Result<void> set_identity_map_addr(uint64_t gpa) const;
    // In-kernel PIC + IOAPIC + per-vCPU LAPICs; GSIs 0-23 route to IOAPIC pins.
    Result<void> create_irqchip() const;
    // In-kernel i8254. The speaker port (0x61) is answered by a dummy so the
    // guest's PIT calibration does not exit to user space.
    Result<void> create_pit2() const;

    // Writing to `eventfd` raises `gsi` (edge) in the guest without a vCPU exit.
    Result<void> register_irqfd(int eventfd, uint32_t gsi) const;
    Result<void> unregister_irqfd(int eventfd, uint32_t gsi) const;
    // A guest MMIO write of `len` bytes (1, 2, 4 or 8) at `addr` signals
    // `eventfd` instead of exiting; with `datamatch` only that value does.
    Result<void> register_ioeventfd(int eventfd, uint64_t addr, uint32_t len,
                                    std::optional<uint64_t> datamatch = std::nullopt) const;
    Result<void> unregister_ioeventfd(int eventfd, uint64_t addr, uint32_t len,
                                      std::optional<uint64_t> datamatch = std::nullopt) const;

    Result<Vcpu> create_vcpu(uint32_t id) const;

private:
    friend class Kvm;
    VmFd(UniqueFd fd, size_t mmap_size) : fd_(std::move(fd)), vcpu_mmap_size_(mmap_size) {}
    Result<void> ioeventfd(int eventfd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch,
                           bool deassign) const;
    UniqueFd fd_;
    size_t vcpu_mmap_size_ = 0;
};

// One vCPU: its fd and the shared `struct kvm_run` page(s). Only its own
// thread may call run(); another thread stops it with request_exit() followed
// by a signal to that thread (see run()).
class Vcpu {
public:
    Vcpu(Vcpu&&) noexcept = default;
    Vcpu& operator=(Vcpu&&) noexcept = default;

    int fd() const { return fd_.get(); }
    uint32_t id() const { return id_; }
    kvm_run* run_data() const { return reinterpret_cast<kvm_run*>(run_.data()); }

    // KVM_RUN. Returns the exit reason (KVM_EXIT_IO, KVM_EXIT_MMIO, ...).
    // When the ioctl is interrupted by a signal, or immediate_exit was set
    // before entry, or when KVM asks to be called again (EAGAIN from an AP
    // still waiting for its SIPI), it returns KVM_EXIT_INTR (which KVM stores in
    // run_data()->exit_reason) so the caller can tell "asked to stop" from a
    // guest exit. Any other failure is an error.
    Result<uint32_t> run();
    // Makes the next (or current, once a signal kicks it) KVM_RUN return
    // KVM_EXIT_INTR. Safe from any thread; clear it before running again.
    void request_exit() const;
    void clear_exit_request() const;

    // For KVM_EXIT_IO: the bytes the guest wrote (out) or must read (in),
    // size * count of them. Empty if KVM's offsets were out of the mapping.
    std::span<uint8_t> io_data() const;

    Result<void> set_cpuid2(std::span<const kvm_cpuid_entry2> entries) const;
    Result<kvm_regs> get_regs() const;
    Result<void> set_regs(const kvm_regs& regs) const;
    Result<kvm_sregs> get_sregs() const;
    Result<void> set_sregs(const kvm_sregs& sregs) const;
    Result<kvm_fpu> get_fpu() const;
    Result<void> set_fpu(const kvm_fpu& fpu) const;
    // Sets every MSR or fails naming the first one KVM refused.
    Result<void> set_msrs(std::span<const kvm_msr_entry> msrs) const;
    // Reads the listed MSR indices; fails naming the first unreadable one.
    Result<std::vector<kvm_msr_entry>> get_msrs(std::span<const uint32_t> indices) const;
    // Needs the in-kernel irqchip.
    Result<kvm_lapic_state> get_lapic() const;
    Result<void> set_lapic(const kvm_lapic_state& lapic) const;
    Result<kvm_mp_state> get_mp_state() const;

private:
    friend class VmFd;
    Vcpu(UniqueFd fd, Mapping run, uint32_t id) : fd_(std::move(fd)), run_(std::move(run)), id_(id) {}
    UniqueFd fd_;
    Mapping run_;
    uint32_t id_ = 0;
};

}  // namespace krunlet
