// COPY_FILE_RANGE, IOCTL, POLL and SYNCFS.
#include <linux/fs.h>
#include <poll.h>
#include <sys/ioctl.h>

#include "fuse_client.h"

using namespace vfstest;

namespace {

constexpr uint64_t kRoot = FUSE_ROOT_ID;

Reply copy_range(Client& c, uint64_t in_node, uint64_t fh_in, uint64_t off_in, uint64_t out_node, uint64_t fh_out,
                 uint64_t off_out, uint64_t len, uint64_t flags = 0) {
    fuse_copy_file_range_in in{};
    in.fh_in = fh_in;
    in.off_in = off_in;
    in.nodeid_out = out_node;
    in.fh_out = fh_out;
    in.off_out = off_out;
    in.len = len;
    in.flags = flags;
    return c.call(FUSE_COPY_FILE_RANGE, in_node, Args().obj(in));
}

uint32_t copied(const Reply& r) {
    REQUIRE_MESSAGE(r.error() == 0, "COPY_FILE_RANGE failed: " << r.error());
    return r.as<fuse_write_out>().size;
}

}  // namespace

TEST_CASE("COPY_FILE_RANGE copies between two handles, at most 16 MiB per request") {
    TempDir d;
    std::string src(100000, '\0');
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<char>('A' + i % 23);
    write_file(d / "src", src);
    write_file(d / "dst", "0123456789");
    std::string init_blob = "#!init";
    std::span<const uint8_t> init(reinterpret_cast<const uint8_t*>(init_blob.data()), init_blob.size());
    auto s = make_server(d.path(), CachePolicy::Never, false, init);
    Client c(*s);
    uint64_t sn = c.node(kRoot, "src");
    uint64_t dn = c.node(kRoot, "dst");
    uint64_t sfh = c.open_fh(sn, O_RDONLY);
    uint64_t dfh = c.open_fh(dn, O_RDWR);

    CHECK(copied(copy_range(c, sn, sfh, 10, dn, dfh, 5, 20)) == 20);
    CHECK(read_file(d / "dst") == "01234" + src.substr(10, 20));
    // Past the source's end: a short count; at the end: 0.
    CHECK(copied(copy_range(c, sn, sfh, src.size() - 7, dn, dfh, 0, 100)) == 7);
    CHECK(read_file(d / "dst").substr(0, 7) == src.substr(src.size() - 7));
    CHECK(copied(copy_range(c, sn, sfh, src.size(), dn, dfh, 0, 100)) == 0);
    // Into a hole far out: the file grows.
    CHECK(copied(copy_range(c, sn, sfh, 0, dn, dfh, 1 << 20, 3)) == 3);
    CHECK(lstat_of(d / "dst").st_size == (1 << 20) + 3);
    // Within one file, to a range that does not overlap.
    CHECK(copied(copy_range(c, dn, dfh, 0, dn, dfh, 100, 7)) == 7);
    CHECK(read_file(d / "dst").substr(100, 7) == src.substr(src.size() - 7));

    // A huge request is cut to kMaxCopyChunk; the guest's caller loops.
    std::string big((16u << 20) + 4096, 'b');
    write_file(d / "big", big);
    uint64_t bn = c.node(kRoot, "big");
    uint64_t bfh = c.open_fh(bn, O_RDONLY);
    CHECK(copied(copy_range(c, bn, bfh, 0, dn, dfh, 0, 0xfffff000u)) == (16u << 20));

    // Errors come from the host's copy_file_range(2), or before it.
    CHECK(copy_range(c, sn, sfh, 0, dn, dfh, 0, 10, 1).error() == EINVAL);       // flags
    CHECK(copy_range(c, sn, 999, 0, dn, dfh, 0, 10).error() == EBADF);          // unknown handles
    CHECK(copy_range(c, sn, sfh, 0, dn, 999, 0, 10).error() == EBADF);
    CHECK(copy_range(c, dn, dfh, 0, sn, sfh, 0, 10).error() == EBADF);          // into a read-only handle
    CHECK(copy_range(c, dn, dfh, 0, dn, dfh, 5, 10).error() == EINVAL);         // overlapping, same file
    CHECK(copy_range(c, sn, sfh, uint64_t{1} << 63, dn, dfh, 0, 10).error() == EINVAL);
    uint64_t dirfh = c.open_fh(kRoot, O_RDONLY, FUSE_OPENDIR);
    CHECK(copy_range(c, kRoot, dirfh, 0, dn, dfh, 0, 10).error() == EISDIR);
    // /init.krun has no host file: reading from it falls back to READ in the guest; writing
    // into it is refused like any other write.
    uint64_t in = c.node(kRoot, "init.krun");
    uint64_t ifh = c.open_fh(in, O_RDONLY);
    CHECK(copy_range(c, in, ifh, 0, dn, dfh, 0, 3).error() == EOPNOTSUPP);
    CHECK(copy_range(c, sn, sfh, 0, in, ifh, 0, 3).error() == EACCES);
    CHECK(copy_range(c, sn, sfh, 0, dn, dfh, 0, 0).as<fuse_write_out>().size == 0);
    // A reply that doesn't fit is refused before anything is copied.
    write_file(d / "dst", "unchanged");
    c.out_size = sizeof(fuse_out_header) + 4;
    CHECK(copy_range(c, sn, sfh, 0, dn, dfh, 0, 5).error() == EOVERFLOW);
    CHECK(read_file(d / "dst") == "unchanged");
}

