#include "arch/x86/elf_loader.h"

#include <doctest/doctest.h>
#include <elf.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "arch/x86/layout.h"
#include "../../elf_image.h"

using namespace krunlet;
using namespace krunlet::x86;

namespace {

constexpr uint64_t kVirtBase = 0xffffffff80000000ull;  // __START_KERNEL_map

// A hand-made ELF image: header, program headers, then segment contents.
struct ElfBuilder {
    Elf64_Ehdr eh{};
    std::vector<Elf64_Phdr> ph;
    std::vector<std::vector<uint8_t>> contents;  // file bytes per program header
    uint64_t content_align = 1;                  // file offset alignment of each content

    ElfBuilder() : eh(test::x86_64_exec_header()) {}
    void load(uint64_t paddr, std::vector<uint8_t> bytes, uint64_t memsz, uint32_t flags = PF_R | PF_X) {
        Elf64_Phdr p{};
        p.p_type = PT_LOAD;
        p.p_paddr = paddr;
        p.p_vaddr = kVirtBase + paddr;
        p.p_filesz = bytes.size();
        p.p_memsz = memsz;
        p.p_flags = flags;
        ph.push_back(p);
        contents.push_back(std::move(bytes));
    }
    void note(uint32_t type, const char* name, std::vector<uint8_t> desc) {
        std::vector<uint8_t> n;
        Elf64_Nhdr nh{static_cast<Elf64_Word>(std::strlen(name) + 1), static_cast<Elf64_Word>(desc.size()), type};
        n.resize(sizeof nh);
        std::memcpy(n.data(), &nh, sizeof nh);
        n.insert(n.end(), name, name + nh.n_namesz);
        while (n.size() % 4) n.push_back(0);
        n.insert(n.end(), desc.begin(), desc.end());
        while (n.size() % 4) n.push_back(0);
        Elf64_Phdr p{};
        p.p_type = PT_NOTE;
        p.p_filesz = n.size();
        ph.push_back(p);
        contents.push_back(std::move(n));
    }
    std::vector<uint8_t> build() {
        eh.e_phnum = static_cast<uint16_t>(ph.size());
        uint64_t off = sizeof(Elf64_Ehdr) + ph.size() * sizeof(Elf64_Phdr);
        for (size_t i = 0; i < ph.size(); ++i) {
            off = (off + content_align - 1) / content_align * content_align;
            ph[i].p_offset = off;
            off += contents[i].size();
        }
        std::vector<uint8_t> out(sizeof eh);
        std::memcpy(out.data(), &eh, sizeof eh);
        for (const auto& p : ph) {
            const auto* b = reinterpret_cast<const uint8_t*>(&p);
            out.insert(out.end(), b, b + sizeof p);
        }
        for (size_t i = 0; i < ph.size(); ++i) {
            out.resize(ph[i].p_offset, 0xcc);  // padding the loader must never copy
            out.insert(out.end(), contents[i].begin(), contents[i].end());
        }
        return out;
    }
};

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
    return v;
}

// The usual two-segment image: text at 1 MiB, data + bss at 2 MiB.
ElfBuilder kernel_like() {
    ElfBuilder b;
    b.load(0x100000, pattern(64, 1), 64);
    b.load(0x200000, pattern(32, 100), 0x3000);
    b.eh.e_entry = 0x100000;
    return b;
}

GuestMemory make_ram(uint64_t bytes = 8 * kMiB) {
    auto m = GuestMemory::create(bytes, kMmioHoleStart, kMmioHoleEnd);
    REQUIRE(m.ok());
    return std::move(m).value();
}

std::string load_error(std::vector<uint8_t> elf, const GuestMemory& mem) {
    auto r = load_elf_kernel(elf, mem);
    if (r.ok()) return "";
    return r.error().message;
}

}  // namespace

