// Hostile input: bad names, malformed and oversized requests, symlink escapes, special files,
// credentials and resource caps (read-only shares: readonly_test.cpp).
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>

#include <functional>
#include <set>

#include "fuse_client.h"

using namespace vfstest;

namespace {

constexpr uint64_t kRoot = FUSE_ROOT_ID;

std::set<std::string> listing(const std::string& dir) {
    std::set<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    REQUIRE(d != nullptr);
    while (dirent* e = ::readdir(d)) names.insert(e->d_name);
    ::closedir(d);
    return names;
}

std::string setxattr_args_prefix(uint32_t size) {
    fuse_setxattr_in in{};
    in.size = size;
    return std::string(reinterpret_cast<const char*>(&in), FUSE_COMPAT_SETXATTR_IN_SIZE);
}

}  // namespace

TEST_CASE("names that are not one path component are refused with EINVAL by every op") {
    TempDir d;
    REQUIRE(::mkdir((d / "sub").c_str(), 0755) == 0);
    write_file(d / "sub/file", "x");
    write_file(d / "file", "x");
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t sub = c.node(kRoot, "sub");
    uint64_t file = c.node(kRoot, "file");
    auto before_root = listing(d.path());
    auto before_sub = listing(d / "sub");

    // Raw name bytes as sent (the terminating NUL is added by Args::str).
    const std::vector<std::string> bad = {
        "", ".", "..", "a/b", "/", "/etc", "sub/file", "../..", "x/", std::string(256, 'n'),
        std::string("a\0b", 3),  // NUL inside: the request carries bytes after the first NUL
    };
    using Build = std::function<Args(const std::string&)>;
    struct Op {
        const char* what;
        uint32_t opcode;
        Build build;
    };
    fuse_mkdir_in mk{0755, 0};
    fuse_mknod_in mn{S_IFREG | 0644, 0, 0, 0};
    fuse_create_in cr{O_RDWR, 0644, 0, 0};
    fuse_rename_in rn{kRoot};
    fuse_rename2_in rn2{kRoot, 0, 0};
    fuse_link_in ln{file};
    const std::vector<Op> ops = {
        {"LOOKUP", FUSE_LOOKUP, [](const std::string& n) { return Args().str(n); }},
        {"MKDIR", FUSE_MKDIR, [&](const std::string& n) { return Args().obj(mk).str(n); }},
        {"MKNOD", FUSE_MKNOD, [&](const std::string& n) { return Args().obj(mn).str(n); }},
        {"CREATE", FUSE_CREATE, [&](const std::string& n) { return Args().obj(cr).str(n); }},
        {"SYMLINK", FUSE_SYMLINK, [](const std::string& n) { return Args().str(n).str("target"); }},
        {"UNLINK", FUSE_UNLINK, [](const std::string& n) { return Args().str(n); }},
        {"RMDIR", FUSE_RMDIR, [](const std::string& n) { return Args().str(n); }},
        {"RENAME old", FUSE_RENAME, [&](const std::string& n) { return Args().obj(rn).str(n).str("new"); }},
        {"RENAME new", FUSE_RENAME, [&](const std::string& n) { return Args().obj(rn).str("file").str(n); }},
        {"RENAME2 old", FUSE_RENAME2, [&](const std::string& n) { return Args().obj(rn2).str(n).str("new"); }},
        {"RENAME2 new", FUSE_RENAME2, [&](const std::string& n) { return Args().obj(rn2).str("file").str(n); }},
        {"LINK", FUSE_LINK, [&](const std::string& n) { return Args().obj(ln).str(n); }},
    };
    for (const Op& op : ops) {
        for (const std::string& name : bad) {
            for (uint64_t parent : {kRoot, sub}) {
                // The one allowed case: LOOKUP ".." in the root is the root.
                if (op.opcode == FUSE_LOOKUP && name == ".." && parent == kRoot) continue;
                CAPTURE(op.what);
                CAPTURE(name);
                CAPTURE(parent);
                CHECK(c.call(op.opcode, parent, op.build(name)).error() == EINVAL);
            }
        }
    }
    CHECK(listing(d.path()) == before_root);
    CHECK(listing(d / "sub") == before_sub);
    CHECK(read_file(d / "file") == "x");

    Reply dotdot = c.lookup(kRoot, "..");
    REQUIRE(dotdot.error() == 0);
    CHECK(dotdot.as<fuse_entry_out>().nodeid == kRoot);
    // 255 bytes is the longest valid name.
    CHECK(c.mkdir(kRoot, std::string(255, 'n'), 0755).error() == 0);
    CHECK(exists(d / std::string(255, 'n')));
}

