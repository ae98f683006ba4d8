#include "virtiofs/host_path.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <climits>
#include <cstring>

namespace krunlet::fs {

bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > NAME_MAX) return false;
    if (name == "." || name == "..") return false;
    return name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

namespace {

long sys_openat2(int dirfd, const char* path, open_how* how) {
    return ::syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
}

constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;

}  // namespace

Result<HostPaths> HostPaths::create() {
    HostPaths p;
    p.proc_fd_ = UniqueFd(::open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!p.proc_fd_.valid()) {
        Error e = errno_error("virtio-fs: open /proc/self/fd");
        e.message += " (the server reopens files through procfs: mount /proc)";
        return e;
    }
    // openat2 arrived in Linux 5.6; a seccomp filter may also answer ENOSYS/EPERM. Probe once
    // on a harmless path and fall back to single-component openat otherwise.
    open_how how{};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = kResolve;
    long fd = sys_openat2(p.proc_fd_.get(), ".", &how);
    if (fd >= 0) {
        ::close(static_cast<int>(fd));
        p.has_openat2_ = true;
    }
    return p;
}

Result<UniqueFd> HostPaths::open_child(int dirfd, const Name& name, int flags, mode_t mode) const {
    flags |= O_CLOEXEC | O_NOFOLLOW;
    long fd;
    if (has_openat2_) {
        open_how how{};
        how.flags = static_cast<uint64_t>(static_cast<unsigned>(flags));
        how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;  // openat2 rejects a stray mode
        how.resolve = kResolve;
        // RESOLVE_BENEATH may answer EAGAIN when a concurrent rename raced a ".." step; we never
        // pass "..", but retry a few times rather than loop on a hostile host.
        int tries = 0;
        do {
            fd = sys_openat2(dirfd, name.c_str(), &how);
        } while (fd < 0 && errno == EAGAIN && ++tries < 4);
        // The probe ran on the creating thread; a worker thread's seccomp filter may still
        // answer ENOSYS. The single-component openat below is just as confined.
        if (fd < 0 && errno == ENOSYS) fd = ::openat(dirfd, name.c_str(), flags, mode);
    } else {
        fd = ::openat(dirfd, name.c_str(), flags, mode);
    }
    if (fd < 0) return fail(errno);
    return UniqueFd(static_cast<int>(fd));
}

Result<UniqueFd> HostPaths::reopen(int opath, int flags) const {
    int fd = ::openat(proc_fd_.get(), fd_name(opath).c_str(), flags | O_CLOEXEC);
    if (fd < 0) return fail(errno);
    return UniqueFd(fd);
}

HostPaths::ProcPath HostPaths::proc_path(int fd) {
    ProcPath p{};
    static constexpr char kPrefix[] = "/proc/self/fd/";
    std::memcpy(p.buf, kPrefix, sizeof(kPrefix) - 1);
    auto r = std::to_chars(p.buf + sizeof(kPrefix) - 1, p.buf + sizeof(p.buf) - 1, fd);
    *r.ptr = '\0';
    return p;
}

HostPaths::FdName HostPaths::fd_name(int fd) {
    FdName n{};
    auto r = std::to_chars(n.buf, n.buf + sizeof(n.buf) - 1, fd);
    *r.ptr = '\0';
    return n;
}

}  // namespace krunlet::fs
