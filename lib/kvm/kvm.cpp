#include "kvm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

namespace krunlet {

namespace {

// ioctl() restarted on EINTR, for the calls that have no reason to be
// interrupted (everything except KVM_RUN, which reports EINTR to its caller).
template <class... Args>
int xioctl(int fd, unsigned long request, Args... args) {
    int r;
    do {
        r = ::ioctl(fd, request, args...);
    } while (r < 0 && errno == EINTR);
    return r;
}

Result<void> check(int r, const char* what) {
    if (r < 0) return errno_error(what);
    return {};
}

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

// <linux/kvm.h> from Linux 6.1 declares the trailing arrays of kvm_cpuid2
// and kvm_msrs with __DECLARE_FLEX_ARRAY, which in C++ puts a 1-byte empty
// struct before the array: entries then start at offset 12 or 16 instead of
// the kernel's 8, and the size encoded in the ioctl numbers is wrong too
// (KVM answers EINVAL). So these two are built from our own headers, laid out
// as the kernel's, with the ioctl numbers recomputed and checked against
// the values a C compiler gets from the same header.
struct CpuidHeader {
    uint32_t nent;
    uint32_t padding;
};
struct MsrsHeader {
    uint32_t nmsrs;
    uint32_t pad;
};
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
static_assert(kGetSupportedCpuid == 0xc008ae05 && kSetCpuid2 == 0x4008ae90);
static_assert(kGetMsrs == 0xc008ae88 && kSetMsrs == 0x4008ae89);
static_assert(sizeof(kvm_cpuid_entry2) == 40 && sizeof(kvm_msr_entry) == 16);

// A header immediately followed by `n` entries, zero-filled (KVM rejects
// non-zero padding), 8-byte aligned.
template <class Header, class Entry>
class FlexBuffer {
public:
    explicit FlexBuffer(size_t n)
        : bytes_(sizeof(Header) + n * sizeof(Entry)), storage_(std::make_unique<uint64_t[]>((bytes_ + 7) / 8)) {
        static_assert(sizeof(Header) % alignof(Entry) == 0);
    }
    Header* header() { return reinterpret_cast<Header*>(storage_.get()); }
    Entry* entries() { return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(storage_.get()) + sizeof(Header)); }
    void* data() { return storage_.get(); }

private:
    size_t bytes_;
    std::unique_ptr<uint64_t[]> storage_;  // value-initialized: all zero
};
using CpuidBuffer = FlexBuffer<CpuidHeader, kvm_cpuid_entry2>;
using MsrBuffer = FlexBuffer<MsrsHeader, kvm_msr_entry>;

// Capabilities the VMM cannot work without, with what each is for.
struct RequiredCap {
    long cap;
    const char* name;
};
constexpr RequiredCap kRequiredCaps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY (guest RAM from VMM memory)"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP (in-kernel PIC/IOAPIC/LAPIC)"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2 (in-kernel i8254)"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD (queue notifications)"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD (device interrupts)"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID (KVM_GET_SUPPORTED_CPUID)"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT (stopping vCPUs)"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
};

}  // namespace

// --- Kvm ---------------------------------------------------------------------

