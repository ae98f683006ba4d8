// /.krun_config.json parsing, the host's control messages, and the merge of
// the two (init/config.h).
#include <sys/mount.h>
#include <sys/resource.h>

#include <doctest/doctest.h>

#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <variant>

#include "init/config.h"

using namespace krunlet::init;

namespace {

std::string read_sample(const char* name) {
    std::ifstream in(std::string(KRUNLET_INIT_TEST_DATA) + "/" + name);
    REQUIRE_MESSAGE(in.good(), "missing test data file ", name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

ImageConfig parse_ok(const std::string& json) {
    auto r = parse_image_config(json);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? std::string() : r.error().message));
    return std::move(r).value();
}

std::string parse_error(const std::string& json) {
    auto r = parse_image_config(json);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == EINVAL);
    return r.error().message;
}

ExecMessage exec_ok(const std::string& json) {
    auto r = parse_control_message(json);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? std::string() : r.error().message));
    REQUIRE(std::holds_alternative<ExecMessage>(*r));
    return std::get<ExecMessage>(std::move(r).value());
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("a podman OCI config.json gives args, env, cwd, user, rlimits, terminal, hostname and tmpfs") {
    ImageConfig c = parse_ok(read_sample("podman_config.json"));
    CHECK(c.args == std::vector<std::string>{"/usr/bin/python3", "-m", "http.server", "8080"});
    REQUIRE(c.env.size() == 7);
    CHECK(c.env[0] == "PATH=/usr/local/bin:/usr/bin:/bin");
    CHECK(c.env[6] == "HOME=/home/app");
    CHECK(c.cwd == "/srv/app");
    REQUIRE(c.user.has_value());
    CHECK(c.user->uid == 1000);
    CHECK(c.user->gid == 1000);
    CHECK(c.user->additional_gids == std::vector<gid_t>{10, 1000});
    REQUIRE(c.user->umask.has_value());
    CHECK(*c.user->umask == 022);
    CHECK(c.docker_user.empty());
    REQUIRE(c.rlimits.size() == 2);
    CHECK(c.rlimits[0].resource == RLIMIT_NOFILE);
    CHECK(c.rlimits[0].soft == 1048576);
    CHECK(c.rlimits[0].hard == 1048576);
    CHECK(c.rlimits[1].resource == RLIMIT_NPROC);
    CHECK(c.terminal);
    CHECK(c.hostname == "5f3c2a1b9d7e");

    // Only the tmpfs entries, in order; the others (proc, bind, cgroup...) are the host's business.
    REQUIRE(c.tmpfs.size() == 3);
    CHECK(c.tmpfs[0].destination == "/dev");
    CHECK(c.tmpfs[0].flags == (MS_NOSUID | MS_STRICTATIME));
    CHECK(c.tmpfs[0].data == "mode=755,size=65536k");
    CHECK(c.tmpfs[0].has_mode);
    CHECK_FALSE(c.tmpfs[0].copy_up);
    CHECK(c.tmpfs[1].destination == "/var/cache/app");
    CHECK(c.tmpfs[1].flags == (MS_NOSUID | MS_NODEV));
    CHECK(c.tmpfs[1].data == "size=128m");
    CHECK(c.tmpfs[1].copy_up);
    CHECK_FALSE(c.tmpfs[1].has_mode);
    CHECK(c.tmpfs[2].destination == "/run/secrets");
    CHECK(c.tmpfs[2].flags == (MS_RDONLY | MS_NOEXEC));
    CHECK(c.tmpfs[2].data == "mode=0700,uid=1000");
}

TEST_CASE("an empty object is a valid config with nothing in it") {
    ImageConfig c = parse_ok("{}");
    CHECK(c.args.empty());
    CHECK(c.env.empty());
    CHECK(c.cwd.empty());
    CHECK_FALSE(c.user.has_value());
    CHECK(c.rlimits.empty());
    CHECK_FALSE(c.terminal);
    CHECK(c.hostname.empty());
    CHECK(c.tmpfs.empty());
}

