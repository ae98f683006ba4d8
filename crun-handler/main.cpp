// krun: an OCI runtime for podman that runs krun containers in a krunlet
// microVM and hands everything else, unchanged, to runc or crun.
//
//   podman --runtime /usr/local/bin/krun run --annotation run.oci.handler=krun ...
//
// Invoked as `krun`, every bundle becomes a microVM (like crun invoked as
// krun); invoked under any other name (krunlet-oci), only bundles annotated
// run.oci.handler=krun do. See docs/oci-runtime.md.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bundle_rewrite.h"
#include "exec_guard.h"
#include "launch_dir.h"
#include "oci_args.h"
#include "runtime_select.h"

#ifndef KRUNLET_VERSION
#define KRUNLET_VERSION "unknown"
#endif
#ifndef KRUNLET_REL_LIBDIR
#define KRUNLET_REL_LIBDIR "../lib"
#endif

namespace {

using namespace krunlet::oci;

constexpr int kFailure = 1;  // what runc exits with when it fails itself

std::string basename_of(const std::string& p) {
    size_t slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string self_exe() {
    char buf[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return {};
    buf[n] = '\0';
    return buf;
}

// podman reads a failed runtime's reason from --log (as JSON with
// --log-format=json), so krun's own errors go there too, not only to stderr.
void report(const std::string& name, const std::string& msg, const OciArgs* args) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), msg.c_str());
    if (args == nullptr || !args->log_path) return;
    int fd = ::open(args->log_path->c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char when[64] = "";
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    if (::gmtime_r(&now, &tm)) std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::string line;
    if (args->log_format == "json") {
        line = nlohmann::json{{"level", "error"}, {"msg", name + ": " + msg}, {"time", when}}.dump(
                   -1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    } else {
        line = std::string("time=\"") + when + "\" level=error msg=\"" + name + ": " + msg + "\"\n";
    }
    (void)!::write(fd, line.data(), line.size());
    ::close(fd);
}

// krun_set_log_level for the launcher: crun's mapping (DESIGN.md §3).
unsigned launcher_log_level(const OciArgs& a) {
    unsigned level = 1;
    for (size_t i = 1; i < a.subcommand_index && i < a.forward.size(); ++i) {
        const std::string& s = a.forward[i];
        if (s == "--debug") level = 4;
        if (s == "--log-level=debug" || (s == "--log-level" && i + 1 < a.forward.size() && a.forward[i + 1] == "debug"))
            level = 4;
        if (level < 2 && (s == "--log-level=warning" ||
                          (s == "--log-level" && i + 1 < a.forward.size() && a.forward[i + 1] == "warning")))
            level = 2;
    }
    return level;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv, argv + argc);
    const std::string name = args.empty() ? "krun" : basename_of(args[0]);
    const bool always = name == "krun";

    auto parsed = parse_oci_args(args);
    if (auto* err = std::get_if<std::string>(&parsed)) {
        report(name, *err, nullptr);
        return kFailure;
    }
    OciArgs& a = std::get<OciArgs>(parsed);

    const std::string self = self_exe();
    SelectInputs in;
    in.runtime_path = a.runtime_path;
    if (const char* e = std::getenv("KRUNLET_OCI_RUNTIME")) in.env_runtime = e;
    if (const char* p = std::getenv("PATH")) in.path_env = p;
    else in.path_env = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    in.self_exe = self;
    auto runtime = select_runtime(in);
    if (!runtime.ok()) {
        report(name, runtime.error().message, &a);
        return kFailure;
    }
    const unsigned level = launcher_log_level(a);
    if (level >= 4) std::fprintf(stderr, "%s: using %s (%s)\n", name.c_str(), runtime->path.c_str(),
                                 runtime->reason.c_str());

    if (a.version) {
        std::printf("%s (krunlet %s), handing containers to %s\n", name.c_str(), KRUNLET_VERSION,
                    runtime->path.c_str());
        std::fflush(stdout);
    }

    if (a.subcommand == "create" || a.subcommand == "run") {
        PrepareOptions po;
        po.always = always;
        po.log_level = level;
        po.locate = [&self]() { return locate_installed(self, KRUNLET_REL_LIBDIR); };
        auto prepared = prepare_bundle(a.bundle, po);
        if (!prepared.ok()) {
            report(name, prepared.error().message, &a);
            return kFailure;
        }
        if (level >= 4 && *prepared == Prepared::kRewritten)
            std::fprintf(stderr, "%s: bundle %s rewritten for a krunlet microVM\n", name.c_str(), a.bundle.c_str());
    } else if (a.subcommand == "exec" && !a.container_id.empty()) {
        auto refused = refuse_exec_into_vm(runtime->path, a);
        if (!refused.ok()) {
            report(name, refused.error().message, &a);
            return kFailure;
        }
    }

    std::vector<char*> out;
    a.forward[0] = runtime->path;
    for (auto& s : a.forward) out.push_back(s.data());
    out.push_back(nullptr);
    ::execv(runtime->path.c_str(), out.data());
    report(name, "exec " + runtime->path + ": " + std::strerror(errno), &a);
    return kFailure;
}
