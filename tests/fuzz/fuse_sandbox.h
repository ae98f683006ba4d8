// The directory fuzz_fuse serves, and the fence around it.
//
// Layout, created once per process under $KRUNLET_FUZZ_TMP (default /tmp):
//   krunlet-fuzz-fuse-XXXXXX/
//     canary          a file the server must never touch
//     canary.d/       a directory it must never touch (and its entry)
//     share/          the served root
// `share` is, when the process may do it (root with CAP_SYS_ADMIN), a fresh
// tmpfs mounted nodev,nosuid,size=64m in a private mount namespace: device
// nodes the fuzzer creates there cannot be opened even if the server had a
// bug, and the disk cannot fill up. Otherwise the process drops CAP_MKNOD
// (so it cannot create device nodes at all) and uses a plain directory.
//
// reset() puts the seed tree back (regular files, a directory, symlinks
// including ones that point outside, a FIFO, a hard link, an xattr) and the
// root's owner, mode and xattrs; it costs a few dozen system calls.
// check_fence() compares the canaries with their first snapshot; it runs
// after every input and again at process exit.
#pragma once

#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_util.h"

namespace krunlet::fuzz {

class FuseSandbox {
public:
    // The one sandbox of this process (created on first use, checked at exit).
    static FuseSandbox& get() {
        static FuseSandbox* s = [] {
            auto* p = new FuseSandbox();  // lives until exit; the atexit hook uses it
            std::atexit([] { get().at_exit(); });
            return p;
        }();
        return *s;
    }

    const std::string& share() const { return share_; }
    bool nodev() const { return nodev_; }

    void reset() {
        // Everything below the root, depth first, without following links.
        ::nftw(share_.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS);
        FUZZ_CHECK(::chown(share_.c_str(), 0, 0) == 0 || geteuid() != 0, "chown share root");
        FUZZ_CHECK(::chmod(share_.c_str(), 0755) == 0, "chmod share root");
        char names[4096];
        ssize_t n = ::llistxattr(share_.c_str(), names, sizeof names);
        for (ssize_t i = 0; i > -1 && i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1)
            ::lremovexattr(share_.c_str(), names + i);
        populate();
    }

    // Nothing outside share/ may change while the server runs.
    void check_fence() const {
        FUZZ_CHECK(snapshot() == fence_, "something outside the served directory changed: " + describe());
    }

private:
    FuseSandbox() {
        const char* tmp = std::getenv("KRUNLET_FUZZ_TMP");
        std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/krunlet-fuzz-fuse-XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        FUZZ_CHECK(::mkdtemp(buf.data()) != nullptr, "mkdtemp " + tmpl + ": " + std::strerror(errno));
        base_ = buf.data();
        share_ = base_ + "/share";
        write_file(base_ + "/canary", "the fuzzer must never change this file\n", 0644);
        FUZZ_CHECK(::mkdir((base_ + "/canary.d").c_str(), 0755) == 0, "mkdir canary.d");
        write_file(base_ + "/canary.d/inside", "nor this one\n", 0600);
        FUZZ_CHECK(::mkdir(share_.c_str(), 0755) == 0, "mkdir share");
        nodev_ = mount_private_tmpfs();
        if (!nodev_) drop_mknod();
        fence_ = snapshot();
        std::fprintf(stderr, "fuzz_fuse: serving %s (%s)\n", share_.c_str(),
                     nodev_ ? "private nodev tmpfs" : "plain directory, CAP_MKNOD dropped");
    }

    bool mount_private_tmpfs() {
        if (::unshare(CLONE_NEWNS) != 0) return false;
        // Keep our mounts to ourselves (and the host's from leaking in).
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
        return ::mount("krunlet-fuzz", share_.c_str(), "tmpfs", MS_NODEV | MS_NOSUID, "size=64m,mode=0755") == 0;
    }

    static void drop_mknod() {
        __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct data[2]{};
        if (::syscall(SYS_capget, &hdr, data) != 0) return;
        if ((data[0].effective & (1u << CAP_MKNOD)) == 0) return;
        data[0].effective &= ~(1u << CAP_MKNOD);
        data[0].permitted &= ~(1u << CAP_MKNOD);
        FUZZ_CHECK(::syscall(SYS_capset, &hdr, data) == 0,
                   "cannot drop CAP_MKNOD; refusing to let the fuzzer create device nodes on a real disk");
    }