TEST_CASE("Docker-style fields at the top level") {
    ImageConfig c = parse_ok(R"({"Entrypoint":["/docker-entrypoint.sh"],"Cmd":["nginx","-g","daemon off;"],
                                 "Env":["PATH=/usr/bin","NGINX_VERSION=1.25.3"],"WorkingDir":"/usr/share/nginx",
                                 "User":"101:101"})");
    CHECK(c.args == std::vector<std::string>{"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"});
    CHECK(c.env == std::vector<std::string>{"PATH=/usr/bin", "NGINX_VERSION=1.25.3"});
    CHECK(c.cwd == "/usr/share/nginx");
    CHECK_FALSE(c.user.has_value());
    CHECK(c.docker_user == "101:101");
}

TEST_CASE("Docker-style fields under \"config\", with null meaning unset") {
    ImageConfig c = parse_ok(R"({"architecture":"amd64","os":"linux",
                                 "config":{"Entrypoint":null,"Cmd":["sh"],"Env":null,"WorkingDir":"","User":""}})");
    CHECK(c.args == std::vector<std::string>{"sh"});
    CHECK(c.env.empty());
    CHECK(c.cwd.empty());
    CHECK(c.docker_user.empty());
}

TEST_CASE("Docker's shell-form string Cmd runs through /bin/sh -c") {
    ImageConfig c = parse_ok(R"({"Cmd":"echo hello && sleep 1"})");
    CHECK(c.args == std::vector<std::string>{"/bin/sh", "-c", "echo hello && sleep 1"});
    // Found by fuzz_init_config (regressions/fuzz_init_config/shell_form_cmd_with_nul): a NUL
    // in the string form is refused as it is in the array form.
    CHECK(parse_error(R"({"Cmd":"echo a\u0000b"})").find("Cmd contains a NUL byte") != std::string::npos);
    CHECK(parse_error(R"({"config":{"Entrypoint":"x\u0000"}})").find("Entrypoint contains a NUL byte") !=
          std::string::npos);
}

TEST_CASE("OCI process fields win over Docker-style ones; Docker fills what OCI leaves out") {
    ImageConfig c = parse_ok(R"({"process":{"args":["/bin/true"],"env":["A=1"]},
                                 "Cmd":["/bin/false"],"Env":["B=2"],"WorkingDir":"/work","User":"7"})");
    CHECK(c.args == std::vector<std::string>{"/bin/true"});
    CHECK(c.env == std::vector<std::string>{"A=1"});
    CHECK(c.cwd == "/work");
    CHECK(c.docker_user == "7");

    ImageConfig empty_args = parse_ok(R"({"process":{"args":[]},"Cmd":["/bin/false"]})");
    CHECK(empty_args.args == std::vector<std::string>{"/bin/false"});
}

TEST_CASE("broken JSON is an error that says so") {
    std::string m = parse_error(R"({"process": {"args": ["/bin/sh",]}})");
    CHECK(contains(m, "not valid JSON"));
    CHECK(contains(m, "parse error"));
    CHECK(contains(parse_error(""), "not valid JSON"));
    CHECK(contains(parse_error("{\"process\":"), "not valid JSON"));
    CHECK(contains(parse_error("[1,2,3]"), "must hold a JSON object"));
}

TEST_CASE("wrong types name the field and what it should be") {
    CHECK(contains(parse_error(R"({"process":"sh"})"), "process must be an object, not string"));
    CHECK(contains(parse_error(R"({"process":{"args":"sh"}})"), "process.args must be an array of strings, not string"));
    CHECK(contains(parse_error(R"({"process":{"args":["sh",3]}})"), "process.args[1] must be a string, not number"));
    CHECK(contains(parse_error(R"({"process":{"env":["NOEQUALS"]}})"),
                   "process.env[0] is \"NOEQUALS\"; an environment entry must look like KEY=VALUE"));
    CHECK(contains(parse_error(R"({"process":{"env":["=value"]}})"), "must look like KEY=VALUE"));
    CHECK(contains(parse_error(R"({"process":{"cwd":5}})"), "process.cwd must be a string, not number"));
    CHECK(contains(parse_error(R"({"process":{"cwd":"relative/dir"}})"), "must be an absolute path"));
    CHECK(contains(parse_error(R"({"process":{"user":{"uid":-1}}})"), "process.user.uid must not be negative"));
    CHECK(contains(parse_error(R"({"process":{"user":{"uid":"root"}}})"),
                   "process.user.uid must be a non-negative integer, not string"));
    CHECK(contains(parse_error(R"({"process":{"user":{"uid":4294967295}}})"), "above the largest allowed value"));
    CHECK(contains(parse_error(R"({"process":{"user":{"additionalGids":[1,"x"]}}})"),
                   "process.user.additionalGids[1] must be a non-negative integer"));
    CHECK(contains(parse_error(R"({"process":{"terminal":"yes"}})"), "process.terminal must be true or false"));
    CHECK(contains(parse_error(R"({"hostname":["a"]})"), "hostname must be a string, not array"));
    CHECK(contains(parse_error(R"({"mounts":{}})"), "mounts must be an array of objects"));
    CHECK(contains(parse_error(R"({"mounts":[{"type":"tmpfs"}]})"), "mounts[0] (tmpfs) has no \"destination\""));
    CHECK(contains(parse_error(R"({"mounts":[{"type":"tmpfs","destination":"tmp"}]})"), "must be an absolute path"));
    CHECK(contains(parse_error(R"({"mounts":[{"type":"tmpfs","destination":"/t","options":"size=1m"}]})"),
                   "mounts[0].options must be an array of strings"));
    CHECK(contains(parse_error(R"({"Cmd":[1]})"), "Cmd[0] must be a string, not number"));
    CHECK(contains(parse_error(R"({"config":{"Env":"A=1"}})"), "Env must be an array of strings"));
}

