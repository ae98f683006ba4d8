// File, directory, xattr and statfs ops, driven with real encoded requests against a fresh
// host directory; each test checks the reply fields and what really happened on the host.
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

struct ParsedDirent {
    std::string name;
    uint64_t ino, off, nodeid;
    uint32_t type;
    fuse_attr attr;
};

// Parses a READDIR / READDIRPLUS reply, checking record sizes and zero padding.
std::vector<ParsedDirent> parse_dirents(const Reply& r, bool plus) {
    std::vector<ParsedDirent> out;
    size_t pos = 0;
    const size_t head = plus ? offsetof(fuse_direntplus, dirent.name) : offsetof(fuse_dirent, name);
    while (pos < r.body.size()) {
        REQUIRE(pos + head <= r.body.size());
        ParsedDirent e{};
        fuse_dirent d{};
        if (plus) {
            auto eo = r.as<fuse_entry_out>(pos);
            e.nodeid = eo.nodeid;
            e.attr = eo.attr;
            std::memcpy(&d, r.body.data() + pos + sizeof(fuse_entry_out), offsetof(fuse_dirent, name));
        } else {
            std::memcpy(&d, r.body.data() + pos, offsetof(fuse_dirent, name));
        }
        size_t rec = ((head + d.namelen) + 7) & ~size_t{7};
        REQUIRE(pos + rec <= r.body.size());
        e.name.assign(reinterpret_cast<const char*>(r.body.data() + pos + head), d.namelen);
        for (size_t i = pos + head + d.namelen; i < pos + rec; ++i) CHECK(r.body[i] == 0);
        e.ino = d.ino;
        e.off = d.off;
        e.type = d.type;
        out.push_back(e);
        pos += rec;
    }
    return out;
}

std::vector<ParsedDirent> read_whole_dir(Client& c, uint64_t dir, uint32_t chunk, bool plus) {
    uint64_t fh = c.open_fh(dir, O_RDONLY, FUSE_OPENDIR);
    std::vector<ParsedDirent> all;
    uint64_t off = 0;
    for (int guard = 0; guard < 10000; ++guard) {
        Reply r = c.read(dir, fh, off, chunk, plus ? FUSE_READDIRPLUS : FUSE_READDIR);
        REQUIRE(r.error() == 0);
        auto part = parse_dirents(r, plus);
        if (part.empty()) break;
        off = part.back().off;
        all.insert(all.end(), part.begin(), part.end());
    }
    CHECK(c.release(dir, fh, FUSE_RELEASEDIR).error() == 0);
    return all;
}

}  // namespace

