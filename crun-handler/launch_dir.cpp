#include "launch_dir.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>

#include "base/fd.h"
#include "subprocess.h"

namespace krunlet::oci {
namespace fs = std::filesystem;
namespace {

std::string dir_of(const std::string& p) {
    size_t slash = p.rfind('/');
    return slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
}

std::string base_of(const std::string& p) {
    size_t slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

bool is_file(const std::string& p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<void> read_exact(int fd, void* buf, size_t n, off_t off, const std::string& path) {
    ssize_t r = ::pread(fd, buf, n, off);
    if (r < 0) return errno_error("read " + path);
    if (static_cast<size_t>(r) != n) return make_error(EINVAL, path + " is truncated (not a complete ELF file)");
    return ok_result();
}

// Hard link `src` (followed to the real file) at `dst`, or copy it when the
// two are on different filesystems or linking is not allowed.
Result<void> link_or_copy(const std::string& src, const std::string& dst) {
    char real[PATH_MAX];
    if (::realpath(src.c_str(), real) == nullptr) return errno_error("resolve " + src);
    if (::link(real, dst.c_str()) == 0) return ok_result();
    if (errno != EXDEV && errno != EPERM && errno != EMLINK) return errno_error("link " + src + " to " + dst);
    std::error_code ec;
    fs::copy_file(real, dst, fs::copy_options::overwrite_existing, ec);
    if (ec) return make_error(ec.value(), "copy " + src + " to " + dst + ": " + ec.message());
    return ok_result();
}

}  // namespace

Result<InstalledFiles> locate_installed(const std::string& self_exe, const std::string& rel_libdir) {
    InstalledFiles f;
    const std::string bindir = dir_of(self_exe);
    const char* env_launcher = std::getenv("KRUNLET_LAUNCHER");
    f.launcher = env_launcher && *env_launcher ? env_launcher : bindir + "/krunlet-launch";
    if (!is_file(f.launcher))
        return make_error(ENOENT, "the launcher " + f.launcher + " is missing: install krunlet-launch next to krun, "
                                                                 "or set KRUNLET_LAUNCHER");
    const char* env_lib = std::getenv("KRUNLET_LIBKRUN");
    if (env_lib && *env_lib) {
        f.libkrun = env_lib;
    } else {
        for (const std::string& rel : {std::string("../lib"), rel_libdir}) {
            if (rel.empty()) continue;
            std::string candidate = bindir + "/" + rel + "/libkrun.so.1";
            if (is_file(candidate)) {
                f.libkrun = candidate;
                break;
            }
        }
    }
    if (f.libkrun.empty() || !is_file(f.libkrun))
        return make_error(ENOENT, "libkrun.so.1 was not found in " + bindir + "/../lib" +
                                      (rel_libdir.empty() ? "" : " or " + bindir + "/" + rel_libdir) +
                                      ": install krunlet's library, or set KRUNLET_LIBKRUN to its path");
    return f;
}

Result<std::string> elf_interpreter(const std::string& path) {
    int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (raw < 0) return errno_error("open " + path);
    UniqueFd fd(raw);
    Elf64_Ehdr eh{};
    KRUNLET_CHECK(read_exact(fd.get(), &eh, sizeof eh, 0, path));
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64)
        return make_error(ENOEXEC, path + " is not a 64-bit ELF file");
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 512)
        return make_error(ENOEXEC, path + ": unexpected ELF program header layout");
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph{};
        KRUNLET_CHECK(read_exact(fd.get(), &ph, sizeof ph, static_cast<off_t>(eh.e_phoff + i * sizeof ph), path));
        if (ph.p_type != PT_INTERP) continue;
        if (ph.p_filesz < 2 || ph.p_filesz > PATH_MAX)
            return make_error(ENOEXEC, path + ": PT_INTERP has an implausible size");
        std::string s(ph.p_filesz, '\0');
        KRUNLET_CHECK(read_exact(fd.get(), s.data(), s.size(), static_cast<off_t>(ph.p_offset), path));
        s.resize(std::strlen(s.c_str()));
        if (s.empty() || s[0] != '/') return make_error(ENOEXEC, path + ": PT_INTERP is not an absolute path");
        return s;
    }
    return make_error(ENOEXEC, path + " has no ELF interpreter (is it statically linked?)");
}