TEST_CASE("OCI rlimits: names, values and errors") {
    ImageConfig c = parse_ok(R"({"process":{"rlimits":[
        {"type":"RLIMIT_CORE","soft":0,"hard":18446744073709551615},
        {"type":"RLIMIT_MEMLOCK","soft":65536,"hard":65536}]}})");
    REQUIRE(c.rlimits.size() == 2);
    CHECK(c.rlimits[0].resource == RLIMIT_CORE);
    CHECK(c.rlimits[0].soft == 0);
    CHECK(c.rlimits[0].hard == std::numeric_limits<uint64_t>::max());
    CHECK(c.rlimits[1].resource == RLIMIT_MEMLOCK);

    CHECK(contains(parse_error(R"({"process":{"rlimits":[{"type":"RLIMIT_BOGUS","soft":1,"hard":1}]}})"),
                   "unknown resource limit \"RLIMIT_BOGUS\""));
    CHECK(contains(parse_error(R"({"process":{"rlimits":[{"soft":1,"hard":1}]}})"), "has no \"type\""));
    CHECK(contains(parse_error(R"({"process":{"rlimits":[{"type":"RLIMIT_NOFILE","hard":1}]}})"),
                   "has no \"soft\" value"));
    CHECK(contains(parse_error(R"({"process":{"rlimits":[{"type":"RLIMIT_NOFILE","soft":9,"hard":1}]}})"),
                   "may not exceed the hard one"));
    CHECK(contains(parse_error(R"({"process":{"rlimits":[{"type":"RLIMIT_NOFILE","soft":-1,"hard":1}]}})"),
                   "must not be negative"));
    CHECK(contains(parse_error(R"({"process":{"rlimits":{"type":"RLIMIT_NOFILE"}}})"),
                   "process.rlimits must be an array"));
}

TEST_CASE("rlimit names: every RLIMIT_* maps both ways") {
    for (int r = 0; r < RLIMIT_NLIMITS; ++r) {
        std::string name = rlimit_name(r);
        auto back = rlimit_from_name(name);
        REQUIRE(back.ok());
        CHECK(*back == r);
    }
    CHECK(*rlimit_from_name("nofile") == RLIMIT_NOFILE);
    CHECK(rlimit_name(99) == "RLIMIT_99");
    CHECK_FALSE(rlimit_from_name("").ok());
}

