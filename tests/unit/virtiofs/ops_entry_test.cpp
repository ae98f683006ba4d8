// Session, name and attribute ops, driven with real encoded requests against a fresh host
// directory; each test checks the reply fields and what really happened on the host.
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <algorithm>
#include <map>
#include <set>

#include "fuse_client.h"

using namespace vfstest;

namespace {

constexpr uint64_t kRoot = FUSE_ROOT_ID;

}  // namespace

TEST_CASE("INIT: version and feature negotiation; nothing works before it") {
    TempDir d;
    auto s = Server::create(ServerConfig{.root_dir = d.path()});
    REQUIRE(s.ok());
    Client c(**s);
    CHECK(c.getattr(kRoot).error() == EIO);

    Reply r = c.init(38, 0xffffffffu);
    REQUIRE(r.error() == 0);
    REQUIRE(r.body.size() == sizeof(fuse_init_out));
    auto o = r.as<fuse_init_out>();
    CHECK(o.major == 7);
    CHECK(o.minor == 38);
    CHECK(o.max_write == (1u << 20) - 4096);
    CHECK(o.max_pages == 256);
    CHECK(o.max_readahead == 128 * 1024);
    for (uint32_t f : {FUSE_MAX_PAGES, FUSE_DO_READDIRPLUS, FUSE_READDIRPLUS_AUTO, FUSE_PARALLEL_DIROPS,
                       FUSE_ATOMIC_O_TRUNC, FUSE_EXPORT_SUPPORT, FUSE_BIG_WRITES})
        CHECK((o.flags & f) == f);
    CHECK((o.flags & FUSE_WRITEBACK_CACHE) == 0);
    CHECK((o.flags & FUSE_POSIX_LOCKS) == 0);
    CHECK(c.getattr(kRoot).error() == 0);

    // Only flags the guest offered come back.
    o = c.init(38, FUSE_BIG_WRITES).as<fuse_init_out>();
    CHECK(o.flags == FUSE_BIG_WRITES);
    // A 5.4 guest (7.31) gets 7.31; a future minor gets ours.
    CHECK(c.init(31).as<fuse_init_out>().minor == 31);
    CHECK(c.init(45).as<fuse_init_out>().minor == FUSE_KERNEL_MINOR_VERSION);
    CHECK(c.init(30).error() == EPROTO);
    // A newer major: answer with 7 and wait for the guest to retry.
    fuse_init_in in{};
    in.major = 8;
    in.minor = 0;
    Reply m = c.call(FUSE_INIT, 0, Args().obj(in));
    CHECK(m.error() == 0);
    CHECK(m.as<fuse_init_out>().major == 7);
    // The pre-7.36 16-byte fuse_init_in is accepted; shorter is not.
    Args short_init;
    short_init.raw(std::string_view(reinterpret_cast<const char*>(&in), 12));
    CHECK(c.call(FUSE_INIT, 0, short_init).error() == EINVAL);
    fuse_init_in in16{};
    in16.major = 7;
    in16.minor = 34;
    Args a16;
    a16.raw(std::string_view(reinterpret_cast<const char*>(&in16), 16));
    CHECK(c.call(FUSE_INIT, 0, a16).as<fuse_init_out>().minor == 34);
}

