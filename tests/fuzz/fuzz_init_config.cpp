// fuzz_init_config: the guest init's pure parsers (init/config.h).
//
// Input: "<image config>\0<control message>"; without a NUL both parsers get
// the whole input. parse_image_config() reads the first part,
// parse_control_message() the second, and whatever parses is merged with
// merge_workload() (with and without the host's exec message). The pieces
// of the control part between commas also go through parse_rlimit_spec()
// and parse_tmpfs_options().
//
// Checked: no crash and no exception escapes; what a parser accepts obeys
// the rules it promises (env entries are KEY=VALUE without NUL, paths are
// absolute, rlimits have soft <= hard and a known resource); the merge
// follows libkrun's rules (host args win when non-empty, host env entries
// win on equal keys and keys end up unique, host workdir wins, host rlimits
// come after the image's); an accepted rlimit spec survives a round trip
// through its canonical "ID=CUR:MAX" form.
#include <sys/resource.h>

#include <csignal>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fuzz_util.h"
#include "init/config.h"

using namespace krunlet;
using namespace krunlet::init;

namespace {

std::string_view key_of(std::string_view e) { return e.substr(0, e.find('=')); }

void check_env(const std::vector<std::string>& env, const char* what) {
    for (const std::string& e : env) {
        auto eq = e.find('=');
        FUZZ_CHECK(eq != std::string::npos && eq > 0, std::string(what) + ": entry without KEY=: " + e);
        FUZZ_CHECK(e.find('\0') == std::string::npos, std::string(what) + ": entry with a NUL byte");
    }
}

void check_args(const std::vector<std::string>& args, const char* what) {
    for (const std::string& a : args)
        FUZZ_CHECK(a.find('\0') == std::string::npos, std::string(what) + ": argument with a NUL byte");
}

void check_rlimits(const std::vector<Rlimit>& rl, const char* what) {
    for (const Rlimit& r : rl) {
        FUZZ_CHECK(r.resource >= 0 && r.resource < RLIMIT_NLIMITS, std::string(what) + ": unknown resource");
        FUZZ_CHECK(r.soft <= r.hard, std::string(what) + ": soft above hard");
    }
}

void check_image(const ImageConfig& c) {
    check_args(c.args, "image args");
    check_env(c.env, "image env");
    FUZZ_CHECK(c.cwd.empty() || c.cwd.front() == '/', "image cwd is relative: " + c.cwd);
    check_rlimits(c.rlimits, "image rlimits");
    for (const TmpfsMount& m : c.tmpfs)
        FUZZ_CHECK(!m.destination.empty() && m.destination.front() == '/', "tmpfs destination is relative");
    if (c.user && c.user->umask) FUZZ_CHECK(*c.user->umask <= 0777, "umask above 0777");
}

void check_exec(const ExecMessage& e) {
    check_args(e.args, "exec args");
    check_env(e.env, "exec env");
    FUZZ_CHECK(e.workdir.empty() || e.workdir.front() == '/', "exec workdir is relative");
    check_rlimits(e.rlimits, "exec rlimits");
}

void check_merge(const ImageConfig& img, const ExecMessage* host) {
    Workload w = merge_workload(img, host);
    const bool host_args = host != nullptr && !host->args.empty();
    FUZZ_CHECK(w.args == (host_args ? host->args : img.args), "merged args do not follow the host-wins rule");

    // Expected environment: the last entry per key, host entries after image ones.
    std::map<std::string, std::string, std::less<>> want;
    for (const std::string& e : img.env) want[std::string(key_of(e))] = e;
    if (host != nullptr)
        for (const std::string& e : host->env) want[std::string(key_of(e))] = e;
    FUZZ_CHECK(w.env.size() == want.size(), "merged env has duplicate or missing keys");
    for (const std::string& e : w.env) {
        auto it = want.find(key_of(e));
        FUZZ_CHECK(it != want.end() && it->second == e, "merged env entry is not the winning one: " + e);
        auto v = env_get(w.env, key_of(e));
        FUZZ_CHECK(v && *v == std::string_view(e).substr(key_of(e).size() + 1), "env_get disagrees with the merge");
    }

    std::string cwd = "/";
    if (!img.cwd.empty()) cwd = img.cwd;
    if (host != nullptr && !host->workdir.empty()) cwd = host->workdir;
    FUZZ_CHECK(w.cwd == cwd, "merged cwd does not follow the host-wins rule");
    FUZZ_CHECK(w.rlimits.size() == img.rlimits.size() + (host != nullptr ? host->rlimits.size() : 0),
               "merged rlimits are not image ++ host");
    FUZZ_CHECK(w.hostname == (img.hostname.empty() ? "krunlet" : img.hostname), "merged hostname");
    FUZZ_CHECK(w.tmpfs.size() == img.tmpfs.size() && w.terminal == img.terminal, "merged tmpfs/terminal");

    // env_set keeps keys unique and puts the new value where the key was.
    if (!w.env.empty()) {
        std::vector<std::string> env = w.env;
        std::string entry = std::string(key_of(env.back())) + "=fuzz";
        env_set(env, entry);
        FUZZ_CHECK(env.size() == w.env.size() && env.back() == entry, "env_set did not replace in place");
    }
}

void check_rlimit_spec(std::string_view spec) {
    auto r = parse_rlimit_spec(spec);
    if (!r) return;
    check_rlimits({*r}, "rlimit spec");
    std::string canon = std::to_string(r->resource) + "=" + std::to_string(r->soft) + ":" + std::to_string(r->hard);
    auto again = parse_rlimit_spec(canon);
    FUZZ_CHECK(again && again->resource == r->resource && again->soft == r->soft && again->hard == r->hard,
               "rlimit spec does not survive a round trip: " + canon);
    auto byname = rlimit_from_name(rlimit_name(r->resource));
    FUZZ_CHECK(byname && *byname == r->resource, "rlimit_name/rlimit_from_name disagree");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view all(reinterpret_cast<const char*>(data), size);
    auto nul = all.find('\0');
    std::string_view image_text = nul == std::string_view::npos ? all : all.substr(0, nul);
    std::string_view control_text = nul == std::string_view::npos ? all : all.substr(nul + 1);

    auto img = parse_image_config(image_text);
    if (img) check_image(*img);
    auto msg = parse_control_message(control_text);
    const ExecMessage* exec = nullptr;
    if (msg) {
        if (auto* e = std::get_if<ExecMessage>(&*msg)) {
            check_exec(*e);
            exec = e;
        } else if (auto* s = std::get_if<SignalMessage>(&*msg)) {
            FUZZ_CHECK(s->signo >= 1 && s->signo <= SIGRTMAX, "signal number out of range");
        }
    }
    if (img) {
        check_merge(*img, nullptr);
        if (exec != nullptr) check_merge(*img, exec);
    }

    // Comma-separated words of the control part: rlimit specs and tmpfs options.
    std::vector<std::string> words;
    for (size_t start = 0; start <= control_text.size() && words.size() < 64;) {
        size_t end = control_text.find(',', start);
        if (end == std::string_view::npos) end = control_text.size();
        words.emplace_back(control_text.substr(start, end - start));
        start = end + 1;
    }
    for (const std::string& w : words) check_rlimit_spec(w);
    TmpfsMount m = parse_tmpfs_options("/fuzz", words);
    FUZZ_CHECK(m.destination == "/fuzz", "tmpfs destination changed");
    FUZZ_CHECK(!m.has_mode || m.data.find("mode=") != std::string::npos, "has_mode set without a mode= option");
    return 0;
}
