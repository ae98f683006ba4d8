#include "vmm/kernel_file.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace krunlet {

namespace {
// An address inside this object, for dladdr().
void anchor() {}
}  // namespace

std::string KernelFile::default_path() {
    if (const char* env = std::getenv("KRUNLET_KERNEL"); env != nullptr && *env != '\0') return env;
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
        return make_error(e, "cannot open the guest kernel " + path + ": " + std::strerror(e) +
                                 " (build it with ./setup.sh, or point KRUNLET_KERNEL at a vmlinux)");
    }
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) return errno_error("fstat " + path);
    if (!S_ISREG(st.st_mode) || st.st_size < 64)
        return make_error(EINVAL, "the guest kernel " + path + " is not a vmlinux file");
    void* p = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) return errno_error("mmap " + path);
    KernelFile k;
    k.map_ = Mapping(p, size_t(st.st_size));
    k.path_ = path;
    return k;
}

Result<KernelFile> KernelFile::open_default() { return open(default_path()); }

}  // namespace krunlet