TEST_CASE("LOOKUP/GETATTR report the host's attributes; FORGET drops lookups") {
    TempDir d;
    write_file(d / "f", "hello", 0640);
    REQUIRE(::chown((d / "f").c_str(), 321, 654) == 0);
    auto s = make_server(d.path());
    Client c(*s);
    CHECK(s->stats().inodes == 1);

    Reply r = c.lookup(kRoot, "f");
    REQUIRE(r.error() == 0);
    auto e = r.as<fuse_entry_out>();
    struct stat st = lstat_of(d / "f");
    CHECK(e.nodeid >= 16);
    CHECK(e.attr.ino == st.st_ino);
    CHECK(e.attr.size == 5);
    CHECK(e.attr.mode == (S_IFREG | 0640));
    CHECK(e.attr.uid == 321);
    CHECK(e.attr.gid == 654);
    CHECK(e.attr.nlink == 1);
    CHECK(e.attr.mtime == static_cast<uint64_t>(st.st_mtim.tv_sec));
    CHECK(e.attr.mtimensec == static_cast<uint32_t>(st.st_mtim.tv_nsec));
    CHECK(e.entry_valid == 0);  // CachePolicy::Never

    // A second lookup of the same object gives the same node id.
    CHECK(c.node(kRoot, "f") == e.nodeid);
    CHECK(s->stats().inodes == 2);

    Reply g = c.getattr(e.nodeid);
    REQUIRE(g.error() == 0);
    auto a = g.as<fuse_attr_out>();
    CHECK(a.attr.ino == st.st_ino);
    CHECK(a.attr.size == 5);
    Reply gr = c.getattr(kRoot);
    CHECK(gr.as<fuse_attr_out>().attr.mode == (S_IFDIR | 0700));

    CHECK(c.lookup(kRoot, "missing").error() == ENOENT);

    c.forget(e.nodeid, 1);
    CHECK(s->stats().inodes == 2);  // one lookup left
    c.forget(e.nodeid, 1);
    CHECK(s->stats().inodes == 1);
    CHECK(c.getattr(e.nodeid).error() == ESTALE);
    // FORGET of unknown nodes and of the root: no reply, no effect.
    c.forget(999999, 5);
    c.forget(kRoot, 100);
    CHECK(s->stats().inodes == 1);
    CHECK(c.getattr(kRoot).error() == 0);

    // BATCH_FORGET.
    uint64_t n1 = c.node(kRoot, "f");
    c.node(kRoot, "f");
    fuse_batch_forget_in b{};
    b.count = 2;
    fuse_forget_one f1{n1, 1}, f2{n1, 1};
    Reply br = c.call(FUSE_BATCH_FORGET, 0, Args().obj(b).obj(f1).obj(f2));
    CHECK(br.returned == 0);
    CHECK(s->stats().inodes == 1);
}

TEST_CASE("LOOKUP of a missing name is a cached negative entry unless caching is off") {
    TempDir d;
    auto s = make_server(d.path(), CachePolicy::Auto);
    Client c(*s);
    Reply r = c.lookup(kRoot, "nope");
    REQUIRE(r.error() == 0);
    auto e = r.as<fuse_entry_out>();
    CHECK(e.nodeid == 0);
    CHECK(e.entry_valid == 1);
    write_file(d / "yes", "");
    auto y = c.lookup(kRoot, "yes").as<fuse_entry_out>();
    CHECK(y.entry_valid == 1);
    CHECK(y.attr_valid == 1);

    auto s2 = make_server(d.path(), CachePolicy::Always);
    Client c2(*s2);
    CHECK(c2.lookup(kRoot, "yes").as<fuse_entry_out>().entry_valid == 86400);
    uint64_t n = c2.node(kRoot, "yes");
    CHECK((c2.open(n, O_RDONLY).as<fuse_open_out>().open_flags & FOPEN_KEEP_CACHE) != 0);

    auto s3 = make_server(d.path(), CachePolicy::Never);
    Client c3(*s3);
    n = c3.node(kRoot, "yes");
    CHECK((c3.open(n, O_RDONLY).as<fuse_open_out>().open_flags & FOPEN_DIRECT_IO) != 0);
}