TEST_CASE("the host's rlimit strings, ID=CUR:MAX") {
    auto r = parse_rlimit_spec("7=1024:4096");
    REQUIRE(r.ok());
    CHECK(r->resource == RLIMIT_NOFILE);
    CHECK(r->soft == 1024);
    CHECK(r->hard == 4096);

    auto big = parse_rlimit_spec("4=0:18446744073709551615");
    REQUIRE(big.ok());
    CHECK(big->resource == RLIMIT_CORE);
    CHECK(big->hard == std::numeric_limits<uint64_t>::max());

    auto named = parse_rlimit_spec("RLIMIT_STACK=8388608:unlimited");
    REQUIRE(named.ok());
    CHECK(named->resource == RLIMIT_STACK);
    CHECK(named->hard == RLIM_INFINITY);

    auto err = [](const char* s) {
        auto e = parse_rlimit_spec(s);
        REQUIRE_FALSE(e.ok());
        CHECK(contains(e.error().message, "expected ID=CUR:MAX"));
        return e.error().message;
    };
    CHECK(contains(err("7"), "no '='"));
    CHECK(contains(err("7=1024"), "no ':'"));
    CHECK(contains(err("16=1:2"), "out of range 0..15"));
    CHECK(contains(err("-1=1:2"), "out of range"));
    CHECK(contains(err("7=x:2"), "CUR \"x\" is not a decimal number"));
    CHECK(contains(err("7=1:"), "MAX \"\" is not a decimal number"));
    CHECK(contains(err("7=1:2:3"), "MAX \"2:3\""));
    CHECK(contains(err("7=18446744073709551616:1"), "CUR"));
    CHECK(contains(err("7=5:4"), "CUR is above MAX"));
    CHECK(contains(err("RLIMIT_NOPE=1:2"), "unknown resource limit"));
}

TEST_CASE("tmpfs options: flags, data, copy-up and the words that are dropped") {
    TmpfsMount m = parse_tmpfs_options("/data", {"rw", "rprivate", "nosuid", "nodev", "noexec", "tmpcopyup",
                                                 "size=64m", "nr_inodes=1k", "mode=1777", "uid=0", "Z"});
    CHECK(m.destination == "/data");
    CHECK(m.flags == (MS_NOSUID | MS_NODEV | MS_NOEXEC));
    CHECK(m.data == "size=64m,nr_inodes=1k,mode=1777,uid=0");
    CHECK(m.copy_up);
    CHECK(m.has_mode);

    // Later words override earlier ones, as with mount(8).
    TmpfsMount o = parse_tmpfs_options("/x", {"ro", "noexec", "rw", "exec", "tmpcopyup", "notmpcopyup", ""});
    CHECK(o.flags == 0);
    CHECK(o.data.empty());
    CHECK_FALSE(o.copy_up);
    CHECK_FALSE(o.has_mode);
}

TEST_CASE("control messages: exec, signal, unknown types and errors") {
    ExecMessage e = exec_ok(R"({"type":"exec","args":["/bin/echo","hi"],"env":["A=1","B=2"],
                                "workdir":"/root","rlimits":["7=64:128","RLIMIT_CORE=0:0"]})");
    CHECK(e.args == std::vector<std::string>{"/bin/echo", "hi"});
    CHECK(e.env == std::vector<std::string>{"A=1", "B=2"});
    CHECK(e.workdir == "/root");
    REQUIRE(e.rlimits.size() == 2);
    CHECK(e.rlimits[0].resource == RLIMIT_NOFILE);
    CHECK(e.rlimits[0].soft == 64);
    CHECK(e.rlimits[1].resource == RLIMIT_CORE);

    ExecMessage bare = exec_ok(R"({"type":"exec"})");
    CHECK(bare.args.empty());
    CHECK(bare.workdir.empty());

    auto sig = parse_control_message(R"({"type":"signal","signo":15})");
    REQUIRE(sig.ok());
    REQUIRE(std::holds_alternative<SignalMessage>(*sig));
    CHECK(std::get<SignalMessage>(*sig).signo == 15);

    auto unknown = parse_control_message(R"({"type":"resize","rows":24})");
    REQUIRE(unknown.ok());
    REQUIRE(std::holds_alternative<UnknownMessage>(*unknown));
    CHECK(std::get<UnknownMessage>(*unknown).type == "resize");

    auto err = [](const char* json) {
        auto r = parse_control_message(json);
        REQUIRE_FALSE(r.ok());
        return r.error().message;
    };
    CHECK(contains(err("{"), "control message is not valid JSON"));
    CHECK(contains(err("[]"), "must be a JSON object"));
    CHECK(contains(err(R"({"args":[]})"), "has no \"type\""));
    CHECK(contains(err(R"({"type":1})"), "must be a string"));
    CHECK(contains(err(R"({"type":"signal"})"), "has no \"signo\""));
    CHECK(contains(err(R"({"type":"signal","signo":0})"), "signal number from 1"));
    CHECK(contains(err(R"({"type":"signal","signo":1000})"), "above the largest allowed value"));
    CHECK(contains(err(R"({"type":"signal","signo":-9})"), "must not be negative"));
    CHECK(contains(err(R"({"type":"exec","args":"ls"})"), "exec.args must be an array of strings"));
    CHECK(contains(err(R"({"type":"exec","env":["X"]})"), "exec.env[0] is \"X\""));
    CHECK(contains(err(R"({"type":"exec","workdir":"tmp"})"), "must be an absolute path"));
    CHECK(contains(err(R"({"type":"exec","rlimits":["7=1"]})"), "exec.rlimits: rlimit \"7=1\""));
}