TEST_CASE("truncated, padded and lying requests get EINVAL, never a crash") {
    TempDir d;
    write_file(d / "file", "content");
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t file = c.node(kRoot, "file");
    uint64_t fh = c.open_fh(file, O_RDWR);

    fuse_getattr_in ga{};
    fuse_setattr_in sa{};
    sa.valid = FATTR_MODE;
    sa.mode = 0644;
    fuse_mknod_in mn{S_IFREG | 0644, 0, 0, 0};
    fuse_mkdir_in mk{0755, 0};
    fuse_rename_in rn{kRoot};
    fuse_rename2_in rn2{kRoot, 0, 0};
    fuse_link_in ln{file};
    fuse_open_in op{O_RDONLY, 0};
    fuse_create_in cr{O_RDWR, 0644, 0, 0};
    fuse_read_in rd{fh, 0, 10, 0, 0, 0, 0};
    fuse_write_in wr{fh, 0, 4, 0, 0, 0, 0};
    fuse_release_in rl{12345, 0, 0, 0};
    fuse_flush_in fl{fh, 0, 0, 0};
    fuse_fsync_in fs{fh, 0, 0};
    fuse_getxattr_in gx{64, 0};
    fuse_access_in ac{R_OK, 0};
    fuse_fallocate_in fa{fh, 0, 10, 0, 0};
    fuse_lseek_in ls{fh, 0, SEEK_DATA, 0};
    fuse_copy_file_range_in cf{fh, 0, file, fh, 100, 4, 0};
    fuse_ioctl_in io{fh, 0, 0x80086601u, 0, 0, 0};
    fuse_syncfs_in sy{};
    struct Case {
        uint32_t opcode;
        uint64_t node;
        Args args;
    };
    std::vector<Case> cases = {
        {FUSE_LOOKUP, kRoot, Args().str("file")},
        {FUSE_GETATTR, file, Args().obj(ga)},
        {FUSE_SETATTR, file, Args().obj(sa)},
        {FUSE_SYMLINK, kRoot, Args().str("newlink").str("target")},
        {FUSE_MKNOD, kRoot, Args().obj(mn).str("newnode")},
        {FUSE_MKDIR, kRoot, Args().obj(mk).str("newdir")},
        {FUSE_UNLINK, kRoot, Args().str("nothere")},
        {FUSE_RMDIR, kRoot, Args().str("nothere")},
        {FUSE_RENAME, kRoot, Args().obj(rn).str("nothere").str("x")},
        {FUSE_RENAME2, kRoot, Args().obj(rn2).str("nothere").str("x")},
        {FUSE_LINK, kRoot, Args().obj(ln).str("newhard")},
        {FUSE_OPEN, file, Args().obj(op)},
        {FUSE_OPENDIR, kRoot, Args().obj(op)},
        {FUSE_CREATE, kRoot, Args().obj(cr).str("newfile")},
        {FUSE_READ, file, Args().obj(rd)},
        {FUSE_WRITE, file, Args().obj(wr).raw("DATA")},
        {FUSE_RELEASE, file, Args().obj(rl)},
        {FUSE_RELEASEDIR, kRoot, Args().obj(rl)},
        {FUSE_FLUSH, file, Args().obj(fl)},
        {FUSE_FSYNC, file, Args().obj(fs)},
        {FUSE_SETXATTR, file, Args().raw(setxattr_args_prefix(3)).str("user.k").raw("val")},
        {FUSE_GETXATTR, file, Args().obj(gx).str("user.k")},
        {FUSE_LISTXATTR, file, Args().obj(gx)},
        {FUSE_REMOVEXATTR, file, Args().str("user.k")},
        {FUSE_ACCESS, file, Args().obj(ac)},
        {FUSE_FALLOCATE, file, Args().obj(fa)},
        {FUSE_LSEEK, file, Args().obj(ls)},
        {FUSE_COPY_FILE_RANGE, file, Args().obj(cf)},
        {FUSE_IOCTL, file, Args().obj(io)},
        {FUSE_SYNCFS, kRoot, Args().obj(sy)},
        {FUSE_READDIR, kRoot, Args().obj(rd)},
        {FUSE_READDIRPLUS, kRoot, Args().obj(rd)},
    };
    size_t handles = s->stats().handles;
    for (const Case& cs : cases) {
        const auto& full = cs.args.bytes();
        for (size_t cut = 0; cut < full.size(); ++cut) {
            CAPTURE(cs.opcode);
            CAPTURE(cut);
            Args part;
            part.raw(std::vector<uint8_t>(full.begin(), full.begin() + static_cast<long>(cut)));
            CHECK(c.call(cs.opcode, cs.node, part).error() == EINVAL);
        }
        // One byte too many is just as wrong.
        Args padded;
        padded.raw(full).raw(std::string(1, '\0'));
        CAPTURE(cs.opcode);
        CHECK(c.call(cs.opcode, cs.node, padded).error() == EINVAL);
    }
    // No request above had any effect.
    CHECK(read_file(d / "file") == "content");
    CHECK(listing(d.path()) == std::set<std::string>{".", "..", "file"});
    CHECK(s->stats().handles == handles);
    CHECK((lstat_of(d / "file").st_mode & 07777) == 0644);
    // READLINK / STATFS / DESTROY take no arguments at all.
    CHECK(c.call(FUSE_STATFS, kRoot, Args().raw("x")).error() == EINVAL);
    CHECK(c.call(FUSE_READLINK, file, Args().raw("x")).error() == EINVAL);
    CHECK(c.call(FUSE_DESTROY, 0, Args().raw("x")).error() == EINVAL);
    // Truncated FORGETs are ignored silently (no reply either way).
    CHECK(c.call(FUSE_FORGET, file, Args().raw("abc")).returned == 0);
    fuse_batch_forget_in bf{3, 0};
    fuse_forget_one one{file, 100};
    CHECK(c.call(FUSE_BATCH_FORGET, 0, Args().obj(bf).obj(one)).returned == 0);  // claims 3, carries 1
    CHECK(c.getattr(file).error() == 0);
}

