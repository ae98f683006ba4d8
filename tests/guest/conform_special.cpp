// krunlet-fsconform: directories and special files, locks, sparse files, O_TMPFILE, a big
// directory, and the final tree dump.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "conform_ctx.h"

namespace fsconform {

namespace {

constexpr off_t kGiB = off_t{1} << 30;
constexpr off_t kMiB = off_t{1} << 20;

// Runs `body` in a forked child; its lines join the transcript, in order, once it has ended.
// Locks need a second process: POSIX locks of one process never conflict with each other.
void in_child(Ctx& c, const std::string& label, const std::function<void(Ctx&)>& body) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        c.note("child(" + label + ") = pipe -1 " + errno_name(errno));
        return;
    }
    UniqueFd rd(p[0]), wr(p[1]);
    pid_t pid = ::fork();
    if (pid < 0) {
        c.note("child(" + label + ") = fork -1 " + errno_name(errno));
        return;
    }
    if (pid == 0) {
        rd.reset();
        Ctx cc(c.is_root());
        cc.note("child(" + label + ") begins");
        body(cc);
        const std::string& t = cc.text();
        size_t done = 0;
        while (done < t.size()) {
            ssize_t n = ::write(wr.get(), t.data() + done, t.size() - done);
            if (n <= 0) ::_exit(3);
            done += static_cast<size_t>(n);
        }
        ::_exit(0);
    }
    wr.reset();
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(rd.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    int status = 0;
    ::waitpid(pid, &status, 0);
    c.append_raw(text);
    c.note("child(" + label + ") ends = " + (WIFEXITED(status) ? std::to_string(WEXITSTATUS(status)) : "signal"));
}

const char* lock_type(int t) { return t == F_RDLCK ? "RD" : t == F_WRLCK ? "WR" : t == F_UNLCK ? "UN" : "?"; }

// F_SETLK/F_OFD_SETLK: "NAME(label,TYPE start+len) = result".
void setlk(Ctx& c, const char* cmd_name, int cmd, const std::string& label, int fd, short type, off_t start,
           off_t len) {
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    c.call(std::string(cmd_name) + "(" + label + "," + lock_type(type) + " " + std::to_string(start) + "+" +
               std::to_string(len) + ")",
           [&] { return ::fcntl(fd, cmd, &fl); });
}

// F_GETLK/F_OFD_GETLK: the conflicting lock, with its holder as a relation
// (pid=parent for the process that forked us, -1 for an OFD lock).
void getlk(Ctx& c, const char* cmd_name, int cmd, const std::string& label, int fd, short type, off_t start,
           off_t len) {
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    std::string what = std::string(cmd_name) + "(" + label + "," + lock_type(type) + " " + std::to_string(start) +
                       "+" + std::to_string(len) + ")";
    int rc = ::fcntl(fd, cmd, &fl);
    if (rc != 0) {
        c.note(what + " = -1 " + errno_name(errno));
        return;
    }
    std::string holder = fl.l_pid == -1 ? "-1" : fl.l_pid == ::getppid() ? "parent" : fl.l_pid == ::getpid() ? "self"
                                                                                                          : "other";
    if (fl.l_type == F_UNLCK) {
        c.note(what + " = UN");
        return;
    }
    c.note(what + " = " + lock_type(fl.l_type) + " " + std::to_string(fl.l_start) + "+" + std::to_string(fl.l_len) +
           " pid=" + holder);
}

void flk(Ctx& c, const std::string& label, int fd, int op, const char* op_name) {
    c.call("flock(" + label + "," + op_name + ")", [&] { return ::flock(fd, op); });
}

UniqueFd open_k1(Ctx& c, const std::string& label, int flags) {
    return c.open("open(k1," + label + ")", [&] { return ::open("k1", flags | O_CLOEXEC); });
}

// lseek with SEEK_DATA/SEEK_HOLE and the rest, as one line.
void seek(Ctx& c, const std::string& label, int fd, off_t off, int whence, const char* wname) {
    c.call("lseek(" + label + "," + std::to_string(off) + "," + wname + ")", [&] { return ::lseek(fd, off, whence); });
}

void dump(Ctx& c, const std::string& path) {
    c.lstat(path);
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) {
        c.note("opendir(" + path + ") = -1 " + errno_name(errno));
        return;
    }
    std::vector<std::string> names;
    while (const struct dirent* de = ::readdir(d)) {
        std::string n = de->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) dump(c, path == "." ? n : path + "/" + n);
}

}  // namespace

