// Submounts inside the share, with real mounts: a forked child unshares its mount namespace
// (the tests run as root), mounts a tmpfs, bind mounts and the host's pseudo filesystems under
// a temp share, and drives the server. The child can't report through doctest, so it collects
// failed expectations as text and sends them to the parent through a pipe.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <functional>
#include <set>

#include "fuse_client.h"

using namespace vfstest;

namespace {

constexpr uint64_t kRoot = FUSE_ROOT_ID;

// Failed expectations of the child, one line each.
struct ChildLog {
    std::string text;
    void expect(bool ok, int line, const char* what) {
        if (!ok) text += "line " + std::to_string(line) + ": " + what + "\n";
    }
};
#define EXPECT(log, cond) (log).expect((cond), __LINE__, #cond)

// Runs `body` in a forked child inside a private mount namespace; returns what it logged
// (empty = every expectation held).
std::string run_in_mount_namespace(const std::function<void(ChildLog&)>& body) {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(p[0]);
        ChildLog log;
        try {
            if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
                log.text = "unshare/make-private failed: " + std::string(std::strerror(errno)) + "\n";
            else
                body(log);
        } catch (...) {
            log.text += "exception in the child (a REQUIRE in the client failed)\n";
        }
        size_t off = 0;
        while (off < log.text.size()) {
            ssize_t n = ::write(p[1], log.text.data() + off, log.text.size() - off);
            if (n <= 0) break;
            off += static_cast<size_t>(n);
        }
        ::_exit(log.text.empty() ? 0 : 1);
    }
    ::close(p[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(p[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    ::close(p[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    if (out.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) out = "child died";
    return out;
}

bool mount_fs(const std::string& type, const std::string& at) {
    ::mkdir(at.c_str(), 0755);
    return ::mount(type.c_str(), at.c_str(), type.c_str(), 0, nullptr) == 0;
}

bool bind_mount(const std::string& from, const std::string& to) {
    return ::mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr) == 0;
}

// Makes the listed system calls fail with ENOSYS in this process (an old kernel, or a
// container runtime's seccomp profile).
bool deny_syscalls(std::initializer_list<long> nrs) {
    std::vector<sock_filter> f;
    f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
    for (long nr : nrs) {
        f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1));
        f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
    }
    f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    sock_fprog prog{static_cast<unsigned short>(f.size()), f.data()};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

std::set<std::string> guest_listing(Client& c, uint64_t dir) {
    std::set<std::string> names;
    uint64_t fh = c.open_fh(dir, O_RDONLY, FUSE_OPENDIR);
    uint64_t off = 0;
    for (int guard = 0; guard < 100; ++guard) {
        Reply r = c.read(dir, fh, off, 4096, FUSE_READDIR);
        if (r.error() != 0 || r.body.empty()) break;
        size_t pos = 0;
        while (pos + sizeof(fuse_dirent) <= r.body.size()) {
            fuse_dirent d = r.as<fuse_dirent>(pos);
            names.insert(std::string(reinterpret_cast<const char*>(r.body.data() + pos + sizeof(fuse_dirent)),
                                     d.namelen));
            off = d.off;
            pos += (sizeof(fuse_dirent) + d.namelen + 7) & ~size_t{7};
        }
    }
    c.release(dir, fh, FUSE_RELEASEDIR);
    return names;
}

}  // namespace

TEST_CASE("submounts: a tmpfs is entered, bind mounts are distinct inodes, pseudo filesystems are not") {
    TempDir d;
    std::string log = run_in_mount_namespace([&](ChildLog& L) {
        const std::string& s = d.path();
        REQUIRE(::mkdir((d / "data").c_str(), 0755) == 0);
        write_file(d / "data/f", "shared file");
        write_file(d / "version", "");
        write_file(d / "null", "");
        EXPECT(L, mount_fs("tmpfs", d / "tmp"));
        write_file(d / "tmp/hello", "tmpfs data");
        ::mkdir((d / "vol1").c_str(), 0755);
        ::mkdir((d / "vol2").c_str(), 0755);
        EXPECT(L, bind_mount(d / "data", d / "vol1"));
        EXPECT(L, bind_mount(d / "data", d / "vol2"));
        // The host container's pseudo filesystems, as crun leaves them under "/".
        const std::vector<std::string> pseudo = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup2", "mqueue"};
        for (const std::string& t : pseudo) EXPECT(L, mount_fs(t, s + "/" + t));
        EXPECT(L, mount_fs("devpts", d / "tmp/pts"));            // refused below an allowed mount
        EXPECT(L, bind_mount("/proc/version", d / "version"));        // a file from procfs
        EXPECT(L, bind_mount(d / "devtmpfs/null", d / "null"));       // a device node from devtmpfs
        EXPECT(L, read_file(d / "proc/version").size() > 10);  // the mounts are really there

        auto srv = make_server(s);
        Client c(*srv);

        // tmpfs: entered, readable, writable.
        uint64_t tmp = c.node(kRoot, "tmp");
        uint64_t hello = c.node(tmp, "hello");
        uint64_t fh = c.open_fh(hello, O_RDONLY);
        EXPECT(L, c.read(hello, fh, 0, 100).text() == "tmpfs data");
        c.release(hello, fh);
        EXPECT(L, c.create(tmp, "made", O_RDWR, 0644).error() == 0);
        EXPECT(L, exists(d / "tmp/made"));
        struct statvfs host_tmp {};
        ::statvfs((d / "tmp").c_str(), &host_tmp);
        Reply sf = c.call(FUSE_STATFS, tmp);
        EXPECT(L, sf.error() == 0 && sf.as<fuse_statfs_out>().st.blocks == host_tmp.f_blocks);

        // Bind mounts of one directory: distinct inodes everywhere below, same host object.
        uint64_t data = c.node(kRoot, "data");
        uint64_t v1 = c.node(kRoot, "vol1");
        uint64_t v2 = c.node(kRoot, "vol2");
        EXPECT(L, v1 != v2 && v1 != data && v2 != data);
        EXPECT(L, c.node(kRoot, "vol1") == v1);  // stable on the known-inode path
        Reply e1 = c.lookup(v1, "f");
        Reply e2 = c.lookup(v2, "f");
        EXPECT(L, e1.error() == 0 && e2.error() == 0);
        if (e1.error() == 0 && e2.error() == 0) {
            auto a = e1.as<fuse_entry_out>();
            auto b = e2.as<fuse_entry_out>();
            EXPECT(L, a.nodeid != b.nodeid);
            EXPECT(L, a.attr.ino == b.attr.ino);
            uint64_t wfh = c.open_fh(a.nodeid, O_WRONLY);
            EXPECT(L, c.write(a.nodeid, wfh, 0, "SHARED").error() == 0);
            c.release(a.nodeid, wfh);
            uint64_t rfh = c.open_fh(b.nodeid, O_RDONLY);
            EXPECT(L, c.read(b.nodeid, rfh, 0, 100).text() == "SHARED file");
            c.release(b.nodeid, rfh);
        }
        size_t inodes = srv->stats().inodes;
        c.forget(v1, 2);
        EXPECT(L, srv->stats().inodes == inodes - 1);
        EXPECT(L, c.getattr(v2).error() == 0);

        // Pseudo filesystems: an empty directory that can't be changed; nothing of the host.
        std::vector<std::pair<uint64_t, std::string>> refused;
        for (const std::string& t : pseudo) refused.emplace_back(kRoot, t);
        refused.emplace_back(tmp, "pts");
        struct statvfs host_root {};
        ::statvfs(s.c_str(), &host_root);
        // devtmpfs is one instance for the whole kernel: a server bug here would create this
        // name in the host's /dev, so it is distinctive and removed again below.
        const std::string probe = "krunlet-vfs-probe-" + std::to_string(::getpid());
        for (const auto& [parent, name] : refused) {
            size_t logged = L.text.size();
            Reply r = c.lookup(parent, name);
            EXPECT(L, r.error() == 0);
            if (r.error() != 0) {
                L.text += "  (mount " + name + ")\n";
                continue;
            }
            auto e = r.as<fuse_entry_out>();
            uint64_t n = e.nodeid;
            bool ok = e.attr.mode == (S_IFDIR | 0555) && e.attr.nlink == 2 && e.attr.size == 0;
            EXPECT(L, ok);
            EXPECT(L, c.lookup(parent, name).as<fuse_entry_out>().attr.mode == (S_IFDIR | 0555));
            EXPECT(L, c.getattr(n).as<fuse_attr_out>().attr.mode == (S_IFDIR | 0555));
            for (const char* inside : {"self", "1", "sys", "version", "null", "ptmx", "cgroup.procs", "class"})
                EXPECT(L, c.lookup(n, inside).error() == ENOENT);
            EXPECT(L, c.lookup(n, "..").error() == EINVAL);
            EXPECT(L, (guest_listing(c, n) == std::set<std::string>{".", ".."}));
            EXPECT(L, c.mkdir(n, probe, 0755).error() == EACCES);
            EXPECT(L, c.create(n, probe, O_RDWR, 0644).error() == EACCES);
            EXPECT(L, c.mknod(n, probe, S_IFCHR | 0600, 0x0103).error() == EACCES);
            EXPECT(L, c.symlink(n, probe, "y").error() == EACCES);
            EXPECT(L, c.call(FUSE_UNLINK, n, Args().str("self")).error() == EACCES);
            fuse_setattr_in sa{};
            sa.valid = FATTR_MODE;
            sa.mode = 0777;
            EXPECT(L, c.setattr(n, sa).error() == EACCES);
            fuse_setxattr_in sx{};
            sx.size = 1;
            EXPECT(L, c.call(FUSE_SETXATTR, n,
                             Args().raw(std::string(reinterpret_cast<const char*>(&sx), 8)).str("user.a").raw("1"))
                          .error() == EACCES);
            fuse_getxattr_in gx{64, 0};
            EXPECT(L, c.call(FUSE_GETXATTR, n, Args().obj(gx).str("security.selinux")).error() == ENODATA);
            EXPECT(L, c.call(FUSE_LISTXATTR, n, Args().obj(gx)).body.empty());
            EXPECT(L, c.open(n, O_RDONLY).error() == EISDIR);
            fuse_access_in ac{W_OK, 0};
            EXPECT(L, c.call(FUSE_ACCESS, n, Args().obj(ac)).error() == EACCES);
            ac.mask = R_OK | X_OK;
            EXPECT(L, c.call(FUSE_ACCESS, n, Args().obj(ac)).error() == 0);
            Reply st = c.call(FUSE_STATFS, n);
            EXPECT(L, st.error() == 0 && st.as<fuse_statfs_out>().st.blocks == host_root.f_blocks);
            if (L.text.size() != logged) L.text += "  (mount " + name + ")\n";
        }
        // SYNCFS reaches the share, the tmpfs and the bind mounts, never a refused mount.
        EXPECT(L, c.call(FUSE_SYNCFS, kRoot, Args().obj(fuse_syncfs_in{})).error() == 0);
        // Files bind-mounted from procfs and devtmpfs are out of bounds entirely.
        EXPECT(L, c.lookup(kRoot, "version").error() == EACCES);
        EXPECT(L, c.lookup(kRoot, "null").error() == EACCES);
        EXPECT(L, c.create(kRoot, "version", O_WRONLY | O_TRUNC, 0644).error() == EACCES);
        EXPECT(L, c.create(kRoot, "null", O_RDWR, 0644).error() == EACCES);
        // The host filesystems are untouched.
        EXPECT(L, read_file(d / "proc/version").size() > 10);
        for (const std::string& t : pseudo) {
            std::string leaked = s + "/" + t + "/" + probe;
            EXPECT(L, !exists(leaked));
            ::unlink(leaked.c_str());
            ::rmdir(leaked.c_str());
        }
        // Unmounting under the server leaves the guest's refused node an empty directory.
        Reply before = c.lookup(kRoot, "mqueue");
        EXPECT(L, ::umount2((d / "mqueue").c_str(), MNT_DETACH) == 0);
        EXPECT(L, (guest_listing(c, before.as<fuse_entry_out>().nodeid) == std::set<std::string>{".", ".."}));

        srv.reset();
        for (const char* m : {"tmp/pts", "tmp", "vol1", "vol2", "version", "null", "proc", "sysfs", "devtmpfs",
                              "devpts", "cgroup2"})
            ::umount2((d / m).c_str(), MNT_DETACH);
    });
    CHECK_MESSAGE(log.empty(), log);
}

TEST_CASE("the root's own mount is served normally, and '..' in it is the root") {
    // A share that is itself a mount point (the root inode carries that mount's id).
    TempDir d;
    std::string log = run_in_mount_namespace([&](ChildLog& L) {
        EXPECT(L, ::mount("tmpfs", d.path().c_str(), "tmpfs", 0, nullptr) == 0);
        write_file(d / "a", "A");
        ::mkdir((d / "sub").c_str(), 0755);
        auto srv = make_server(d.path());
        Client c(*srv);
        EXPECT(L, c.lookup(kRoot, "..").as<fuse_entry_out>().nodeid == kRoot);
        uint64_t a = c.node(kRoot, "a");
        uint64_t fh = c.open_fh(a, O_RDONLY);
        EXPECT(L, c.read(a, fh, 0, 10).text() == "A");
        EXPECT(L, c.mkdir(c.node(kRoot, "sub"), "deeper", 0755).error() == 0);
        EXPECT(L, exists(d / "sub/deeper"));
        srv.reset();
        ::umount2(d.path().c_str(), MNT_DETACH);
    });
    CHECK_MESSAGE(log.empty(), log);
}

TEST_CASE("mount ids without statx: from name_to_handle_at, else from /proc/self/fdinfo") {
    for (bool no_handles : {false, true}) {
        CAPTURE(no_handles);
        TempDir d;
        std::string log = run_in_mount_namespace([&](ChildLog& L) {
            REQUIRE(::mkdir((d / "data").c_str(), 0755) == 0);
            write_file(d / "data/f", "x");
            ::mkdir((d / "vol1").c_str(), 0755);
            ::mkdir((d / "vol2").c_str(), 0755);
            EXPECT(L, bind_mount(d / "data", d / "vol1"));
            EXPECT(L, bind_mount(d / "data", d / "vol2"));
            EXPECT(L, mount_fs("proc", d / "proc"));
            if (no_handles)
                EXPECT(L, deny_syscalls({SYS_statx, SYS_name_to_handle_at}));
            else
                EXPECT(L, deny_syscalls({SYS_statx}));
            struct statx x {};
            EXPECT(L, ::syscall(SYS_statx, AT_FDCWD, "/", 0, 0, &x) == -1 && errno == ENOSYS);

            auto srv = make_server(d.path());
            Client c(*srv);
            uint64_t v1 = c.node(kRoot, "vol1");
            uint64_t v2 = c.node(kRoot, "vol2");
            EXPECT(L, v1 != v2 && v1 != c.node(kRoot, "data"));
            EXPECT(L, c.node(v1, "f") != c.node(v2, "f"));
            EXPECT(L, c.node(v1, "f") == c.node(v1, "f"));
            uint64_t proc = c.node(kRoot, "proc");
            EXPECT(L, c.getattr(proc).as<fuse_attr_out>().attr.mode == (S_IFDIR | 0555));
            EXPECT(L, c.lookup(proc, "self").error() == ENOENT);
            EXPECT(L, (guest_listing(c, proc) == std::set<std::string>{".", ".."}));
            srv.reset();
            for (const char* m : {"vol1", "vol2", "proc"}) ::umount2((d / m).c_str(), MNT_DETACH);
        });
        CHECK_MESSAGE(log.empty(), log);
    }
}