TEST_CASE("SETATTR: mode, owner, size and times, by path or by open handle") {
    TempDir d;
    write_file(d / "f", "0123456789", 0644);
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t n = c.node(kRoot, "f");

    fuse_setattr_in in{};
    in.valid = FATTR_MODE;
    in.mode = S_IFREG | 04751;
    Reply r = c.setattr(n, in);
    REQUIRE(r.error() == 0);
    CHECK(r.as<fuse_attr_out>().attr.mode == (S_IFREG | 04751));
    CHECK((lstat_of(d / "f").st_mode & 07777) == 04751);

    in = {};
    in.valid = FATTR_UID | FATTR_GID;
    in.uid = 1234;
    in.gid = 5678;
    r = c.setattr(n, in);
    REQUIRE(r.error() == 0);
    CHECK(lstat_of(d / "f").st_uid == 1234);
    CHECK(lstat_of(d / "f").st_gid == 5678);
    CHECK(r.as<fuse_attr_out>().attr.uid == 1234);

    in = {};
    in.valid = FATTR_SIZE;
    in.size = 4;
    REQUIRE(c.setattr(n, in).error() == 0);
    CHECK(read_file(d / "f") == "0123");

    in = {};
    in.valid = FATTR_ATIME | FATTR_MTIME;
    in.atime = 1000000000;
    in.atimensec = 5;
    in.mtime = 1200000000;
    in.mtimensec = 7;
    r = c.setattr(n, in);
    REQUIRE(r.error() == 0);
    struct stat st = lstat_of(d / "f");
    CHECK(st.st_atim.tv_sec == 1000000000);
    CHECK(st.st_atim.tv_nsec == 5);
    CHECK(st.st_mtim.tv_sec == 1200000000);
    CHECK(st.st_mtim.tv_nsec == 7);
    CHECK(r.as<fuse_attr_out>().attr.mtime == 1200000000);

    // Only mtime, set to "now": atime stays.
    in = {};
    in.valid = FATTR_MTIME | FATTR_MTIME_NOW;
    REQUIRE(c.setattr(n, in).error() == 0);
    st = lstat_of(d / "f");
    CHECK(st.st_atim.tv_sec == 1000000000);
    CHECK(st.st_mtim.tv_sec > 1600000000);
    in = {};
    in.valid = FATTR_ATIME | FATTR_ATIME_NOW;
    REQUIRE(c.setattr(n, in).error() == 0);
    CHECK(lstat_of(d / "f").st_atim.tv_sec > 1600000000);
    // Invalid nanoseconds.
    in = {};
    in.valid = FATTR_MTIME;
    in.mtimensec = 1000000000;
    CHECK(c.setattr(n, in).error() == EINVAL);

    // Through an open handle.
    uint64_t fh = c.open_fh(n, O_RDWR);
    in = {};
    in.valid = FATTR_SIZE | FATTR_FH | FATTR_MODE;
    in.fh = fh;
    in.size = 2;
    in.mode = 0600;
    REQUIRE(c.setattr(n, in).error() == 0);
    CHECK(read_file(d / "f") == "01");
    CHECK((lstat_of(d / "f").st_mode & 07777) == 0600);
    CHECK(c.release(n, fh).error() == 0);

    // Truncating a directory by path.
    REQUIRE(::mkdir((d / "dir").c_str(), 0755) == 0);
    in = {};
    in.valid = FATTR_SIZE;
    CHECK(c.setattr(c.node(kRoot, "dir"), in).error() == EISDIR);
}

TEST_CASE("SYMLINK and READLINK") {
    TempDir d;
    auto s = make_server(d.path());
    Client c(*s);
    Reply r = c.symlink(kRoot, "ln", "some/where/../x");
    REQUIRE(r.error() == 0);
    auto e = r.as<fuse_entry_out>();
    CHECK((e.attr.mode & S_IFMT) == S_IFLNK);
    char buf[64] = {};
    REQUIRE(::readlink((d / "ln").c_str(), buf, sizeof(buf)) > 0);
    CHECK(std::string(buf) == "some/where/../x");

    Reply rl = c.call(FUSE_READLINK, e.nodeid);
    REQUIRE(rl.error() == 0);
    CHECK(rl.text() == "some/where/../x");
    // READLINK of a non-link.
    write_file(d / "f", "");
    CHECK(c.call(FUSE_READLINK, c.node(kRoot, "f")).error() == EINVAL);
    CHECK(c.symlink(kRoot, "ln", "x").error() == EEXIST);
    CHECK(c.symlink(kRoot, "empty", "").error() == EINVAL);
}