TEST_CASE("OPEN/READ/WRITE/FLUSH/FSYNC/RELEASE") {
    TempDir d;
    std::string big(3 * 1024 * 1024 + 123, '\0');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
    write_file(d / "big", big);
    write_file(d / "f", "");
    auto s = make_server(d.path());
    Client c(*s);

    uint64_t n = c.node(kRoot, "f");
    uint64_t fh = c.open_fh(n, O_RDWR);
    CHECK(s->stats().handles == 1);
    Reply w = c.write(n, fh, 0, "hello");
    REQUIRE(w.error() == 0);
    CHECK(w.as<fuse_write_out>().size == 5);
    REQUIRE(c.write(n, fh, 10, "world").error() == 0);
    CHECK(read_file(d / "f") == std::string("hello\0\0\0\0\0world", 15));

    Reply r = c.read(n, fh, 8, 100);
    REQUIRE(r.error() == 0);
    CHECK(r.text() == std::string("\0\0world", 7));
    CHECK(c.read(n, fh, 1000, 100).body.empty());  // past EOF: empty, no error

    fuse_flush_in fl{};
    fl.fh = fh;
    CHECK(c.call(FUSE_FLUSH, n, Args().obj(fl)).error() == 0);
    fuse_fsync_in fs{};
    fs.fh = fh;
    CHECK(c.call(FUSE_FSYNC, n, Args().obj(fs)).error() == 0);
    fs.fsync_flags = FUSE_FSYNC_FDATASYNC;
    CHECK(c.call(FUSE_FSYNC, n, Args().obj(fs)).error() == 0);
    CHECK(c.release(n, fh).error() == 0);
    CHECK(s->stats().handles == 0);
    CHECK(c.read(n, fh, 0, 10).error() == EBADF);

    // O_TRUNC is done by the server (FUSE_ATOMIC_O_TRUNC).
    fh = c.open_fh(n, O_WRONLY | O_TRUNC);
    CHECK(lstat_of(d / "f").st_size == 0);
    CHECK(c.read(n, fh, 0, 10).error() == EBADF);  // opened write-only
    c.release(n, fh);

    // Full 1 MiB reads land intact in the scattered guest buffers.
    uint64_t bn = c.node(kRoot, "big");
    uint64_t bfh = c.open_fh(bn, O_RDONLY);
    for (uint64_t off : {uint64_t{0}, uint64_t{4095}, uint64_t{2 * 1024 * 1024 + 7}}) {
        Reply br = c.read(bn, bfh, off, 1u << 20);
        REQUIRE(br.error() == 0);
        size_t want = std::min<size_t>(1u << 20, big.size() - off);
        REQUIRE(br.body.size() == want);
        CHECK(br.text() == big.substr(off, want));
    }
    // A read larger than max_pages allows is cut to 1 MiB.
    CHECK(c.read(bn, bfh, 0, 2u << 20).body.size() == (1u << 20));
    // A write into a read-only handle fails on the host.
    CHECK(c.write(bn, bfh, 0, "x").error() == EBADF);
    c.release(bn, bfh);

    // The largest WRITE the server negotiates goes through in one request.
    std::string chunk((1u << 20) - 4096, 'Z');
    uint64_t wfh = c.open_fh(n, O_WRONLY);
    Reply wr = c.write(n, wfh, 0, chunk);
    REQUIRE(wr.error() == 0);
    CHECK(wr.as<fuse_write_out>().size == chunk.size());
    CHECK(read_file(d / "f") == chunk);
    c.release(n, wfh);

    // OPEN of a directory.
    REQUIRE(::mkdir((d / "dir").c_str(), 0755) == 0);
    CHECK(c.open(c.node(kRoot, "dir"), O_RDONLY).error() == EISDIR);
    CHECK(c.open(n, 3).error() == EINVAL);  // O_ACCMODE == 3 is not an access mode
}

TEST_CASE("STATFS matches the host filesystem") {
    TempDir d;
    auto s = make_server(d.path());
    Client c(*s);
    Reply r = c.call(FUSE_STATFS, kRoot);
    REQUIRE(r.error() == 0);
    auto o = r.as<fuse_statfs_out>();
    struct statvfs sv {};
    REQUIRE(::statvfs(d.path().c_str(), &sv) == 0);
    CHECK(o.st.bsize == sv.f_bsize);
    CHECK(o.st.frsize == sv.f_frsize);
    CHECK(o.st.blocks == sv.f_blocks);
    CHECK(o.st.namelen == sv.f_namemax);
    CHECK(o.st.files == sv.f_files);
}

TEST_CASE("READDIR: every entry once, across small replies, honouring offsets") {
    TempDir d;
    std::set<std::string> want = {".", ".."};
    for (int i = 0; i < 150; ++i) {
        std::string name = "file-" + std::to_string(i) + std::string(static_cast<size_t>(i % 13), 'x');
        write_file(d / name, "");
        want.insert(name);
    }
    REQUIRE(::mkdir((d / "subdir").c_str(), 0755) == 0);
    want.insert("subdir");
    auto s = make_server(d.path());
    Client c(*s);

    for (uint32_t chunk : {200u, 4096u, 65536u}) {
        auto all = read_whole_dir(c, kRoot, chunk, false);
        std::multiset<std::string> got;
        for (auto& e : all) got.insert(e.name);
        CHECK(got.size() == want.size());
        CHECK(std::set<std::string>(got.begin(), got.end()) == want);
        for (auto& e : all) {
            if (e.name == "subdir") CHECK(e.type == DT_DIR);
            if (e.name.rfind("file-", 0) == 0) {
                CHECK(e.type == DT_REG);
                CHECK(e.ino == lstat_of(d / e.name).st_ino);
            }
        }
    }
    CHECK(s->stats().inodes == 1);  // plain READDIR looks nothing up
    CHECK(s->stats().handles == 0);

    // Resuming at an offset from the middle yields exactly the rest.
    auto all = read_whole_dir(c, kRoot, 65536, false);
    uint64_t fh = c.open_fh(kRoot, O_RDONLY, FUSE_OPENDIR);
    Reply r = c.read(kRoot, fh, all[49].off, 65536, FUSE_READDIR);
    auto rest = parse_dirents(r, false);
    REQUIRE(rest.size() == all.size() - 50);
    CHECK(rest.front().name == all[50].name);
    // A reply area too small for even one entry is an error, not a false end of directory.
    CHECK(c.read(kRoot, fh, 0, 8, FUSE_READDIR).error() == EOVERFLOW);
    fuse_fsync_in fs{};
    fs.fh = fh;
    CHECK(c.call(FUSE_FSYNCDIR, kRoot, Args().obj(fs)).error() == 0);
    CHECK(c.release(kRoot, fh, FUSE_RELEASEDIR).error() == 0);
    // OPENDIR of a file.
    CHECK(c.open(c.node(kRoot, "file-1x"), O_RDONLY, FUSE_OPENDIR).error() == ENOTDIR);
}