Result<Kvm> Kvm::create(const char* path) {
    Kvm kvm;
    kvm.fd_.reset(::open(path, O_RDWR | O_CLOEXEC));
    if (!kvm.fd_.valid()) {
        int e = errno;
        std::string p = path;
        if (e == ENOENT || e == ENODEV || e == ENXIO)
            return make_error(e, p + " not found: load the kvm module (modprobe kvm_intel or kvm_amd) "
                                     "or run inside the KVM test host (tests/kvm-host/run.sh)");
        if (e == EACCES || e == EPERM)
            return make_error(e, p + ": permission denied: add your user to the kvm group "
                                     "(usermod -aG kvm $USER, then log in again) or chmod /dev/kvm");
        errno = e;
        return errno_error("open " + p);
    }
    int api = xioctl(kvm.fd(), KVM_GET_API_VERSION, 0);
    if (api < 0) return errno_error("KVM_GET_API_VERSION");
    if (api != kApiVersion)
        return make_error(ENOTSUP, "KVM API version " + std::to_string(api) + ", expected " +
                                       std::to_string(kApiVersion) + ": this host kernel's KVM is unsupported");
    for (const auto& c : kRequiredCaps) {
        if (kvm.check_extension(c.cap) <= 0)
            return make_error(ENOTSUP, std::string("KVM lacks ") + c.name +
                                           ": use a newer host kernel (Linux >= 4.14) with kvm_intel or kvm_amd");
    }
    kvm.tsc_deadline_ = kvm.check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    int mmap_size = xioctl(kvm.fd(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (mmap_size < 0) return errno_error("KVM_GET_VCPU_MMAP_SIZE");
    if (static_cast<size_t>(mmap_size) < sizeof(kvm_run))
        return make_error(EINVAL, "KVM_GET_VCPU_MMAP_SIZE returned " + std::to_string(mmap_size) +
                                      ", smaller than struct kvm_run");
    kvm.vcpu_mmap_size_ = static_cast<size_t>(mmap_size);
    return kvm;
}

bool Kvm::is_kvm_pvm() {
    struct stat st;
    return ::stat("/sys/module/kvm_pvm", &st) == 0;
}

Result<void> Kvm::check_can_run_linux() {
    if (!is_kvm_pvm()) return {};
    // For measuring host-side setup cost (time to the first KVM_RUN) on such
    // a machine: the guest starts, and dies later, as described above.
    if (const char* v = std::getenv("KRUNLET_ALLOW_KVM_PVM"); v != nullptr && std::string_view(v) == "1") return {};
    return make_error(ENOTSUP,
                      "/dev/kvm is provided by kvm_pvm (a software hypervisor, /sys/module/kvm_pvm): "
                      "Linux guests cannot run under it (their kernel mode is emulated and user space dies "
                      "at its first syscall); run inside the KVM test host (tests/kvm-host/run.sh) or on a "
                      "machine with hardware virtualization (vmx/svm)");
}

int Kvm::check_extension(long cap) const {
    int r = xioctl(fd(), KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

Result<std::vector<kvm_cpuid_entry2>> Kvm::get_supported_cpuid() const {
    // The caller sizes the array; KVM answers E2BIG until it is big enough.
    for (uint32_t n = 128; n <= 4096; n *= 2) {
        CpuidBuffer buf(n);
        buf.header()->nent = n;
        if (xioctl(fd(), kGetSupportedCpuid, buf.data()) == 0) {
            uint32_t got = std::min(buf.header()->nent, n);
            return std::vector<kvm_cpuid_entry2>(buf.entries(), buf.entries() + got);
        }
        if (errno != E2BIG) return errno_error("KVM_GET_SUPPORTED_CPUID");
    }
    return make_error(E2BIG, "KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

Result<VmFd> Kvm::create_vm() const {
    // KVM_CREATE_VM's argument is the machine type; 0 is the default x86 VM.
    int r = xioctl(fd(), KVM_CREATE_VM, 0UL);
    if (r < 0) return errno_error("KVM_CREATE_VM");
    return VmFd(UniqueFd(r), vcpu_mmap_size_);
}

// --- VmFd --------------------------------------------------------------------

Result<void> VmFd::set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host,
                                          uint32_t flags) const {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.flags = flags;
    region.guest_phys_addr = gpa;
    region.memory_size = size;
    region.userspace_addr = reinterpret_cast<uint64_t>(host);
    if (xioctl(fd(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return errno_error("KVM_SET_USER_MEMORY_REGION slot " + std::to_string(slot) + " at " + hex(gpa) +
                           " size " + hex(size));
    return {};
}

Result<void> VmFd::set_tss_addr(uint64_t gpa) const {
    return check(xioctl(fd(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(gpa)), "KVM_SET_TSS_ADDR");
}

Result<void> VmFd::set_identity_map_addr(uint64_t gpa) const {
    uint64_t addr = gpa;
    return check(xioctl(fd(), KVM_SET_IDENTITY_MAP_ADDR, &addr), "KVM_SET_IDENTITY_MAP_ADDR");
}

Result<void> VmFd::create_irqchip() const {
    return check(xioctl(fd(), KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
}

Result<void> VmFd::create_pit2() const {
    kvm_pit_config cfg{};
    cfg.flags = KVM_PIT_SPEAKER_DUMMY;
    return check(xioctl(fd(), KVM_CREATE_PIT2, &cfg), "KVM_CREATE_PIT2");
}

Result<void> VmFd::register_irqfd(int eventfd, uint32_t gsi) const {
    kvm_irqfd req{};
    req.fd = static_cast<uint32_t>(eventfd);
    req.gsi = gsi;
    if (xioctl(fd(), KVM_IRQFD, &req) < 0) return errno_error("KVM_IRQFD gsi " + std::to_string(gsi));
    return {};
}

Result<void> VmFd::unregister_irqfd(int eventfd, uint32_t gsi) const {
    kvm_irqfd req{};
    req.fd = static_cast<uint32_t>(eventfd);
    req.gsi = gsi;
    req.flags = KVM_IRQFD_FLAG_DEASSIGN;
    if (xioctl(fd(), KVM_IRQFD, &req) < 0)
        return errno_error("KVM_IRQFD deassign gsi " + std::to_string(gsi));
    return {};
}

Result<void> VmFd::ioeventfd(int eventfd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch,
                             bool deassign) const {
    if (len != 1 && len != 2 && len != 4 && len != 8)
        return make_error(EINVAL, "ioeventfd length must be 1, 2, 4 or 8, not " + std::to_string(len));
    kvm_ioeventfd req{};
    req.addr = addr;
    req.len = len;
    req.fd = eventfd;
    if (datamatch) {
        req.datamatch = *datamatch;
        req.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    }
    if (deassign) req.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    if (xioctl(fd(), KVM_IOEVENTFD, &req) < 0)
        return errno_error(std::string("KVM_IOEVENTFD ") + (deassign ? "deassign " : "") + "at " + hex(addr));
    return {};
}

Result<void> VmFd::register_ioeventfd(int eventfd, uint64_t addr, uint32_t len,
                                      std::optional<uint64_t> datamatch) const {
    return ioeventfd(eventfd, addr, len, datamatch, false);
}

Result<void> VmFd::unregister_ioeventfd(int eventfd, uint64_t addr, uint32_t len,
                                        std::optional<uint64_t> datamatch) const {
    return ioeventfd(eventfd, addr, len, datamatch, true);
}

Result<Vcpu> VmFd::create_vcpu(uint32_t id) const {
    int r = xioctl(fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
    if (r < 0) return errno_error("KVM_CREATE_VCPU " + std::to_string(id));
    UniqueFd vfd(r);
    void* p = ::mmap(nullptr, vcpu_mmap_size_, PROT_READ | PROT_WRITE, MAP_SHARED, vfd.get(), 0);
    if (p == MAP_FAILED) return errno_error("mmap of kvm_run for vCPU " + std::to_string(id));
    return Vcpu(std::move(vfd), Mapping(p, vcpu_mmap_size_), id);
}

// --- Vcpu --------------------------------------------------------------------

Result<uint32_t> Vcpu::run() {
    if (::ioctl(fd(), KVM_RUN, 0) < 0) {
        // EINTR: a signal arrived during KVM_RUN, or immediate_exit was set.
        if (errno == EINTR) return static_cast<uint32_t>(KVM_EXIT_INTR);
        // EAGAIN: an application processor woke up in the wait-for-SIPI
        // state without having been started yet (x86.c, vcpu_block): KVM
        // asks user space to simply call KVM_RUN again.
        if (errno == EAGAIN) return static_cast<uint32_t>(KVM_EXIT_INTR);
        return errno_error("KVM_RUN on vCPU " + std::to_string(id_));
    }
    return run_data()->exit_reason;
}

// immediate_exit is read by KVM on another CPU (the vCPU thread's KVM_RUN),
// so the store must be a real atomic store, not one the compiler may defer.
void Vcpu::request_exit() const {
    std::atomic_ref<uint8_t>(run_data()->immediate_exit).store(1, std::memory_order_release);
}

void Vcpu::clear_exit_request() const {
    std::atomic_ref<uint8_t>(run_data()->immediate_exit).store(0, std::memory_order_release);
}

std::span<uint8_t> Vcpu::io_data() const {
    const kvm_run* r = run_data();
    uint64_t off = r->io.data_offset;
    uint64_t len = static_cast<uint64_t>(r->io.size) * r->io.count;
    // Written by the kernel, not the guest, but a wrong offset would be a
    // host memory access outside the mapping: check it anyway.
    if (off > run_.size() || len > run_.size() - off) return {};
    return {run_.data() + off, static_cast<size_t>(len)};
}

Result<void> Vcpu::set_cpuid2(std::span<const kvm_cpuid_entry2> entries) const {
    CpuidBuffer buf(entries.size());
    buf.header()->nent = static_cast<uint32_t>(entries.size());
    std::memcpy(buf.entries(), entries.data(), entries.size_bytes());
    return check(xioctl(fd(), kSetCpuid2, buf.data()), "KVM_SET_CPUID2");
}

Result<kvm_regs> Vcpu::get_regs() const {
    kvm_regs r{};
    if (xioctl(fd(), KVM_GET_REGS, &r) < 0) return errno_error("KVM_GET_REGS");
    return r;
}

Result<void> Vcpu::set_regs(const kvm_regs& regs) const {
    return check(xioctl(fd(), KVM_SET_REGS, &regs), "KVM_SET_REGS");
}

Result<kvm_sregs> Vcpu::get_sregs() const {
    kvm_sregs s{};
    if (xioctl(fd(), KVM_GET_SREGS, &s) < 0) return errno_error("KVM_GET_SREGS");
    return s;
}

Result<void> Vcpu::set_sregs(const kvm_sregs& sregs) const {
    return check(xioctl(fd(), KVM_SET_SREGS, &sregs), "KVM_SET_SREGS");
}

Result<kvm_fpu> Vcpu::get_fpu() const {
    kvm_fpu f{};
    if (xioctl(fd(), KVM_GET_FPU, &f) < 0) return errno_error("KVM_GET_FPU");
    return f;
}

Result<void> Vcpu::set_fpu(const kvm_fpu& fpu) const {
    return check(xioctl(fd(), KVM_SET_FPU, &fpu), "KVM_SET_FPU");
}

Result<void> Vcpu::set_msrs(std::span<const kvm_msr_entry> msrs) const {
    MsrBuffer buf(msrs.size());
    buf.header()->nmsrs = static_cast<uint32_t>(msrs.size());
    std::memcpy(buf.entries(), msrs.data(), msrs.size_bytes());
    // KVM_SET_MSRS returns how many entries it set, stopping at the first refusal.
    int n = xioctl(fd(), kSetMsrs, buf.data());
    if (n < 0) return errno_error("KVM_SET_MSRS");
    if (static_cast<size_t>(n) < msrs.size())
        return make_error(EINVAL, "KVM_SET_MSRS: KVM refused MSR " + hex(msrs[n].index) + " = " +
                                      hex(msrs[n].data) + " on vCPU " + std::to_string(id_));
    return {};
}

Result<std::vector<kvm_msr_entry>> Vcpu::get_msrs(std::span<const uint32_t> indices) const {
    MsrBuffer buf(indices.size());
    buf.header()->nmsrs = static_cast<uint32_t>(indices.size());
    for (size_t i = 0; i < indices.size(); ++i) buf.entries()[i].index = indices[i];
    int n = xioctl(fd(), kGetMsrs, buf.data());
    if (n < 0) return errno_error("KVM_GET_MSRS");
    if (static_cast<size_t>(n) < indices.size())
        return make_error(EINVAL, "KVM_GET_MSRS: KVM cannot read MSR " + hex(indices[n]));
    return std::vector<kvm_msr_entry>(buf.entries(), buf.entries() + indices.size());
}

Result<kvm_lapic_state> Vcpu::get_lapic() const {
    kvm_lapic_state s{};
    if (xioctl(fd(), KVM_GET_LAPIC, &s) < 0)
        return errno_error("KVM_GET_LAPIC (the VM needs KVM_CREATE_IRQCHIP before its vCPUs)");
    return s;
}

Result<void> Vcpu::set_lapic(const kvm_lapic_state& lapic) const {
    return check(xioctl(fd(), KVM_SET_LAPIC, &lapic), "KVM_SET_LAPIC");
}

Result<kvm_mp_state> Vcpu::get_mp_state() const {
    kvm_mp_state s{};
    if (xioctl(fd(), KVM_GET_MP_STATE, &s) < 0) return errno_error("KVM_GET_MP_STATE");
    return s;
}

}  // namespace krunlet