TEST_CASE("the request envelope: short header, lying len, extensions, over 1 MiB") {
    TempDir d;
    write_file(d / "file", "content");
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t file = c.node(kRoot, "file");

    // Shorter than a fuse_in_header: EINVAL with unique 0.
    for (size_t n : {size_t{0}, size_t{1}, size_t{39}}) {
        std::vector<uint8_t> req(n, 0x5a);
        Reply r = c.send_raw(req, 4096);
        REQUIRE(r.returned == sizeof(fuse_out_header));
        CHECK(r.error() == EINVAL);
        CHECK(r.hdr.unique == 0);
    }
    // len that disagrees with the bytes delivered.
    auto req = c.request(FUSE_GETATTR, file, Args().obj(fuse_getattr_in{}));
    for (uint32_t lie : {0u, 39u, 40u, 55u, 57u, 0xffffffffu}) {
        auto bad = req;
        std::memcpy(bad.data(), &lie, 4);
        Reply r = c.send_raw(bad, 4096);
        CAPTURE(lie);
        CHECK(r.error() == EINVAL);
        CHECK(r.hdr.unique != 0);
    }
    // Extension area bigger than the body.
    auto ext = req;
    uint16_t extlen = 3;  // 24 bytes > the 16-byte body
    std::memcpy(ext.data() + offsetof(fuse_in_header, total_extlen), &extlen, 2);
    CHECK(c.send_raw(ext, 4096).error() == EINVAL);
    // A well-formed extension (8 bytes) after the arguments is skipped.
    Args with_ext = Args().obj(fuse_getattr_in{}).raw(std::string(8, '\0'));
    auto ok = c.request(FUSE_GETATTR, file, with_ext);
    extlen = 1;
    std::memcpy(ok.data() + offsetof(fuse_in_header, total_extlen), &extlen, 2);
    CHECK(c.send_raw(ok, 4096).error() == 0);

    // A request over 1 MiB + header is refused before anything happens.
    uint64_t fh = c.open_fh(file, O_RDWR);
    std::string huge((1u << 20) + 1, 'H');
    Reply big = c.write(file, fh, 0, huge);
    CHECK(big.error() == EINVAL);
    CHECK(read_file(d / "file") == "content");
    // Limit is on the whole request: fuse_write_in + 1 MiB - 40 still fits.
    std::string edge((1u << 20) - sizeof(fuse_write_in), 'E');
    CHECK(c.write(file, fh, 0, edge).error() == 0);
    CHECK(lstat_of(d / "file").st_size == static_cast<off_t>(edge.size()));
    // Sizes that disagree with the payload.
    fuse_write_in wi{fh, 0, 100, 0, 0, 0, 0};
    CHECK(c.call(FUSE_WRITE, file, Args().obj(wi).raw("short")).error() == EINVAL);
    wi.size = 0xffffffffu;
    CHECK(c.call(FUSE_WRITE, file, Args().obj(wi).raw("short")).error() == EINVAL);
    fuse_setxattr_in sx{};
    sx.size = 1u << 30;
    CHECK(c.call(FUSE_SETXATTR, file,
                 Args().raw(std::string(reinterpret_cast<const char*>(&sx), 8)).str("user.a").raw("v"))
              .error() == EINVAL);
}

