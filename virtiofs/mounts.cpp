#include "virtiofs/mounts.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <string>

namespace krunlet::fs {

namespace {

// Magics missing from <linux/magic.h>; values from the kernel sources that define them
// (ipc/mqueue.c, fs/configfs/mount.c, fs/fuse/control.c).
constexpr uint64_t kMqueueMagic = 0x19800202;
constexpr uint64_t kConfigfsMagic = 0x62656570;
constexpr uint64_t kFusectlMagic = 0x65735543;

// Above this many cached verdicts the cache starts over (mount ids are small and recycled;
// only a host that mounts and unmounts under a running guest gets near it).
constexpr size_t kMaxVerdicts = 4096;

constexpr int kStatFlags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_SYNC_AS_STAT;

void from_statx(const struct statx& x, struct stat& st) {
    st = {};
    st.st_dev = makedev(x.stx_dev_major, x.stx_dev_minor);
    st.st_ino = x.stx_ino;
    st.st_mode = x.stx_mode;
    st.st_nlink = x.stx_nlink;
    st.st_uid = x.stx_uid;
    st.st_gid = x.stx_gid;
    st.st_rdev = makedev(x.stx_rdev_major, x.stx_rdev_minor);
    st.st_size = static_cast<off_t>(x.stx_size);
    st.st_blksize = static_cast<blksize_t>(x.stx_blksize);
    st.st_blocks = static_cast<blkcnt_t>(x.stx_blocks);
    st.st_atim = {x.stx_atime.tv_sec, x.stx_atime.tv_nsec};
    st.st_mtim = {x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec};
    st.st_ctim = {x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec};
}

// statx with the mount id. False with errno set when the call failed; `got_mnt` tells
// whether this kernel filled stx_mnt_id.
bool statx_mnt(int dirfd, const char* name, int flags, MountedStat& out, bool& got_mnt) {
    struct statx x {};
    if (::statx(dirfd, name, flags, STATX_BASIC_STATS | STATX_MNT_ID, &x) != 0) return false;
    from_statx(x, out.st);
    got_mnt = (x.stx_mask & STATX_MNT_ID) != 0;
    out.mnt_id = got_mnt ? x.stx_mnt_id : kUnknownMount;
    return true;
}

// Reads a whole (small, pseudo) file; false on error.
bool slurp(int fd, std::string& out) {
    char buf[4096];
    while (true) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return false;
        if (n == 0) return true;
        out.append(buf, static_cast<size_t>(n));
    }
}

}  // namespace

bool is_refused_fs_magic(uint64_t t) {
    switch (t) {
        case PROC_SUPER_MAGIC:
        case SYSFS_MAGIC:
        case CGROUP_SUPER_MAGIC:
        case CGROUP2_SUPER_MAGIC:
        case DEVPTS_SUPER_MAGIC:
        case kMqueueMagic:
        case DEBUGFS_MAGIC:
        case TRACEFS_MAGIC:
        case SECURITYFS_MAGIC:
        case BPF_FS_MAGIC:
        case kConfigfsMagic:
        case kFusectlMagic:
        case PSTOREFS_MAGIC:
        case EFIVARFS_MAGIC:
        case BINFMTFS_MAGIC:
        case NSFS_MAGIC:
        case SELINUX_MAGIC:
        case SMACK_MAGIC:
        case RDTGROUP_SUPER_MAGIC:
        case AUTOFS_SUPER_MAGIC:
            return true;
        default:
            return false;
    }
}

struct stat refused_mount_attr(const struct stat& root) {
    struct stat st = root;
    st.st_mode = S_IFDIR | 0555;
    st.st_nlink = 2;
    st.st_size = 0;
    st.st_blocks = 0;
    st.st_rdev = 0;
    return st;
}

Result<Mounts> Mounts::create() {
    Mounts m;
    m.proc_self_ = UniqueFd(::open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!m.proc_self_.valid()) {
        Error e = errno_error("virtio-fs: open /proc/self");
        e.message += " (the server reads mount ids and types from procfs: mount /proc)";
        return e;
    }
    MountedStat probe;
    bool got = false;
    m.statx_mnt_id_ = statx_mnt(m.proc_self_.get(), "", AT_EMPTY_PATH | kStatFlags, probe, got) && got;
    return m;
}

Result<MountedStat> Mounts::stat_at(int dirfd, const char* name) const {
    MountedStat ms;
    bool got = false;
    if (statx_mnt(dirfd, name, kStatFlags, ms, got)) {
        if (!got && !mnt_id_by_handle(dirfd, name, ms.mnt_id)) ms.mnt_id = kUnknownMount;
        return ms;
    }
    // statx itself refused (ENOSYS from a seccomp filter): plain fstatat, mount id by handle.
    if (errno != ENOSYS) return Error{errno, {}};
    if (::fstatat(dirfd, name, &ms.st, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT) != 0) return Error{errno, {}};
    if (!mnt_id_by_handle(dirfd, name, ms.mnt_id)) ms.mnt_id = kUnknownMount;
    return ms;
}

