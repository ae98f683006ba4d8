// Locks under LockPolicy::Host: POSIX owner semantics on top of OFD locks, visibility to and
// from host processes (this test process plays the host), GETLK's holder pid, SETLK vs SETLKW,
// flock, FLUSH/RELEASE/FORGET/DESTROY releasing locks, and the descriptor budget.
#include <sys/file.h>

#include "fuse_client.h"

using namespace vfstest;

namespace {

constexpr uint64_t kRoot = FUSE_ROOT_ID;
constexpr uint64_t kEof = INT64_MAX;  // FUSE's OFFSET_MAX

ServerConfig host_locks(const std::string& dir, size_t max_handles = 65536, bool read_only = false) {
    ServerConfig cfg;
    cfg.root_dir = dir;
    cfg.cache = CachePolicy::Never;
    cfg.locks = krunlet::fs::LockPolicy::Host;
    cfg.max_handles = max_handles;
    cfg.read_only = read_only;
    return cfg;
}

fuse_lk_in lk_in(uint64_t fh, uint64_t owner, uint32_t type, uint64_t start, uint64_t end, uint32_t pid,
                 uint32_t flags = 0) {
    fuse_lk_in in{};
    in.fh = fh;
    in.owner = owner;
    in.lk.start = start;
    in.lk.end = end;
    in.lk.type = type;
    in.lk.pid = pid;
    in.lk_flags = flags;
    return in;
}

int setlk(Client& c, uint64_t node, uint64_t fh, uint64_t owner, uint32_t type, uint64_t start, uint64_t end,
          uint32_t pid = 0, bool wait = false) {
    return c.call(wait ? FUSE_SETLKW : FUSE_SETLK, node, Args().obj(lk_in(fh, owner, type, start, end, pid)))
        .error();
}

int flock_op(Client& c, uint64_t node, uint64_t fh, uint32_t type, bool wait = false) {
    auto in = lk_in(fh, 0xf10c, type, 0, kEof, 0, FUSE_LK_FLOCK);
    return c.call(wait ? FUSE_SETLKW : FUSE_SETLK, node, Args().obj(in)).error();
}

fuse_file_lock getlk(Client& c, uint64_t node, uint64_t fh, uint64_t owner, uint32_t type, uint64_t start,
                     uint64_t end) {
    Reply r = c.call(FUSE_GETLK, node, Args().obj(lk_in(fh, owner, type, start, end, 0)));
    REQUIRE(r.error() == 0);
    return r.as<fuse_lk_out>().lk;
}

int flush(Client& c, uint64_t node, uint64_t fh, uint64_t owner) {
    fuse_flush_in in{};
    in.fh = fh;
    in.lock_owner = owner;
    return c.call(FUSE_FLUSH, node, Args().obj(in)).error();
}

// What a host process sees: F_OFD_GETLK through a descriptor of its own.
struct flock host_getlk(const std::string& path, short type, off_t start, off_t len) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(fd >= 0);
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    REQUIRE(::fcntl(fd, F_OFD_GETLK, &fl) == 0);
    ::close(fd);
    return fl;
}

}  // namespace

TEST_CASE("INIT offers POSIX and flock locks only under LockPolicy::Host") {
    TempDir d;
    auto guest = make_server(d.path());
    auto g = Client(*guest).init().as<fuse_init_out>();
    CHECK((g.flags & (FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS)) == 0);
    auto host = make_server(host_locks(d.path()));
    auto h = Client(*host).init().as<fuse_init_out>();
    CHECK((h.flags & FUSE_POSIX_LOCKS) != 0);
    CHECK((h.flags & FUSE_FLOCK_LOCKS) != 0);
}