TEST_CASE("the exit message is the JSON the host expects") {
    CHECK(exit_message(0) == R"({"code":0,"type":"exit"})");
    CHECK(exit_message(137) == R"({"code":137,"type":"exit"})");
}

TEST_CASE("merge without a host message keeps the config, with defaults for the rest") {
    Workload w = merge_workload(ImageConfig{}, nullptr);
    CHECK(w.args.empty());
    CHECK(w.cwd == "/");
    CHECK(w.hostname == "krunlet");
    CHECK_FALSE(w.user.has_value());

    ImageConfig c = parse_ok(read_sample("podman_config.json"));
    Workload p = merge_workload(c, nullptr);
    CHECK(p.args == c.args);
    CHECK(p.env == c.env);
    CHECK(p.cwd == "/srv/app");
    CHECK(p.hostname == "5f3c2a1b9d7e");
    CHECK(p.terminal);
    CHECK(p.user->uid == 1000);
    CHECK(p.tmpfs.size() == 3);
}

TEST_CASE("merge: non-empty host args win, host workdir wins, host env adds and overrides, host rlimits come last") {
    ImageConfig c = parse_ok(R"({"process":{"args":["/bin/config-cmd"],"cwd":"/config",
        "env":["PATH=/config/bin","KEEP=1","SHARED=config"],
        "rlimits":[{"type":"RLIMIT_NOFILE","soft":100,"hard":200}]}})");
    ExecMessage h = exec_ok(R"({"type":"exec","args":["/bin/host-cmd","x"],"workdir":"/host",
        "env":["SHARED=host","NEW=2"],"rlimits":["7=300:400","6=10:20"]})");
    Workload w = merge_workload(c, &h);
    CHECK(w.args == std::vector<std::string>{"/bin/host-cmd", "x"});
    CHECK(w.cwd == "/host");
    // Order kept: the config's keys where they were, the host's new keys after.
    CHECK(w.env == std::vector<std::string>{"PATH=/config/bin", "KEEP=1", "SHARED=host", "NEW=2"});
    REQUIRE(w.rlimits.size() == 3);
    CHECK(w.rlimits[0].soft == 100);
    CHECK(w.rlimits[1].resource == RLIMIT_NOFILE);
    CHECK(w.rlimits[1].soft == 300);  // applied after the config's, so it wins
    CHECK(w.rlimits[2].resource == RLIMIT_NPROC);

    // Empty host args and workdir leave the config's.
    ExecMessage quiet = exec_ok(R"({"type":"exec","args":[],"workdir":"","env":["EXTRA=1"]})");
    Workload q = merge_workload(c, &quiet);
    CHECK(q.args == std::vector<std::string>{"/bin/config-cmd"});
    CHECK(q.cwd == "/config");
    CHECK(q.env.back() == "EXTRA=1");

    // A host message alone is enough to run something.
    Workload only_host = merge_workload(ImageConfig{}, &h);
    CHECK(only_host.args == h.args);
    CHECK(only_host.env == h.env);
}

TEST_CASE("merge folds duplicate keys in the config: the last value wins in the first place") {
    ImageConfig c;
    c.env = {"A=1", "B=2", "A=3", "C=4", "B=5"};
    Workload w = merge_workload(c, nullptr);
    CHECK(w.env == std::vector<std::string>{"A=3", "B=5", "C=4"});
    // "AB=" is not "A=".
    c.env = {"A=1", "AB=2"};
    CHECK(merge_workload(c, nullptr).env == std::vector<std::string>{"A=1", "AB=2"});
}

