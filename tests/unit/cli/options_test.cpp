// krunlet's command line (cli/options.h): --volume forms and errors, the
// cache flags, and that ROOTFS and COMMAND survive repeatable options.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <variant>
#include <vector>

#include "cli/options.h"

using namespace krunlet::cli;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/krunlet-cli-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::string cmd = "rm -rf '" + path + "'";
        [[maybe_unused]] int r = std::system(cmd.c_str());
    }
};

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

RunOptions parse_ok(std::vector<std::string> args) {
    args.insert(args.begin(), {"krunlet", "run"});
    auto r = parse_command_line(args);
    INFO("stderr: " << r.err);
    REQUIRE(r.run.has_value());
    return *r.run;
}

// The error text; the exit code must be the runtime's own 125.
std::string parse_error(std::vector<std::string> args) {
    args.insert(args.begin(), {"krunlet", "run"});
    auto r = parse_command_line(args);
    REQUIRE_FALSE(r.run.has_value());
    CHECK(r.exit_code == 125);
    CHECK_FALSE(r.err.empty());
    return r.err;
}

std::string volume_error(const std::string& spec) {
    auto v = parse_volume(spec);
    REQUIRE(std::holds_alternative<std::string>(v));
    const std::string& msg = std::get<std::string>(v);
    CHECK(contains(msg, "--volume " + spec));
    return msg;
}

}  // namespace

TEST_CASE("--volume HOST:GUEST, HOST:GUEST:ro and HOST:GUEST:rw") {
    TempDir host;
    auto rw = parse_volume(host.path + ":/data");
    REQUIRE(std::holds_alternative<Volume>(rw));
    CHECK(std::get<Volume>(rw).host == host.path);
    CHECK(std::get<Volume>(rw).guest == "/data");
    CHECK_FALSE(std::get<Volume>(rw).read_only);

    auto ro = parse_volume(host.path + ":/srv/deep/dir:ro");
    REQUIRE(std::holds_alternative<Volume>(ro));
    CHECK(std::get<Volume>(ro).guest == "/srv/deep/dir");
    CHECK(std::get<Volume>(ro).read_only);

    auto explicit_rw = parse_volume(host.path + ":/x:rw");
    REQUIRE(std::holds_alternative<Volume>(explicit_rw));
    CHECK_FALSE(std::get<Volume>(explicit_rw).read_only);

    // A relative HOST is the caller's business (stat resolves it); "." works.
    auto dot = parse_volume(".:/cwd");
    CHECK(std::holds_alternative<Volume>(dot));
}

TEST_CASE("--volume errors name the flag and the fix") {
    TempDir host;
    std::string file = host.path + "/file";
    std::ofstream(file) << "x";
    CHECK(contains(volume_error("/no/such/dir:/data"), "No such file or directory"));
    CHECK(contains(volume_error("/no/such/dir:/data"), "HOST must be an existing directory"));
    CHECK(contains(volume_error(file + ":/data"), "is not a directory"));
    CHECK(contains(volume_error(host.path), "expected HOST:GUEST"));
    CHECK(contains(volume_error(host.path + ":/a:ro:extra"), "expected HOST:GUEST"));
    CHECK(contains(volume_error(host.path + ":/a:rx"), "unknown option 'rx'"));
    CHECK(contains(volume_error(host.path + ":/a:"), "unknown option ''"));
    CHECK(contains(volume_error(":/data"), "HOST is empty"));
    CHECK(contains(volume_error(host.path + ":data"), "must be absolute"));
    CHECK(contains(volume_error(host.path + ":"), "must be absolute"));
    CHECK(contains(volume_error(host.path + ":/"), "may not be /"));
    CHECK(contains(volume_error(host.path + "://"), "may not be /"));
    CHECK(contains(volume_error(host.path + ":/a/../b"), "\"..\""));
    CHECK(contains(volume_error(host.path + ":/a/./b"), "\".\""));
    CHECK(contains(volume_error(host.path + ":/" + std::string(5000, 'a')), "longer than 4095"));
}

TEST_CASE("generated volume tags fit virtio-fs's 36 bytes") {
    CHECK(volume_tag(0) == "krunlet-vol0");
    CHECK(volume_tag(15) == "krunlet-vol15");
    CHECK(volume_tag(size_t(-1)).size() <= 36);
}

TEST_CASE("repeatable --volume keeps ROOTFS and COMMAND apart") {
    TempDir a, b;
    RunOptions o = parse_ok({"--volume", a.path + ":/a", "-v", b.path + ":/b:ro", "/rootfs", "--", "/bin/sh", "-c",
                             "echo --volume x"});
    REQUIRE(o.volumes.size() == 2);
    CHECK(o.volumes[0].host == a.path);
    CHECK(o.volumes[0].guest == "/a");
    CHECK_FALSE(o.volumes[0].read_only);
    CHECK(o.volumes[1].host == b.path);
    CHECK(o.volumes[1].read_only);
    CHECK(o.rootfs == "/rootfs");
    CHECK(o.command == std::vector<std::string>{"/bin/sh", "-c", "echo --volume x"});

    // The last option right before ROOTFS is a repeatable one: ROOTFS is not
    // taken as a second value.
    RunOptions p = parse_ok({"--env", "A=1", "--volume", a.path + ":/a", "/rootfs", "/bin/true"});
    CHECK(p.env == std::vector<std::string>{"A=1"});
    CHECK(p.volumes.size() == 1);
    CHECK(p.rootfs == "/rootfs");
    CHECK(p.command == std::vector<std::string>{"/bin/true"});

    // Options after ROOTFS belong to the command.
    RunOptions q = parse_ok({"/rootfs", "--volume", "x"});
    CHECK(q.volumes.empty());
    CHECK(q.command == std::vector<std::string>{"--volume", "x"});
}

