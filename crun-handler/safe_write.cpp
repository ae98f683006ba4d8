#include "safe_write.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace krunlet::oci {
namespace {

std::vector<std::string> split_path(std::string_view p) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= p.size()) {
        size_t slash = p.find('/', start);
        if (slash == std::string_view::npos) slash = p.size();
        if (slash > start) out.emplace_back(p.substr(start, slash - start));
        start = slash + 1;
    }
    return out;
}

Error refuse(const std::string& shown, const std::string& why) {
    return make_error(ELOOP, "refusing to write " + shown + ": " + why +
                                 " (the container image must not put a symlink or special file there; "
                                 "remove it from the image)");
}

// The parent directory of the target, by openat2: the kernel resolves every
// component beneath root_fd and fails with ELOOP at the first symlink.
Result<UniqueFd> open_parent_openat2(int root_fd, const std::string& dir, const std::string& shown) {
    if (dir.empty()) {
        int fd = ::fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) return errno_error("dup of the rootfs fd");
        return UniqueFd(fd);
    }
    open_how how{};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    long fd = ::syscall(SYS_openat2, root_fd, dir.c_str(), &how, sizeof how);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP) return refuse(shown, "a directory on the way is a symlink");
        if (e == ENOTDIR) return refuse(shown, "a component on the way is not a directory");
        if (e == EXDEV) return refuse(shown, "a directory on the way is a mount point");
        errno = e;
        return errno_error("open " + shown + " (directory " + dir + ")");
    }
    return UniqueFd(static_cast<int>(fd));
}

// The same without openat2 (Linux < 5.6): one component at a time, each opened
// with O_NOFOLLOW|O_DIRECTORY so a symlink fails (ELOOP or ENOTDIR).
Result<UniqueFd> open_parent_walk(int root_fd, const std::vector<std::string>& parts, const std::string& shown) {
    int first = ::fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
    if (first < 0) return errno_error("dup of the rootfs fd");
    UniqueFd cur(first);
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
        int fd = ::openat(cur.get(), parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            struct stat st{};
            if ((e == ELOOP || e == ENOTDIR) &&
                ::fstatat(cur.get(), parts[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                return refuse(shown, "directory '" + parts[i] + "' on the way is a symlink");
            if (e == ENOTDIR) return refuse(shown, "'" + parts[i] + "' on the way is not a directory");
            errno = e;
            return errno_error("open " + shown + " (directory " + parts[i] + ")");
        }
        cur = UniqueFd(fd);
    }
    return cur;
}

}  // namespace

Result<UniqueFd> open_root(const std::string& root) {
    int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno_error("open the container rootfs " + root);
    return UniqueFd(fd);
}

Result<void> write_file_beneath(int root_fd, std::string_view relpath, std::string_view content, unsigned mode,
                                const std::string& shown_root, Resolver resolver) {
    const std::string shown = shown_root + "/" + std::string(relpath);
    std::vector<std::string> parts = split_path(relpath);
    if (parts.empty() || (!relpath.empty() && relpath.front() == '/'))
        return make_error(EINVAL, "write " + shown + ": the path must be relative to the rootfs");
    for (const std::string& p : parts)
        if (p == "." || p == "..") return make_error(EINVAL, "write " + shown + ": '.' and '..' are not allowed");
    std::string dir;
    for (size_t i = 0; i + 1 < parts.size(); ++i) dir += (i ? "/" : "") + parts[i];
    const std::string& name = parts.back();

    Result<UniqueFd> parent = make_error(ENOSYS, "");
    if (resolver != Resolver::kWalk) {
        parent = open_parent_openat2(root_fd, dir, shown);
        if (!parent.ok() && parent.error().code == ENOSYS && resolver == Resolver::kAuto)
            parent = open_parent_walk(root_fd, parts, shown);
    } else {
        parent = open_parent_walk(root_fd, parts, shown);
    }
    if (!parent.ok()) return parent.error();
    int dfd = parent->get();

    // What is there now? Only a regular file may be replaced; it is unlinked
    // (never opened), so a hard link to some other inode is not written either.
    struct stat st{};
    if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode)) return refuse(shown, "it is a symlink");
        if (!S_ISREG(st.st_mode)) return refuse(shown, "it exists and is not a regular file");
        if (::unlinkat(dfd, name.c_str(), 0) != 0 && errno != ENOENT) return errno_error("remove the old " + shown);
    } else if (errno != ENOENT) {
        return errno_error("stat " + shown);
    }
    // O_EXCL: if anything appeared in between (a racing symlink), creation fails
    // instead of following it.
    int fd = ::openat(dfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST) return refuse(shown, "something was created there while krun was writing it");
        return errno_error("create " + shown);
    }
    UniqueFd out(fd);
    // The umask must not narrow what the guest needs to read.
    if (::fchmod(out.get(), mode) != 0) return errno_error("chmod " + shown);
    size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(out.get(), content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno_error("write " + shown);
        }
        done += static_cast<size_t>(n);
    }
    return ok_result();
}

}  // namespace krunlet::oci