    void at_exit() {
        check_fence();
        // Clean up what lives on the real filesystem (the tmpfs dies with the namespace).
        if (nodev_) ::umount2(share_.c_str(), MNT_DETACH);
        ::nftw(base_.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS);
        ::rmdir(base_.c_str());
    }

    // nftw callback: remove everything below the starting directory.
    static int remove_entry(const char* path, const struct stat*, int, struct FTW* f) {
        if (f->level > 0) ::remove(path);
        return 0;
    }

    static void write_file(const std::string& path, const std::string& content, mode_t mode) {
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        FUZZ_CHECK(fd >= 0, "create " + path + ": " + std::strerror(errno));
        FUZZ_CHECK(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()), "write " + path);
        ::fchmod(fd, mode);
        ::close(fd);
    }

    void populate() {
        const std::string& r = share_;
        write_file(r + "/hello", "hello, world\n", 0644);
        write_file(r + "/exec", "#!/bin/sh\nexit 0\n", 0755);
        FUZZ_CHECK(::mkdir((r + "/dir").c_str(), 0755) == 0, "mkdir dir");
        FUZZ_CHECK(::mkdir((r + "/dir/sub").c_str(), 0700) == 0, "mkdir dir/sub");
        write_file(r + "/dir/inner", "inner\n", 0600);
        ::symlink("hello", (r + "/link").c_str());
        ::symlink("../canary", (r + "/escape").c_str());
        ::symlink("/etc/passwd", (r + "/abs").c_str());
        ::symlink("../../canary.d", (r + "/dir/up").c_str());
        ::mkfifo((r + "/fifo").c_str(), 0644);
        ::link((r + "/hello").c_str(), (r + "/hello2").c_str());
        int fd = ::open((r + "/big").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ::ftruncate(fd, 1 << 20);  // sparse: costs nothing on tmpfs
            ::close(fd);
        }
        ::lsetxattr((r + "/hello").c_str(), "user.fuzz", "value", 5, 0);
        // A device node whose open would be harmless anyway (/dev/null), only where nodev holds.
        if (nodev_) ::mknod((r + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3));
    }

    struct Fence {
        struct stat base, canary, dir, inside;
        std::string canary_text, inside_text;
        bool operator==(const Fence& o) const {
            auto same = [](const struct stat& a, const struct stat& b) {
                return a.st_ino == b.st_ino && a.st_mode == b.st_mode && a.st_uid == b.st_uid && a.st_gid == b.st_gid &&
                       a.st_nlink == b.st_nlink && a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
                       a.st_mtim.tv_nsec == b.st_mtim.tv_nsec && a.st_ctim.tv_sec == b.st_ctim.tv_sec &&
                       a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
            };
            return same(base, o.base) && same(canary, o.canary) && same(dir, o.dir) && same(inside, o.inside) &&
                   canary_text == o.canary_text && inside_text == o.inside_text;
        }
    };

    static std::string read_all(const std::string& path) {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) return "<" + std::string(std::strerror(errno)) + ">";
        std::string s;
        char b[256];
        ssize_t n;
        while ((n = ::read(fd, b, sizeof b)) > 0) s.append(b, static_cast<size_t>(n));
        ::close(fd);
        return s;
    }

    Fence snapshot() const {
        Fence f{};
        ::lstat(base_.c_str(), &f.base);
        ::lstat((base_ + "/canary").c_str(), &f.canary);
        ::lstat((base_ + "/canary.d").c_str(), &f.dir);
        ::lstat((base_ + "/canary.d/inside").c_str(), &f.inside);
        f.canary_text = read_all(base_ + "/canary");
        f.inside_text = read_all(base_ + "/canary.d/inside");
        return f;
    }

    std::string describe() const {
        Fence now = snapshot();
        return "canary \"" + now.canary_text + "\" mode " + std::to_string(now.canary.st_mode) + ", canary.d/inside \"" +
               now.inside_text + "\", " + base_ + " nlink " + std::to_string(now.base.st_nlink);
    }

    std::string base_;
    std::string share_;
    bool nodev_ = false;
    Fence fence_{};
};

}  // namespace krunlet::fuzz
