// /init.krun: the virtual, read-only init binary at the root of the share.
#include <set>

#include "fuse_client.h"

using namespace vfstest;

namespace {

constexpr uint64_t kRoot = FUSE_ROOT_ID;

std::vector<uint8_t> make_blob(size_t n) {
    std::vector<uint8_t> b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((i * 131 + 7) ^ (i >> 9));
    return b;
}

std::set<std::string> names_in(const Reply& r, bool plus) {
    std::set<std::string> names;
    size_t head = plus ? offsetof(fuse_direntplus, dirent.name) : offsetof(fuse_dirent, name);
    size_t dirent_at = plus ? sizeof(fuse_entry_out) : 0;
    size_t pos = 0;
    while (pos < r.body.size()) {
        auto d = r.as<fuse_dirent>(pos + dirent_at);
        names.insert(std::string(reinterpret_cast<const char*>(r.body.data() + pos + head), d.namelen));
        pos += (head + d.namelen + 7) & ~size_t{7};
    }
    return names;
}

}  // namespace

TEST_CASE("/init.krun serves the blob read-only and shadows a real file") {
    TempDir d;
    write_file(d / "init.krun", "REAL", 0644);
    write_file(d / "other", "o");
    REQUIRE(::mkdir((d / "sub").c_str(), 0755) == 0);
    write_file(d / "sub/init.krun", "nested");
    struct stat real_before = lstat_of(d / "init.krun");
    auto blob = make_blob(10000);
    auto s = make_server(d.path(), CachePolicy::Never, false, blob);
    Client c(*s);

    Reply r = c.lookup(kRoot, "init.krun");
    REQUIRE(r.error() == 0);
    auto e = r.as<fuse_entry_out>();
    CHECK(e.nodeid == 2);
    CHECK(e.attr.mode == (S_IFREG | 0555));
    CHECK(e.attr.size == blob.size());
    CHECK(e.attr.uid == 0);
    CHECK(e.attr.gid == 0);
    CHECK(e.attr.nlink == 1);
    CHECK(e.attr.ino != real_before.st_ino);
    auto a = c.getattr(2).as<fuse_attr_out>();
    CHECK(a.attr.size == blob.size());
    CHECK(a.attr.mode == (S_IFREG | 0555));

    Reply o = c.open(2, O_RDONLY);
    REQUIRE(o.error() == 0);
    uint64_t fh = o.as<fuse_open_out>().fh;
    CHECK((o.as<fuse_open_out>().open_flags & FOPEN_KEEP_CACHE) != 0);
    std::string all;
    for (uint64_t off = 0; off < blob.size(); off += 4096) {
        Reply rd = c.read(2, fh, off, 4096);
        REQUIRE(rd.error() == 0);
        all += rd.text();
    }
    CHECK(all == std::string(blob.begin(), blob.end()));
    CHECK(c.read(2, fh, 9000, 4096).body.size() == 1000);
    CHECK(c.read(2, fh, 10000, 4096).body.empty());
    CHECK(c.read(2, fh, ~uint64_t{0}, 4096).body.empty());
    fuse_lseek_in ls{fh, 100, SEEK_HOLE, 0};
    CHECK(c.call(FUSE_LSEEK, 2, Args().obj(ls)).as<fuse_lseek_out>().offset == blob.size());
    fuse_flush_in fl{fh, 0, 0, 0};
    CHECK(c.call(FUSE_FLUSH, 2, Args().obj(fl)).error() == 0);
    CHECK(c.release(2, fh).error() == 0);
    fuse_access_in ac{R_OK | X_OK, 0};
    c.uid = 1000;
    CHECK(c.call(FUSE_ACCESS, 2, Args().obj(ac)).error() == 0);
    ac.mask = W_OK;
    CHECK(c.call(FUSE_ACCESS, 2, Args().obj(ac)).error() == EACCES);
    c.uid = 0;

    // Every change is refused.
    CHECK(c.open(2, O_WRONLY).error() == EACCES);
    CHECK(c.open(2, O_RDWR).error() == EACCES);
    CHECK(c.open(2, O_RDONLY | O_TRUNC).error() == EACCES);
    CHECK(c.write(2, fh, 0, "evil").error() == EACCES);
    fuse_setattr_in sa{};
    sa.valid = FATTR_SIZE;
    CHECK(c.setattr(2, sa).error() == EACCES);
    sa.valid = FATTR_MODE;
    sa.mode = 0777;
    CHECK(c.setattr(2, sa).error() == EACCES);
    CHECK(c.call(FUSE_UNLINK, kRoot, Args().str("init.krun")).error() == EACCES);
    CHECK(c.call(FUSE_RMDIR, kRoot, Args().str("init.krun")).error() == EACCES);
    fuse_rename_in rn{kRoot};
    CHECK(c.call(FUSE_RENAME, kRoot, Args().obj(rn).str("init.krun").str("x")).error() == EACCES);
    CHECK(c.call(FUSE_RENAME, kRoot, Args().obj(rn).str("other").str("init.krun")).error() == EACCES);
    fuse_rename2_in rn2{kRoot, RENAME_EXCHANGE, 0};
    CHECK(c.call(FUSE_RENAME2, kRoot, Args().obj(rn2).str("other").str("init.krun")).error() == EACCES);
    CHECK(c.create(kRoot, "init.krun", O_RDWR | O_TRUNC, 0644).error() == EACCES);
    CHECK(c.mkdir(kRoot, "init.krun", 0755).error() == EACCES);
    CHECK(c.mknod(kRoot, "init.krun", S_IFREG | 0644).error() == EACCES);
    CHECK(c.symlink(kRoot, "init.krun", "/bin/sh").error() == EACCES);
    fuse_link_in li{2};
    CHECK(c.call(FUSE_LINK, kRoot, Args().obj(li).str("copy")).error() == EACCES);
    li.oldnodeid = c.node(kRoot, "other");
    CHECK(c.call(FUSE_LINK, kRoot, Args().obj(li).str("init.krun")).error() == EACCES);
    fuse_setxattr_in sx{};
    sx.size = 1;
    CHECK(c.call(FUSE_SETXATTR, 2, Args().raw(std::string(reinterpret_cast<const char*>(&sx), 8)).str("user.a").raw("1"))
              .error() == EACCES);
    CHECK(c.call(FUSE_REMOVEXATTR, 2, Args().str("user.a")).error() == EACCES);
    fuse_fallocate_in fa{fh, 0, 1 << 20, 0, 0};
    CHECK(c.call(FUSE_FALLOCATE, 2, Args().obj(fa)).error() == EACCES);
    // It is a file, not a directory.
    CHECK(c.lookup(2, "x").error() == ENOTDIR);
    CHECK(c.open(2, O_RDONLY, FUSE_OPENDIR).error() == ENOTDIR);
    CHECK(c.mkdir(2, "x", 0755).error() == ENOTDIR);

    // Root listings don't show the name at all (neither the virtual nor the shadowed file).
    uint64_t dfh = c.open_fh(kRoot, O_RDONLY, FUSE_OPENDIR);
    auto plain = names_in(c.read(kRoot, dfh, 0, 65536, FUSE_READDIR), false);
    CHECK(plain == std::set<std::string>{".", "..", "other", "sub"});
    auto plus = names_in(c.read(kRoot, dfh, 0, 65536, FUSE_READDIRPLUS), true);
    CHECK(plus == std::set<std::string>{".", "..", "other", "sub"});
    c.release(kRoot, dfh, FUSE_RELEASEDIR);

    // Only the root's name is virtual.
    uint64_t sub = c.node(kRoot, "sub");
    uint64_t nested = c.node(sub, "init.krun");
    CHECK(nested != 2);
    uint64_t nfh = c.open_fh(nested, O_RDONLY);
    CHECK(c.read(nested, nfh, 0, 100).text() == "nested");

    // The real file was never touched.
    CHECK(read_file(d / "init.krun") == "REAL");
    struct stat real_after = lstat_of(d / "init.krun");
    CHECK(real_after.st_mode == real_before.st_mode);
    CHECK(real_after.st_mtim.tv_nsec == real_before.st_mtim.tv_nsec);
    CHECK(real_after.st_ino == real_before.st_ino);
}

TEST_CASE("without an init binary the real init.krun is served; read-only shares keep the virtual one") {
    TempDir d;
    write_file(d / "init.krun", "REAL");
    {
        auto s = make_server(d.path());
        Client c(*s);
        uint64_t n = c.node(kRoot, "init.krun");
        CHECK(n != 2);
        uint64_t fh = c.open_fh(n, O_RDONLY);
        CHECK(c.read(n, fh, 0, 100).text() == "REAL");
        CHECK(c.getattr(2).error() == ESTALE);
    }
    {
        auto blob = make_blob(100);
        auto s = make_server(d.path(), CachePolicy::Auto, true, blob);
        Client c(*s);
        CHECK(c.node(kRoot, "init.krun") == 2);
        uint64_t fh = c.open_fh(2, O_RDONLY);
        CHECK(c.read(2, fh, 0, 4096).body.size() == 100);
        CHECK(c.call(FUSE_UNLINK, kRoot, Args().str("init.krun")).error() == EROFS);
        // FORGET of the virtual node is harmless.
        c.forget(2, 1000);
        CHECK(c.getattr(2).error() == 0);
    }
}