TEST_CASE("a bad --volume on the command line is exit 125 with a message naming it") {
    std::string err = parse_error({"--volume", "/no/such/dir:/data", "/rootfs", "--", "true"});
    CHECK(contains(err, "krunlet: --volume /no/such/dir:/data"));
    CHECK(contains(parse_error({"--volume", "/tmp:relative", "/rootfs"}), "must be absolute"));
    CHECK(contains(parse_error({"--volume", "/rootfs"}), "rootfs"));  // ROOTFS missing: CLI11 says so
}

TEST_CASE("cache flags: policy words, timeouts as seconds, unset by default") {
    RunOptions d = parse_ok({"/rootfs", "true"});
    CHECK_FALSE(d.fs_cache.has_value());
    CHECK_FALSE(d.fs_entry_timeout.has_value());
    CHECK_FALSE(d.fs_attr_timeout.has_value());

    for (const char* p : {"never", "auto", "always"}) {
        RunOptions o = parse_ok({"--fs-cache", p, "/rootfs", "true"});
        CHECK(o.fs_cache == std::string(p));
    }
    RunOptions t = parse_ok({"--fs-entry-timeout", "0.25", "--fs-attr-timeout", "86400", "/rootfs", "true"});
    CHECK(t.fs_entry_timeout == std::string("0.250000000"));
    CHECK(t.fs_attr_timeout == std::string("86400.000000000"));
    CHECK(parse_ok({"--fs-attr-timeout", "0", "/r", "true"}).fs_attr_timeout == std::string("0.000000000"));
    CHECK(parse_ok({"--fs-attr-timeout", "31536000", "/r", "true"}).fs_attr_timeout ==
          std::string("31536000.000000000"));

    CHECK(contains(parse_error({"--fs-cache", "sometimes", "/rootfs", "true"}), "--fs-cache"));
    CHECK(contains(parse_error({"--fs-entry-timeout", "-1", "/rootfs", "true"}), "--fs-entry-timeout"));
    CHECK(contains(parse_error({"--fs-attr-timeout", "31536001", "/rootfs", "true"}), "--fs-attr-timeout"));
    CHECK(contains(parse_error({"--fs-attr-timeout", "soon", "/rootfs", "true"}), "--fs-attr-timeout"));
    CHECK(contains(parse_error({"--fs-entry-timeout", "nan", "/rootfs", "true"}), "--fs-entry-timeout"));
}

TEST_CASE("other flags still parse; --help exits 0 and lists the new flags") {
    RunOptions o = parse_ok({"--cpus", "2", "--memory", "256", "--workdir", "/w", "--boot-trace", "/rootfs", "--",
                             "/bin/echo", "hi"});
    CHECK(o.cpus == 2);
    CHECK(o.memory_mib == 256);
    CHECK(o.workdir == "/w");
    CHECK(o.boot_trace);
    CHECK(o.command == std::vector<std::string>{"/bin/echo", "hi"});
    CHECK(contains(parse_error({"--env", "NOEQUALS", "/rootfs", "true"}), "--env NOEQUALS is not KEY=VALUE"));
    CHECK(contains(parse_error({"--cpus", "17", "/rootfs", "true"}), "--cpus"));

    auto help = parse_command_line({"krunlet", "run", "--help"});
    CHECK_FALSE(help.run.has_value());
    CHECK(help.exit_code == 0);
    for (const char* flag : {"--volume", "--fs-cache", "--fs-entry-timeout", "--fs-attr-timeout"})
        CHECK(contains(help.out, flag));
}

TEST_CASE("--net slirp, none and passt:PATH; anything else names the forms") {
    CHECK(parse_ok({"/rootfs"}).net == "slirp");
    CHECK(parse_ok({"--net", "none", "/rootfs"}).net == "none");
    RunOptions p = parse_ok({"--net", "passt:/run/user/1000/passt.sock", "/rootfs", "true"});
    CHECK(p.net == "passt");
    CHECK(p.net_socket == "/run/user/1000/passt.sock");
    CHECK(p.command == std::vector<std::string>{"true"});
    for (const char* bad : {"tap", "passt", "passt:", "slirp:x"}) {
        CAPTURE(bad);
        std::string e = parse_error({"--net", bad, "/rootfs"});
        CHECK(contains(e, std::string("--net ") + bad));
        CHECK(contains(e, "passt:PATH"));
    }
    CHECK(contains(parse_error({"--net", "passt:" + std::string(108, 'x'), "/rootfs"}), "1 to 107 bytes"));
    auto help = parse_command_line({"krunlet", "run", "--help"});
    CHECK(contains(help.out, "passt:PATH"));
}
