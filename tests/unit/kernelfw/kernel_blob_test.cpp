// The guest kernel built into libkrunlet-kernel.so.1, and KernelFile's order:
// $KRUNLET_KERNEL, then the blob, then a file next to the library.
#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "krunlet_kernel.h"
#include "vmm/kernel_file.h"

using krunlet::KernelFile;

namespace {

std::vector<char> slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// The /proc/self/maps line whose range holds `addr`.
std::string maps_line_of(const void* addr) {
    std::ifstream maps("/proc/self/maps");
    auto a = reinterpret_cast<uintptr_t>(addr);
    for (std::string line; std::getline(maps, line);) {
        uintptr_t lo = 0, hi = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi) return line;
    }
    return "";
}

// Sets or unsets KRUNLET_KERNEL for one scope.
struct EnvKernel {
    explicit EnvKernel(const char* value) {
        if (const char* old = std::getenv("KRUNLET_KERNEL")) saved = old, had = true;
        if (value != nullptr)
            ::setenv("KRUNLET_KERNEL", value, 1);
        else
            ::unsetenv("KRUNLET_KERNEL");
    }
    ~EnvKernel() {
        if (had)
            ::setenv("KRUNLET_KERNEL", saved.c_str(), 1);
        else
            ::unsetenv("KRUNLET_KERNEL");
    }
    std::string saved;
    bool had = false;
};

const bool kConfigured = std::string(KRUNLET_TEST_KERNEL_IMAGE) != "";

}  // namespace

TEST_CASE("krunlet_kernel_blob: the configured vmlinux, byte for byte, page-aligned and read-only") {
    const void* data = reinterpret_cast<const void*>(1);
    size_t size = 1;
    CHECK(krunlet_kernel_blob(nullptr, &size) == -EINVAL);
    CHECK(krunlet_kernel_blob(&data, nullptr) == -EINVAL);
    int rc = krunlet_kernel_blob(&data, &size);
    if (!kConfigured) {
        MESSAGE("built without -DKRUNLET_KERNEL_IMAGE: the library must say it holds no kernel");
        CHECK(rc == -ENOENT);
        CHECK(data == nullptr);
        CHECK(size == 0);
        return;
    }
    REQUIRE(rc == 0);
    REQUIRE(data != nullptr);
    auto file = slurp(KRUNLET_TEST_KERNEL_IMAGE);
    REQUIRE(file.size() > 64);
    CHECK(size == file.size());
    CHECK(std::memcmp(data, file.data(), std::min(size, file.size())) == 0);
    const auto* b = static_cast<const unsigned char*>(data);
    CHECK(b[0] == 0x7f);
    CHECK(b[1] == 'E');
    CHECK(b[2] == 'L');
    CHECK(b[3] == 'F');
    CHECK(b[4] == 2);  // ELFCLASS64
    CHECK(reinterpret_cast<uintptr_t>(data) % 4096 == 0);
    // Mapped from the library file itself, readable, not writable, not executable.
    std::string line = maps_line_of(data);
    INFO("maps: " << line);
    CHECK(line.find(" r--p ") != std::string::npos);
    CHECK(line.find("libkrunlet-kernel.so") != std::string::npos);
}

TEST_CASE("KernelFile::open_default: KRUNLET_KERNEL, else the embedded kernel, else the file") {
    {
        EnvKernel env(nullptr);
        auto k = KernelFile::open_default();
        if (kConfigured) {
            REQUIRE_MESSAGE(k.ok(), k.error().message);
            CHECK(k->is_embedded());
            const void* data = nullptr;
            size_t size = 0;
            REQUIRE(krunlet_kernel_blob(&data, &size) == 0);
            CHECK(k->bytes().data() == data);  // the loader's pages, not a copy
            CHECK(k->bytes().size() == size);
        } else if (!k.ok()) {
            // No blob and no file: the message names the fix.
            CHECK(k.error().code == ENOENT);
            CHECK(k.error().message.find("./setup.sh") != std::string::npos);
            CHECK(k.error().message.find("KRUNLET_KERNEL") != std::string::npos);
        }
    }
    {
        // Any 64-bit ELF file passes the early check; the ELF loader checks the rest.
        EnvKernel env("/proc/self/exe");
        auto k = KernelFile::open_default();
        REQUIRE_MESSAGE(k.ok(), k.error().message);
        CHECK_FALSE(k->is_embedded());
        CHECK(k->path() == "/proc/self/exe");
    }
    {
        // An explicit choice that fails is an error, not a silent fallback.
        EnvKernel env("/no/such/vmlinux");
        auto k = KernelFile::open_default();
        REQUIRE_FALSE(k.ok());
        CHECK(k.error().code == ENOENT);
        CHECK(k.error().message.find("KRUNLET_KERNEL") != std::string::npos);
        CHECK(k.error().message.find("/no/such/vmlinux") != std::string::npos);
    }
}

TEST_CASE("KernelFile::open refuses what cannot be a vmlinux, saying why") {
    auto text = KernelFile::open("/etc/passwd");
    REQUIRE_FALSE(text.ok());
    CHECK(text.error().code == EINVAL);
    CHECK(text.error().message.find("not an ELF file") != std::string::npos);
    auto dir = KernelFile::open("/");
    REQUIRE_FALSE(dir.ok());
    CHECK(dir.error().code == EINVAL);
    auto missing = KernelFile::open("/no/such/vmlinux");
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().code == ENOENT);
    CHECK(missing.error().message.find("./setup.sh") != std::string::npos);
    CHECK(krunlet::vmlinux_problem({}) != nullptr);
}

TEST_CASE("KernelFile: release_pages keeps the bytes readable; intact() sees pages taken by a VM") {
    // A private file mapping, as the loader's kMove would find it.
    auto k = KernelFile::open("/proc/self/exe");
    REQUIRE_MESSAGE(k.ok(), k.error().message);
    const std::vector<uint8_t> before(k->bytes().begin(), k->bytes().end());
    CHECK(k->intact());
    // Dropping the page-table entries of a read-only private file mapping loses nothing.
    k->release_pages();
    CHECK(std::equal(before.begin(), before.end(), k->bytes().begin()));
    CHECK(k->intact());
    // A page moved away (as GuestMemory::adopt_pages does) leaves a hole that intact() reports.
    const long page = ::sysconf(_SC_PAGESIZE);
    REQUIRE(k->bytes().size() > size_t(2 * page));
    auto* second = const_cast<uint8_t*>(k->bytes().data()) + page;
    REQUIRE(::munmap(second, size_t(page)) == 0);
    CHECK_FALSE(k->intact());
}