TEST_CASE("IOCTL is ENOTTY and never reaches the host file; POLL is ENOSYS") {
    TempDir d;
    write_file(d / "f", "x");
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t f = c.node(kRoot, "f");
    uint64_t fh = c.open_fh(f, O_RDONLY);
    int before = 0;
    int hfd = ::open((d / "f").c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(hfd >= 0);
    bool have_flags = ::ioctl(hfd, FS_IOC_GETFLAGS, &before) == 0;

    fuse_ioctl_in io{};
    io.fh = fh;
    io.cmd = static_cast<uint32_t>(FS_IOC_GETFLAGS);
    io.out_size = 4;
    CHECK(c.call(FUSE_IOCTL, f, Args().obj(io)).error() == ENOTTY);
    // FS_IOC_SETFLAGS with FS_IMMUTABLE_FL would lock the host file; it is not passed on.
    uint32_t immutable = FS_IMMUTABLE_FL;
    io.cmd = static_cast<uint32_t>(FS_IOC_SETFLAGS);
    io.in_size = sizeof(immutable);
    io.out_size = 0;
    CHECK(c.call(FUSE_IOCTL, f, Args().obj(io).raw(std::string(reinterpret_cast<char*>(&immutable), 4))).error() ==
          ENOTTY);
    if (have_flags) {
        int after = 0;
        REQUIRE(::ioctl(hfd, FS_IOC_GETFLAGS, &after) == 0);
        CHECK(after == before);
    }
    ::close(hfd);
    CHECK(::unlink((d / "f").c_str()) == 0);  // not immutable
    // in_size must match the data that follows.
    CHECK(c.call(FUSE_IOCTL, f, Args().obj(io)).error() == EINVAL);
    CHECK(c.call(FUSE_IOCTL, f, Args().obj(io).raw("12345")).error() == EINVAL);

    fuse_poll_in p{};
    p.fh = fh;
    p.events = POLLIN;
    Reply r = c.call(FUSE_POLL, f, Args().obj(p));
    CHECK(r.error() == ENOSYS);  // the guest then reports regular files as always ready
    CHECK(r.body.empty());
}

TEST_CASE("SYNCFS syncs every filesystem the guest reached") {
    TempDir d;
    write_file(d / "f", "x");
    REQUIRE(::mkdir((d / "dir").c_str(), 0755) == 0);
    for (bool ro : {false, true}) {
        CAPTURE(ro);
        auto s = make_server(d.path(), CachePolicy::Never, ro);
        Client c(*s);
        fuse_syncfs_in in{};
        CHECK(c.call(FUSE_SYNCFS, kRoot, Args().obj(in)).error() == 0);  // only the root known
        uint64_t f = c.node(kRoot, "f");
        c.node(kRoot, "dir");
        uint64_t fh = c.open_fh(f, O_RDONLY);
        CHECK(c.call(FUSE_SYNCFS, kRoot, Args().obj(in)).error() == 0);
        c.release(f, fh);
        CHECK(c.call(FUSE_SYNCFS, kRoot, Args()).error() == EINVAL);
        CHECK(c.call(FUSE_SYNCFS, kRoot, Args().obj(in).raw("x")).error() == EINVAL);
    }
}
