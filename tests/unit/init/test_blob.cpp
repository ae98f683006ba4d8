// The embedded init binary (init/init_blob.h) is the built krunlet-init,
// byte for byte, page-aligned, and a static x86-64 executable.
#include <elf.h>

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "init/init_blob.h"

TEST_CASE("the blob holds the built krunlet-init, page-aligned") {
    std::span<const uint8_t> blob = krunlet::init_binary();
    REQUIRE(blob.size() > sizeof(Elf64_Ehdr));
    CHECK(reinterpret_cast<uintptr_t>(blob.data()) % 4096 == 0);

    std::ifstream in(KRUNLET_INIT_BINARY, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "cannot open ", KRUNLET_INIT_BINARY);
    std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(file.size() == blob.size());
    CHECK(std::memcmp(file.data(), blob.data(), blob.size()) == 0);
}

TEST_CASE("the embedded init is a static x86-64 executable (no interpreter, no dynamic section)") {
    std::span<const uint8_t> blob = krunlet::init_binary();
    Elf64_Ehdr eh;
    std::memcpy(&eh, blob.data(), sizeof eh);
    REQUIRE(std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0);
    CHECK(eh.e_ident[EI_CLASS] == ELFCLASS64);
    CHECK(eh.e_machine == EM_X86_64);
    CHECK(eh.e_type == ET_EXEC);
    REQUIRE(eh.e_phentsize == sizeof(Elf64_Phdr));
    REQUIRE(eh.e_phoff + size_t(eh.e_phnum) * sizeof(Elf64_Phdr) <= blob.size());
    for (int i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        std::memcpy(&ph, blob.data() + eh.e_phoff + size_t(i) * sizeof ph, sizeof ph);
        CHECK(ph.p_type != PT_INTERP);
        CHECK(ph.p_type != PT_DYNAMIC);
    }
    MESSAGE("krunlet-init is ", blob.size(), " bytes");
}
