#include "arch/x86/elf_loader.h"

#include <elf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "arch/x86/hex.h"
#include "arch/x86/layout.h"

namespace krunlet::x86 {

namespace {

// Xen's ELF note type for the PVH 32-bit entry (include/xen/interface/elfnote.h).
constexpr uint32_t kXenElfnotePhys32Entry = 18;

Error bad_elf(const std::string& why) {
    return make_error(ENOEXEC, "kernel image: " + why +
                                   ": give an uncompressed x86_64 vmlinux (ELF), e.g. from "
                                   "scripts/extract-vmlinux or kernel/build.sh");
}

// [off, off + len) lies inside a buffer of `size` bytes, without overflow.
bool in_bounds(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

template <class T>
T read_at(std::span<const uint8_t> buf, uint64_t off) {  // caller checked bounds
    T v;
    std::memcpy(&v, buf.data() + off, sizeof v);
    return v;
}

struct Parsed {
    Elf64_Ehdr ehdr;
    std::vector<Elf64_Phdr> loads;  // PT_LOAD with p_memsz > 0, sorted by p_paddr
    std::optional<uint32_t> pvh_entry;
};

// Walks one PT_NOTE segment looking for Xen's PHYS32_ENTRY note. Each note is
// {namesz, descsz, type} followed by the name and the descriptor, each padded
// to 4 bytes (ELF gABI, "Note Section").
Result<void> scan_notes(std::span<const uint8_t> notes, std::optional<uint32_t>& pvh_entry) {
    uint64_t off = 0;
    auto align4 = [](uint64_t v) { return (v + 3) & ~uint64_t{3}; };
    while (notes.size() - off >= sizeof(Elf64_Nhdr)) {
        auto nh = read_at<Elf64_Nhdr>(notes, off);
        off += sizeof nh;
        uint64_t name_off = off;
        uint64_t desc_off = name_off + align4(nh.n_namesz);  // namesz is 32-bit: no overflow
        if (!in_bounds(name_off, align4(nh.n_namesz), notes.size()) ||
            !in_bounds(desc_off, nh.n_descsz, notes.size()))
            return bad_elf("ELF note runs past its PT_NOTE segment");
        static constexpr char kXen[] = "Xen";  // namesz counts the NUL
        if (nh.n_type == kXenElfnotePhys32Entry && nh.n_namesz == sizeof kXen &&
            std::memcmp(notes.data() + name_off, kXen, sizeof kXen) == 0) {
            // Linux emits it with _ASM_PTR: 8 bytes on x86_64, 4 on i386.
            uint64_t v = 0;
            if (nh.n_descsz == 4)
                v = read_at<uint32_t>(notes, desc_off);
            else if (nh.n_descsz == 8)
                v = read_at<uint64_t>(notes, desc_off);
            else
                return bad_elf("PVH entry note has a " + std::to_string(nh.n_descsz) + "-byte value");
            if (v > UINT32_MAX) return bad_elf("PVH entry " + hex(v) + " is above 4 GiB");
            pvh_entry = static_cast<uint32_t>(v);
        }
        uint64_t next = desc_off + align4(nh.n_descsz);
        if (next > notes.size()) break;  // last note's padding may be cut off
        off = next;
    }
    return {};
}

Result<Parsed> parse(std::span<const uint8_t> elf) {
    Parsed p{};
    if (elf.size() < sizeof(Elf64_Ehdr)) return bad_elf("file is shorter than an ELF64 header");
    p.ehdr = read_at<Elf64_Ehdr>(elf, 0);
    const Elf64_Ehdr& eh = p.ehdr;
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return bad_elf("not an ELF file (bad magic)");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64) return bad_elf("not a 64-bit ELF (a 32-bit kernel?)");
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return bad_elf("not little-endian");
    if (eh.e_ident[EI_VERSION] != EV_CURRENT || eh.e_version != EV_CURRENT) return bad_elf("unknown ELF version");
    if (eh.e_machine != EM_X86_64) return bad_elf("machine is " + std::to_string(eh.e_machine) + ", not x86_64");
    if (eh.e_type != ET_EXEC) return bad_elf("not an executable (e_type " + std::to_string(eh.e_type) + ")");
    if (eh.e_ehsize < sizeof(Elf64_Ehdr)) return bad_elf("e_ehsize is too small");
    if (eh.e_phentsize != sizeof(Elf64_Phdr)) return bad_elf("e_phentsize is not sizeof(Elf64_Phdr)");
    if (eh.e_phnum == 0 || eh.e_phnum == PN_XNUM) return bad_elf("no (or too many) program headers");
    uint64_t ph_bytes = uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
    if (!in_bounds(eh.e_phoff, ph_bytes, elf.size()))
        return bad_elf("program headers at " + hex(eh.e_phoff) + " lie outside the file");

    for (uint16_t i = 0; i < eh.e_phnum; ++i) {
        auto ph = read_at<Elf64_Phdr>(elf, eh.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr));
        std::string which = "segment " + std::to_string(i);
        if (ph.p_type == PT_NOTE) {
            if (!in_bounds(ph.p_offset, ph.p_filesz, elf.size()))
                return bad_elf(which + " (PT_NOTE) lies outside the file");
            KRUNLET_CHECK(scan_notes(elf.subspan(ph.p_offset, ph.p_filesz), p.pvh_entry));
            continue;
        }
        if (ph.p_type != PT_LOAD) continue;
        if (ph.p_filesz > ph.p_memsz) return bad_elf(which + " has p_filesz > p_memsz");
        if (!in_bounds(ph.p_offset, ph.p_filesz, elf.size()))
            return bad_elf(which + " (file bytes " + hex(ph.p_offset) + "+" + hex(ph.p_filesz) +
                           ") lies outside the file: truncated image?");
        if (ph.p_paddr + ph.p_memsz < ph.p_paddr || ph.p_vaddr + ph.p_memsz < ph.p_vaddr)
            return bad_elf(which + " wraps around the address space");
        if (ph.p_memsz == 0) continue;
        if (ph.p_paddr < kHighMemoryStart)
            return bad_elf(which + " loads at " + hex(ph.p_paddr) +
                           ", below 1 MiB where the boot structures live");
        p.loads.push_back(ph);
    }
    if (p.loads.empty()) return bad_elf("no PT_LOAD segment");
    std::sort(p.loads.begin(), p.loads.end(),
              [](const Elf64_Phdr& a, const Elf64_Phdr& b) { return a.p_paddr < b.p_paddr; });
    for (size_t i = 1; i < p.loads.size(); ++i) {
        const auto& a = p.loads[i - 1];
        const auto& b = p.loads[i];
        if (a.p_paddr + a.p_memsz > b.p_paddr)
            return bad_elf("PT_LOAD segments at " + hex(a.p_paddr) + " and " + hex(b.p_paddr) + " overlap");
    }
    return p;
}

// vmlinux's e_entry is already physical: arch/x86/kernel/vmlinux.lds.S says
// ENTRY(phys_startup_64) with phys_startup_64 = startup_64 - LOAD_OFFSET, i.e.
// the physical address of startup_64 at the start of .text (0x1000000 for a
// default build). The "+0x200" of boot.rst's 64-bit protocol is for a bzImage,
// whose decompressor (arch/x86/boot/compressed/head_64.S) has its startup_64
// 0x200 bytes into the protected-mode code; it does not apply to a vmlinux.
// An image whose e_entry is a virtual address instead (inside some segment's
// p_vaddr range) is translated through that segment's p_paddr.
Result<uint64_t> physical_entry(const Parsed& p) {
    uint64_t e = p.ehdr.e_entry;
    for (const auto& ph : p.loads)
        if (e >= ph.p_paddr && e - ph.p_paddr < ph.p_filesz) return e;
    for (const auto& ph : p.loads)
        if (e >= ph.p_vaddr && e - ph.p_vaddr < ph.p_filesz) return ph.p_paddr + (e - ph.p_vaddr);
    return bad_elf("entry point " + hex(e) + " is not inside any loaded segment");
}

// Zero [p, p + len), skipping the pages that already read as zero. Guest RAM
// is fresh when a VM loads its kernel, and reading an untouched page maps the
// shared zero page, where writing would allocate (and, with transparent huge
// pages, clear 2 MiB) for nothing: the bss is 1.6 MiB of the krunlet kernel.
void zero_unless_zero(uint8_t* p, uint64_t len) {
    static constexpr uint8_t kZeros[kPageSize] = {};
    while (len > 0) {
        // Up to the next page boundary, so that each check covers one page.
        const uint64_t n = std::min<uint64_t>(len, kPageSize - reinterpret_cast<uintptr_t>(p) % kPageSize);
        if (std::memcmp(p, kZeros, n) != 0) std::memset(p, 0, n);
        p += n;
        len -= n;
    }
}

Result<KernelImage> describe(const Parsed& p) {
    KernelImage img;
    auto entry = physical_entry(p);
    if (!entry) return entry.error();
    img.entry = *entry;
    img.load_start = p.loads.front().p_paddr;
    img.load_end = 0;
    for (const auto& ph : p.loads) img.load_end = std::max(img.load_end, ph.p_paddr + ph.p_memsz);
    img.pvh_entry = p.pvh_entry;
    return img;
}

}  // namespace

