// Bundle rewriting (crun-handler/bundle_rewrite.h, launch_dir.h).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "bundle_rewrite.h"
#include "helpers.h"

using namespace krunlet::oci;
using json = nlohmann::json;

namespace {

json sample_config() {
    return json::parse(R"({
      "ociVersion": "1.0.2",
      "process": {"terminal": true, "user": {"uid": 1000, "gid": 1000}, "args": ["sh", "-c", "exit 3"],
                  "env": ["PATH=/bin", "SECRET=x"], "cwd": "/work"},
      "root": {"path": "rootfs"},
      "hostname": "h",
      "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                 {"destination": "/.krunlet", "type": "tmpfs", "source": "tmpfs"}],
      "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "namespaces": [{"type": "pid"}, {"type": "mount"}]}
    })");
}

json annotated(json c, const json& extra = json::object()) {
    c["annotations"] = {{"run.oci.handler", "krun"}};
    for (auto& [k, v] : extra.items()) c["annotations"][k] = v;
    return c;
}

// A bundle with a rootfs and config.json, and an "installation" in which a
// real shared library stands in for libkrun.so.1, with a kernel file next to it.
struct Fixture {
    TempDir t;
    std::string bundle = t.path + "/bundle";
    std::string rootfs = bundle + "/rootfs";
    InstalledFiles installed;

    Fixture() {
        std::filesystem::create_directories(rootfs);
        std::filesystem::create_directories(t.path + "/inst/lib/krunlet");
        installed.launcher = KRUNLET_TEST_LAUNCHER;
        auto interp = elf_interpreter(installed.launcher);
        REQUIRE(interp.ok());
        auto deps = list_dependencies(*interp, installed.launcher);
        REQUIRE(deps.ok());
        std::string stand_in;
        for (auto& [name, path] : *deps)
            if (name.starts_with("libstdc++")) stand_in = path;
        REQUIRE(!stand_in.empty());
        installed.libkrun = t.path + "/inst/lib/libkrun.so.1";
        std::filesystem::copy_file(stand_in, installed.libkrun);
        write_text(t.path + "/inst/lib/krunlet/vmlinux", "kernel");
    }
    void write_config(const json& c) { write_text(bundle + "/config.json", c.dump(2)); }
    PrepareOptions options(bool always = false) {
        PrepareOptions o;
        o.always = always;
        o.locate = [this]() -> krunlet::Result<InstalledFiles> { return installed; };
        return o;
    }
};

}  // namespace

TEST_CASE("rewrite_config: /dev/kvm, its cgroup rule, the launch mount and the launcher args") {
    LauncherSettings s{"ld-linux-x86-64.so.2", 4};
    auto r = rewrite_config(annotated(sample_config(), {{"krun.cpus", "2"}, {"krun.ram_mib", "1024"}}), "/b/l", s);
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    const json& c = *r;
    json kvm = {{"path", "/dev/kvm"}, {"type", "c"}, {"major", 10}, {"minor", 232},
                {"fileMode", 0666}, {"uid", 0}, {"gid", 0}};
    REQUIRE(c["linux"]["devices"].size() == 1);
    CHECK(c["linux"]["devices"][0] == kvm);
    const json& rules = c["linux"]["resources"]["devices"];
    REQUIRE(rules.size() == 2);
    CHECK(rules[1] == json{{"allow", true}, {"type", "c"}, {"major", 10}, {"minor", 232}, {"access", "rwm"}});
    // The user's own /.krunlet mount is replaced by the launch directory.
    int launch_mounts = 0;
    for (auto& m : c["mounts"]) {
        if (m["destination"] != "/.krunlet") continue;
        ++launch_mounts;
        CHECK(m["type"] == "bind");
        CHECK(m["source"] == "/b/l");
        CHECK(m["options"] == json::array({"rbind", "ro", "nosuid", "nodev"}));
    }
    CHECK(launch_mounts == 1);
    CHECK(c["mounts"].size() == 2);
    CHECK(c["process"]["args"] == json::array({"/.krunlet/lib/ld-linux-x86-64.so.2", "--library-path",
                                               "/.krunlet/lib", "/.krunlet/bin/krunlet-launch", "--log-level",
                                               "4", "--cpus", "2", "--ram-mib", "1024"}));
    // What the VMM process keeps from the original.
    CHECK(c["process"]["terminal"] == true);
    CHECK(c["process"]["user"] == sample_config()["process"]["user"]);
    CHECK(c["process"]["env"] == sample_config()["process"]["env"]);
    CHECK(c["annotations"]["org.krunlet.oci.rewritten"] == "1");
    CHECK(c["annotations"]["run.oci.handler"] == "krun");
}

TEST_CASE("rewrite_config: small RAM is ignored, bad annotations are errors, no duplicate /dev/kvm") {
    LauncherSettings s{"ld.so", 1};
    json c = annotated(sample_config(), {{"krun.ram_mib", "128"}});
    c["linux"]["devices"] = json::array({{{"path", "/dev/kvm"}, {"type", "c"}, {"major", 10}, {"minor", 232}}});
    c.erase("mounts");
    auto r = rewrite_config(c, "/l", s);
    REQUIRE(r.ok());
    CHECK((*r)["linux"]["devices"].size() == 1);
    CHECK((*r)["process"]["args"].size() == 6);
    CHECK((*r)["mounts"].size() == 1);
    for (const char* bad : {"0", "17", "two", "-1", ""}) {
        auto e = rewrite_config(annotated(sample_config(), {{"krun.cpus", bad}}), "/l", s);
        REQUIRE_FALSE(e.ok());
        CHECK(e.error().message.find("krun.cpus") != std::string::npos);
    }
    json noproc = sample_config();
    noproc.erase("process");
    CHECK_FALSE(rewrite_config(noproc, "/l", s).ok());
    CHECK_FALSE(rewrite_config(json::array(), "/l", s).ok());
}