TEST_CASE("replies never overrun the guest's buffers") {
    TempDir d;
    write_file(d / "file", std::string(10000, 'r'));
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t file = c.node(kRoot, "file");

    // Not even a header fits: no reply, and the op is not performed.
    c.out_size = 10;
    CHECK(c.getattr(file).returned == 0);
    CHECK(c.mkdir(kRoot, "nope", 0755).returned == 0);
    CHECK(!exists(d / "nope"));
    c.out_size = 0;
    CHECK(c.getattr(file).returned == 0);
    // Only the header fits: an error reply, and again nothing happens.
    c.out_size = sizeof(fuse_out_header);
    Reply r = c.getattr(file);
    CHECK(r.returned == sizeof(fuse_out_header));
    CHECK(r.error() == EOVERFLOW);
    CHECK(c.mkdir(kRoot, "nope", 0755).error() == EOVERFLOW);
    CHECK(!exists(d / "nope"));
    CHECK(c.create(kRoot, "nope", O_RDWR, 0644).error() == EOVERFLOW);
    CHECK(!exists(d / "nope"));
    // An entry reply one byte short.
    c.out_size = sizeof(fuse_out_header) + sizeof(fuse_entry_out) - 1;
    CHECK(c.lookup(kRoot, "file").error() == EOVERFLOW);
    CHECK(s->stats().inodes == 2);  // no lookup was counted for the lost reply
    // READ into a smaller area than asked: a shorter read, never an overrun.
    c.out_size = 100;
    uint64_t fh = c.open_fh(file, O_RDONLY);
    c.out_size = sizeof(fuse_out_header) + 100;
    Reply rr = c.read(file, fh, 0, 4096);
    REQUIRE(rr.error() == 0);
    CHECK(rr.body.size() == 100);
    // READLINK and xattr values that don't fit.
    REQUIRE(::symlink(std::string(300, 't').c_str(), (d / "ln").c_str()) == 0);
    c.out_size = 4096;
    uint64_t ln = c.node(kRoot, "ln");
    c.out_size = sizeof(fuse_out_header) + 100;
    CHECK(c.call(FUSE_READLINK, ln).error() == EOVERFLOW);
}