TEST_CASE("env_get and env_set") {
    std::vector<std::string> env{"PATH=/bin", "PATHX=1", "EMPTY=", "PATH=/dup"};
    CHECK(*env_get(env, "PATH") == "/bin");
    CHECK(*env_get(env, "EMPTY") == "");
    CHECK_FALSE(env_get(env, "PAT").has_value());
    env_set(env, "PATH=/new");
    CHECK(env == std::vector<std::string>{"PATH=/new", "PATHX=1", "EMPTY="});
    env_set(env, "Z=9");
    CHECK(env.back() == "Z=9");
}

TEST_CASE("a 100 KiB environment parses and merges intact") {
    // 1600 variables of 64 bytes each = 100 KiB, plus one 64 KiB value.
    std::string json = R"({"process":{"args":["/bin/sh"],"env":[)";
    std::vector<std::string> expected;
    for (int i = 0; i < 1600; ++i) {
        std::string key = "VAR_" + std::to_string(i);
        std::string entry = key + "=" + std::string(63 - key.size(), static_cast<char>('a' + i % 26));
        expected.push_back(entry);
        json += "\"" + entry + "\",";
    }
    std::string big = "BIG=" + std::string(65536, 'x');
    expected.push_back(big);
    json += "\"" + big + "\"]}}";
    CHECK(json.size() > 160 * 1024);

    ImageConfig c = parse_ok(json);
    CHECK(c.env == expected);
    ExecMessage h;
    h.env = {"VAR_7=host", "HOSTONLY=1"};
    Workload w = merge_workload(c, &h);
    REQUIRE(w.env.size() == expected.size() + 1);
    CHECK(w.env[7] == "VAR_7=host");
    CHECK(w.env[1600] == big);
    CHECK(w.env.back() == "HOSTONLY=1");
}

TEST_CASE("a config above 1 MiB parses (a big environment plus podman's usual bulk)") {
    std::string sample = read_sample("podman_config.json");
    std::string env;
    for (int i = 0; i < 12000; ++i) env += "\"K" + std::to_string(i) + "=" + std::string(90, 'v') + "\",";
    // Splice the extra entries in front of the sample's own env list.
    auto at = sample.find("\"env\": [");
    REQUIRE(at != std::string::npos);
    sample.insert(at + 8, env);
    CHECK(sample.size() > (1u << 20));
    ImageConfig c = parse_ok(sample);
    CHECK(c.env.size() == 12000 + 7);
    CHECK(c.args.front() == "/usr/bin/python3");
    CHECK(c.hostname == "5f3c2a1b9d7e");
}

TEST_CASE("virtiofs entries of the config's mounts: tag, destination, ro and other options") {
    ImageConfig c = parse_ok(R"({"mounts":[
        {"type":"virtiofs","source":"data","destination":"/data"},
        {"type":"tmpfs","destination":"/run"},
        {"type":"virtiofs","source":"cache","destination":"/var/cache/x","options":["ro","nosuid","rbind","Z","dax"]},
        {"type":"bind","source":"/host","destination":"/ignored"},
        {"destination":"/no-type"}]})");
    REQUIRE(c.virtiofs.size() == 2);
    CHECK(c.virtiofs[0].tag == "data");
    CHECK(c.virtiofs[0].destination == "/data");
    CHECK(c.virtiofs[0].flags == 0);
    CHECK(c.virtiofs[0].data.empty());
    CHECK(c.virtiofs[1].tag == "cache");
    CHECK(c.virtiofs[1].destination == "/var/cache/x");
    CHECK(c.virtiofs[1].flags == (MS_RDONLY | MS_NOSUID));
    CHECK(c.virtiofs[1].data == "dax");
    REQUIRE(c.tmpfs.size() == 1);  // tmpfs entries are still handled
    CHECK(c.tmpfs[0].destination == "/run");
    // The podman sample has none.
    CHECK(parse_ok(read_sample("podman_config.json")).virtiofs.empty());
}

