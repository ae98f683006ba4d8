// krunlet-fsconform: root-owned fixtures, modes and owners, times, xattrs and permissions.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "conform_ctx.h"

namespace fsconform {

namespace {

// The value a getxattr returned ("-" after an error, so the line count never depends on it).
void show_getxattr(Ctx& c, const std::string& what, ssize_t n, const std::vector<char>& buf) {
    c.note(what + ".value = " + (n < 0 ? std::string("-") : format_bytes(buf.data(), static_cast<size_t>(n))));
}

// listxattr names, sorted; "security." names are left out: whether a security module labels
// files is the host's business and says nothing about the server.
void show_list(Ctx& c, const std::string& what, ssize_t n, const std::vector<char>& buf) {
    if (n < 0) {
        c.note(what + ".names = -");
        return;
    }
    std::vector<std::string> names;
    for (size_t i = 0; i < static_cast<size_t>(n);) {
        std::string name(buf.data() + i);
        i += name.size() + 1;
        if (name.rfind("security.", 0) != 0) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    std::string line = what + ".names =";
    for (const auto& s : names) line += " " + s;
    c.note(line);
}

void get(Ctx& c, const char* path, const char* name, size_t size) {
    std::vector<char> buf(size == 0 ? 1 : size);
    std::string what = std::string("getxattr(") + path + "," + name + "," + std::to_string(size) + ")";
    ssize_t n = c.call(what, [&] { return ::getxattr(path, name, size == 0 ? nullptr : buf.data(), size); });
    if (size != 0) show_getxattr(c, what, n, buf);
}

void list(Ctx& c, const char* path, size_t size) {
    std::vector<char> buf(size == 0 ? 1 : size);
    std::string what = std::string("listxattr(") + path + "," + std::to_string(size) + ")";
    ssize_t n = c.call(what, [&] { return ::listxattr(path, size == 0 ? nullptr : buf.data(), size); });
    if (size != 0) show_list(c, what, n, buf);
}

void set(Ctx& c, const char* path, const char* name, const std::string& value, int flags, const char* flag_name) {
    c.call(std::string("setxattr(") + path + "," + name + "," + std::to_string(value.size()) + "B," + flag_name + ")",
           [&] { return ::setxattr(path, name, value.data(), value.size(), flags); });
}

// A time the kernel stamped itself (UTIME_NOW): equal to ctime (one stamp for both), and
// close to this machine's clock.
void stamped_now(Ctx& c, const char* path, bool atime) {
    struct stat st {};
    int rc = ::stat(path, &st);
    const struct timespec& t = atime ? st.st_atim : st.st_mtim;
    long long now = static_cast<long long>(::time(nullptr));
    bool recent = t.tv_sec > now - 600 && t.tv_sec < now + 600;
    bool eq_ctime = t.tv_sec == st.st_ctim.tv_sec && t.tv_nsec == st.st_ctim.tv_nsec;
    std::string which = atime ? "atime" : "mtime";
    c.note("stamped_now(" + std::string(path) + "," + which + ") = " +
           (rc != 0 ? std::string("error")
                    : std::string("recent=") + (recent ? "yes" : "no") + " eq_ctime=" + (eq_ctime ? "yes" : "no")));
}

}  // namespace

void prepare_root_fixtures(Ctx& c) {
    c.section("root fixtures");
    make_file(c, "root-secret", "secret", 0600);
    make_file(c, "root-xattr", "xattr holder", 0644);
    c.call("setxattr(root-xattr,user.r)", [] { return ::setxattr("root-xattr", "user.r", "root", 4, 0); });
    c.call("setxattr(root-xattr,trusted.t)", [] { return ::setxattr("root-xattr", "trusted.t", "tt", 2, 0); });
    c.call("mkdir(root-ro,0755)", [] { return ::mkdir("root-ro", 0755); });
    make_file(c, "root-ro/file", "ro", 0644);
    c.call("mkdir(sticky,01777)", [] { return ::mkdir("sticky", 01777); });
    c.call("chmod(sticky,01777)", [] { return ::chmod("sticky", 01777); });  // past the umask
    make_file(c, "sticky/rootfile", "mine", 0666);
    c.call("chmod(sticky/rootfile,0666)", [] { return ::chmod("sticky/rootfile", 0666); });
    c.stat("sticky");
}

void seq_modes(Ctx& c) {
    c.section("modes");
    make_file(c, "m1", "mode", 0644);
    for (mode_t m : {0750u, 04755u, 02755u, 01755u, 0u, 07777u}) {
        char what[32];
        std::snprintf(what, sizeof what, "chmod(m1,%04o)", static_cast<unsigned>(m));
        c.call(what, [&] { return ::chmod("m1", m); });
        c.stat("m1");
    }
    {
        auto fd = c.open("open(m1,RDONLY)", [] { return ::open("m1", O_RDONLY | O_CLOEXEC); });
        c.call("fchmod(m1,0640)", [&] { return ::fchmod(fd.get(), 0640); });
        c.fstat("m1", fd.get());
        c.call("fchown(m1,-1,1000)", [&] { return ::fchown(fd.get(), static_cast<uid_t>(-1), 1000); });
        c.fstat("m1", fd.get());
    }
    c.call("chown(m1,1000,1000)", [] { return ::chown("m1", 1000, 1000); });
    c.stat("m1");
    c.call("chown(m1,0,0)", [] { return ::chown("m1", 0, 0); });
    c.stat("m1");
    c.call("chown(m1,-1,0)", [] { return ::chown("m1", static_cast<uid_t>(-1), 0); });
    c.call("chown(m1,-1,-1)", [] { return ::chown("m1", static_cast<uid_t>(-1), static_cast<gid_t>(-1)); });
    // chown clears setuid, and setgid where group-exec is set, even for root.
    make_file(c, "m2", "suid", 0755);
    c.call("chmod(m2,06755)", [] { return ::chmod("m2", 06755); });
    c.call("chown(m2,1000,1000)", [] { return ::chown("m2", 1000, 1000); });
    c.stat("m2");
    c.call("chmod(m2,02745)", [] { return ::chmod("m2", 02745); });  // setgid without group-exec
    c.call("chown(m2,-1,1000)", [] { return ::chown("m2", static_cast<uid_t>(-1), 1000); });
    c.stat("m2");
    // A write by someone without CAP_FSETID clears setuid (root keeps it).
    make_file(c, "m3", "suid write", 0755);
    c.call("chmod(m3,04755)", [] { return ::chmod("m3", 04755); });
    {
        auto fd = c.open("open(m3,WRONLY)", [] { return ::open("m3", O_WRONLY | O_CLOEXEC); });
        c.call("write(m3,\"x\")", [&] { return ::write(fd.get(), "x", 1); });
        c.fstat("m3", fd.get());
    }
    c.call("chmod(fdir,01777)", [] { return ::chmod("fdir", 01777); });
    c.stat("fdir");
    c.call("chmod(fdir,0755)", [] { return ::chmod("fdir", 0755); });
    c.call("chmod(root-secret,0644)", [] { return ::chmod("root-secret", 0644); });
    c.call("chmod(root-secret,0600)", [] { return ::chmod("root-secret", 0600); });
    c.call("chown(root-secret,1000,1000)", [] { return ::chown("root-secret", 1000, 1000); });
    c.call("chown(root-secret,0,0)", [] { return ::chown("root-secret", 0, 0); });
    c.stat("root-secret");
    // Setgid directories hand their group (and the setgid bit) down.
    c.call("mkdir(sg,0775)", [] { return ::mkdir("sg", 0775); });
    c.call("chown(sg,-1,1000)", [] { return ::chown("sg", static_cast<uid_t>(-1), 1000); });
    c.call("chmod(sg,02775)", [] { return ::chmod("sg", 02775); });
    c.call("mkdir(sg/child,0755)", [] { return ::mkdir("sg/child", 0755); });
    make_file(c, "sg/file", "g", 0644);
    c.stat("sg");
    c.stat("sg/child");
    c.stat("sg/file");
    // umask applies to creation only.
    mode_t old = ::umask(077);
    make_file(c, "m4", "umask", 0666);
    c.call("mkdir(m4d,0777)", [] { return ::mkdir("m4d", 0777); });
    ::umask(old);
    c.stat("m4");
    c.stat("m4d");
}

void seq_times(Ctx& c) {
    c.section("times");
    make_file(c, "t1", "time", 0644);
    const StatFields both{.mtime = true, .atime = true};
    {
        struct timespec ts[2] = {{1000000000, 123456789}, {1100000000, 500000000}};
        c.call("utimensat(t1,explicit)", [&] { return ::utimensat(AT_FDCWD, "t1", ts, 0); });
        c.stat("t1", both);
    }
    {
        struct timespec ts[2] = {{0, UTIME_OMIT}, {1200000000, 250000000}};
        c.call("utimensat(t1,OMIT,explicit)", [&] { return ::utimensat(AT_FDCWD, "t1", ts, 0); });
        c.stat("t1", both);
    }
    {
        struct timespec ts[2] = {{1300000000, 750000000}, {0, UTIME_OMIT}};
        c.call("utimensat(t1,explicit,OMIT)", [&] { return ::utimensat(AT_FDCWD, "t1", ts, 0); });
        c.stat("t1", both);
    }
    {
        struct timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
        c.call("utimensat(t1,NOW,OMIT)", [&] { return ::utimensat(AT_FDCWD, "t1", ts, 0); });
        c.stat("t1", {.mtime = true});
        stamped_now(c, "t1", true);
    }
    {
        struct timespec ts[2] = {{1300000000, 750000000}, {0, UTIME_NOW}};
        c.call("utimensat(t1,explicit,NOW)", [&] { return ::utimensat(AT_FDCWD, "t1", ts, 0); });
        c.stat("t1", {.atime = true});
        stamped_now(c, "t1", false);
    }
    {
        struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
        c.call("utimensat(t1,OMIT,OMIT)", [&] { return ::utimensat(AT_FDCWD, "t1", ts, 0); });
    }
    c.call("utimensat(t1,NULL)", [] { return ::utimensat(AT_FDCWD, "t1", nullptr, 0); });
    stamped_now(c, "t1", false);
    stamped_now(c, "t1", true);
    {
        struct timespec ts[2] = {{-1000000, 0}, {-1, 999999999}};  // before 1970
        c.call("utimensat(t1,negative)", [&] { return ::utimensat(AT_FDCWD, "t1", ts, 0); });
        c.stat("t1", both);
    }
    {
        struct timespec ts[2] = {{1, 1000000000}, {1, 0}};
        c.call("utimensat(t1,nsec=1e9)", [&] { return ::utimensat(AT_FDCWD, "t1", ts, 0); });
    }
    {
        auto fd = c.open("open(t1,RDONLY)", [] { return ::open("t1", O_RDONLY | O_CLOEXEC); });
        struct timespec ts[2] = {{1400000000, 1}, {1400000000, 2}};
        c.call("futimens(t1 rdonly,explicit)", [&] { return ::futimens(fd.get(), ts); });
        c.fstat("t1", fd.get(), both);
    }
    {
        struct timespec ts[2] = {{1500000000, 0}, {1500000000, 0}};
        c.call("utimensat(fdir,explicit)", [&] { return ::utimensat(AT_FDCWD, "fdir", ts, 0); });
        c.stat("fdir", {.mtime = true});
        make_file(c, "fdir/new", "n");  // a new entry moves the directory's mtime
        struct stat st {};
        ::stat("fdir", &st);
        c.note(std::string("mtime_moved(fdir) = ") + (st.st_mtim.tv_sec != 1500000000 ? "yes" : "no"));
    }
    {
        // Someone else's file: explicit times need ownership, NOW needs write access.
        struct timespec ts[2] = {{1600000000, 0}, {1600000000, 0}};
        c.call("utimensat(root-xattr,explicit)", [&] { return ::utimensat(AT_FDCWD, "root-xattr", ts, 0); });
        c.call("utimensat(root-xattr,NULL)", [] { return ::utimensat(AT_FDCWD, "root-xattr", nullptr, 0); });
        c.call("utimensat(sticky/rootfile,NULL)",
               [] { return ::utimensat(AT_FDCWD, "sticky/rootfile", nullptr, 0); });
        c.call("utimensat(sticky/rootfile,explicit)",
               [&] { return ::utimensat(AT_FDCWD, "sticky/rootfile", ts, 0); });
    }
}

void seq_xattrs(Ctx& c) {
    c.section("xattrs");
    make_file(c, "x1", "xattrs", 0644);
    set(c, "x1", "user.a", "alpha", 0, "0");
    get(c, "x1", "user.a", 64);
    get(c, "x1", "user.a", 0);
    get(c, "x1", "user.a", 2);
    get(c, "x1", "user.none", 64);
    get(c, "x1", "user.none", 0);
    set(c, "x1", "user.a", "again", XATTR_CREATE, "CREATE");
    set(c, "x1", "user.b", "bee", XATTR_REPLACE, "REPLACE");
    set(c, "x1", "user.a", "replaced", XATTR_REPLACE, "REPLACE");
    get(c, "x1", "user.a", 64);
    set(c, "x1", "user.empty", "", 0, "0");
    get(c, "x1", "user.empty", 0);
    get(c, "x1", "user.empty", 16);
    std::string big(4000, 'v');
    for (size_t i = 0; i < big.size(); i += 7) big[i] = static_cast<char>('0' + i % 10);
    set(c, "x1", "user.big", big, 0, "0");
    get(c, "x1", "user.big", 0);
    get(c, "x1", "user.big", 8192);
    get(c, "x1", "user.big", 3999);
    list(c, "x1", 0);
    list(c, "x1", 4096);
    list(c, "x1", 1);
    c.call("removexattr(x1,user.a)", [] { return ::removexattr("x1", "user.a"); });
    c.call("removexattr(x1,user.a) again", [] { return ::removexattr("x1", "user.a"); });
    list(c, "x1", 4096);
    {
        auto fd = c.open("open(x1,RDONLY)", [] { return ::open("x1", O_RDONLY | O_CLOEXEC); });
        c.call("fsetxattr(x1 rdonly,user.f)", [&] { return ::fsetxattr(fd.get(), "user.f", "fd", 2, 0); });
        char b[16];
        c.call("fgetxattr(x1,user.f)", [&] { return ::fgetxattr(fd.get(), "user.f", b, sizeof b); });
        c.call("fremovexattr(x1,user.f)", [&] { return ::fremovexattr(fd.get(), "user.f"); });
    }
    set(c, "fdir", "user.d", "dir", 0, "0");
    get(c, "fdir", "user.d", 16);
    c.call("lsetxattr(sl1,user.l)", [] { return ::lsetxattr("sl1", "user.l", "l", 1, 0); });
    c.call("lgetxattr(sl1,user.l)", [] {
        char b[8];
        return ::lgetxattr("sl1", "user.l", b, sizeof b);
    });
    c.call("setxattr(x1,user.,1B)", [] { return ::setxattr("x1", "user.", "v", 1, 0); });
    c.call("setxattr(x1,nonamespace,1B)", [] { return ::setxattr("x1", "nonamespace", "v", 1, 0); });
    set(c, "x1", "trusted.t", "trust", 0, "0");
    get(c, "x1", "trusted.t", 16);
    list(c, "x1", 4096);
    // Someone else's file: user.* needs write access to set, read access to get.
    get(c, "root-xattr", "user.r", 16);
    get(c, "root-xattr", "trusted.t", 16);
    set(c, "root-xattr", "user.w", "w", 0, "0");
    list(c, "root-xattr", 0);
    list(c, "root-xattr", 4096);
    get(c, "root-secret", "user.none", 16);
}

void seq_permissions(Ctx& c) {
    c.section("permissions");
    c.open("open(root-secret,RDONLY)", [] { return ::open("root-secret", O_RDONLY | O_CLOEXEC); });
    c.open("open(root-secret,WRONLY)", [] { return ::open("root-secret", O_WRONLY | O_CLOEXEC); });
    c.call("access(root-secret,R_OK)", [] { return ::access("root-secret", R_OK); });
    c.call("access(root-secret,F_OK)", [] { return ::access("root-secret", F_OK); });
    c.call("access(root-ro,W_OK)", [] { return ::access("root-ro", W_OK); });
    c.call("access(root-ro,X_OK)", [] { return ::access("root-ro", X_OK); });
    c.call("access(root-ro/file,X_OK)", [] { return ::access("root-ro/file", X_OK); });
    c.stat("root-secret");
    c.call("truncate(root-secret,0)", [] { return ::truncate("root-secret", 0); });
    c.open("open(root-ro/new,CREAT)", [] { return ::open("root-ro/new", O_CREAT | O_WRONLY | O_CLOEXEC, 0644); });
    c.call("mkdir(root-ro/d)", [] { return ::mkdir("root-ro/d", 0755); });
    c.call("access(root-ro/file,W_OK)", [] { return ::access("root-ro/file", W_OK); });
    c.call("rename(root-ro/file,mine)", [] { return ::rename("root-ro/file", "mine"); });
    // Not here: link(2) to someone else's file. Its outcome is the fs.protected_hardlinks sysctl
    // of whichever kernel checks it (the guest's own, or the host's), not the filesystem's.
    c.listing("root-ro");
    // The sticky directory: anyone may create, only the owner (or root) may remove.
    make_file(c, "sticky/mine", "mine", 0644);
    c.stat("sticky/mine");
    c.call("rename(sticky/rootfile,sticky/taken)", [] { return ::rename("sticky/rootfile", "sticky/taken"); });
    c.call("unlink(sticky/rootfile)", [] { return ::unlink("sticky/rootfile"); });
    c.call("unlink(sticky/mine)", [] { return ::unlink("sticky/mine"); });
    c.listing("sticky");
    // A directory without permissions shuts out everyone but root.
    c.call("mkdir(locked,0755)", [] { return ::mkdir("locked", 0755); });
    make_file(c, "locked/inside", "in", 0644);
    c.call("chmod(locked,0)", [] { return ::chmod("locked", 0); });
    c.stat("locked/inside");
    c.listing("locked");
    c.open("open(locked/inside,RDONLY)", [] { return ::open("locked/inside", O_RDONLY | O_CLOEXEC); });
    c.call("chmod(locked,0311) search only", [] { return ::chmod("locked", 0311); });
    c.stat("locked/inside");
    c.listing("locked");
    c.call("chmod(locked,0755)", [] { return ::chmod("locked", 0755); });
    // Mode bits of a file without read permission for its own owner.
    make_file(c, "noread", "x", 0200);
    c.open("open(noread,RDONLY)", [] { return ::open("noread", O_RDONLY | O_CLOEXEC); });
    c.open("open(noread,WRONLY)", [] { return ::open("noread", O_WRONLY | O_CLOEXEC); });
    c.call("access(noread,R_OK)", [] { return ::access("noread", R_OK); });
}

}  // namespace fsconform