TEST_CASE("symlinks inside the share are never followed on the host") {
    TempDir outside;
    write_file(outside / "canary", "untouched", 0600);
    struct stat canary_before = lstat_of(outside / "canary");
    TempDir d;
    REQUIRE(::symlink("/", (d / "esc").c_str()) == 0);
    REQUIRE(::symlink("../../..", (d / "up").c_str()) == 0);
    REQUIRE(::symlink((outside / "canary").c_str(), (d / "canary_abs").c_str()) == 0);
    std::string rel = "../" + outside.path().substr(5) + "/canary";  // both under /tmp
    REQUIRE(::symlink(rel.c_str(), (d / "canary_rel").c_str()) == 0);
    REQUIRE(::symlink(outside.path().c_str(), (d / "outdir").c_str()) == 0);
    auto s = make_server(d.path());
    Client c(*s);

    for (const char* name : {"esc", "up", "canary_abs", "canary_rel", "outdir"}) {
        CAPTURE(name);
        Reply r = c.lookup(kRoot, name);
        REQUIRE(r.error() == 0);
        auto e = r.as<fuse_entry_out>();
        CHECK((e.attr.mode & S_IFMT) == S_IFLNK);  // the link itself
        uint64_t n = e.nodeid;
        // Walking through it: the link is not a directory.
        CHECK(c.lookup(n, "canary").error() == ENOTDIR);
        CHECK(c.lookup(n, "etc").error() == ENOTDIR);
        CHECK(c.create(n, "planted", O_RDWR, 0644).error() == ENOTDIR);
        CHECK(c.mkdir(n, "planted", 0755).error() == ENOTDIR);
        CHECK(c.open(n, O_RDONLY, FUSE_OPENDIR).error() == ENOTDIR);
        // Opening it: ELOOP, as open(O_NOFOLLOW) would say.
        CHECK(c.open(n, O_RDWR | O_TRUNC).error() == ELOOP);
        CHECK(c.open(n, O_RDONLY).error() == ELOOP);
        // Changing it changes the link or nothing.
        fuse_setattr_in sa{};
        sa.valid = FATTR_SIZE;
        sa.size = 0;
        CHECK(c.setattr(n, sa).error() == EINVAL);
        sa.valid = FATTR_MODE;
        sa.mode = 0777;
        CHECK(c.setattr(n, sa).error() == EOPNOTSUPP);
        sa.valid = FATTR_MTIME;
        sa.mtime = 12345;
        CHECK(c.setattr(n, sa).error() == 0);
        CHECK(lstat_of(d / name).st_mtim.tv_sec == 12345);
        fuse_setxattr_in sx{};
        sx.size = 1;
        CHECK(c.call(FUSE_SETXATTR, n, Args().raw(std::string(reinterpret_cast<const char*>(&sx), 8)).str("user.x").raw("1"))
                  .error() == EPERM);  // user.* xattrs can't exist on a symlink
    }
    // CREATE over an existing symlink (no O_EXCL) doesn't go through it either.
    CHECK(c.create(kRoot, "canary_abs", O_RDWR | O_TRUNC, 0644).error() == ELOOP);

    // A directory swapped for a symlink after LOOKUP: the node keeps naming the original
    // directory, so nothing lands outside.
    REQUIRE(::mkdir((d / "dir").c_str(), 0755) == 0);
    uint64_t dir = c.node(kRoot, "dir");
    REQUIRE(::rename((d / "dir").c_str(), (d / "moved").c_str()) == 0);
    REQUIRE(::symlink(outside.path().c_str(), (d / "dir").c_str()) == 0);
    REQUIRE(c.create(dir, "planted", O_RDWR, 0644).error() == 0);
    CHECK(exists(d / "moved/planted"));
    CHECK(!exists(outside / "planted"));

    CHECK(read_file(outside / "canary") == "untouched");
    struct stat canary_after = lstat_of(outside / "canary");
    CHECK(canary_after.st_mode == canary_before.st_mode);
    CHECK(canary_after.st_mtim.tv_sec == canary_before.st_mtim.tv_sec);
    CHECK(canary_after.st_mtim.tv_nsec == canary_before.st_mtim.tv_nsec);
    CHECK(canary_after.st_uid == canary_before.st_uid);
    char buf[8];
    CHECK(::getxattr((outside / "canary").c_str(), "user.x", buf, sizeof(buf)) < 0);
    CHECK(listing(outside.path()) == std::set<std::string>{".", "..", "canary"});
}

