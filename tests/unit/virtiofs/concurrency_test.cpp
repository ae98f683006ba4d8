// handle() from several threads at once: lookups, I/O, creates and FORGETs racing each other
// must leave the tables exactly balanced.
#include <atomic>
#include <map>
#include <thread>

#include "fuse_client.h"

using namespace vfstest;

TEST_CASE("concurrent requests keep lookup counts and handles balanced") {
    TempDir d;
    for (int i = 0; i < 8; ++i) write_file(d / ("f" + std::to_string(i)), "payload-" + std::to_string(i));
    auto s = make_server(d.path());
    std::atomic<int> failures{0};
    constexpr int kIters = 400;

    auto reader = [&](int t) {
        Client c(*s);
        c.out_size = 64 * 1024;
        for (int i = 0; i < kIters; ++i) {
            std::string name = "f" + std::to_string((i + t) % 8);
            Reply r = c.lookup(FUSE_ROOT_ID, name);
            if (r.error() != 0) {
                ++failures;
                continue;
            }
            uint64_t n = r.as<fuse_entry_out>().nodeid;
            if (c.getattr(n).error() != 0) ++failures;
            Reply o = c.open(n, O_RDONLY);
            if (o.error() == 0) {
                uint64_t fh = o.as<fuse_open_out>().fh;
                if (c.read(n, fh, 0, 100).text() != "payload-" + name.substr(1)) ++failures;
                c.release(n, fh);
            } else {
                ++failures;
            }
            c.forget(n, 1);
        }
    };
    auto writer = [&](int t) {
        Client c(*s);
        c.out_size = 64 * 1024;
        for (int i = 0; i < kIters; ++i) {
            std::string name = "tmp" + std::to_string(t) + "-" + std::to_string(i % 5);
            Reply r = c.create(FUSE_ROOT_ID, name, O_RDWR, 0644);
            if (r.error() != 0) {
                ++failures;
                continue;
            }
            auto e = r.as<fuse_entry_out>();
            auto o = r.as<fuse_open_out>(sizeof(fuse_entry_out));
            if (c.write(e.nodeid, o.fh, 0, "x").error() != 0) ++failures;
            c.release(e.nodeid, o.fh);
            if (c.call(FUSE_UNLINK, FUSE_ROOT_ID, Args().str(name)).error() != 0) ++failures;
            c.forget(e.nodeid, 1);
        }
    };
    auto lister = [&]() {
        Client c(*s);
        c.out_size = 64 * 1024;
        for (int i = 0; i < kIters / 4; ++i) {
            Reply o = c.open(FUSE_ROOT_ID, O_RDONLY, FUSE_OPENDIR);
            if (o.error() != 0) {
                ++failures;
                continue;
            }
            uint64_t fh = o.as<fuse_open_out>().fh;
            Reply r = c.read(FUSE_ROOT_ID, fh, 0, 8192, FUSE_READDIRPLUS);
            // Forget exactly what READDIRPLUS counted.
            size_t pos = 0;
            std::map<uint64_t, uint64_t> counted;
            while (pos < r.body.size()) {
                auto eo = r.as<fuse_entry_out>(pos);
                auto de = r.as<fuse_dirent>(pos + sizeof(fuse_entry_out));
                if (eo.nodeid != 0) ++counted[eo.nodeid];
                pos += (offsetof(fuse_direntplus, dirent.name) + de.namelen + 7) & ~size_t{7};
            }
            for (auto& [n, k] : counted) c.forget(n, k);
            c.release(FUSE_ROOT_ID, fh, FUSE_RELEASEDIR);
        }
    };

    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) threads.emplace_back(reader, t);
    for (int t = 0; t < 2; ++t) threads.emplace_back(writer, t);
    threads.emplace_back(lister);
    for (auto& th : threads) th.join();

    CHECK(failures.load() == 0);
    CHECK(s->stats().inodes == 1);
    CHECK(s->stats().handles == 0);
}