TEST_CASE("READDIR while the guest removes what it has read (rm -r) sees every entry, on tmpfs too") {
    // tmpfs' d_off cookies are positions: a seek back to one after earlier entries were
    // removed would land past live entries. The server keeps unsent records instead.
    for (const char* base : {"/tmp", "/dev/shm"}) {
        CAPTURE(base);
        TempDir d(base);
        for (int i = 0; i < 300; ++i) write_file(d / ("file-with-a-longish-name-" + std::to_string(i)), "");
        auto s = make_server(d.path());
        Client c(*s);
        uint64_t fh = c.open_fh(kRoot, O_RDONLY, FUSE_OPENDIR);
        std::set<std::string> seen;
        uint64_t off = 0;
        for (int guard = 0; guard < 1000; ++guard) {
            Reply r = c.read(kRoot, fh, off, 1024, FUSE_READDIR);
            REQUIRE(r.error() == 0);
            auto part = parse_dirents(r, false);
            if (part.empty()) break;
            off = part.back().off;
            for (auto& e : part) {
                if (e.name == "." || e.name == "..") continue;
                CHECK(seen.insert(e.name).second);
                REQUIRE(c.call(FUSE_UNLINK, kRoot, Args().str(e.name)).error() == 0);
            }
        }
        c.release(kRoot, fh, FUSE_RELEASEDIR);
        CHECK(seen.size() == 300);
    }
}

TEST_CASE("READDIRPLUS: entries with attributes, each counted as a lookup") {
    TempDir d;
    for (int i = 0; i < 40; ++i) write_file(d / ("f" + std::to_string(i)), std::string(static_cast<size_t>(i), 'q'));
    REQUIRE(::symlink("target", (d / "link").c_str()) == 0);
    auto s = make_server(d.path());
    Client c(*s);

    auto all = read_whole_dir(c, kRoot, 1000, true);  // ~6 entries per reply
    CHECK(all.size() == 43);
    std::map<uint64_t, int> lookups;
    for (auto& e : all) {
        if (e.name == "." || e.name == "..") {
            CHECK(e.nodeid == 0);
            continue;
        }
        REQUIRE(e.nodeid != 0);
        struct stat st = lstat_of(d / e.name);
        CHECK(e.attr.ino == st.st_ino);
        CHECK(e.attr.mode == st.st_mode);
        CHECK(e.attr.size == static_cast<uint64_t>(st.st_size));
        CHECK(e.ino == st.st_ino);
        ++lookups[e.nodeid];
    }
    CHECK(lookups.size() == 41);
    CHECK(s->stats().inodes == 42);
    // The guest FORGETs what it was given; then nothing is left.
    for (auto& [node, n] : lookups) c.forget(node, static_cast<uint64_t>(n));
    CHECK(s->stats().inodes == 1);
}