TEST_CASE("POSIX locks: per-owner semantics, host visibility, GETLK holder, SETLK vs SETLKW") {
    TempDir d;
    write_file(d / "f", std::string(1000, 'x'));
    auto s = make_server(host_locks(d.path()));
    Client c(*s);
    uint64_t f = c.node(kRoot, "f");
    uint64_t h1 = c.open_fh(f, O_RDWR);
    uint64_t h2 = c.open_fh(f, O_RDWR);
    const uint64_t A = 0xA, B = 0xB, C = 0xC;

    REQUIRE(setlk(c, f, h1, A, F_WRLCK, 0, 99, 100) == 0);
    CHECK(s->stats().lock_owners == 1);
    // Another owner conflicts, through either handle (a forked child shares h1 but not A's locks).
    CHECK(setlk(c, f, h2, B, F_WRLCK, 50, 60, 200) == EAGAIN);
    CHECK(setlk(c, f, h1, C, F_RDLCK, 0, 0, 300) == EAGAIN);
    CHECK(setlk(c, f, h2, B, F_WRLCK, 50, 60, 200, /*wait=*/true) == ENOLCK);  // never waits
    // The same owner through another handle: its own lock, no conflict (one process, two fds).
    CHECK(setlk(c, f, h2, A, F_WRLCK, 0, 99, 100) == 0);
    CHECK(setlk(c, f, h2, B, F_RDLCK, 100, 200, 200) == 0);

    auto q = getlk(c, f, h2, B, F_WRLCK, 0, 10);
    CHECK(q.type == F_WRLCK);
    CHECK(q.start == 0);
    CHECK(q.end == 99);
    CHECK(q.pid == 100);
    CHECK(getlk(c, f, h1, A, F_WRLCK, 0, 10).type == F_UNLCK);  // an owner's own locks don't count
    auto qb = getlk(c, f, h1, A, F_WRLCK, 150, kEof);
    CHECK(qb.type == F_RDLCK);
    CHECK(qb.start == 100);
    CHECK(qb.end == 200);
    CHECK(qb.pid == 200);
    CHECK(getlk(c, f, h1, C, F_RDLCK, 150, 160).type == F_UNLCK);  // read locks share

    // The host sees the guest's locks and the guest sees the host's.
    struct flock seen = host_getlk(d / "f", F_WRLCK, 0, 1);
    CHECK(seen.l_type == F_WRLCK);
    CHECK(seen.l_start == 0);
    CHECK(seen.l_len == 100);
    int hfd = ::open((d / "f").c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(hfd >= 0);
    struct flock mine {};
    mine.l_type = F_WRLCK;
    mine.l_whence = SEEK_SET;
    mine.l_start = 50;
    mine.l_len = 1;
    CHECK(::fcntl(hfd, F_SETLK, &mine) == -1);  // classic lock vs the guest's OFD lock
    mine.l_start = 500;
    mine.l_len = 100;
    REQUIRE(::fcntl(hfd, F_SETLK, &mine) == 0);
    CHECK(setlk(c, f, h1, A, F_RDLCK, 550, 560, 100) == EAGAIN);
    auto qh = getlk(c, f, h1, A, F_RDLCK, 550, 560);
    CHECK(qh.type == F_WRLCK);
    CHECK(qh.start == 500);
    CHECK(qh.end == 599);
    CHECK(qh.pid == 0);  // a host process: no guest pid to give
    ::close(hfd);        // drops the host's classic lock
    CHECK(setlk(c, f, h1, A, F_RDLCK, 550, 560, 100) == 0);

    // Unlocking part of a range, then FLUSH (the owner's close) drops everything it held.
    CHECK(setlk(c, f, h1, A, F_UNLCK, 50, 60) == 0);
    CHECK(setlk(c, f, h2, B, F_WRLCK, 50, 60, 200) == 0);
    CHECK(setlk(c, f, h2, B, F_WRLCK, 40, 49, 200) == EAGAIN);
    CHECK(flush(c, f, h1, A) == 0);
    CHECK(s->stats().lock_owners == 1);
    CHECK(setlk(c, f, h2, B, F_WRLCK, 0, 49, 200) == 0);
    CHECK(host_getlk(d / "f", F_WRLCK, 550, 10).l_type == F_UNLCK);
    CHECK(flush(c, f, h2, B) == 0);
    CHECK(s->stats().lock_owners == 0);
    CHECK(host_getlk(d / "f", F_WRLCK, 0, 0).l_type == F_UNLCK);
    CHECK(setlk(c, f, h1, C, F_UNLCK, 0, kEof) == 0);  // nothing held: fine, no descriptor made
    CHECK(s->stats().lock_owners == 0);
    CHECK(s->stats().handles == 2);
}

TEST_CASE("POSIX locks: access modes, widening an owner's descriptor, bad requests") {
    TempDir d;
    write_file(d / "f", "data");
    auto s = make_server(host_locks(d.path()));
    Client c(*s);
    uint64_t f = c.node(kRoot, "f");
    uint64_t ro = c.open_fh(f, O_RDONLY);
    uint64_t wo = c.open_fh(f, O_WRONLY);
    uint64_t rw = c.open_fh(f, O_RDWR);
    const uint64_t A = 1;

    CHECK(setlk(c, f, ro, A, F_WRLCK, 0, 0) == EBADF);
    CHECK(setlk(c, f, wo, A, F_RDLCK, 0, 0) == EBADF);
    // A read lock first (read-only descriptor), then a write lock through a writable handle:
    // impossible to move while the read lock is held, fine once it is gone.
    CHECK(setlk(c, f, ro, A, F_RDLCK, 0, 0, 7) == 0);
    CHECK(setlk(c, f, rw, A, F_WRLCK, 2, 3, 7) == ENOLCK);
    CHECK(setlk(c, f, rw, A, F_UNLCK, 0, kEof) == 0);
    CHECK(setlk(c, f, rw, A, F_WRLCK, 2, 3, 7) == 0);
    CHECK(setlk(c, f, ro, A, F_RDLCK, 0, 0, 7) == 0);  // the widened descriptor holds both
    CHECK(host_getlk(d / "f", F_RDLCK, 2, 1).l_type == F_WRLCK);

    struct Bad {
        uint32_t type;
        uint64_t start, end;
    };
    for (const Bad& b : {Bad{7, 0, 1}, Bad{F_WRLCK, 5, 4}, Bad{F_WRLCK, 0, kEof + 1}, Bad{F_RDLCK, kEof + 1, kEof + 1}}) {
        CAPTURE(b.type);
        CAPTURE(b.start);
        CHECK(setlk(c, f, rw, A, b.type, b.start, b.end) == EINVAL);
    }
    CHECK(c.call(FUSE_GETLK, f, Args().obj(lk_in(rw, A, F_UNLCK, 0, 1, 0))).error() == EINVAL);
    CHECK(setlk(c, f, 999, A, F_RDLCK, 0, 1) == EBADF);
    CHECK(c.call(FUSE_GETLK, f, Args().obj(lk_in(999, A, F_RDLCK, 0, 1, 0))).error() == EBADF);
    CHECK(c.call(FUSE_SETLK, f, Args().raw(std::string(47, '\0'))).error() == EINVAL);
    CHECK(c.call(FUSE_SETLKW, f, Args().obj(lk_in(rw, A, F_RDLCK, 0, 1, 0)).raw("x")).error() == EINVAL);
    CHECK(c.call(FUSE_GETLK, f, Args().raw(std::string(47, '\0'))).error() == EINVAL);
}

TEST_CASE("flock: per open file, independent of POSIX locks, released by RELEASE") {
    TempDir d;
    write_file(d / "f", "data");
    auto s = make_server(host_locks(d.path()));
    Client c(*s);
    uint64_t f = c.node(kRoot, "f");
    uint64_t h1 = c.open_fh(f, O_RDONLY);
    uint64_t h2 = c.open_fh(f, O_RDONLY);
    uint64_t h3 = c.open_fh(f, O_RDONLY);

    CHECK(flock_op(c, f, h1, F_RDLCK) == 0);
    CHECK(flock_op(c, f, h2, F_RDLCK) == 0);   // shared
    CHECK(flock_op(c, f, h3, F_WRLCK) == EAGAIN);
    CHECK(flock_op(c, f, h3, F_WRLCK, true) == ENOLCK);
    CHECK(flock_op(c, f, h1, F_WRLCK) == EAGAIN);  // upgrade blocked by h2's shared lock
    CHECK(flock_op(c, f, h2, F_UNLCK) == 0);
    CHECK(flock_op(c, f, h1, F_WRLCK) == 0);   // now the upgrade works
    // A host process's flock sees it; POSIX locks don't interact with flock.
    int hfd = ::open((d / "f").c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(hfd >= 0);
    CHECK(::flock(hfd, LOCK_SH | LOCK_NB) == -1);
    CHECK(errno == EWOULDBLOCK);
    CHECK(setlk(c, f, h3, 5, F_RDLCK, 0, kEof) == 0);
    CHECK(flock_op(c, f, h2, 9) == EINVAL);
    // RELEASE of the holder's handle frees it at once.
    CHECK(c.release(f, h1).error() == 0);
    CHECK(::flock(hfd, LOCK_EX | LOCK_NB) == 0);
    CHECK(flock_op(c, f, h2, F_RDLCK) == EAGAIN);  // the host now holds it exclusively
    ::close(hfd);
    CHECK(flock_op(c, f, h2, F_WRLCK, true) == 0);
}

TEST_CASE("lock descriptors count against max_handles; FORGET and DESTROY drop them") {
    TempDir d;
    write_file(d / "f", "data");
    auto s = make_server(host_locks(d.path(), 3));
    Client c(*s);
    uint64_t f = c.node(kRoot, "f");
    uint64_t h1 = c.open_fh(f, O_RDWR);
    uint64_t h2 = c.open_fh(f, O_RDWR);
    CHECK(setlk(c, f, h1, 1, F_WRLCK, 0, 0) == 0);         // third descriptor
    CHECK(setlk(c, f, h1, 2, F_WRLCK, 10, 10) == ENFILE);  // a fourth would pass the cap
    CHECK(c.open(f, O_RDONLY).error() == ENFILE);
    CHECK(flush(c, f, h1, 1) == 0);
    CHECK(setlk(c, f, h2, 2, F_WRLCK, 10, 10) == 0);
    CHECK(s->stats().lock_owners == 1);

    // FORGET of the inode (a guest that forgot early) takes the owners with it.
    c.forget(f, 1);
    CHECK(s->stats().lock_owners == 0);
    CHECK(host_getlk(d / "f", F_WRLCK, 0, 0).l_type == F_UNLCK);
    uint64_t f2 = c.node(kRoot, "f");
    CHECK(setlk(c, f2, h2, 3, F_WRLCK, 0, 0) == 0);
    CHECK(c.call(FUSE_DESTROY, 0).error() == 0);
    CHECK(s->stats().lock_owners == 0);
    CHECK(host_getlk(d / "f", F_WRLCK, 0, 0).l_type == F_UNLCK);
    REQUIRE(c.init().error() == 0);
    CHECK(c.open(c.node(kRoot, "f"), O_RDONLY).error() == 0);  // the budget is back
}

TEST_CASE("a read-only share still takes read locks") {
    TempDir d;
    write_file(d / "f", "data");
    auto s = make_server(host_locks(d.path(), 65536, /*read_only=*/true));
    Client c(*s);
    uint64_t f = c.node(kRoot, "f");
    uint64_t h = c.open_fh(f, O_RDONLY);
    CHECK(setlk(c, f, h, 1, F_RDLCK, 0, kEof, 9) == 0);
    CHECK(host_getlk(d / "f", F_WRLCK, 0, 0).l_type == F_RDLCK);
    CHECK(flock_op(c, f, h, F_WRLCK) == 0);
    CHECK(getlk(c, f, h, 2, F_WRLCK, 0, 0).pid == 9);
}