TEST_CASE("MKNOD and MKDIR honour mode and umask, even past the server's own umask") {
    TempDir d;
    mode_t old = ::umask(022);
    auto s = make_server(d.path());
    Client c(*s);

    Reply r = c.mkdir(kRoot, "open", 0777, 0);
    REQUIRE(r.error() == 0);
    CHECK((lstat_of(d / "open").st_mode & 07777) == 0777);  // server umask 022 repaired
    CHECK(r.as<fuse_entry_out>().attr.mode == (S_IFDIR | 0777));
    REQUIRE(c.mkdir(kRoot, "masked", 0777, 027).error() == 0);
    CHECK((lstat_of(d / "masked").st_mode & 07777) == 0750);
    REQUIRE(c.mkdir(kRoot, "sticky", 01777, 0).error() == 0);
    CHECK((lstat_of(d / "sticky").st_mode & 07777) == 01777);
    CHECK(c.mkdir(kRoot, "open", 0777).error() == EEXIST);

    r = c.mknod(kRoot, "fifo", S_IFIFO | 0666, 0, 002);
    REQUIRE(r.error() == 0);
    struct stat st = lstat_of(d / "fifo");
    CHECK(S_ISFIFO(st.st_mode));
    CHECK((st.st_mode & 07777) == 0664);

    REQUIRE(c.mknod(kRoot, "plain", S_IFREG | 0600).error() == 0);
    CHECK(S_ISREG(lstat_of(d / "plain").st_mode));

    // Device nodes: only overlayfs' 0:0 whiteout is made; a real device number (here one that
    // needs the wide encoding, minor > 255) would be a door to a host device.
    uint32_t rdev = (1u << 8) | 3u | (0x123u << 20);  // major 1, minor 0x12303 (new_encode_dev)
    CHECK(c.mknod(kRoot, "chr", S_IFCHR | 0600, rdev).error() == EPERM);
    CHECK(c.mknod(kRoot, "blk", S_IFBLK | 0600, 0).error() == EPERM);
    CHECK(!exists(d / "chr"));
    CHECK(!exists(d / "blk"));
    r = c.mknod(kRoot, "whiteout", S_IFCHR | 0600, 0);
    REQUIRE(r.error() == 0);
    st = lstat_of(d / "whiteout");
    CHECK(S_ISCHR(st.st_mode));
    CHECK(st.st_rdev == 0);
    CHECK(r.as<fuse_entry_out>().attr.rdev == 0);

    r = c.mknod(kRoot, "sock", S_IFSOCK | 0644, 0, 022);
    REQUIRE(r.error() == 0);
    CHECK(S_ISSOCK(lstat_of(d / "sock").st_mode));

    CHECK(c.mknod(kRoot, "dir", S_IFDIR | 0755).error() == EINVAL);
    ::umask(old);
}

TEST_CASE("UNLINK, RMDIR, RENAME, RENAME2 and LINK") {
    TempDir d;
    write_file(d / "a", "A");
    write_file(d / "b", "B");
    REQUIRE(::mkdir((d / "sub").c_str(), 0755) == 0);
    REQUIRE(::mkdir((d / "full").c_str(), 0755) == 0);
    write_file(d / "full/x", "");
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t sub = c.node(kRoot, "sub");

    fuse_rename_in rn{};
    rn.newdir = sub;
    REQUIRE(c.call(FUSE_RENAME, kRoot, Args().obj(rn).str("a").str("a2")).error() == 0);
    CHECK(!exists(d / "a"));
    CHECK(read_file(d / "sub/a2") == "A");

    fuse_rename2_in r2{};
    r2.newdir = kRoot;
    r2.flags = RENAME_NOREPLACE;
    CHECK(c.call(FUSE_RENAME2, sub, Args().obj(r2).str("a2").str("b")).error() == EEXIST);
    r2.flags = RENAME_EXCHANGE;
    REQUIRE(c.call(FUSE_RENAME2, sub, Args().obj(r2).str("a2").str("b")).error() == 0);
    CHECK(read_file(d / "b") == "A");
    CHECK(read_file(d / "sub/a2") == "B");
    r2.flags = 0x100;
    CHECK(c.call(FUSE_RENAME2, sub, Args().obj(r2).str("a2").str("c")).error() == EINVAL);

    // LINK: the header names the new parent, the argument the existing inode.
    uint64_t b = c.node(kRoot, "b");
    fuse_link_in li{};
    li.oldnodeid = b;
    Reply lr = c.call(FUSE_LINK, sub, Args().obj(li).str("hard"));
    REQUIRE(lr.error() == 0);
    auto le = lr.as<fuse_entry_out>();
    CHECK(le.nodeid == b);
    CHECK(le.attr.nlink == 2);
    CHECK(lstat_of(d / "sub/hard").st_ino == lstat_of(d / "b").st_ino);
    li.oldnodeid = sub;
    CHECK(c.call(FUSE_LINK, kRoot, Args().obj(li).str("dirlink")).error() == EPERM);

    REQUIRE(c.call(FUSE_UNLINK, sub, Args().str("hard")).error() == 0);
    CHECK(!exists(d / "sub/hard"));
    CHECK(c.call(FUSE_UNLINK, kRoot, Args().str("sub")).error() == EISDIR);
    CHECK(c.call(FUSE_RMDIR, kRoot, Args().str("full")).error() == ENOTEMPTY);
    CHECK(c.call(FUSE_RMDIR, kRoot, Args().str("b")).error() == ENOTDIR);
    REQUIRE(c.call(FUSE_UNLINK, sub, Args().str("a2")).error() == 0);
    REQUIRE(c.call(FUSE_RMDIR, kRoot, Args().str("sub")).error() == 0);
    CHECK(!exists(d / "sub"));
    // The node of the removed directory is still known, but it is empty and gone.
    CHECK(c.lookup(sub, "anything").error() == ENOENT);
}

