// Writing .krun_config.json into an untrusted rootfs (crun-handler/safe_write.h).
#include <doctest/doctest.h>
#include <sys/stat.h>

#include "helpers.h"
#include "safe_write.h"

using namespace krunlet::oci;

namespace {

void each_resolver(void (*body)(Resolver)) {
    for (Resolver r : {Resolver::kOpenat2, Resolver::kWalk, Resolver::kAuto}) {
        CAPTURE(static_cast<int>(r));
        body(r);
    }
}

}  // namespace

TEST_CASE("a plain write creates the file with the requested mode, replacing an old regular file") {
    each_resolver([](Resolver r) {
        TempDir t;
        std::string root = t.path + "/rootfs";
        ::mkdir(root.c_str(), 0755);
        write_text(root + "/.krun_config.json", "old");
        auto fd = open_root(root);
        REQUIRE(fd.ok());
        auto w = write_file_beneath(fd->get(), ".krun_config.json", "{\"new\":1}", 0644, root, r);
        REQUIRE_MESSAGE(w.ok(), w.error().message);
        CHECK(read_text(root + "/.krun_config.json") == "{\"new\":1}");
        struct stat st{};
        REQUIRE(::stat((root + "/.krun_config.json").c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0644);
        // Nested paths work through real directories.
        ::mkdir((root + "/etc").c_str(), 0755);
        REQUIRE(write_file_beneath(fd->get(), "etc/x", "y", 0600, root, r).ok());
        CHECK(read_text(root + "/etc/x") == "y");
    });
}

TEST_CASE("a symlink planted at the file is refused and nothing outside is written") {
    each_resolver([](Resolver r) {
        TempDir t;
        std::string root = t.path + "/rootfs";
        ::mkdir(root.c_str(), 0755);
        std::string victim = t.path + "/victim";
        write_text(victim, "precious");
        REQUIRE(::symlink(victim.c_str(), (root + "/.krun_config.json").c_str()) == 0);
        // A relative one, aimed through .. as well.
        REQUIRE(::symlink("../victim2", (root + "/rel").c_str()) == 0);
        auto fd = open_root(root);
        REQUIRE(fd.ok());
        auto w = write_file_beneath(fd->get(), ".krun_config.json", "evil", 0644, root, r);
        REQUIRE_FALSE(w.ok());
        CHECK(w.error().message.find("it is a symlink") != std::string::npos);
        CHECK(w.error().message.find(root + "/.krun_config.json") != std::string::npos);
        CHECK(read_text(victim) == "precious");
        auto w2 = write_file_beneath(fd->get(), "rel", "evil", 0644, root, r);
        REQUIRE_FALSE(w2.ok());
        CHECK_FALSE(exists_nofollow(t.path + "/victim2"));
    });
}

TEST_CASE("a symlinked directory on the way is refused, absolute or relative") {
    each_resolver([](Resolver r) {
        TempDir t;
        std::string root = t.path + "/rootfs";
        std::string outside = t.path + "/outside";
        ::mkdir(root.c_str(), 0755);
        ::mkdir(outside.c_str(), 0755);
        REQUIRE(::symlink(outside.c_str(), (root + "/etc").c_str()) == 0);
        REQUIRE(::symlink("../outside", (root + "/up").c_str()) == 0);
        auto fd = open_root(root);
        REQUIRE(fd.ok());
        for (const char* p : {"etc/.krun_config.json", "up/.krun_config.json"}) {
            auto w = write_file_beneath(fd->get(), p, "evil", 0644, root, r);
            REQUIRE_FALSE(w.ok());
            CHECK(w.error().message.find("symlink") != std::string::npos);
            CHECK_FALSE(exists_nofollow(outside + "/.krun_config.json"));
        }
    });
}

TEST_CASE("special files and bad paths are refused") {
    TempDir t;
    std::string root = t.path + "/rootfs";
    ::mkdir(root.c_str(), 0755);
    REQUIRE(::mkfifo((root + "/fifo").c_str(), 0644) == 0);
    ::mkdir((root + "/dir").c_str(), 0755);
    auto fd = open_root(root);
    REQUIRE(fd.ok());
    auto f = write_file_beneath(fd->get(), "fifo", "x", 0644, root);
    REQUIRE_FALSE(f.ok());
    CHECK(f.error().message.find("not a regular file") != std::string::npos);
    CHECK_FALSE(write_file_beneath(fd->get(), "dir", "x", 0644, root).ok());
    CHECK_FALSE(write_file_beneath(fd->get(), "../x", "x", 0644, root).ok());
    CHECK_FALSE(write_file_beneath(fd->get(), "/x", "x", 0644, root).ok());
    CHECK_FALSE(exists_nofollow(t.path + "/x"));
}

TEST_CASE("the rootfs itself must not be a symlink") {
    TempDir t;
    ::mkdir((t.path + "/real").c_str(), 0755);
    REQUIRE(::symlink((t.path + "/real").c_str(), (t.path + "/link").c_str()) == 0);
    auto fd = open_root(t.path + "/link");
    REQUIRE_FALSE(fd.ok());
    CHECK(fd.error().message.find("rootfs") != std::string::npos);
}