TEST_CASE("virtiofs entries: errors name the entry and the rule") {
    CHECK(contains(parse_error(R"({"mounts":[{"type":"virtiofs","destination":"/d"}]})"),
                   "mounts[0] (virtiofs) has no \"source\""));
    CHECK(contains(parse_error(R"({"mounts":[{"type":"virtiofs","source":"t"}]})"),
                   "mounts[0] (virtiofs) has no \"destination\""));
    CHECK(contains(parse_error(R"({"mounts":[{"type":"virtiofs","source":7,"destination":"/d"}]})"),
                   "mounts[0].source must be a string"));
    CHECK(contains(parse_error(R"({"mounts":[{"type":"virtiofs","source":"a b","destination":"/d"}]})"),
                   "not a usable virtio-fs tag"));
    CHECK(contains(parse_error(R"({"mounts":[{"type":"virtiofs","source":"0123456789012345678901234567890123456",
                                              "destination":"/d"}]})"),
                   "longer than 36 bytes"));
    CHECK(contains(parse_error(R"({"mounts":[{"type":"virtiofs","source":"t","destination":"d"}]})"),
                   "mounts[0].destination \"d\" cannot be a mount point: the path must be absolute"));
    CHECK(contains(parse_error(R"({"mounts":[{"type":"virtiofs","source":"t","destination":"/"}]})"),
                   "may not be /"));
    CHECK(contains(parse_error(R"({"mounts":[{"type":"virtiofs","source":"t","destination":"/a/../etc"}]})"),
                   "\"..\""));
    CHECK(contains(parse_error(R"({"mounts":[{"type":"virtiofs","source":"t","destination":"/d","options":"ro"}]})"),
                   "mounts[0].options must be an array of strings"));

    // Bounded: at most kMaxMounts (64) virtiofs entries.
    std::string many = R"({"mounts":[)";
    for (int i = 0; i < 65; ++i) many += std::string(i ? "," : "") + R"({"type":"virtiofs","source":"t","destination":"/m)" +
                                         std::to_string(i) + "\"}";
    many += "]}";
    CHECK(contains(parse_error(many), "mounts[64]: more than 64 virtiofs mounts"));
}

TEST_CASE("exec message mounts: tag, path, read_only; old hosts send none") {
    ExecMessage e = exec_ok(R"({"type":"exec","mounts":[
        {"tag":"krunlet-vol0","path":"/data"},
        {"tag":"krunlet-vol1","path":"/srv/ro","read_only":true},
        {"tag":"krunlet-vol2","path":"/w","read_only":false,"future_member":1}]})");
    REQUIRE(e.mounts.size() == 3);
    CHECK(e.mounts[0].tag == "krunlet-vol0");
    CHECK(e.mounts[0].destination == "/data");
    CHECK(e.mounts[0].flags == 0);
    CHECK(e.mounts[1].flags == MS_RDONLY);
    CHECK(e.mounts[2].flags == 0);
    CHECK(exec_ok(R"({"type":"exec"})").mounts.empty());
    CHECK(exec_ok(R"({"type":"exec","mounts":[]})").mounts.empty());

    auto err = [](const std::string& json) {
        auto r = parse_control_message(json);
        REQUIRE_FALSE(r.ok());
        return r.error().message;
    };
    CHECK(contains(err(R"({"type":"exec","mounts":{}})"), "exec.mounts must be an array"));
    CHECK(contains(err(R"({"type":"exec","mounts":["x"]})"), "exec.mounts[0] must be an object"));
    CHECK(contains(err(R"({"type":"exec","mounts":[{"path":"/d"}]})"), "exec.mounts[0] has no \"tag\""));
    CHECK(contains(err(R"({"type":"exec","mounts":[{"tag":"t"}]})"), "exec.mounts[0] has no \"path\""));
    CHECK(contains(err(R"({"type":"exec","mounts":[{"tag":"","path":"/d"}]})"), "the tag is empty"));
    CHECK(contains(err(R"({"type":"exec","mounts":[{"tag":"t","path":"rel"}]})"), "must be absolute"));
    CHECK(contains(err(R"({"type":"exec","mounts":[{"tag":"t","path":"/"}]})"), "may not be /"));
    CHECK(contains(err(R"({"type":"exec","mounts":[{"tag":"t","path":"/d","read_only":"yes"}]})"),
                   "exec.mounts[0].read_only must be true or false"));
    std::string many = R"({"type":"exec","mounts":[)";
    for (int i = 0; i < 65; ++i) many += std::string(i ? "," : "") + R"({"tag":"t","path":"/m"})";
    many += "]}";
    CHECK(contains(err(many), "at most 64"));
}