void seq_dirs_nodes(Ctx& c) {
    c.section("dirs and special files");
    c.call("mkdir(d1,0755)", [] { return ::mkdir("d1", 0755); });
    c.stat("d1");
    c.call("mkdir(d1) again", [] { return ::mkdir("d1", 0755); });
    c.call("mkdir(d1/sub,0700)", [] { return ::mkdir("d1/sub", 0700); });
    c.stat("d1");
    c.stat("d1/sub");
    c.call("rmdir(d1)", [] { return ::rmdir("d1"); });
    c.call("rmdir(d1/sub)", [] { return ::rmdir("d1/sub"); });
    c.stat("d1");
    c.call("rmdir(f1)", [] { return ::rmdir("f1"); });
    c.call("unlink(d1)", [] { return ::unlink("d1"); });
    c.call("rmdir(.)", [] { return ::rmdir("."); });
    c.call("rmdir(d1/..)", [] { return ::rmdir("d1/.."); });
    c.call("rmdir(nonexistent)", [] { return ::rmdir("nonexistent"); });
    c.call("mkdir(d2,07777)", [] { return ::mkdir("d2", 07777); });
    c.stat("d2");
    c.call("mkdir(d3/) trailing slash", [] { return ::mkdir("d3/", 0755); });
    c.stat("d3");
    c.call("mkdir(nodir/d)", [] { return ::mkdir("nodir/d", 0755); });

    c.call("mknod(fifo1,FIFO|0644)", [] { return ::mknod("fifo1", S_IFIFO | 0644, 0); });
    c.stat("fifo1");
    {
        auto rd = c.open("open(fifo1,RDONLY|NONBLOCK)", [] { return ::open("fifo1", O_RDONLY | O_NONBLOCK | O_CLOEXEC); });
        auto wr = c.open("open(fifo1,WRONLY|NONBLOCK)", [] { return ::open("fifo1", O_WRONLY | O_NONBLOCK | O_CLOEXEC); });
        c.call("write(fifo1,\"pipe\")", [&] { return ::write(wr.get(), "pipe", 4); });
        char b[16];
        c.call("read(fifo1)", [&] { return ::read(rd.get(), b, sizeof b); });
    }
    c.open("open(fifo1,WRONLY|NONBLOCK) no reader", [] { return ::open("fifo1", O_WRONLY | O_NONBLOCK | O_CLOEXEC); });
    c.call("mkfifo(fifo1) exists", [] { return ::mkfifo("fifo1", 0644); });
    c.call("mknod(sock1,SOCK|0755)", [] { return ::mknod("sock1", S_IFSOCK | 0755, 0); });
    c.stat("sock1");
    c.open("open(sock1,RDONLY)", [] { return ::open("sock1", O_RDONLY | O_CLOEXEC); });
    // Device nodes: 1:3 is /dev/null, 0:0 the overlayfs whiteout. Each is gone again at the
    // end of its block, so later listings don't depend on whether it could be made.
    c.call("mknod(null1,CHR|0666,1:3)", [] { return ::mknod("null1", S_IFCHR | 0666, makedev(1, 3)); });
    c.stat("null1");
    {
        auto fd = c.open("open(null1,RDWR)", [] { return ::open("null1", O_RDWR | O_CLOEXEC); });
        c.call("write(null1,\"abc\")", [&] { return ::write(fd.get(), "abc", 3); });
        char b[4];
        c.call("read(null1)", [&] { return ::read(fd.get(), b, sizeof b); });
    }
    c.call("unlink(null1)", [] { return ::unlink("null1"); });
    c.call("mknod(wh,CHR|0600,0:0)", [] { return ::mknod("wh", S_IFCHR | 0600, makedev(0, 0)); });
    c.stat("wh");
    c.open("open(wh,RDONLY)", [] { return ::open("wh", O_RDONLY | O_CLOEXEC); });
    c.call("unlink(wh)", [] { return ::unlink("wh"); });
    c.call("mknod(reg1,REG|0640)", [] { return ::mknod("reg1", S_IFREG | 0640, 0); });
    c.stat("reg1");
    c.call("mknod(dir1,DIR|0755)", [] { return ::mknod("dir1", S_IFDIR | 0755, 0); });
    c.call("mknod(fifo2,FIFO|07777)", [] { return ::mknod("fifo2", S_IFIFO | 07777, 0); });
    c.stat("fifo2");
    {
        // A bound unix socket makes its inode through the filesystem; the rest is the kernel's.
        UniqueFd srv(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        UniqueFd cli(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strcpy(addr.sun_path, "sockb");
        auto* sa = reinterpret_cast<sockaddr*>(&addr);
        c.call("bind(sockb)", [&] { return ::bind(srv.get(), sa, sizeof addr); });
        c.call("listen(sockb)", [&] { return ::listen(srv.get(), 1); });
        c.call("connect(sockb)", [&] { return ::connect(cli.get(), sa, sizeof addr); });
        auto acc = c.open("accept(sockb)", [&] { return ::accept4(srv.get(), nullptr, nullptr, SOCK_CLOEXEC); });
        c.call("send(sockb,\"hi\")", [&] { return ::send(cli.get(), "hi", 2, 0); });
        char b[4];
        c.call("recv(sockb)", [&] { return ::recv(acc.get(), b, sizeof b, 0); });
        c.stat("sockb");
        UniqueFd again(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        c.call("bind(sockb) again", [&] { return ::bind(again.get(), sa, sizeof addr); });
    }
    c.listing(".");
}

void seq_locks(Ctx& c) {
    c.section("locks");
    make_file(c, "k1", std::string(100, 'k'), 0666);
    auto fd1 = open_k1(c, "RDWR", O_RDWR);
    setlk(c, "F_SETLK", F_SETLK, "fd1", fd1.get(), F_WRLCK, 0, 10);
    setlk(c, "F_SETLK", F_SETLK, "fd1", fd1.get(), F_RDLCK, 50, 10);
    getlk(c, "F_GETLK", F_GETLK, "fd1", fd1.get(), F_WRLCK, 0, 100);  // own locks never conflict
    in_child(c, "posix conflicts", [](Ctx& cc) {
        auto fd = open_k1(cc, "RDWR", O_RDWR);
        getlk(cc, "F_GETLK", F_GETLK, "child", fd.get(), F_WRLCK, 0, 1);
        getlk(cc, "F_GETLK", F_GETLK, "child", fd.get(), F_RDLCK, 55, 1);
        getlk(cc, "F_GETLK", F_GETLK, "child", fd.get(), F_WRLCK, 55, 1);
        getlk(cc, "F_GETLK", F_GETLK, "child", fd.get(), F_WRLCK, 20, 10);
        setlk(cc, "F_SETLK", F_SETLK, "child", fd.get(), F_WRLCK, 5, 1);
        setlk(cc, "F_SETLK", F_SETLK, "child", fd.get(), F_RDLCK, 50, 5);
        setlk(cc, "F_SETLK", F_SETLK, "child", fd.get(), F_WRLCK, 20, 5);
        setlk(cc, "F_SETLK", F_SETLK, "child", fd.get(), F_WRLCK, 0, 0);
    });
    getlk(c, "F_GETLK", F_GETLK, "fd1", fd1.get(), F_WRLCK, 0, 100);
    setlk(c, "F_SETLK", F_SETLK, "fd1", fd1.get(), F_UNLCK, 0, 0);
    in_child(c, "after unlock", [](Ctx& cc) {
        auto fd = open_k1(cc, "RDWR", O_RDWR);
        setlk(cc, "F_SETLK", F_SETLK, "child", fd.get(), F_WRLCK, 5, 1);
    });
    // Closing any descriptor of the file drops all of the process's POSIX locks on it.
    setlk(c, "F_SETLK", F_SETLK, "fd1", fd1.get(), F_WRLCK, 0, 0);
    {
        auto other = open_k1(c, "RDONLY", O_RDONLY);
        setlk(c, "F_SETLK", F_SETLK, "rdonly", other.get(), F_WRLCK, 0, 1);  // EBADF: not open for writing
        c.call("close(k1 rdonly)", [&] { return ::close(other.release()); });
    }
    in_child(c, "after close", [](Ctx& cc) {
        auto fd = open_k1(cc, "RDWR", O_RDWR);
        getlk(cc, "F_GETLK", F_GETLK, "child", fd.get(), F_WRLCK, 0, 1);
    });

    // Open file description locks: owned by the description, not the process.
    auto fa = open_k1(c, "RDWR a", O_RDWR);
    auto fb = open_k1(c, "RDWR b", O_RDWR);
    setlk(c, "F_OFD_SETLK", F_OFD_SETLK, "a", fa.get(), F_WRLCK, 0, 10);
    setlk(c, "F_OFD_SETLK", F_OFD_SETLK, "b", fb.get(), F_RDLCK, 5, 1);
    getlk(c, "F_OFD_GETLK", F_OFD_GETLK, "b", fb.get(), F_WRLCK, 0, 1);
    setlk(c, "F_SETLK", F_SETLK, "fd1", fd1.get(), F_WRLCK, 0, 1);
    getlk(c, "F_GETLK", F_GETLK, "fd1", fd1.get(), F_WRLCK, 0, 1);
    in_child(c, "inherited ofd", [&](Ctx& cc) {
        setlk(cc, "F_OFD_SETLK", F_OFD_SETLK, "a inherited", fa.get(), F_WRLCK, 0, 20);
        setlk(cc, "F_OFD_SETLK", F_OFD_SETLK, "b inherited", fb.get(), F_WRLCK, 0, 1);
    });
    {
        struct flock fl {};
        fl.l_type = F_RDLCK;
        fl.l_whence = SEEK_SET;
        fl.l_pid = 1;  // must be 0 for OFD locks
        c.call("F_OFD_SETLK(b,RD pid=1)", [&] { return ::fcntl(fb.get(), F_OFD_SETLK, &fl); });
    }
    c.call("close(a)", [&] { return ::close(fa.release()); });
    setlk(c, "F_OFD_SETLK", F_OFD_SETLK, "b", fb.get(), F_RDLCK, 5, 1);
    c.call("close(b)", [&] { return ::close(fb.release()); });

    // flock: per open file description, independent of POSIX locks.
    auto fc = open_k1(c, "RDONLY c", O_RDONLY);
    auto fd = open_k1(c, "RDONLY d", O_RDONLY);
    flk(c, "c", fc.get(), LOCK_EX | LOCK_NB, "EX|NB");
    flk(c, "d", fd.get(), LOCK_EX | LOCK_NB, "EX|NB");
    flk(c, "d", fd.get(), LOCK_SH | LOCK_NB, "SH|NB");
    in_child(c, "flock", [&](Ctx& cc) {
        auto own = open_k1(cc, "RDONLY", O_RDONLY);
        flk(cc, "child own", own.get(), LOCK_EX | LOCK_NB, "EX|NB");
        flk(cc, "c inherited", fc.get(), LOCK_EX | LOCK_NB, "EX|NB");
    });
    {
        UniqueFd dup(::dup(fc.get()));
        flk(c, "dup of c", dup.get(), LOCK_UN, "UN");
    }
    flk(c, "d", fd.get(), LOCK_SH | LOCK_NB, "SH|NB");
    flk(c, "c", fc.get(), LOCK_SH | LOCK_NB, "SH|NB");
    flk(c, "c", fc.get(), LOCK_EX | LOCK_NB, "EX|NB");
    flk(c, "d", fd.get(), LOCK_UN, "UN");
    flk(c, "c", fc.get(), LOCK_EX | LOCK_NB, "EX|NB");
    setlk(c, "F_SETLK", F_SETLK, "fd1", fd1.get(), F_WRLCK, 0, 0);  // flock and POSIX don't meet
    in_child(c, "flock vs posix", [](Ctx& cc) {
        auto fd = open_k1(cc, "RDWR", O_RDWR);
        getlk(cc, "F_GETLK", F_GETLK, "child", fd.get(), F_RDLCK, 0, 0);
        flk(cc, "child", fd.get(), LOCK_SH | LOCK_NB, "SH|NB");
    });
    flk(c, "c", fc.get(), 0, "0");  // no operation: EINVAL
}

void seq_sparse(Ctx& c) {
    c.section("sparse");
    const StatFields blocks{.blocks = true};
    auto fd = c.open("open(sp1,CREAT|EXCL|RDWR)", [] { return ::open("sp1", O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644); });
    int f = fd.get();
    c.call("pwrite(sp1,\"end\",@1GiB)", [&] { return ::pwrite(f, "end", 3, kGiB); });
    c.fstat("sp1", f, blocks);
    seek(c, "sp1", f, 0, SEEK_DATA, "DATA");
    seek(c, "sp1", f, 0, SEEK_HOLE, "HOLE");
    seek(c, "sp1", f, kGiB, SEEK_HOLE, "HOLE");
    seek(c, "sp1", f, kGiB + 3, SEEK_DATA, "DATA");
    seek(c, "sp1", f, 2 * kGiB, SEEK_HOLE, "HOLE");
    seek(c, "sp1", f, 0, SEEK_END, "END");
    c.pread("sp1", f, 4096, kGiB / 2);
    c.pread("sp1", f, 10, kGiB - 5);
    c.call("fallocate(sp1,0,0,1MiB)", [&] { return ::fallocate(f, 0, 0, kMiB); });
    c.fstat("sp1", f, blocks);
    seek(c, "sp1", f, 0, SEEK_DATA, "DATA");
    c.call("fallocate(sp1,PUNCH|KEEP,0,1MiB)",
           [&] { return ::fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, kMiB); });
    c.fstat("sp1", f, blocks);
    seek(c, "sp1", f, 0, SEEK_DATA, "DATA");
    c.call("fallocate(sp1,KEEP,EOF,1MiB)", [&] { return ::fallocate(f, FALLOC_FL_KEEP_SIZE, kGiB + 3, kMiB); });
    c.fstat("sp1", f, blocks);
    c.call("fallocate(sp1,0,EOF,4096)", [&] { return ::fallocate(f, 0, kGiB + 3, 4096); });
    c.fstat("sp1", f, blocks);
    c.call("fallocate(sp1,PUNCH,0,4096) without KEEP",
           [&] { return ::fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, 4096); });
    c.call("fallocate(sp1,0,0,0)", [&] { return ::fallocate(f, 0, 0, 0); });

    // Data, then a punched hole in the middle of it.
    std::string data(3 * 4096, 'd');
    c.call("pwrite(sp1,12KiB,@0)", [&] { return ::pwrite(f, data.data(), data.size(), 0); });
    c.call("fallocate(sp1,PUNCH|KEEP,4096,4096)",
           [&] { return ::fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096); });
    c.pread("sp1", f, 3 * 4096, 0);
    seek(c, "sp1", f, 0, SEEK_HOLE, "HOLE");
    seek(c, "sp1", f, 4096, SEEK_DATA, "DATA");
    c.fstat("sp1", f, blocks);
    c.call("fallocate(sp1,ZERO_RANGE,0,100)", [&] { return ::fallocate(f, FALLOC_FL_ZERO_RANGE, 0, 100); });
    c.pread("sp1", f, 200, 0);
    c.call("ftruncate(sp1,1MiB)", [&] { return ::ftruncate(f, kMiB); });
    c.fstat("sp1", f, blocks);
    seek(c, "sp1", f, 0, SEEK_HOLE, "HOLE");
    seek(c, "sp1", f, 12288, SEEK_DATA, "DATA");
    c.call("ftruncate(sp1,0)", [&] { return ::ftruncate(f, 0); });
    c.fstat("sp1", f, blocks);
}

