// The ELF64 file header of a hand-made x86-64 executable image, shared by the
// tests that build guests in memory (tests/unit/x86 elf_loader_test,
// tests/unit/load exit_guest). Program headers follow it directly; callers
// set e_entry and e_phnum.
#pragma once

#include <elf.h>

#include <cstring>

namespace krunlet::test {

inline Elf64_Ehdr x86_64_exec_header() {
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phoff = sizeof(Elf64_Ehdr);
    return eh;
}

}  // namespace krunlet::test
