// Confined access to the shared host directory (DESIGN.md §4, "Confinement").
//
// Every name the guest sends is one validated path component resolved relative to a directory
// fd that the server already holds: nothing ever walks a multi-component path, and no symlink
// is ever followed on the host. Objects are reopened for I/O through /proc/self/fd/N, never by
// name, and only when they are regular files or directories.
#pragma once

#include <sys/types.h>

#include <string_view>

#include "base/fd.h"
#include "base/result.h"
#include "virtiofs/fs_api.h"

namespace krunlet::fs {

// A file name from the guest must be one path component: not empty, not "." or "..", no '/'
// or NUL, at most NAME_MAX (255) bytes. Violations get EINVAL.
bool valid_name(std::string_view name);

// Error code for an attempt to open a host object that must never be opened for I/O (FIFO,
// socket, character or block device: CVE-2020-35517). ENXIO is what open(2) itself returns for
// a socket; the guest's kernel opens such nodes locally and never asks the server to.
inline constexpr int kSpecialFileError = ENXIO;

class HostPaths {
public:
    // Opens /proc/self/fd (needed to reopen O_PATH fds) and probes openat2(2).
    static Result<HostPaths> create();

    // Opens the single component `name` below directory `dirfd`, never following a symlink:
    // openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS where the
    // kernel has it, else openat with O_NOFOLLOW. O_CLOEXEC | O_NOFOLLOW are always added, so
    // with O_PATH a symlink yields an fd for the link itself.
    Result<UniqueFd> open_child(int dirfd, const Name& name, int flags, mode_t mode = 0) const;

    // Reopens the object behind O_PATH fd `opath` with `flags` through /proc/self/fd.
    // The caller must have checked the object's type (regular file or directory only).
    Result<UniqueFd> reopen(int opath, int flags) const;

    // "/proc/self/fd/N" for the path-only system calls (the xattr family, before *xattrat).
    // Resolving that magic link lands on the object itself, even a symlink, without following it.
    struct ProcPath {
        char buf[32];
        const char* c_str() const { return buf; }
    };
    static ProcPath proc_path(int fd);
    // "N", relative to proc_fd(), for *at() calls.
    struct FdName {
        char buf[16];
        const char* c_str() const { return buf; }
    };
    static FdName fd_name(int fd);

    int proc_fd() const { return proc_fd_.get(); }
    bool has_openat2() const { return has_openat2_; }

private:
    UniqueFd proc_fd_;
    bool has_openat2_ = false;
};

}  // namespace krunlet::fs
