// init's mounts (init/mounts.h), run for real in a child process with its own
// mount namespace, so the host's mount table is never touched.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/magic.h>

#include <doctest/doctest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "init/config.h"
#include "init/mounts.h"

using namespace krunlet::init;

namespace {

constexpr const char* kSkip = "SKIP";

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/krunlet-init-mnt-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::string cmd = "rm -rf '" + path + "'";
        [[maybe_unused]] int r = std::system(cmd.c_str());
    }
};

// Runs `body` in a forked child inside a private mount namespace. The body
// returns "" when every check passed, else what failed. Tests skip (with a
// message) where the process may not create a mount namespace.
void in_mount_namespace(const std::function<std::string()>& body) {
    int p[2];
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        std::string result;
        if (unshare(CLONE_NEWNS) < 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
            result = kSkip;
        else
            result = body();
        [[maybe_unused]] ssize_t n = write(p[1], result.data(), result.size());
        _exit(0);
    }
    close(p[1]);
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    close(p[0]);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    if (out == kSkip) {
        MESSAGE("skipped: cannot create a mount namespace here (needs CAP_SYS_ADMIN)");
        return;
    }
    CHECK_MESSAGE(out.empty(), out);
}

bool is_fs(const std::string& path, long magic) {
    struct statfs s;
    return statfs(path.c_str(), &s) == 0 && s.f_type == magic;
}

std::string mode_of(const std::string& path, mode_t want, bool follow = true) {
    struct stat st;
    int r = follow ? stat(path.c_str(), &st) : lstat(path.c_str(), &st);
    if (r < 0) return path + ": " + std::strerror(errno);
    if ((st.st_mode & 07777) != want)
        return path + ": mode " + std::to_string(st.st_mode & 07777) + " instead of " + std::to_string(want);
    return "";
}

std::string read_all(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "<" + std::string(std::strerror(errno)) + ">";
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    close(fd);
    return out;
}

std::string link_of(const std::string& path) {
    char buf[256];
    ssize_t n = readlink(path.c_str(), buf, sizeof buf);
    return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

size_t mount_count() {
    std::string info = read_all("/proc/self/mountinfo");
    size_t lines = 0;
    for (char c : info) lines += c == '\n';
    return lines;
}

}  // namespace

TEST_CASE("mount_system builds a working /proc, /sys, /dev/pts, /dev/shm and /tmp in an empty root") {
    TempDir root;
    in_mount_namespace([&]() -> std::string {
        // A stand-in /dev that is already mounted: mount_system must leave it
        // alone (and the host's devtmpfs is never written to).
        std::string dev = root.path + "/dev";
        if (mkdir(dev.c_str(), 0755) < 0 || mount("tmpfs", dev.c_str(), "tmpfs", 0, "mode=755") < 0)
            return std::string("preparing /dev: ") + std::strerror(errno);
        if (chroot(root.path.c_str()) < 0 || chdir("/") < 0) return std::string("chroot: ") + std::strerror(errno);

        std::vector<std::string> warnings;
        auto r = mount_system(warnings);
        if (!r) return "mount_system: " + r.error().message;
        for (const auto& w : warnings) return "warning: " + w;

        if (!is_fs("/proc", PROC_SUPER_MAGIC)) return "/proc is not procfs";
        if (access("/proc/self/stat", R_OK) < 0) return "/proc/self/stat is missing";
        if (!is_fs("/sys", SYSFS_MAGIC)) return "/sys is not sysfs";
        if (!is_fs("/dev", TMPFS_MAGIC)) return "/dev was replaced although it was mounted";
        if (!is_fs("/dev/pts", DEVPTS_SUPER_MAGIC)) return "/dev/pts is not devpts";
        if (auto m = mode_of("/dev/pts/ptmx", 0666); !m.empty()) return m;
        if (!is_fs("/dev/shm", TMPFS_MAGIC)) return "/dev/shm is not tmpfs";
        if (auto m = mode_of("/dev/shm", 01777); !m.empty()) return m;
        if (!is_fs("/tmp", TMPFS_MAGIC)) return "/tmp is not tmpfs";
        if (auto m = mode_of("/tmp", 01777); !m.empty()) return m;
        if (link_of("/dev/fd") != "/proc/self/fd") return "/dev/fd -> " + link_of("/dev/fd");
        if (link_of("/dev/stdin") != "/proc/self/fd/0") return "/dev/stdin -> " + link_of("/dev/stdin");
        if (link_of("/dev/stderr") != "/proc/self/fd/2") return "/dev/stderr -> " + link_of("/dev/stderr");
        if (link_of("/dev/ptmx") != "pts/ptmx") return "/dev/ptmx -> " + link_of("/dev/ptmx");
        // A pty from the private instance works through the /dev/ptmx link.
        int pty = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (pty < 0) return std::string("opening /dev/ptmx: ") + std::strerror(errno);
        close(pty);

        // Idempotent: a second run mounts nothing more.
        size_t before = mount_count();
        r = mount_system(warnings);
        if (!r) return "second mount_system: " + r.error().message;
        if (mount_count() != before) return "the second mount_system mounted again";
        return "";
    });
}

