#include "vmm/fs_cache_knobs.h"

#include <cstdlib>

#include "virtiofs/cache_policy.h"

namespace krunlet {
namespace {

constexpr const char* kPolicyWords = "never, auto or always";
constexpr const char* kTimeoutForm = "a number of seconds from 0 to 31536000 with up to 9 decimals (e.g. 0, 1, 0.25)";

// One knob: the program's value if set, else the environment's; `name` is
// what an error calls the source ("KRUNLET_FS_CACHE=" or "policy ").
struct Chosen {
    const std::optional<std::string>* value;
    std::string name;
};

Chosen choose(const std::optional<std::string>& program, const char* program_name,
              const std::optional<std::string>& env, const char* env_name) {
    if (program) return {&program, std::string("krunlet_set_fs_cache ") + program_name + " "};
    return {&env, std::string(env_name) + "="};
}

Result<std::optional<std::chrono::nanoseconds>> timeout(const Chosen& c) {
    if (!*c.value) return std::optional<std::chrono::nanoseconds>{};
    auto t = fs::parse_cache_timeout(**c.value);
    if (!t) return make_error(EINVAL, c.name + **c.value + " is not " + kTimeoutForm);
    return std::optional<std::chrono::nanoseconds>{*t};
}

}  // namespace

FsCacheKnobs fs_cache_knobs_from_env(const std::function<const char*(const char*)>& get) {
    auto read = [&](const char* name) -> std::optional<std::string> {
        const char* v = get ? get(name) : std::getenv(name);
        if (v == nullptr || *v == '\0') return std::nullopt;
        return std::string(v);
    };
    return FsCacheKnobs{read(kEnvFsCache), read(kEnvFsEntryTimeout), read(kEnvFsAttrTimeout)};
}

FsCacheKnobs overlay(const FsCacheKnobs& earlier, const FsCacheKnobs& later) {
    FsCacheKnobs out = earlier;
    if (later.policy) out.policy = later.policy;
    if (later.entry_timeout) out.entry_timeout = later.entry_timeout;
    if (later.attr_timeout) out.attr_timeout = later.attr_timeout;
    return out;
}

Result<FsCacheSettings> resolve_fs_cache(const FsCacheKnobs& program, const FsCacheKnobs& env) {
    FsCacheSettings s;
    Chosen policy = choose(program.policy, "policy", env.policy, kEnvFsCache);
    if (*policy.value) {
        auto p = fs::parse_cache_policy(**policy.value);
        if (!p) return make_error(EINVAL, policy.name + **policy.value + ": use " + kPolicyWords);
        s.policy = *p;
    }
    auto entry = timeout(choose(program.entry_timeout, "entry_timeout", env.entry_timeout, kEnvFsEntryTimeout));
    if (!entry) return entry.error();
    s.entry_timeout = *entry;
    auto attr = timeout(choose(program.attr_timeout, "attr_timeout", env.attr_timeout, kEnvFsAttrTimeout));
    if (!attr) return attr.error();
    s.attr_timeout = *attr;
    return s;
}

Result<void> check_program_knob(const char* what, const std::string& value) {
    FsCacheKnobs k;
    std::string w = what;
    if (w == "policy")
        k.policy = value;
    else if (w == "entry_timeout")
        k.entry_timeout = value;
    else
        k.attr_timeout = value;
    auto r = resolve_fs_cache(k, {});
    if (!r) return r.error();
    return ok_result();
}

}  // namespace krunlet
