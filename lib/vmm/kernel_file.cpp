#include "vmm/kernel_file.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "krunlet_kernel.h"
#include "memory/guest_memory.h"

namespace krunlet {

namespace {

// An address inside this object, for dladdr().
void anchor() {}

constexpr const char* kFix = "run ./setup.sh (it builds the kernel and configures the build with it), "
                             "or point KRUNLET_KERNEL at a vmlinux";

const char* env_kernel() {
    const char* env = std::getenv("KRUNLET_KERNEL");
    return env != nullptr && *env != '\0' ? env : nullptr;
}

}  // namespace

const char* vmlinux_problem(std::span<const uint8_t> bytes) {
    // ELF header (System V gABI): magic, then EI_CLASS 2 = 64-bit.
    static constexpr uint8_t kMagic[4] = {0x7f, 'E', 'L', 'F'};
    if (bytes.size() < 64) return "it is too small to be a vmlinux";
    if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
        return "it is not an ELF file (a bzImage or compressed kernel? krunlet boots the uncompressed "
               "vmlinux; linux/scripts/extract-vmlinux makes one)";
    if (bytes[4] != 2) return "it is a 32-bit ELF file, not an x86-64 vmlinux";
    return nullptr;
}

std::string KernelFile::default_path() {
    Dl_info info{};
    if (::dladdr(reinterpret_cast<void*>(&anchor), &info) != 0 && info.dli_fname != nullptr) {
        std::string self = info.dli_fname;
        auto slash = self.rfind('/');
        std::string dir = slash == std::string::npos ? "." : self.substr(0, slash);
        // Executables live in bin/, libraries in lib/: try both layouts.
        for (const char* rel : {"/krunlet/vmlinux", "/../lib/krunlet/vmlinux"}) {
            std::string p = dir + rel;
            if (::access(p.c_str(), R_OK) == 0) return p;
        }
        return dir + "/krunlet/vmlinux";
    }
    return "krunlet/vmlinux";
}

Result<KernelFile> KernelFile::open(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        int e = errno;
        return make_error(e, "cannot open the guest kernel " + path + ": " + std::strerror(e) + " (" + kFix + ")");
    }
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) return errno_error("fstat " + path);
    if (!S_ISREG(st.st_mode) || st.st_size < 64)
        return make_error(EINVAL, "the guest kernel " + path + " is not a vmlinux file");
    void* p = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) return errno_error("mmap " + path);
    KernelFile k;
    k.map_ = Mapping(p, size_t(st.st_size));
    k.bytes_ = {k.map_.data(), k.map_.size()};
    k.path_ = path;
    if (const char* why = vmlinux_problem(k.bytes_))
        return make_error(EINVAL, "the guest kernel " + path + " cannot be booted: " + why);
    return k;
}

Result<KernelFile> KernelFile::embedded() {
    const void* data = nullptr;
    size_t size = 0;
    if (int rc = krunlet_kernel_blob(&data, &size); rc != 0)
        return make_error(-rc, "libkrunlet-kernel.so.1 holds no guest kernel (it was built without "
                               "-DKRUNLET_KERNEL_IMAGE)");
    KernelFile k;
    k.bytes_ = {static_cast<const uint8_t*>(data), size};
    k.path_ = "the kernel built into libkrunlet-kernel.so.1";
    k.embedded_ = true;
    // A build problem, not the user's: say so plainly.
    if (const char* why = vmlinux_problem(k.bytes_))
        return make_error(EINVAL, k.path_ + " cannot be booted: " + why + "; rebuild with a vmlinux");
    return k;
}

void KernelFile::release_pages() const {
    // Whole pages inside the bytes only (the embedded blob is page-aligned in
    // its library; a file mapping starts on a page). Best effort: a refusal
    // only leaves the pages counted.
    discard_whole_pages(bytes_.data(), bytes_.size());
}

bool KernelFile::intact() const {
    const long page = ::sysconf(_SC_PAGESIZE);
    if (bytes_.empty() || page <= 0) return !bytes_.empty();
    const auto mask = uintptr_t(page) - 1;
    const uintptr_t first = reinterpret_cast<uintptr_t>(bytes_.data()) & ~mask;
    const uintptr_t end = (reinterpret_cast<uintptr_t>(bytes_.data()) + bytes_.size() + mask) & ~mask;
    // mincore fails with ENOMEM when any page of the range is unmapped.
    std::vector<unsigned char> residency((end - first) / uintptr_t(page));
    return ::mincore(reinterpret_cast<void*>(first), end - first, residency.data()) == 0;
}

Result<KernelFile> KernelFile::open_default() {
    if (const char* env = env_kernel()) {
        auto k = open(env);
        if (!k.ok()) return make_error(k.error().code, "KRUNLET_KERNEL: " + k.error().message);
        return k;
    }
    auto blob = embedded();
    if (blob.ok() || blob.error().code != ENOENT) return blob;
    std::string path = default_path();
    auto file = open(path);
    if (file.ok() || file.error().code != ENOENT) return file;
    return make_error(ENOENT, "no guest kernel: " + blob.error().message + ", and " + path +
                                  " does not exist; " + kFix);
}

}  // namespace krunlet