TEST_CASE("mount_system leaves an image's non-empty /tmp alone") {
    TempDir root;
    std::string keep = root.path + "/tmp/keep";
    REQUIRE(mkdir((root.path + "/tmp").c_str(), 0755) == 0);
    REQUIRE(close(open(keep.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) == 0);
    in_mount_namespace([&]() -> std::string {
        std::string dev = root.path + "/dev";
        if (mkdir(dev.c_str(), 0755) < 0 || mount("tmpfs", dev.c_str(), "tmpfs", 0, nullptr) < 0)
            return std::string("preparing /dev: ") + std::strerror(errno);
        if (chroot(root.path.c_str()) < 0 || chdir("/") < 0) return std::string("chroot: ") + std::strerror(errno);
        std::vector<std::string> warnings;
        auto r = mount_system(warnings);
        if (!r) return "mount_system: " + r.error().message;
        if (is_fs("/tmp", TMPFS_MAGIC)) return "/tmp was covered although it had files";
        if (access("/tmp/keep", F_OK) < 0) return "/tmp/keep is hidden";
        return "";
    });
}

TEST_CASE("a config tmpfs: options applied, and tmpcopyup keeps the files it covers") {
    TempDir t;
    std::string d = t.path + "/data";
    REQUIRE(mkdir(d.c_str(), 0750) == 0);
    REQUIRE(mkdir((d + "/sub").c_str(), 0700) == 0);
    REQUIRE(mkdir((d + "/sub/deeper").c_str(), 0755) == 0);
    {
        int fd = open((d + "/sub/deeper/file").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        REQUIRE(fd >= 0);
        REQUIRE(write(fd, "payload", 7) == 7);
        close(fd);
    }
    // Owner first: chown() clears the set-uid bit.
    REQUIRE(chown((d + "/sub/deeper/file").c_str(), 1234, 5678) == 0);
    REQUIRE(chmod((d + "/sub/deeper/file").c_str(), 04751) == 0);
    REQUIRE(chown(d.c_str(), 42, 43) == 0);
    REQUIRE(symlink("sub/deeper/file", (d + "/link").c_str()) == 0);
    REQUIRE(mkfifo((d + "/fifo").c_str(), 0620) == 0);

    in_mount_namespace([&]() -> std::string {
        TmpfsMount m = parse_tmpfs_options(d, {"rw", "rprivate", "nosuid", "nodev", "tmpcopyup", "size=1m"});
        auto r = mount_tmpfs(m);
        if (!r) return "mount_tmpfs: " + r.error().message;
        if (!is_fs(d, TMPFS_MAGIC)) return d + " is not tmpfs";
        if (read_all(d + "/sub/deeper/file") != "payload") return "file content: " + read_all(d + "/sub/deeper/file");
        struct stat st;
        if (stat((d + "/sub/deeper/file").c_str(), &st) < 0) return "stat file";
        if (st.st_uid != 1234 || st.st_gid != 5678) return "file owner not kept";
        if (auto e = mode_of(d + "/sub/deeper/file", 04751); !e.empty()) return e;
        if (auto e = mode_of(d + "/sub", 0700); !e.empty()) return e;
        if (link_of(d + "/link") != "sub/deeper/file") return "symlink target: " + link_of(d + "/link");
        if (lstat((d + "/fifo").c_str(), &st) < 0 || !S_ISFIFO(st.st_mode)) return "fifo not copied";
        // Without mode=, the root looks like the directory it covers.
        if (stat(d.c_str(), &st) < 0 || st.st_uid != 42 || st.st_gid != 43) return "root owner not kept";
        if (auto e = mode_of(d, 0750); !e.empty()) return e;
        // A new file lands on the tmpfs, and size=1m is enforced.
        std::string big = d + "/big";
        int fd = open(big.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) return std::string("create on tmpfs: ") + std::strerror(errno);
        std::string chunk(65536, 'z');
        int err = 0;
        for (int i = 0; i < 32 && err == 0; ++i)
            if (write(fd, chunk.data(), chunk.size()) < 0) err = errno;
        close(fd);
        if (err != ENOSPC) return "size=1m was not applied (write gave " + std::to_string(err) + ")";
        return "";
    });
    // The namespace is gone: the image's directory is as it was.
    CHECK(access((d + "/big").c_str(), F_OK) != 0);
}

TEST_CASE("a config tmpfs without copy-up hides the directory; ro with copy-up ends read-only") {
    TempDir t;
    std::string d = t.path + "/plain";
    std::string ro = t.path + "/ro";
    REQUIRE(mkdir(d.c_str(), 0755) == 0);
    REQUIRE(mkdir(ro.c_str(), 0755) == 0);
    REQUIRE(close(open((d + "/old").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) == 0);
    REQUIRE(close(open((ro + "/kept").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) == 0);
    in_mount_namespace([&]() -> std::string {
        auto r = mount_tmpfs(parse_tmpfs_options(d, {"noexec", "mode=0701"}));
        if (!r) return "mount_tmpfs: " + r.error().message;
        if (access((d + "/old").c_str(), F_OK) == 0) return "the plain tmpfs shows the old file";
        if (auto e = mode_of(d, 0701); !e.empty()) return e;

        r = mount_tmpfs(parse_tmpfs_options(ro, {"ro", "tmpcopyup"}));
        if (!r) return "mount_tmpfs ro: " + r.error().message;
        if (access((ro + "/kept").c_str(), F_OK) < 0) return "copy-up lost the file";
        int fd = open((ro + "/new").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EROFS) return "the ro tmpfs is writable";

        // A missing destination is created; bad data is the kernel's clear EINVAL.
        r = mount_tmpfs(parse_tmpfs_options(t.path + "/made/here", {}));
        if (!r) return "mount_tmpfs on a new path: " + r.error().message;
        r = mount_tmpfs(parse_tmpfs_options(t.path + "/bad", {"size=lots"}));
        if (r) return "size=lots was accepted";
        if (r.error().message.find("mounting the config's tmpfs on " + t.path + "/bad (size=lots)") != 0)
            return "unclear error: " + r.error().message;
        return "";
    });
}

TEST_CASE("the config's tmpfs /dev is left to init's devtmpfs") {
    CHECK(tmpfs_is_replaced_by_init(parse_tmpfs_options("/dev", {})));
    CHECK(tmpfs_is_replaced_by_init(parse_tmpfs_options("/dev/", {})));
    CHECK_FALSE(tmpfs_is_replaced_by_init(parse_tmpfs_options("/dev/shm", {})));
    CHECK_FALSE(tmpfs_is_replaced_by_init(parse_tmpfs_options("/devices", {})));
}

TEST_CASE("a virtio-fs volume that cannot be mounted is an error naming the tag and the path") {
    TempDir t;
    std::string file = t.path + "/a-file";
    REQUIRE(close(open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) == 0);
    in_mount_namespace([&]() -> std::string {
        // No such device here (the host has no virtio-fs device with this tag,
        // or no virtiofs at all): the error says which mount failed, and the
        // missing mount point was created first.
        VirtiofsMount m{"krunlet-no-such-tag", t.path + "/made/for/it", 0, ""};
        auto r = mount_virtiofs(m);
        if (r) return "mounting a tag no device has succeeded";
        const std::string& msg = r.error().message;
        if (msg.find("mounting the virtio-fs share with tag 'krunlet-no-such-tag' on " + m.destination + ": ") != 0)
            return "unclear error: " + msg;
        if (r.error().code == EINVAL && msg.find("no virtio-fs device has this tag") == std::string::npos)
            return "no hint in: " + msg;
        struct stat st;
        if (stat(m.destination.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) return "the mount point was not created";

        // A mount point that cannot be created says so.
        VirtiofsMount under_file{"tag", file + "/sub", MS_RDONLY, ""};
        r = mount_virtiofs(under_file);
        if (r) return "a mount point under a regular file was accepted";
        if (r.error().message.find("mounting the virtio-fs share with tag 'tag' on " + under_file.destination +
                                   ": creating the mount point: ") != 0)
            return "unclear error: " + r.error().message;
        return "";
    });
}