Result<KernelImage> inspect_elf_kernel(std::span<const uint8_t> elf) {
    auto p = parse(elf);
    if (!p) return p.error();
    return describe(*p);
}

Result<KernelImage> load_elf_kernel(std::span<const uint8_t> elf, const GuestMemory& mem, KernelPages how) {
    auto p = parse(elf);
    if (!p) return p.error();
    auto img = describe(*p);
    if (!img) return img.error();
    // Check every destination before writing any, so a failure leaves guest
    // RAM untouched.
    for (const auto& ph : p->loads) {
        if (mem.translate(ph.p_paddr, ph.p_memsz) == nullptr)
            return make_error(ENOMEM, "kernel segment " + hex(ph.p_paddr) + "-" + hex(ph.p_paddr + ph.p_memsz) +
                                          " does not fit in guest RAM (" +
                                          std::to_string(mem.total_size() / kMiB) +
                                          " MiB): give the VM more memory");
    }
    for (const auto& ph : p->loads) {
        uint8_t* dst = mem.translate(ph.p_paddr, ph.p_memsz);
        const uint8_t* src = elf.data() + ph.p_offset;
        uint64_t moved = 0;
        // Only read-only segments move. The guest writes nearly every page of
        // a writable one (data, per-cpu, init, bss): moved, each such page
        // costs two nested page faults (a read maps the file's page, the
        // write copies it) and is private afterwards anyway. Copied, those
        // pages land in huge pages; this removed about 1,500 of the boot's
        // VM exits (bench/compare_boot.sh).
        if (how == KernelPages::kMove && (ph.p_flags & PF_W) == 0) {
            // Whole pages only: the file's bytes after p_filesz in the last
            // page belong to whatever follows the segment in the file.
            const uint64_t whole = ph.p_filesz & ~(kPageSize - 1);
            if (whole > 0 && mem.adopt_pages(ph.p_paddr, src, whole)) moved = whole;
        }
        std::memcpy(dst + moved, src + moved, ph.p_filesz - moved);
        zero_unless_zero(dst + ph.p_filesz, ph.p_memsz - ph.p_filesz);
    }
    return img;
}

}  // namespace krunlet::x86