TEST_CASE("READDIRPLUS entries are opened on first use, and found again after renames") {
    TempDir d;
    write_file(d / "a", "A");
    write_file(d / "b", "B");
    write_file(d / "c", "C");
    write_file(d / "g", "G");
    REQUIRE(::mkdir((d / "sub").c_str(), 0755) == 0);
    write_file(d / "sub/x", "X");
    REQUIRE(::link((d / "a").c_str(), (d / "a-link").c_str()) == 0);
    auto s = make_server(d.path());
    Client c(*s);

    std::map<std::string, uint64_t> id;
    for (auto& e : read_whole_dir(c, kRoot, 4096, true))
        if (e.nodeid != 0) id[e.name] = e.nodeid;
    REQUIRE(id.size() == 6);
    CHECK(id["a"] == id["a-link"]);  // one inode, two names

    // First use opens it: attributes and data are the host's.
    Reply ga = c.getattr(id["a"]);
    REQUIRE(ga.error() == 0);
    CHECK(ga.as<fuse_attr_out>().attr.ino == lstat_of(d / "a").st_ino);
    uint64_t fh = c.open_fh(id["a"], O_RDONLY);
    CHECK(c.read(id["a"], fh, 0, 16).text() == "A");
    CHECK(c.release(id["a"], fh).error() == 0);

    // A plain LOOKUP registers files unopened too; the first OPEN opens them.
    uint64_t x = c.node(id["sub"], "x");
    CHECK(c.node(id["sub"], "x") == x);
    fh = c.open_fh(x, O_RDONLY);
    CHECK(c.read(x, fh, 0, 16).text() == "X");
    CHECK(c.release(x, fh).error() == 0);

    // Renamed on the host before its first use: ESTALE (the guest's VFS looks the path up
    // again), and that LOOKUP makes the inode usable under its new name.
    REQUIRE(::rename((d / "b").c_str(), (d / "b2").c_str()) == 0);
    CHECK(c.getattr(id["b"]).error() == ESTALE);
    CHECK(c.node(kRoot, "b2") == id["b"]);
    CHECK(c.getattr(id["b"]).error() == 0);

    // Renamed by the guest: usable at once under the new name, no ESTALE.
    fuse_rename_in rn{};
    rn.newdir = kRoot;
    REQUIRE(c.call(FUSE_RENAME, kRoot, Args().obj(rn).str("g").str("g2")).error() == 0);
    CHECK(c.getattr(id["g"]).error() == 0);

    // The name now leads to another object: never that one.
    REQUIRE(::rename((d / "c").c_str(), (d / "c-old").c_str()) == 0);
    write_file(d / "c", "not C");
    CHECK(c.getattr(id["c"]).error() == ESTALE);

    // Forgetting unopened inodes leaves nothing behind.
    std::map<uint64_t, uint64_t> refs;
    for (auto& [name, node] : id) ++refs[node];
    ++refs[id["b"]];                    // the LOOKUP of b2
    for (auto& [node, n] : refs) c.forget(node, n);
    c.forget(x, 2);
    CHECK(s->stats().inodes == 1);
}

TEST_CASE("CREATE makes and opens a file; existing names follow O_EXCL") {
    TempDir d;
    ::umask(022);
    auto s = make_server(d.path());
    Client c(*s);
    Reply r = c.create(kRoot, "new", O_RDWR, 0666, 0);
    REQUIRE(r.error() == 0);
    REQUIRE(r.body.size() == sizeof(fuse_entry_out) + sizeof(fuse_open_out));
    auto e = r.as<fuse_entry_out>();
    auto o = r.as<fuse_open_out>(sizeof(fuse_entry_out));
    CHECK(e.attr.mode == (S_IFREG | 0666));
    CHECK((lstat_of(d / "new").st_mode & 07777) == 0666);
    CHECK(c.write(e.nodeid, o.fh, 0, "data").error() == 0);
    CHECK(read_file(d / "new") == "data");
    c.release(e.nodeid, o.fh);

    CHECK(c.create(kRoot, "new", O_RDWR | O_EXCL, 0644).error() == EEXIST);
    r = c.create(kRoot, "new", O_WRONLY | O_TRUNC, 0644);
    REQUIRE(r.error() == 0);
    CHECK(read_file(d / "new").empty());
    CHECK(r.as<fuse_entry_out>().nodeid == e.nodeid);
    c.release(e.nodeid, r.as<fuse_open_out>(sizeof(fuse_entry_out)).fh);

    REQUIRE(c.create(kRoot, "masked", O_WRONLY, 0666, 077).error() == 0);
    CHECK((lstat_of(d / "masked").st_mode & 07777) == 0600);
    REQUIRE(::mkdir((d / "dir").c_str(), 0755) == 0);
    CHECK(c.create(kRoot, "dir", O_RDONLY, 0644).error() == EISDIR);
}