TEST_CASE("ACCESS checks the caller's ids against the mode bits") {
    TempDir d;
    write_file(d / "f", "", 0640);
    REQUIRE(::chown((d / "f").c_str(), 1000, 1000) == 0);
    write_file(d / "noexec", "", 0644);
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t n = c.node(kRoot, "f");
    auto access = [&](uint32_t uid, uint32_t gid, uint32_t mask) {
        c.uid = uid;
        c.gid = gid;
        fuse_access_in in{};
        in.mask = mask;
        int e = c.call(FUSE_ACCESS, n, Args().obj(in)).error();
        c.uid = c.gid = 0;
        return e;
    };
    CHECK(access(1000, 1000, R_OK | W_OK) == 0);
    CHECK(access(1000, 1000, X_OK) == EACCES);
    CHECK(access(2000, 1000, R_OK) == 0);
    CHECK(access(2000, 1000, W_OK) == EACCES);
    CHECK(access(3000, 3000, R_OK) == EACCES);
    CHECK(access(3000, 3000, F_OK) == 0);
    CHECK(access(0, 0, R_OK | W_OK) == 0);
    n = c.node(kRoot, "noexec");
    CHECK(access(0, 0, X_OK) == EACCES);
}

TEST_CASE("INTERRUPT gets no reply; unsupported ops (and locks, by default) get ENOSYS") {
    TempDir d;
    auto s = make_server(d.path());
    Client c(*s);
    fuse_interrupt_in in{};
    in.unique = 5;
    CHECK(c.call(FUSE_INTERRUPT, 0, Args().obj(in)).returned == 0);
    // Locks are ENOSYS under the default LockPolicy::Guest (the guest kernel keeps them);
    // IOCTL, COPY_FILE_RANGE and SYNCFS are served (ops_misc_test.cpp, locks_test.cpp).
    for (uint32_t op : {uint32_t{FUSE_GETLK}, uint32_t{FUSE_SETLK}, uint32_t{FUSE_SETLKW}, uint32_t{FUSE_BMAP},
                        uint32_t{FUSE_POLL}, uint32_t{FUSE_NOTIFY_REPLY}, uint32_t{FUSE_SETUPMAPPING},
                        uint32_t{FUSE_REMOVEMAPPING}, uint32_t{CUSE_INIT}, 0u, 7u, 19u, 9999u}) {
        CAPTURE(op);
        Reply r = c.call(op, kRoot, Args().raw(std::string(64, '\0')));
        CHECK(r.error() == ENOSYS);
        CHECK(r.body.empty());
    }
}

TEST_CASE("DESTROY drops every inode and handle; INIT starts over") {
    TempDir d;
    write_file(d / "f", "x");
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t n = c.node(kRoot, "f");
    c.open_fh(n, O_RDONLY);
    c.open_fh(kRoot, O_RDONLY, FUSE_OPENDIR);
    CHECK(s->stats().inodes == 2);
    CHECK(s->stats().handles == 2);
    CHECK(c.call(FUSE_DESTROY, 0).error() == 0);
    CHECK(s->stats().inodes == 1);
    CHECK(s->stats().handles == 0);
    CHECK(c.getattr(kRoot).error() == EIO);
    REQUIRE(c.init().error() == 0);
    CHECK(c.getattr(n).error() == ESTALE);
    CHECK(c.getattr(kRoot).error() == 0);
}