TEST_CASE("merge and mount order: config mounts and host volumes, parents first") {
    ImageConfig c = parse_ok(R"({"mounts":[
        {"type":"tmpfs","destination":"/data/tmp"},
        {"type":"virtiofs","source":"cfg","destination":"/cfg"},
        {"type":"tmpfs","destination":"/run"}]})");
    ExecMessage h = exec_ok(R"({"type":"exec","mounts":[
        {"tag":"krunlet-vol0","path":"/data"},{"tag":"krunlet-vol1","path":"/data/tmp/inner","read_only":true}]})");
    Workload w = merge_workload(c, &h);
    REQUIRE(w.virtiofs.size() == 3);
    CHECK(w.virtiofs[0].tag == "cfg");
    CHECK(w.virtiofs[1].tag == "krunlet-vol0");
    CHECK(w.tmpfs.size() == 2);

    std::vector<std::string> order;
    for (const GuestMount& m : mount_order(w)) order.push_back(mount_destination(m));
    // Depth 1: the tmpfs, then config virtio-fs, then host volumes; then depth 2, 3.
    CHECK(order == std::vector<std::string>{"/run", "/cfg", "/data", "/data/tmp", "/data/tmp/inner"});
    CHECK(std::holds_alternative<TmpfsMount>(mount_order(w)[0]));
    CHECK(std::get<VirtiofsMount>(mount_order(w)[4]).flags == MS_RDONLY);

    // Without a host message only the config's.
    CHECK(merge_workload(c, nullptr).virtiofs.size() == 1);
    CHECK(mount_order(Workload{}).empty());
}

TEST_CASE("exec message net and mirror_ports: eth0's static setup; old hosts send neither") {
    ExecMessage e = exec_ok(R"({"type":"exec","mirror_ports":true,
        "net":{"address":"192.168.7.20","prefix":16,"gateway":"192.168.0.1","dns":"192.168.0.53"}})");
    CHECK(e.mirror_ports);
    REQUIRE(e.net.has_value());
    CHECK(e.net->address == "192.168.7.20");
    CHECK(e.net->prefix == 16);
    CHECK(e.net->gateway == "192.168.0.1");
    CHECK(e.net->dns == "192.168.0.53");

    ExecMessage bare = exec_ok(R"({"type":"exec"})");
    CHECK_FALSE(bare.mirror_ports);
    CHECK_FALSE(bare.net.has_value());
    // The defaults are slirp's network.
    NetSettings d;
    CHECK(d.address == "10.0.2.15");
    CHECK(d.prefix == 24);
    CHECK(d.gateway == "10.0.2.2");
    CHECK(d.dns == "10.0.2.3");

    auto err = [](const std::string& json) {
        auto r = parse_control_message(json);
        REQUIRE_FALSE(r.ok());
        return r.error().message;
    };
    const std::string ok_rest = R"("prefix":24,"gateway":"10.0.2.2","dns":"10.0.2.3")";
    CHECK(contains(err(R"({"type":"exec","mirror_ports":1})"), "exec.mirror_ports must be true or false"));
    CHECK(contains(err(R"({"type":"exec","net":[]})"), "exec.net must be an object"));
    CHECK(contains(err(R"({"type":"exec","net":{"prefix":24,"gateway":"10.0.2.2","dns":"10.0.2.3"}})"),
                   "exec.net has no \"address\""));
    CHECK(contains(err(R"({"type":"exec","net":{"address":"10.0.2.15","gateway":"10.0.2.2","dns":"10.0.2.3"}})"),
                   "exec.net has no \"prefix\""));
    for (const char* bad : {"10.0.2", "10.0.2.256", "010.0.2.15", "10.0.2.15 ", "::1", "eth0", ""})
        CHECK(contains(err(std::string(R"({"type":"exec","net":{"address":")") + bad + "\"," + ok_rest + "}}"),
                       "is not an IPv4 address"));
    CHECK(contains(err(R"({"type":"exec","net":{"address":"10.0.2.15","prefix":33,"gateway":"10.0.2.2","dns":"10.0.2.3"}})"),
                   "exec.net.prefix"));
    CHECK(contains(err(R"({"type":"exec","net":{"address":"10.0.2.15","prefix":0,"gateway":"10.0.2.2","dns":"10.0.2.3"}})"),
                   "1..32"));
}