TEST_CASE("FALLOCATE and LSEEK (SEEK_DATA / SEEK_HOLE)") {
    TempDir d;
    write_file(d / "f", "");
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t n = c.node(kRoot, "f");
    uint64_t fh = c.open_fh(n, O_RDWR);

    fuse_fallocate_in fa{};
    fa.fh = fh;
    fa.offset = 0;
    fa.length = 8192;
    REQUIRE(c.call(FUSE_FALLOCATE, n, Args().obj(fa)).error() == 0);
    CHECK(lstat_of(d / "f").st_size == 8192);
    CHECK(lstat_of(d / "f").st_blocks >= 16);

    // Data at [0, 4 KiB) and [1 MiB, 1 MiB + 4 KiB), a hole between.
    REQUIRE(c.call(FUSE_SETATTR, n, Args().obj([&] {
                        fuse_setattr_in in{};
                        in.valid = FATTR_SIZE;
                        return in;
                    }())).error() == 0);
    REQUIRE(c.write(n, fh, 0, std::string(4096, 'a')).error() == 0);
    REQUIRE(c.write(n, fh, 1 << 20, std::string(4096, 'b')).error() == 0);
    auto seek = [&](uint64_t off, uint32_t whence) {
        fuse_lseek_in in{};
        in.fh = fh;
        in.offset = off;
        in.whence = whence;
        return c.call(FUSE_LSEEK, n, Args().obj(in));
    };
    Reply h = seek(0, SEEK_HOLE);
    REQUIRE(h.error() == 0);
    CHECK(h.as<fuse_lseek_out>().offset == 4096);
    Reply dd = seek(4096, SEEK_DATA);
    REQUIRE(dd.error() == 0);
    CHECK(dd.as<fuse_lseek_out>().offset == (1u << 20));
    CHECK(seek(2u << 20, SEEK_DATA).error() == ENXIO);
    CHECK(seek(0, 77).error() == EINVAL);
    c.release(n, fh);
}

TEST_CASE("SETXATTR/GETXATTR/LISTXATTR/REMOVEXATTR") {
    TempDir d;
    write_file(d / "f", "");
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t n = c.node(kRoot, "f");

    fuse_setxattr_in sx{};
    sx.size = 5;
    Args a;
    a.raw(std::string_view(reinterpret_cast<const char*>(&sx), FUSE_COMPAT_SETXATTR_IN_SIZE)).str("user.test").raw("value");
    REQUIRE(c.call(FUSE_SETXATTR, n, a).error() == 0);
    char buf[32] = {};
    REQUIRE(::getxattr((d / "f").c_str(), "user.test", buf, sizeof(buf)) == 5);
    CHECK(std::string(buf) == "value");

    sx.flags = XATTR_CREATE;
    Args a2;
    a2.raw(std::string_view(reinterpret_cast<const char*>(&sx), FUSE_COMPAT_SETXATTR_IN_SIZE)).str("user.test").raw("again");
    CHECK(c.call(FUSE_SETXATTR, n, a2).error() == EEXIST);

    fuse_getxattr_in gx{};
    Reply q = c.call(FUSE_GETXATTR, n, Args().obj(gx).str("user.test"));
    REQUIRE(q.error() == 0);
    CHECK(q.as<fuse_getxattr_out>().size == 5);
    gx.size = 64;
    Reply v = c.call(FUSE_GETXATTR, n, Args().obj(gx).str("user.test"));
    REQUIRE(v.error() == 0);
    CHECK(v.text() == "value");
    gx.size = 2;
    CHECK(c.call(FUSE_GETXATTR, n, Args().obj(gx).str("user.test")).error() == ERANGE);
    gx.size = 64;
    CHECK(c.call(FUSE_GETXATTR, n, Args().obj(gx).str("user.none")).error() == ENODATA);

    gx.size = 0;
    Reply lq = c.call(FUSE_LISTXATTR, n, Args().obj(gx));
    REQUIRE(lq.error() == 0);
    CHECK(lq.as<fuse_getxattr_out>().size >= 10);
    gx.size = 4096;
    Reply l = c.call(FUSE_LISTXATTR, n, Args().obj(gx));
    REQUIRE(l.error() == 0);
    CHECK(l.text().find(std::string("user.test\0", 10)) != std::string::npos);

    REQUIRE(c.call(FUSE_REMOVEXATTR, n, Args().str("user.test")).error() == 0);
    CHECK(::getxattr((d / "f").c_str(), "user.test", buf, sizeof(buf)) < 0);
    CHECK(errno == ENODATA);
    CHECK(c.call(FUSE_REMOVEXATTR, n, Args().str("user.test")).error() == ENODATA);
    CHECK(c.call(FUSE_REMOVEXATTR, n, Args().str("")).error() == EINVAL);
}

