// Cache policy: the timeouts and FOPEN_* flags in every reply that carries them, for each
// policy, with and without configured timeouts; config validation and the string parsers.
#include "fuse_client.h"

using namespace vfstest;
using krunlet::fs::parse_cache_policy;
using krunlet::fs::parse_cache_timeout;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

namespace {

constexpr uint64_t kRoot = FUSE_ROOT_ID;

struct Expect {
    uint64_t entry_sec;
    uint32_t entry_nsec;
    uint64_t attr_sec;
    uint32_t attr_nsec;
    uint32_t file_flags;  // FOPEN_* added to OPEN/CREATE
    uint32_t dir_flags;   // FOPEN_* added to OPENDIR
};

std::unique_ptr<Server> server_with(const std::string& dir, CachePolicy p, std::optional<nanoseconds> entry = {},
                                    std::optional<nanoseconds> attr = {}) {
    ServerConfig cfg;
    cfg.root_dir = dir;
    cfg.cache = p;
    cfg.entry_timeout = entry;
    cfg.attr_timeout = attr;
    auto s = Server::create(cfg);
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
    Client c(**s);
    REQUIRE(c.init().error() == 0);
    return std::move(*s);
}

void check_entry(const fuse_entry_out& e, const Expect& x) {
    CHECK(e.entry_valid == x.entry_sec);
    CHECK(e.entry_valid_nsec == x.entry_nsec);
    CHECK(e.attr_valid == x.attr_sec);
    CHECK(e.attr_valid_nsec == x.attr_nsec);
}

// Every reply of one server that carries a timeout or open flags.
void check_replies(Server& s, const TempDir& d, const Expect& x) {
    Client c(s);
    check_entry(c.lookup(kRoot, "file").as<fuse_entry_out>(), x);
    uint64_t file = c.node(kRoot, "file");
    auto a = c.getattr(file).as<fuse_attr_out>();
    CHECK(a.attr_valid == x.attr_sec);
    CHECK(a.attr_valid_nsec == x.attr_nsec);
    fuse_setattr_in sa{};
    sa.valid = FATTR_MODE;
    sa.mode = 0600;
    auto sa_out = c.setattr(file, sa).as<fuse_attr_out>();
    CHECK(sa_out.attr_valid == x.attr_sec);
    CHECK(sa_out.attr_valid_nsec == x.attr_nsec);

    // Negative entries are cached exactly when entries are.
    Reply neg = c.lookup(kRoot, "missing");
    if (x.entry_sec == 0 && x.entry_nsec == 0) {
        CHECK(neg.error() == ENOENT);
    } else {
        REQUIRE(neg.error() == 0);
        CHECK(neg.as<fuse_entry_out>().nodeid == 0);
        check_entry(neg.as<fuse_entry_out>(), x);
    }

    Reply o = c.open(file, O_RDONLY);
    REQUIRE(o.error() == 0);
    CHECK(o.as<fuse_open_out>().open_flags == x.file_flags);
    c.release(file, o.as<fuse_open_out>().fh);
    Reply od = c.open(kRoot, O_RDONLY, FUSE_OPENDIR);
    REQUIRE(od.error() == 0);
    CHECK(od.as<fuse_open_out>().open_flags == x.dir_flags);
    uint64_t dfh = od.as<fuse_open_out>().fh;

    // READDIRPLUS entries carry the same timeouts.
    Reply rp = c.read(kRoot, dfh, 0, 4096, FUSE_READDIRPLUS);
    REQUIRE(rp.error() == 0);
    size_t pos = 0;
    int named = 0;
    while (pos + sizeof(fuse_direntplus) <= rp.body.size()) {
        auto dp = rp.as<fuse_direntplus>(pos);
        if (dp.entry_out.nodeid != 0) {
            check_entry(dp.entry_out, x);
            ++named;
        }
        pos += (sizeof(fuse_direntplus) + dp.dirent.namelen + 7) & ~size_t{7};
    }
    CHECK(named == 1);  // "file"; "." and ".." have no node id
    c.release(kRoot, dfh, FUSE_RELEASEDIR);

    Reply cr = c.create(kRoot, "created", O_RDWR, 0644);
    REQUIRE(cr.error() == 0);
    check_entry(cr.as<fuse_entry_out>(), x);
    CHECK(cr.as<fuse_open_out>(sizeof(fuse_entry_out)).open_flags == x.file_flags);
    check_entry(c.mkdir(kRoot, "made", 0755).as<fuse_entry_out>(), x);
    REQUIRE(::unlink((d / "created").c_str()) == 0);
    REQUIRE(::rmdir((d / "made").c_str()) == 0);
}

}  // namespace