Result<MountedStat> Mounts::stat_fd(int fd) const {
    MountedStat ms;
    bool got = false;
    if (!statx_mnt(fd, "", AT_EMPTY_PATH | kStatFlags, ms, got)) {
        if (errno != ENOSYS) return Error{errno, {}};
        if (::fstatat(fd, "", &ms.st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return Error{errno, {}};
    }
    if (got) return ms;
    if (mnt_id_by_handle(fd, "", ms.mnt_id) || mnt_id_by_fdinfo(fd, ms.mnt_id)) return ms;
    return Error{EIO, "virtio-fs: cannot tell which mount an object is on (no statx, handles or fdinfo)"};
}

bool Mounts::mnt_id_by_handle(int dirfd, const char* name, uint64_t& out) const {
    // A zero-sized handle buffer: the call fails with EOVERFLOW but still reports the mount id
    // (name_to_handle_at(2)). Filesystems that can't export handles answer EOPNOTSUPP instead.
    alignas(file_handle) unsigned char buf[sizeof(file_handle)] = {};
    auto* fh = reinterpret_cast<file_handle*>(buf);
    fh->handle_bytes = 0;
    int mnt = -1;
    int flags = name[0] == '\0' ? AT_EMPTY_PATH : 0;  // no AT_SYMLINK_FOLLOW: a link is itself
    if (::name_to_handle_at(dirfd, name, fh, &mnt, flags) != 0 && errno != EOVERFLOW) return false;
    if (mnt < 0) return false;
    out = static_cast<uint64_t>(mnt);
    return true;
}

bool Mounts::mnt_id_by_fdinfo(int fd, uint64_t& out) const {
    char path[32] = "fdinfo/";
    auto r = std::to_chars(path + 7, path + sizeof(path) - 1, fd);
    *r.ptr = '\0';
    UniqueFd info(::openat(proc_self_.get(), path, O_RDONLY | O_CLOEXEC));
    std::string text;
    if (!info.valid() || !slurp(info.get(), text)) return false;
    static constexpr std::string_view kKey = "\nmnt_id:";
    size_t at = text.find(kKey);
    if (at == std::string::npos) return false;
    size_t p = text.find_first_not_of(" \t", at + kKey.size());
    if (p == std::string::npos) return false;
    return std::from_chars(text.data() + p, text.data() + text.size(), out).ec == std::errc{};
}

std::string Mounts::mount_fstype(uint64_t id) const {
    // Each line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPEROPTS".
    UniqueFd f(::openat(proc_self_.get(), "mountinfo", O_RDONLY | O_CLOEXEC));
    std::string text;
    if (!f.valid() || !slurp(f.get(), text)) return {};
    size_t pos = 0;
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) eol = text.size();
        std::string_view line(text.data() + pos, eol - pos);
        pos = eol + 1;
        uint64_t line_id = 0;
        auto r = std::from_chars(line.data(), line.data() + line.size(), line_id);
        if (r.ec != std::errc{} || line_id != id) continue;
        size_t sep = line.find(" - ");
        if (sep == std::string_view::npos) return {};
        std::string_view rest = line.substr(sep + 3);
        return std::string(rest.substr(0, rest.find(' ')));
    }
    return {};
}

bool Mounts::decide(int fd, uint64_t mnt_id) const {
    struct statfs sf {};
    if (::fstatfs(fd, &sf) != 0) return false;  // can't tell what it is: don't enter
    auto type = static_cast<uint64_t>(static_cast<unsigned long>(sf.f_type));
    if (is_refused_fs_magic(type)) return false;
    if (type == TMPFS_MAGIC) {
        std::string fstype = mount_fstype(mnt_id);
        return !fstype.empty() && fstype != "devtmpfs";
    }
    return true;
}

bool Mounts::may_enter(int fd, const MountedStat& ms) {
    {
        std::lock_guard lock(mu_);
        auto it = verdicts_.find(ms.mnt_id);
        if (it != verdicts_.end() && it->second.first == ms.st.st_dev) return it->second.second;
    }
    bool allowed = decide(fd, ms.mnt_id);
    std::lock_guard lock(mu_);
    if (verdicts_.size() >= kMaxVerdicts) verdicts_.clear();
    verdicts_[ms.mnt_id] = {ms.st.st_dev, allowed};
    return allowed;
}

}  // namespace krunlet::fs