Result<std::vector<std::pair<std::string, std::string>>> list_dependencies(const std::string& interp,
                                                                           const std::string& file) {
    // A clean environment: the loader must resolve as it would for krun itself, not under a
    // caller's LD_LIBRARY_PATH pointing at some other libkrun.
    auto r = run_capture({interp, "--list", file}, /*clean_env=*/true, size_t{16} << 20);
    if (!r) return r.error();
    if (!r->succeeded())
        return make_error(EIO, interp + " --list " + file + " failed (status " + std::to_string(r->status) +
                                   "): is it a dynamically linked ELF file for this host?");
    const std::string& out = r->out;
    std::vector<std::pair<std::string, std::string>> deps;
    size_t pos = 0;
    while (pos < out.size()) {
        size_t nl = out.find('\n', pos);
        if (nl == std::string::npos) nl = out.size();
        std::string line = out.substr(pos, nl - pos);
        pos = nl + 1;
        // "\tlibfoo.so.1 => /usr/lib/libfoo.so.1 (0x...)"; lines without "=>"
        // are the vDSO and the interpreter itself.
        size_t arrow = line.find(" => ");
        if (arrow == std::string::npos) continue;
        size_t b = line.find_first_not_of(" \t");
        std::string name = line.substr(b, arrow - b);
        std::string rest = line.substr(arrow + 4);
        if (rest.starts_with("not found"))
            return make_error(ENOENT, file + " needs " + name + ", which the host loader cannot find; install it "
                                                                "(or fix the library path) and retry");
        size_t paren = rest.find(" (");
        std::string path = rest.substr(0, paren);
        if (path.empty() || path[0] != '/' || name.find('/') != std::string::npos) continue;
        deps.emplace_back(name, path);
    }
    return deps;
}

Result<LaunchDir> build_launch_dir(const InstalledFiles& files, const std::string& dest) {
    auto interp = elf_interpreter(files.launcher);
    if (!interp.ok()) return interp.error();
    LaunchDir ld;
    ld.dir = dest;
    ld.loader_name = base_of(*interp);

    std::error_code ec;
    fs::remove_all(dest, ec);
    if (ec) return make_error(ec.value(), "remove the old " + dest + ": " + ec.message());
    fs::create_directories(dest + "/bin", ec);
    if (!ec) fs::create_directories(dest + "/lib", ec);
    if (ec) return make_error(ec.value(), "create " + dest + ": " + ec.message());
    // The directory is mounted read-only, but make it readable by any
    // container user (the launcher may run as a non-root uid).
    ::chmod(dest.c_str(), 0755);
    ::chmod((dest + "/bin").c_str(), 0755);
    ::chmod((dest + "/lib").c_str(), 0755);

    KRUNLET_CHECK(link_or_copy(files.launcher, dest + "/bin/krunlet-launch"));
    KRUNLET_CHECK(link_or_copy(*interp, dest + "/lib/" + ld.loader_name));
    KRUNLET_CHECK(link_or_copy(files.libkrun, dest + "/lib/libkrun.so.1"));
    ld.files = 3;
    std::set<std::string> names = {ld.loader_name, "libkrun.so.1"};
    for (const std::string& f : {files.launcher, files.libkrun}) {
        auto deps = list_dependencies(*interp, f);
        if (!deps.ok()) return deps.error();
        for (const auto& [name, path] : *deps) {
            if (!names.insert(name).second) continue;
            KRUNLET_CHECK(link_or_copy(path, dest + "/lib/" + name));
            ++ld.files;
        }
    }
    // A library that still finds its kernel next to itself (krunlet/vmlinux)
    // gets it here too; one that embeds it (libkrunlet-kernel.so.1) was
    // already listed as a dependency.
    std::string vmlinux = dir_of(files.libkrun) + "/krunlet/vmlinux";
    if (is_file(vmlinux)) {
        fs::create_directories(dest + "/lib/krunlet", ec);
        if (ec) return make_error(ec.value(), "create " + dest + "/lib/krunlet: " + ec.message());
        ::chmod((dest + "/lib/krunlet").c_str(), 0755);
        KRUNLET_CHECK(link_or_copy(vmlinux, dest + "/lib/krunlet/vmlinux"));
        ++ld.files;
    }
    return ld;
}

}  // namespace krunlet::oci