void seq_tmpfile(Ctx& c) {
    // Whether O_TMPFILE works depends on the filesystem and, in a guest, on FUSE_TMPFILE
    // (the guest kernel sends it, the server creates the file with O_TMPFILE on the host);
    // whatever the answer, the lines follow.
    c.section("tmpfile");
    {
        auto fd = c.open("open(.,TMPFILE|RDWR,0600)", [] { return ::open(".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600); });
        c.call("write(tmp,\"tmp\")", [&] { return ::write(fd.get(), "tmp", 3); });
        c.fstat("tmp", fd.get());
        c.call("linkat(tmp,tmplinked,EMPTY_PATH)",
               [&] { return ::linkat(fd.get(), "", AT_FDCWD, "tmplinked", AT_EMPTY_PATH); });
        c.lstat("tmplinked");
        // Gone again, so that the final tree does not depend on whether O_TMPFILE worked.
        c.call("unlink(tmplinked)", [] { return ::unlink("tmplinked"); });
    }
    {
        auto fd = c.open("open(.,TMPFILE|WRONLY|EXCL,0600)",
                         [] { return ::open(".", O_TMPFILE | O_WRONLY | O_EXCL | O_CLOEXEC, 0600); });
        c.call("linkat(tmp excl,tmpexcl,EMPTY_PATH)",
               [&] { return ::linkat(fd.get(), "", AT_FDCWD, "tmpexcl", AT_EMPTY_PATH); });
    }
    c.open("open(f1,TMPFILE|RDWR) not a dir", [] { return ::open("f1", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600); });
}

void seq_many_files(Ctx& c, int count) {
    c.section("many files");
    c.call("mkdir(many,0755)", [] { return ::mkdir("many", 0755); });
    char name[32];
    int ok = 0;
    std::string first_error = "-";
    for (int i = 0; i < count; ++i) {
        std::snprintf(name, sizeof name, "many/f%05d", i);
        int fd = ::open(name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0 || ::close(fd) != 0) {
            if (first_error == "-") first_error = std::string(name) + " " + errno_name(errno);
            continue;
        }
        ++ok;
    }
    c.progress("created");
    c.note("create(many/f00000.." + std::to_string(count - 1) + ") = ok=" + std::to_string(ok) +
           " first_error=" + first_error);
    {
        DIR* d = ::opendir("many");
        std::vector<std::string> names;
        size_t dups = 0;
        if (d != nullptr) {
            while (const struct dirent* de = ::readdir(d))
                names.push_back(std::string(de->d_name) + ":" + std::to_string(de->d_type));
            ::closedir(d);
        }
        std::sort(names.begin(), names.end());
        for (size_t i = 1; i < names.size(); ++i) dups += names[i] == names[i - 1];
        uint64_t h = 0xcbf29ce484222325ull;
        for (const auto& n : names) h = fnv1a(n.data(), n.size() + 1, h);  // with the NUL as separator
        c.note(std::string("readdir(many) = ") + (d == nullptr ? "opendir failed " : "") +
               "entries=" + std::to_string(names.size()) + " dups=" + std::to_string(dups) + " fnv=" + hex64(h));
    }
    c.progress("listed");
    for (int i : {0, 1, 1234, 5000, count - 1}) {
        std::snprintf(name, sizeof name, "many/f%05d", i);
        c.stat(name);
    }
    c.stat("many");
    {
        // rm -r style: unlink each entry as soon as readdir hands it out. POSIX lets a pass
        // return or skip entries removed after opendir, but every entry that was NOT removed
        // must come exactly once: as each name is removed only after it was seen, one pass
        // must see them all (first_pass), and a name already removed must not come back
        // (stale). Later passes only clean up after a failure.
        std::set<std::string> removed;
        size_t first_pass = 0, stale = 0;
        int unlink_errors = 0;
        for (int pass = 0; pass < 3; ++pass) {
            DIR* d = ::opendir("many");
            if (d == nullptr) break;
            while (const struct dirent* de = ::readdir(d)) {
                std::string n = de->d_name;
                if (n == "." || n == "..") continue;
                if (removed.count(n) != 0) {
                    ++stale;
                    continue;
                }
                first_pass += pass == 0;
                if (::unlinkat(::dirfd(d), n.c_str(), 0) == 0)
                    removed.insert(n);
                else
                    ++unlink_errors;
            }
            ::closedir(d);
        }
        c.note("rm(many/*) = first_pass=" + std::to_string(first_pass) + " unlinked=" + std::to_string(removed.size()) +
               " stale=" + std::to_string(stale) + " unlink_errors=" + std::to_string(unlink_errors));
    }
    c.progress("removed");
    c.listing("many");
    c.call("rmdir(many)", [] { return ::rmdir("many"); });
}

void seq_tree(Ctx& c) {
    c.section("final tree");
    dump(c, ".");
}

}  // namespace fsconform
