#include "init/mounts.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/magic.h>

#include <cerrno>
#include <cstring>

#include "base/fd.h"

namespace krunlet::init {
namespace {

// mkdir -p. Existing directories (or symlinks to them) are fine.
Result<void> make_dirs(const std::string& path, mode_t mode) {
    for (size_t i = 1; i <= path.size(); ++i) {
        if (i != path.size() && path[i] != '/') continue;
        std::string part = path.substr(0, i);
        if (::mkdir(part.c_str(), mode) == 0 || errno == EEXIST) continue;
        return errno_error("creating " + part);
    }
    return ok_result();
}

// Whether `path` already holds a filesystem of type `magic` mounted on it:
// on another device than its parent, and of the right kind. The type check
// matters when the virtio-fs server shows the host's own /proc or /sys as
// submounts: those are FUSE, and the guest's must still go on top.
bool already_mounted(const std::string& path, long magic) {
    struct stat self, parent;
    if (::stat(path.c_str(), &self) < 0) return false;
    if (::stat((path + "/..").c_str(), &parent) < 0) return false;
    if (self.st_dev == parent.st_dev && self.st_ino != parent.st_ino) return false;
    struct statfs fs;
    return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == magic;
}

// Missing, or a directory with nothing in it.
bool missing_or_empty(const std::string& path) {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return errno == ENOENT;
    bool empty = true;
    while (dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
            empty = false;
            break;
        }
    }
    ::closedir(d);
    return empty;
}

Result<void> mount_one(const char* source, const std::string& target, const char* type, long magic,
                       unsigned long flags, const char* data) {
    KRUNLET_CHECK(make_dirs(target, 0755));
    if (already_mounted(target, magic)) return ok_result();
    if (::mount(source, target.c_str(), type, flags, data) < 0)
        return errno_error(std::string("mounting ") + type + " on " + target + (data ? std::string(" (") + data + ")" : ""));
    return ok_result();
}

// Without CONFIG_DEVTMPFS: a tmpfs /dev with the nodes every program expects
// (numbers from the kernel's Documentation/admin-guide/devices.txt).
Result<void> mount_static_dev() {
    if (::mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755") < 0)
        return errno_error("mounting tmpfs on /dev (the kernel has no devtmpfs either)");
    struct Node {
        const char* path;
        mode_t mode;
        unsigned major, minor;
    };
    static constexpr Node kNodes[] = {
        {"/dev/null", 0666, 1, 3},    {"/dev/zero", 0666, 1, 5},   {"/dev/full", 0666, 1, 7},
        {"/dev/random", 0666, 1, 8},  {"/dev/urandom", 0666, 1, 9}, {"/dev/tty", 0666, 5, 0},
        {"/dev/console", 0600, 5, 1}, {"/dev/hvc0", 0600, 229, 0},
    };
    for (const Node& n : kNodes) {
        if (::mknod(n.path, S_IFCHR | n.mode, makedev(n.major, n.minor)) < 0 && errno != EEXIST)
            return errno_error(std::string("creating ") + n.path);
        ::chmod(n.path, n.mode);  // mknod() applied the umask
    }
    return ok_result();
}

void add_link(const char* target, const char* link, std::vector<std::string>& warnings) {
    if (::symlink(target, link) < 0 && errno != EEXIST)
        warnings.push_back(std::string("linking ") + link + " -> " + target + ": " + std::strerror(errno));
}

// Copies one directory level (and below) for tmpcopyup. Both fds are
// directories; `depth` bounds recursion on a pathological tree.
Result<void> copy_tree(int src, int dst, const std::string& where, int depth) {
    if (depth > 64) return make_error(ELOOP, "copying " + where + ": directories nest deeper than 64 levels");
    int dup_fd = ::fcntl(src, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return errno_error("copying " + where);
    DIR* dir = ::fdopendir(dup_fd);
    if (dir == nullptr) {
        ::close(dup_fd);
        return errno_error("copying " + where);
    }
    Result<void> result;
    while (dirent* e = ::readdir(dir)) {
        const char* name = e->d_name;
        if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
        std::string path = where + "/" + name;
        struct stat st;
        if (::fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            result = errno_error("copying " + path);
            break;
        }
        mode_t type = st.st_mode & S_IFMT;
        int rc = 0;
        if (type == S_IFDIR) {
            if (::mkdirat(dst, name, 0700) < 0) {
                result = errno_error("copying " + path);
                break;
            }
            UniqueFd s(::openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            UniqueFd d(::openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (!s.valid() || !d.valid()) {
                result = errno_error("copying " + path);
                break;
            }
            result = copy_tree(s.get(), d.get(), path, depth + 1);
            if (!result) break;
        } else if (type == S_IFREG) {
            UniqueFd s(::openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            UniqueFd d(::openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
            if (!s.valid() || !d.valid()) {
                result = errno_error("copying " + path);
                break;
            }
            char buf[65536];
            ssize_t n;
            while ((n = ::read(s.get(), buf, sizeof buf)) > 0) {
                for (ssize_t off = 0; off < n;) {
                    ssize_t w = ::write(d.get(), buf + off, static_cast<size_t>(n - off));
                    if (w < 0 && errno == EINTR) continue;
                    if (w <= 0) {
                        n = -1;
                        break;
                    }
                    off += w;
                }
                if (n < 0) break;
            }
            if (n < 0) {
                result = errno_error("copying " + path);
                break;
            }
        } else if (type == S_IFLNK) {
            std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
            ssize_t n = ::readlinkat(src, name, target.data(), target.size());
            if (n < 0 || static_cast<size_t>(n) >= target.size()) {
                result = make_error(n < 0 ? errno : EIO, "copying the symlink " + path);
                break;
            }
            target.resize(static_cast<size_t>(n));
            rc = ::symlinkat(target.c_str(), dst, name);
        } else if (type == S_IFIFO || type == S_IFCHR || type == S_IFBLK) {
            rc = ::mknodat(dst, name, st.st_mode, st.st_rdev);
        } else {
            continue;  // sockets belong to a process that is not running here
        }
        if (rc < 0) {
            result = errno_error("copying " + path);
            break;
        }
        // Owner before mode: chown clears the set-id bits.
        if (::fchownat(dst, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
            (type != S_IFLNK && ::fchmodat(dst, name, st.st_mode & 07777, 0) < 0)) {
            result = errno_error("copying the owner and mode of " + path);
            break;
        }
        timespec times[2] = {st.st_atim, st.st_mtim};
        ::utimensat(dst, name, times, AT_SYMLINK_NOFOLLOW);
    }
    ::closedir(dir);
    return result;
}

}  // namespace

Result<void> mount_system(std::vector<std::string>& warnings) {
    KRUNLET_CHECK(mount_one("proc", "/proc", "proc", PROC_SUPER_MAGIC, MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr));
    KRUNLET_CHECK(mount_one("sysfs", "/sys", "sysfs", SYSFS_MAGIC, MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr));

    KRUNLET_CHECK(make_dirs("/dev", 0755));
    // devtmpfs is tmpfs inside, and reports its magic.
    if (!already_mounted("/dev", TMPFS_MAGIC)) {
        if (::mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0) {
            if (errno != ENODEV) return errno_error("mounting devtmpfs on /dev");
            KRUNLET_CHECK(mount_static_dev());
        }
    }

    // A private devpts instance: the workload's ptys are its own, and ptmx is
    // usable by every user.
    if (auto r = mount_one("devpts", "/dev/pts", "devpts", DEVPTS_SUPER_MAGIC, MS_NOSUID | MS_NOEXEC,
                           "newinstance,ptmxmode=0666,mode=0620,gid=5");
        !r)
        warnings.push_back(r.error().message);
    if (auto r = mount_one("tmpfs", "/dev/shm", "tmpfs", TMPFS_MAGIC, MS_NOSUID | MS_NODEV, "mode=1777"); !r)
        warnings.push_back(r.error().message);

    add_link("/proc/self/fd", "/dev/fd", warnings);
    add_link("/proc/self/fd/0", "/dev/stdin", warnings);
    add_link("/proc/self/fd/1", "/dev/stdout", warnings);
    add_link("/proc/self/fd/2", "/dev/stderr", warnings);
    add_link("pts/ptmx", "/dev/ptmx", warnings);

    // Only where it hides nothing of the image's.
    if (missing_or_empty("/tmp")) {
        if (auto r = mount_one("tmpfs", "/tmp", "tmpfs", TMPFS_MAGIC, MS_NOSUID | MS_NODEV, "mode=1777"); !r)
            warnings.push_back(r.error().message);
    }
    return ok_result();
}

bool tmpfs_is_replaced_by_init(const TmpfsMount& m) {
    std::string d = m.destination;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    return d == "/dev";
}

Result<void> mount_tmpfs(const TmpfsMount& m) {
    KRUNLET_CHECK(make_dirs(m.destination, 0755));
    const char* data = m.data.empty() ? nullptr : m.data.c_str();
    std::string what = "mounting the config's tmpfs on " + m.destination;

    if (!m.copy_up) {
        if (::mount("tmpfs", m.destination.c_str(), "tmpfs", m.flags, data) < 0)
            return errno_error(what + (data ? std::string(" (") + data + ")" : ""));
        return ok_result();
    }

    // tmpcopyup: a directory fd taken before the mount still reaches the
    // files underneath it afterwards.
    UniqueFd under(::open(m.destination.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!under.valid()) return errno_error(what + ": opening the directory to copy up");
    // Copy into a writable tmpfs, then apply a read-only flag by remounting.
    unsigned long first = m.flags & ~static_cast<unsigned long>(MS_RDONLY);
    if (::mount("tmpfs", m.destination.c_str(), "tmpfs", first, data) < 0)
        return errno_error(what + (data ? std::string(" (") + data + ")" : ""));
    UniqueFd top(::open(m.destination.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!top.valid()) return errno_error(what + ": opening the new tmpfs");
    KRUNLET_CHECK(copy_tree(under.get(), top.get(), m.destination, 0));
    if (!m.has_mode) {
        // Without mode=, the mount keeps the look of the directory it covers.
        struct stat st;
        if (::fstat(under.get(), &st) == 0) {
            if (::fchown(top.get(), st.st_uid, st.st_gid) < 0 || ::fchmod(top.get(), st.st_mode & 07777) < 0)
                return errno_error(what + ": copying the directory's owner and mode");
        }
    }
    if (m.flags & MS_RDONLY) {
        if (::mount(nullptr, m.destination.c_str(), nullptr, MS_REMOUNT | m.flags, data) < 0)
            return errno_error(what + ": remounting read-only");
    }
    return ok_result();
}

Result<void> mount_virtiofs(const VirtiofsMount& m) {
    std::string what = "mounting the virtio-fs share with tag '" + m.tag + "' on " + m.destination;
    if (auto r = make_dirs(m.destination, 0755); !r)
        return make_error(r.error().code, what + ": creating the mount point: " + r.error().message);
    const char* data = m.data.empty() ? nullptr : m.data.c_str();
    if (::mount(m.tag.c_str(), m.destination.c_str(), "virtiofs", m.flags, data) == 0) return ok_result();
    int e = errno;
    std::string why = what + (data ? std::string(" (options ") + data + ")" : std::string()) + ": " + std::strerror(e);
    // The kernel's virtio-fs answers EINVAL both for a tag no device has and
    // for options it does not know (fs/fuse/virtio_fs.c).
    if (e == EINVAL)
        why += data ? "; no virtio-fs device has this tag, or an option is not one virtiofs knows"
                    : "; no virtio-fs device has this tag: add the share on the host (krun_add_virtiofs, "
                      "krunlet run --volume) under the same tag";
    else if (e == ENODEV)
        why += "; the guest kernel has no virtiofs filesystem";
    return make_error(e, why);
}

}  // namespace krunlet::init
