// The OCI command line as podman/conmon pass it (crun-handler/oci_args.h).
#include <doctest/doctest.h>

#include "oci_args.h"

using krunlet::oci::OciArgs;
using krunlet::oci::parse_oci_args;
using V = std::vector<std::string>;

static OciArgs ok(const V& argv) {
    auto r = parse_oci_args(argv);
    REQUIRE(std::holds_alternative<OciArgs>(r));
    return std::get<OciArgs>(r);
}

TEST_CASE("global options before the subcommand are forwarded unchanged") {
    V argv = {"krun", "--root", "/run/x", "--log=/tmp/l", "--log-format", "json", "--systemd-cgroup", "--debug",
              "create", "--bundle", "/b", "--pid-file", "/p", "ctr1"};
    OciArgs a = ok(argv);
    CHECK(a.subcommand == "create");
    CHECK(a.bundle == "/b");
    CHECK(a.container_id == "ctr1");
    CHECK(a.forward == argv);
    CHECK(a.forward[a.subcommand_index] == "create");
    REQUIRE(a.log_path);
    CHECK(*a.log_path == "/tmp/l");
    CHECK(a.log_format == "json");
}

TEST_CASE("--bundle forms: --bundle X, --bundle=X, -b X, -b=X, -bundle X; default is the cwd") {
    CHECK(ok({"krun", "create", "--bundle=/b1", "id"}).bundle == "/b1");
    CHECK(ok({"krun", "run", "-b", "/b2", "id"}).bundle == "/b2");
    CHECK(ok({"krun", "run", "-b=/b3", "id"}).bundle == "/b3");
    CHECK(ok({"krun", "create", "-bundle", "/b4", "id"}).bundle == "/b4");
    OciArgs d = ok({"krun", "create", "id"});
    CHECK(d.bundle == ".");
    CHECK(d.container_id == "id");
    // The id may come first, options after it (urfave/cli allows both).
    OciArgs late = ok({"krun", "create", "--console-socket", "/s", "id", "--bundle", "/b5"});
    CHECK(late.container_id == "id");
    CHECK(late.bundle == "/b5");
}

TEST_CASE("--runtime-path is krun's own: consumed and not forwarded") {
    OciArgs a = ok({"krun", "--runtime-path", "/usr/sbin/runc", "--root", "/r", "state", "c"});
    REQUIRE(a.runtime_path);
    CHECK(*a.runtime_path == "/usr/sbin/runc");
    CHECK(a.forward == V{"krun", "--root", "/r", "state", "c"});
    OciArgs b = ok({"krun", "--runtime-path=/x/crun", "kill", "c", "KILL"});
    CHECK(*b.runtime_path == "/x/crun");
    CHECK(b.forward == V{"krun", "kill", "c", "KILL"});
}

TEST_CASE("unknown global options and unknown subcommands pass through") {
    V argv = {"krun", "--some-new-flag", "--rootless=true", "--cgroup-manager", "systemd", "checkpoint",
              "--image-path", "/img", "c"};
    OciArgs a = ok(argv);
    CHECK(a.subcommand == "checkpoint");
    CHECK(a.container_id == "c");
    CHECK(a.forward == argv);
    OciArgs p = ok({"krun", "ps", "--format", "json", "c"});
    CHECK(p.container_id == "c");
}

TEST_CASE("--version and no subcommand") {
    OciArgs v = ok({"krun", "--version"});
    CHECK(v.version);
    CHECK(v.subcommand.empty());
    CHECK(v.forward == V{"krun", "--version"});
    CHECK(ok({"krun", "features"}).subcommand == "features");
}

TEST_CASE("a missing value is a clear error") {
    auto r = parse_oci_args({"krun", "--root"});
    REQUIRE(std::holds_alternative<std::string>(r));
    CHECK(std::get<std::string>(r).find("--root needs a value") != std::string::npos);
    auto b = parse_oci_args({"krun", "create", "c", "--bundle"});
    REQUIRE(std::holds_alternative<std::string>(b));
    CHECK(std::get<std::string>(b).find("needs a value") != std::string::npos);
    auto e = parse_oci_args({"krun", "--runtime-path=", "state", "c"});
    REQUIRE(std::holds_alternative<std::string>(e));
}

TEST_CASE("after --, everything is positional") {
    OciArgs a = ok({"krun", "exec", "c", "--", "sh", "-b", "x"});
    CHECK(a.container_id == "c");
    CHECK(a.bundle == ".");
}