TEST_CASE("cache policies: timeouts and open flags in every reply") {
    TempDir d;
    write_file(d / "file", "x");
    SUBCASE("never: nothing cached, direct I/O") {
        auto s = server_with(d.path(), CachePolicy::Never);
        check_replies(*s, d, Expect{0, 0, 0, 0, FOPEN_DIRECT_IO, 0});
    }
    SUBCASE("auto: short timeouts, close-to-open (no FOPEN_KEEP_CACHE)") {
        auto s = server_with(d.path(), CachePolicy::Auto);
        check_replies(*s, d, Expect{1, 0, 1, 0, 0, 0});
    }
    SUBCASE("always: long timeouts, pages and listings kept") {
        auto s = server_with(d.path(), CachePolicy::Always);
        check_replies(*s, d, Expect{86400, 0, 86400, 0, FOPEN_KEEP_CACHE, FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR});
    }
    SUBCASE("configured timeouts override the policy's, each on its own") {
        auto s = server_with(d.path(), CachePolicy::Auto, milliseconds(2500), seconds(0));
        check_replies(*s, d, Expect{2, 500'000'000, 0, 0, 0, 0});
        auto t = server_with(d.path(), CachePolicy::Never, {}, nanoseconds(7));
        check_replies(*t, d, Expect{0, 0, 0, 7, FOPEN_DIRECT_IO, 0});
        auto u = server_with(d.path(), CachePolicy::Always, seconds(0), {});
        check_replies(*u, d, Expect{0, 0, 86400, 0, FOPEN_KEEP_CACHE, FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR});
    }
}

TEST_CASE("the server never caches data itself: a host change is in the next READ") {
    TempDir d;
    write_file(d / "file", "old");
    for (CachePolicy p : {CachePolicy::Never, CachePolicy::Auto, CachePolicy::Always}) {
        auto s = server_with(d.path(), p);
        Client c(*s);
        uint64_t n = c.node(kRoot, "file");
        uint64_t fh = c.open_fh(n, O_RDONLY);
        CHECK(c.read(n, fh, 0, 10).text() == "old");
        write_file(d / "file", "new!");
        CHECK(c.read(n, fh, 0, 10).text() == "new!");
        CHECK(c.getattr(n).as<fuse_attr_out>().attr.size == 4);
        write_file(d / "file", "old");
    }
}

TEST_CASE("timeouts out of range are refused at create with a message naming the fix") {
    TempDir d;
    for (nanoseconds bad : {nanoseconds(-1), nanoseconds(krunlet::fs::kMaxCacheTimeout) + nanoseconds(1)}) {
        ServerConfig cfg;
        cfg.root_dir = d.path();
        cfg.attr_timeout = bad;
        auto s = Server::create(cfg);
        REQUIRE_FALSE(s.ok());
        CHECK(s.error().code == EINVAL);
        CHECK(s.error().message.find("leave them unset") != std::string::npos);
        cfg.attr_timeout.reset();
        cfg.entry_timeout = bad;
        CHECK_FALSE(Server::create(cfg).ok());
    }
    ServerConfig edge;
    edge.root_dir = d.path();
    edge.entry_timeout = krunlet::fs::kMaxCacheTimeout;
    CHECK(Server::create(edge).ok());
}

TEST_CASE("parse_cache_policy and parse_cache_timeout") {
    CHECK(*parse_cache_policy("never") == CachePolicy::Never);
    CHECK(*parse_cache_policy("auto") == CachePolicy::Auto);
    CHECK(*parse_cache_policy("always") == CachePolicy::Always);
    for (const char* bad : {"", "Auto", "none", "always ", "1"}) {
        CAPTURE(bad);
        auto r = parse_cache_policy(bad);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().message.find("never, auto, always") != std::string::npos);
    }
    CHECK(to_string(CachePolicy::Always) == "always");

    CHECK(*parse_cache_timeout("0") == nanoseconds(0));
    CHECK(*parse_cache_timeout("1") == seconds(1));
    CHECK(*parse_cache_timeout("0.25") == milliseconds(250));
    CHECK(*parse_cache_timeout("2.000000001") == seconds(2) + nanoseconds(1));
    CHECK(*parse_cache_timeout("31536000") == krunlet::fs::kMaxCacheTimeout);
    for (const char* bad : {"", "-1", "+1", "1.", ".5", "1.0000000001", "1e3", "abc", "1s", "31536000.5",
                            "99999999999999999999", " 1"}) {
        CAPTURE(bad);
        auto r = parse_cache_timeout(bad);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().message.find("number of seconds") != std::string::npos);
    }
}