TEST_CASE("ELF loader copies PT_LOAD segments and zeroes bss") {
    auto mem = make_ram();
    std::memset(mem.translate(0x200000, 0x3000), 0xee, 0x3000);  // stale bytes where bss goes
    auto elf = kernel_like().build();
    auto img = load_elf_kernel(elf, mem);
    REQUIRE_MESSAGE(img.ok(), (img.ok() ? "" : img.error().message));
    CHECK(img->entry == 0x100000);
    CHECK(img->load_start == 0x100000);
    CHECK(img->load_end == 0x203000);
    CHECK(!img->pvh_entry.has_value());
    auto text = pattern(64, 1), data = pattern(32, 100);
    CHECK(std::memcmp(mem.translate(0x100000, 64), text.data(), 64) == 0);
    CHECK(std::memcmp(mem.translate(0x200000, 32), data.data(), 32) == 0);
    const uint8_t* bss = mem.translate(0x200000 + 32, 0x3000 - 32);
    bool zero = true;
    for (size_t i = 0; i < 0x3000 - 32; ++i) zero &= bss[i] == 0;
    CHECK(zero);
}

TEST_CASE("ELF loader kMove: whole pages of a private file mapping move into guest RAM, the rest is copied") {
    // Segment A: page-aligned in the file and in guest RAM, 3 pages + 100 bytes, then bss.
    // Segment B: page-aligned in the file but not in guest RAM, so it cannot move.
    // Segment C: aligned like A but writable (PF_W), so it is copied: the guest would write it.
    ElfBuilder b;
    b.content_align = kPageSize;
    const size_t a_len = 3 * kPageSize + 100, b_len = 2 * kPageSize, c_len = 2 * kPageSize;
    b.load(0x100000, pattern(a_len, 3), a_len + 0x2000);
    b.load(0x300800, pattern(b_len, 9), b_len);
    b.load(0x400000, pattern(c_len, 5), c_len, PF_R | PF_W);
    b.eh.e_entry = 0x100000;
    auto elf = b.build();

    char path[] = "/tmp/krunlet-elf-XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::unlink(path);
    REQUIRE(::write(fd, elf.data(), elf.size()) == ssize_t(elf.size()));
    const size_t map_len = (elf.size() + kPageSize - 1) & ~(kPageSize - 1);
    void* map = ::mmap(nullptr, map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    REQUIRE(map != MAP_FAILED);
    const auto* file = static_cast<const uint8_t*>(map);
    auto mapped = [&](uint64_t off, size_t len) {
        std::vector<unsigned char> v((len + kPageSize - 1) / kPageSize);
        return ::mincore(const_cast<uint8_t*>(file) + off, len, v.data()) == 0;
    };

    auto mem = make_ram();
    auto img = load_elf_kernel({file, elf.size()}, mem, KernelPages::kMove);
    REQUIRE_MESSAGE(img.ok(), (img.ok() ? "" : img.error().message));
    const auto a = pattern(a_len, 3), bb = pattern(b_len, 9);
    CHECK(std::memcmp(mem.translate(0x100000, a_len), a.data(), a_len) == 0);
    CHECK(std::memcmp(mem.translate(0x300800, b_len), bb.data(), b_len) == 0);
    const auto c = pattern(c_len, 5);
    CHECK(std::memcmp(mem.translate(0x400000, c_len), c.data(), c_len) == 0);
    // The tail after p_filesz is zero, not the file's padding that shares A's last page.
    const uint8_t* bss = mem.translate(0x100000 + a_len, 0x2000);
    CHECK(std::all_of(bss, bss + 0x2000, [](uint8_t x) { return x == 0; }));
    // A's three whole pages left the file mapping; its partial page and B were copied.
    const uint64_t a_off = b.ph[0].p_offset, b_off = b.ph[1].p_offset;
    CHECK_FALSE(mapped(a_off, 3 * kPageSize));
    CHECK(mapped(a_off + 3 * kPageSize, kPageSize));
    CHECK(mapped(b_off, b_len));
    CHECK(mapped(b.ph[2].p_offset, c_len));
    // The moved pages are writable for the guest, and a write never reaches the file.
    mem.translate(0x100000, 1)[0] = 0x5a;
    uint8_t first = 0;
    REQUIRE(::pread(fd, &first, 1, off_t(a_off)) == 1);
    CHECK(first == a[0]);
    ::munmap(map, map_len);
    ::close(fd);

    // kCopy (the default) leaves the bytes where they were.
    std::vector<uint8_t> copy = elf;
    auto mem2 = make_ram();
    REQUIRE(load_elf_kernel(copy, mem2).ok());
    CHECK(copy == elf);
    CHECK(std::memcmp(mem2.translate(0x100000, a_len), a.data(), a_len) == 0);
}

TEST_CASE("ELF loader translates a virtual e_entry and finds the PVH note") {
    auto mem = make_ram();
    auto b = kernel_like();
    b.eh.e_entry = kVirtBase + 0x100000 + 0x10;
    b.note(18, "Xen", {0x34, 0x12, 0x10, 0x01, 0, 0, 0, 0});  // 8-byte _ASM_PTR
    b.note(5, "GNU", {1, 2, 3, 4});                           // ignored
    auto img = load_elf_kernel(b.build(), mem);
    REQUIRE_MESSAGE(img.ok(), (img.ok() ? "" : img.error().message));
    CHECK(img->entry == 0x100010);
    REQUIRE(img->pvh_entry.has_value());
    CHECK(*img->pvh_entry == 0x01101234);
}

TEST_CASE("ELF loader rejects malformed images") {
    auto mem = make_ram();

    SUBCASE("shorter than a header") {
        auto elf = kernel_like().build();
        elf.resize(20);
        CHECK(load_error(elf, mem).find("shorter") != std::string::npos);
    }
    SUBCASE("truncated inside a segment") {
        auto elf = kernel_like().build();
        elf.resize(elf.size() - 10);
        CHECK(load_error(elf, mem).find("truncated") != std::string::npos);
    }
    SUBCASE("program headers beyond the file") {
        auto b = kernel_like();
        b.eh.e_phoff = 1 << 20;
        CHECK(load_error(b.build(), mem).find("program headers") != std::string::npos);
    }
    SUBCASE("program header table overflowing 64 bits") {
        auto b = kernel_like();
        b.eh.e_phoff = ~uint64_t{0} - 8;
        CHECK(load_error(b.build(), mem).find("program headers") != std::string::npos);
    }
    SUBCASE("segment file offset beyond the file") {
        auto elf = kernel_like().build();
        Elf64_Phdr ph;
        std::memcpy(&ph, elf.data() + sizeof(Elf64_Ehdr), sizeof ph);
        ph.p_offset = ~uint64_t{0} - 4;  // offset + filesz wraps
        std::memcpy(elf.data() + sizeof(Elf64_Ehdr), &ph, sizeof ph);
        CHECK(load_error(elf, mem).find("outside the file") != std::string::npos);
    }
    SUBCASE("overlapping segments") {
        ElfBuilder b;
        b.load(0x100000, pattern(16, 0), 0x2000);
        b.load(0x101000, pattern(16, 0), 0x10);
        b.eh.e_entry = 0x100000;
        CHECK(load_error(b.build(), mem).find("overlap") != std::string::npos);
    }
    SUBCASE("segment beyond guest RAM") {
        ElfBuilder b;
        b.load(0x100000, pattern(16, 0), 16);
        b.load(8 * kMiB - 8, pattern(16, 0), 16);  // straddles the end of RAM
        b.eh.e_entry = 0x100000;
        std::memset(mem.translate(0x100000, 16), 0x5a, 16);
        auto msg = load_error(b.build(), mem);
        CHECK(msg.find("does not fit in guest RAM") != std::string::npos);
        // Nothing was written: the check runs before any copy.
        CHECK(*mem.translate(0x100000, 1) == 0x5a);
    }
    SUBCASE("segment wrapping the address space") {
        ElfBuilder b;
        b.load(0x100000, pattern(16, 0), 16);
        b.ph[0].p_memsz = ~uint64_t{0};
        b.eh.e_entry = 0x100000;
        CHECK(load_error(b.build(), mem).find("wraps") != std::string::npos);
    }
    SUBCASE("segment below 1 MiB") {
        ElfBuilder b;
        b.load(0x7000, pattern(16, 0), 16);
        b.eh.e_entry = 0x7000;
        CHECK(load_error(b.build(), mem).find("below 1 MiB") != std::string::npos);
    }
    SUBCASE("filesz > memsz") {
        ElfBuilder b;
        b.load(0x100000, pattern(32, 0), 16);
        b.eh.e_entry = 0x100000;
        CHECK(load_error(b.build(), mem).find("p_filesz > p_memsz") != std::string::npos);
    }
    SUBCASE("32-bit ELF") {
        auto b = kernel_like();
        b.eh.e_ident[EI_CLASS] = ELFCLASS32;
        CHECK(load_error(b.build(), mem).find("64-bit") != std::string::npos);
    }
    SUBCASE("wrong machine") {
        auto b = kernel_like();
        b.eh.e_machine = EM_AARCH64;
        CHECK(load_error(b.build(), mem).find("not x86_64") != std::string::npos);
    }
    SUBCASE("not an executable") {
        auto b = kernel_like();
        b.eh.e_type = ET_REL;
        CHECK(load_error(b.build(), mem).find("not an executable") != std::string::npos);
    }
    SUBCASE("bad magic (e.g. a bzImage)") {
        auto elf = kernel_like().build();
        elf[1] = 'X';
        auto msg = load_error(elf, mem);
        CHECK(msg.find("bad magic") != std::string::npos);
        CHECK(msg.find("extract-vmlinux") != std::string::npos);  // names the fix
    }
    SUBCASE("entry outside every segment") {
        auto b = kernel_like();
        b.eh.e_entry = 0x500000;
        CHECK(load_error(b.build(), mem).find("entry point") != std::string::npos);
    }
    SUBCASE("no loadable segment") {
        ElfBuilder b;
        b.note(18, "Xen", {1, 0, 0, 0});
        CHECK(load_error(b.build(), mem).find("no PT_LOAD") != std::string::npos);
    }
    SUBCASE("note running past its segment") {
        auto b = kernel_like();
        b.note(18, "Xen", {1, 0, 0, 0});
        Elf64_Nhdr nh;
        std::memcpy(&nh, b.contents.back().data(), sizeof nh);
        nh.n_descsz = 4096;
        std::memcpy(b.contents.back().data(), &nh, sizeof nh);
        CHECK(load_error(b.build(), mem).find("note") != std::string::npos);
    }
}

// A real kernel, when one is named: KRUNLET_TEST_VMLINUX=/path/to/vmlinux.
static const char* test_vmlinux() { return std::getenv("KRUNLET_TEST_VMLINUX"); }

TEST_CASE("ELF loader on a real vmlinux (KRUNLET_TEST_VMLINUX)" * doctest::skip(test_vmlinux() == nullptr)) {
    std::ifstream f(test_vmlinux(), std::ios::binary);
    REQUIRE(f.good());
    std::vector<uint8_t> elf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto mem = make_ram(256 * kMiB);
    auto img = load_elf_kernel(elf, mem);
    REQUIRE_MESSAGE(img.ok(), (img.ok() ? "" : img.error().message));
    char desc[160];
    std::snprintf(desc, sizeof desc, "vmlinux entry 0x%llx, loaded 0x%llx-0x%llx, PVH entry 0x%x",
                  static_cast<unsigned long long>(img->entry), static_cast<unsigned long long>(img->load_start),
                  static_cast<unsigned long long>(img->load_end), img->pvh_entry ? *img->pvh_entry : 0u);
    MESSAGE(desc);
    CHECK(img->entry == kKernelLoadAddr);  // phys_startup_64
    CHECK(img->load_start == kKernelLoadAddr);
    // startup_64 begins with `lea rsp, [rip + ...]` (48 8d 25).
    const uint8_t* code = mem.translate(img->entry, 3);
    CHECK(code[0] == 0x48);
    CHECK(code[1] == 0x8d);
    CHECK(code[2] == 0x25);
}