TEST_CASE("an unannotated bundle passes through byte for byte, without asking where krunlet is installed") {
    Fixture f;
    std::string text = "{ \"ociVersion\":\"1.0.2\",\n  \"process\": {\"args\": [\"true\"]}, \"root\": {\"path\": \"rootfs\"} }";
    write_text(f.bundle + "/config.json", text);
    PrepareOptions o;
    o.locate = []() -> krunlet::Result<InstalledFiles> { FAIL("locate called"); return krunlet::make_error(1, ""); };
    auto r = prepare_bundle(f.bundle, o);
    REQUIRE(r.ok());
    CHECK(*r == Prepared::kPassThrough);
    CHECK(read_text(f.bundle + "/config.json") == text);
    CHECK_FALSE(exists_nofollow(f.rootfs + "/.krun_config.json"));
    CHECK_FALSE(exists_nofollow(f.bundle + "/krunlet-launch"));
    CHECK_FALSE(exists_nofollow(f.bundle + "/krunlet-original-config.json"));
    // Broken JSON or a missing bundle: left for runc to report.
    write_text(f.bundle + "/config.json", "{not json");
    CHECK(*prepare_bundle(f.bundle, o) == Prepared::kPassThrough);
    CHECK(*prepare_bundle(f.t.path + "/missing", o) == Prepared::kPassThrough);
    // ...but as `krun` (always) they are errors.
    auto e = prepare_bundle(f.bundle, f.options(true));
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().message.find("not valid JSON") != std::string::npos);
}

TEST_CASE("an annotated bundle is rewritten; the original goes to .krun_config.json; re-creation starts over") {
    Fixture f;
    json original = annotated(sample_config());
    f.write_config(original);
    const std::string original_text = read_text(f.bundle + "/config.json");
    auto r = prepare_bundle(f.bundle, f.options());
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    CHECK(*r == Prepared::kRewritten);
    CHECK(read_text(f.rootfs + "/.krun_config.json") == original_text);
    CHECK(read_text(f.bundle + "/krunlet-original-config.json") == original_text);
    json c = json::parse(read_text(f.bundle + "/config.json"));
    CHECK(c["annotations"].contains("org.krunlet.oci.rewritten"));
    const std::string ld = f.bundle + "/krunlet-launch";
    CHECK(c["mounts"].back()["source"] == ld);
    std::string loader = c["process"]["args"][0].get<std::string>();
    REQUIRE(loader.starts_with("/.krunlet/lib/"));
    for (const std::string& p : std::vector<std::string>{"/bin/krunlet-launch", "/lib/libkrun.so.1", "/lib/libc.so.6", "/lib/krunlet/vmlinux",
                          "/lib/" + loader.substr(14)})
        CHECK_MESSAGE(std::filesystem::is_regular_file(ld + p), p);
    CHECK(read_text(ld + "/lib/krunlet/vmlinux") == "kernel");

    // podman restart: create again from the same (rewritten) bundle.
    std::string first = read_text(f.bundle + "/config.json");
    auto again = prepare_bundle(f.bundle, f.options());
    REQUIRE(again.ok());
    CHECK(read_text(f.bundle + "/config.json") == first);
    CHECK(read_text(f.rootfs + "/.krun_config.json") == original_text);
}

TEST_CASE("as `krun`, an unannotated bundle is rewritten too") {
    Fixture f;
    f.write_config(sample_config());
    auto r = prepare_bundle(f.bundle, f.options(true));
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    CHECK(*r == Prepared::kRewritten);
}

TEST_CASE("a symlink planted in the image stops the rewrite, and config.json stays as it was") {
    Fixture f;
    f.write_config(annotated(sample_config()));
    const std::string before = read_text(f.bundle + "/config.json");
    std::string victim = f.t.path + "/host-file";
    write_text(victim, "host");
    REQUIRE(::symlink(victim.c_str(), (f.rootfs + "/.krun_config.json").c_str()) == 0);
    auto r = prepare_bundle(f.bundle, f.options());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("symlink") != std::string::npos);
    CHECK(read_text(victim) == "host");
    CHECK(read_text(f.bundle + "/config.json") == before);
}

TEST_CASE("clear errors: no installation, no rootfs, not an ELF") {
    Fixture f;
    f.write_config(annotated(sample_config()));
    PrepareOptions o;
    o.locate = []() -> krunlet::Result<InstalledFiles> {
        return krunlet::make_error(ENOENT, "the launcher /x/krunlet-launch is missing");
    };
    auto r = prepare_bundle(f.bundle, o);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("krunlet-launch is missing") != std::string::npos);

    std::filesystem::remove_all(f.rootfs);
    auto nr = prepare_bundle(f.bundle, f.options());
    REQUIRE_FALSE(nr.ok());
    CHECK(nr.error().message.find("rootfs") != std::string::npos);

    write_text(f.t.path + "/notelf", "hello world, this is not an ELF file at all.........................");
    auto e = elf_interpreter(f.t.path + "/notelf");
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().message.find("not a 64-bit ELF") != std::string::npos);

    auto loc = locate_installed(f.t.path + "/bin/krun", "../lib");
    REQUIRE_FALSE(loc.ok());
    CHECK(loc.error().message.find("krunlet-launch") != std::string::npos);
}
