#include "exit_guest.h"

#include <elf.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "arch/x86/layout.h"
#include "kvm/kvm.h"
#include "../../elf_image.h"

namespace krunlet::load {

namespace {

// Runs in long mode at e_entry with the loader's identity paging (vcpu_setup.h).
constexpr uint8_t kCode[] = {
    0xb0, 0xfe,  // mov al, 0xfe   ; i8042 command: pulse the reset line
    0xe6, 0x64,  // out 0x64, al   ; the VMM ends the VM here
    0xf4,        // 1: hlt         ; never reached; if it were, KVM parks the vCPU
    0xeb, 0xfd,  //    jmp 1b      ; and request_stop still gets it out
};

}  // namespace

std::vector<uint8_t> exit_guest_elf() {
    Elf64_Ehdr eh = test::x86_64_exec_header();
    eh.e_entry = x86::kKernelLoadAddr;  // physical, like a vmlinux's phys_startup_64
    eh.e_phnum = 1;

    Elf64_Phdr ph{};
    ph.p_type = PT_LOAD;
    ph.p_flags = PF_R | PF_X;
    ph.p_offset = sizeof eh + sizeof ph;
    ph.p_paddr = x86::kKernelLoadAddr;
    ph.p_vaddr = x86::kKernelLoadAddr;
    ph.p_filesz = sizeof kCode;
    ph.p_memsz = sizeof kCode;
    ph.p_align = 16;

    std::vector<uint8_t> out(sizeof eh + sizeof ph + sizeof kCode);
    std::memcpy(out.data(), &eh, sizeof eh);
    std::memcpy(out.data() + sizeof eh, &ph, sizeof ph);
    std::memcpy(out.data() + ph.p_offset, kCode, sizeof kCode);
    return out;
}

VmConfig exit_guest_config(std::span<const uint8_t> elf) {
    VmConfig c;
    c.vcpus = 1;
    c.ram_mib = 32;  // the code sits at 16 MiB (kKernelLoadAddr); RAM is MAP_NORESERVE anyway
    c.kernel = elf;
    c.net.enabled = false;
    c.console_in = -1;   // the console reads /dev/null
    c.console_out = -1;  // and writes nowhere
    c.log_level = 0;
    return c;
}

Result<VmOutcome> run_exit_guest(const VmConfig& config) {
    auto vm = Vm::create(config);
    if (!vm.ok()) return vm.error();
    VmOutcome out = (*vm)->run();
    vm->reset();  // the whole teardown belongs to the cycle
    if (out.exit_code != kExitGuestCode || out.status_from_guest)
        return make_error(EPROTO, "the minimal guest ended with " + std::to_string(out.exit_code) + " (" +
                                      out.reason + "), not by its reset");
    return out;
}

void allow_kvm_pvm() {
    if (Kvm::is_kvm_pvm()) ::setenv("KRUNLET_ALLOW_KVM_PVM", "1", 1);
}

const char* kvm_unavailable() {
    if (::access("/dev/kvm", R_OK | W_OK) != 0) return "/dev/kvm is missing or not accessible";
    return nullptr;
}

}  // namespace krunlet::load