TEST_CASE("FIFOs, sockets and device nodes are never opened on the host") {
    TempDir d;
    REQUIRE(::mkfifo((d / "fifo").c_str(), 0666) == 0);
    REQUIRE(::mknod((d / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
    int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(sock >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string sp = d / "sock";
    std::memcpy(addr.sun_path, sp.c_str(), sp.size() + 1);
    REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    auto s = make_server(d.path());
    Client c(*s);
    for (const char* name : {"fifo", "null", "sock"}) {
        CAPTURE(name);
        uint64_t n = c.node(kRoot, name);
        // Opening a FIFO for reading would block forever if it were really opened.
        CHECK(c.open(n, O_RDONLY).error() == ENXIO);
        CHECK(c.open(n, O_WRONLY).error() == ENXIO);
        CHECK(c.open(n, O_RDWR).error() == ENXIO);
        fuse_setattr_in sa{};
        sa.valid = FATTR_SIZE;
        CHECK(c.setattr(n, sa).error() == EINVAL);
        // CREATE without O_EXCL on the existing name doesn't open it either.
        CHECK(c.create(kRoot, name, O_RDONLY, 0644).error() == ENXIO);
        // Attributes still work.
        CHECK(c.getattr(n).error() == 0);
    }
    CHECK(s->stats().handles == 0);
    ::close(sock);
}

TEST_CASE("objects are created as the caller's uid:gid, without the server's groups") {
    TempDir d;
    REQUIRE(::chmod(d.path().c_str(), 0755) == 0);
    REQUIRE(::mkdir((d / "pub").c_str(), 0777) == 0);
    REQUIRE(::chmod((d / "pub").c_str(), 0777) == 0);
    REQUIRE(::mkdir((d / "grp").c_str(), 0770) == 0);
    REQUIRE(::chown((d / "grp").c_str(), 0, 4242) == 0);
    REQUIRE(::chmod((d / "grp").c_str(), 0770) == 0);  // exact bits, whatever the umask
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t pub = c.node(kRoot, "pub");
    uint64_t grp = c.node(kRoot, "grp");

    // Give this thread a supplementary group that would open "grp" (raw syscall: this thread only).
    std::vector<gid_t> saved(64);
    long ng = ::syscall(SYS_getgroups, saved.size(), saved.data());
    REQUIRE(ng >= 0);
    saved.resize(static_cast<size_t>(ng));
    gid_t extra[] = {4242};
    REQUIRE(::syscall(SYS_setgroups, 1, extra) == 0);

    c.uid = 1234;
    c.gid = 5678;
    REQUIRE(c.create(pub, "file", O_RDWR, 0640).error() == 0);
    REQUIRE(c.mkdir(pub, "dir", 0750).error() == 0);
    REQUIRE(c.mknod(pub, "fifo", S_IFIFO | 0600).error() == 0);
    REQUIRE(c.symlink(pub, "link", "file").error() == 0);
    for (const char* name : {"file", "dir", "fifo", "link"}) {
        CAPTURE(name);
        struct stat st = lstat_of(d / "pub" + "/" + name);
        CHECK(st.st_uid == 1234);
        CHECK(st.st_gid == 5678);
    }
    Reply e = c.lookup(pub, "file");
    CHECK(e.as<fuse_entry_out>().attr.uid == 1234);
    // Without the dropped group 4242, uid 1234 has no write access to grp (0:4242, 0770).
    CHECK(c.mkdir(grp, "x", 0755).error() == EACCES);
    CHECK(c.create(grp, "x", O_RDWR, 0644).error() == EACCES);
    CHECK(!exists(d / "grp/x"));
    // ...but with 4242 as its own (primary) gid it does: the check really uses the fs ids.
    c.gid = 4242;
    CHECK(c.mkdir(grp, "y", 0755).error() == 0);
    CHECK(lstat_of(d / "grp/y").st_gid == 4242);
    // A caller that can't write the directory gets EACCES, not the server's rights.
    c.uid = 1234;
    c.gid = 5678;
    CHECK(c.mkdir(kRoot, "rootowned", 0755).error() == EACCES);

    // The thread's own credentials are back: fsuid/fsgid 0 and the extra group.
    CHECK(::syscall(SYS_setfsuid, -1) == 0);
    CHECK(::syscall(SYS_setfsgid, -1) == 0);
    gid_t now[8];
    REQUIRE(::syscall(SYS_getgroups, 8, now) == 1);
    CHECK(now[0] == 4242);
    REQUIRE(::syscall(SYS_setgroups, saved.size(), saved.data()) == 0);

    // Root callers create as root.
    c.uid = c.gid = 0;
    REQUIRE(c.mkdir(kRoot, "byroot", 0755).error() == 0);
    CHECK(lstat_of(d / "byroot").st_uid == 0);
}

TEST_CASE("inode and handle caps answer ENFILE, and recover after FORGET/RELEASE") {
    TempDir d;
    for (const char* n : {"a", "b", "c"}) write_file(d / n, n);
    auto s = make_server(d.path(), CachePolicy::Never, false, {}, 3, 2);
    Client c(*s);
    uint64_t a = c.node(kRoot, "a");
    uint64_t b = c.node(kRoot, "b");
    CHECK(c.lookup(kRoot, "c").error() == ENFILE);
    CHECK(c.lookup(kRoot, "a").error() == 0);  // known inodes still resolve
    c.forget(a, 2);
    CHECK(c.lookup(kRoot, "c").error() == 0);

    uint64_t f1 = c.open_fh(b, O_RDONLY);
    c.open_fh(b, O_RDONLY);
    CHECK(c.open(b, O_RDONLY).error() == ENFILE);
    CHECK(c.open(kRoot, O_RDONLY, FUSE_OPENDIR).error() == ENFILE);
    // A create refused at a cap leaves nothing on the host: the guest was told it failed.
    // (The handle table is full; so is the inode table: root, b and c.)
    CHECK(c.create(kRoot, "new", O_RDWR, 0644).error() == ENFILE);
    CHECK(!exists(d / "new"));
    CHECK(c.mkdir(kRoot, "newdir", 0755).error() == ENFILE);
    CHECK(!exists(d / "newdir"));
    CHECK(c.symlink(kRoot, "newlink", "a").error() == ENFILE);
    CHECK(!exists(d / "newlink"));
    c.release(b, f1);
    CHECK(c.open(b, O_RDONLY).error() == 0);

    // Unknown node ids and handles.
    CHECK(c.getattr(123456).error() == ESTALE);
    CHECK(c.lookup(123456, "a").error() == ESTALE);
    CHECK(c.read(b, 999, 0, 10).error() == EBADF);
    CHECK(c.release(b, 999).error() == 0);  // RELEASE can't fail
}
