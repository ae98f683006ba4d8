// The virtio-fs cache knobs (vmm/fs_cache_knobs.h): the environment, the
// program's settings over it, and errors that name the variable.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <string>

#include "vmm/fs_cache_knobs.h"

using namespace krunlet;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

namespace {

FsCacheKnobs env_of(const std::map<std::string, std::string>& vars) {
    return fs_cache_knobs_from_env([&](const char* name) -> const char* {
        auto it = vars.find(name);
        return it == vars.end() ? nullptr : it->second.c_str();
    });
}

FsCacheSettings ok(const FsCacheKnobs& program, const FsCacheKnobs& env) {
    auto r = resolve_fs_cache(program, env);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    return *r;
}

std::string error(const FsCacheKnobs& program, const FsCacheKnobs& env) {
    auto r = resolve_fs_cache(program, env);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == EINVAL);
    return r.error().message;
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("nothing set: auto with the policy's own timeouts") {
    FsCacheSettings s = ok({}, env_of({}));
    CHECK(s.policy == fs::CachePolicy::Auto);
    CHECK_FALSE(s.entry_timeout.has_value());
    CHECK_FALSE(s.attr_timeout.has_value());
    // Empty variables count as unset.
    CHECK(ok({}, env_of({{"KRUNLET_FS_CACHE", ""}, {"KRUNLET_FS_ATTR_TIMEOUT", ""}})).policy == fs::CachePolicy::Auto);
}

TEST_CASE("the environment sets the policy and the timeouts") {
    FsCacheKnobs env = env_of({{"KRUNLET_FS_CACHE", "never"},
                               {"KRUNLET_FS_ENTRY_TIMEOUT", "0.25"},
                               {"KRUNLET_FS_ATTR_TIMEOUT", "3"},
                               {"UNRELATED", "x"}});
    CHECK(env.policy == std::string("never"));
    FsCacheSettings s = ok({}, env);
    CHECK(s.policy == fs::CachePolicy::Never);
    CHECK(s.entry_timeout == nanoseconds(milliseconds(250)));
    CHECK(s.attr_timeout == nanoseconds(seconds(3)));
    CHECK(ok({}, env_of({{"KRUNLET_FS_CACHE", "always"}})).policy == fs::CachePolicy::Always);
}

TEST_CASE("what the program set wins over the environment, knob by knob") {
    FsCacheKnobs program;
    program.policy = "never";
    program.attr_timeout = "0";
    FsCacheKnobs env = env_of({{"KRUNLET_FS_CACHE", "always"}, {"KRUNLET_FS_ENTRY_TIMEOUT", "5"},
                               {"KRUNLET_FS_ATTR_TIMEOUT", "7"}});
    FsCacheSettings s = ok(program, env);
    CHECK(s.policy == fs::CachePolicy::Never);
    CHECK(s.entry_timeout == nanoseconds(seconds(5)));  // the program left it to the environment
    CHECK(s.attr_timeout == nanoseconds(0));
    // A good program value hides a bad variable of the same knob.
    CHECK(ok(program, env_of({{"KRUNLET_FS_CACHE", "bogus"}})).policy == fs::CachePolicy::Never);
}

TEST_CASE("overlay: later knobs replace earlier ones, unset ones do not") {
    FsCacheKnobs at_create = env_of({{"KRUNLET_FS_CACHE", "always"}, {"KRUNLET_FS_ATTR_TIMEOUT", "2"}});
    FsCacheKnobs at_start = env_of({{"KRUNLET_FS_CACHE", "never"}});
    FsCacheKnobs both = overlay(at_create, at_start);
    CHECK(both.policy == std::string("never"));
    CHECK(both.attr_timeout == std::string("2"));
    CHECK_FALSE(both.entry_timeout.has_value());
}

TEST_CASE("bad variables: the error names the variable and what it accepts") {
    std::string p = error({}, env_of({{"KRUNLET_FS_CACHE", "sometimes"}}));
    CHECK(contains(p, "KRUNLET_FS_CACHE=sometimes"));
    CHECK(contains(p, "never, auto or always"));
    for (const char* bad : {"-1", "abc", "1.", ".5", "1e3", "31536001", "0.1234567891", " 1"}) {
        INFO(bad);
        std::string e = error({}, env_of({{"KRUNLET_FS_ENTRY_TIMEOUT", bad}}));
        CHECK(contains(e, std::string("KRUNLET_FS_ENTRY_TIMEOUT=") + bad));
        CHECK(contains(e, "seconds from 0 to 31536000"));
        CHECK(contains(error({}, env_of({{"KRUNLET_FS_ATTR_TIMEOUT", bad}})), "KRUNLET_FS_ATTR_TIMEOUT="));
    }
    // The upper bound itself is fine.
    CHECK(ok({}, env_of({{"KRUNLET_FS_ATTR_TIMEOUT", "31536000"}})).attr_timeout == nanoseconds(seconds(31536000)));
}

TEST_CASE("check_program_knob: the C API's values, named by argument") {
    CHECK(check_program_knob("policy", "always").ok());
    CHECK(check_program_knob("entry_timeout", "0.5").ok());
    auto p = check_program_knob("policy", "fast");
    REQUIRE_FALSE(p.ok());
    CHECK(contains(p.error().message, "krunlet_set_fs_cache policy fast"));
    auto t = check_program_knob("attr_timeout", "x");
    REQUIRE_FALSE(t.ok());
    CHECK(contains(t.error().message, "krunlet_set_fs_cache attr_timeout x"));
}
