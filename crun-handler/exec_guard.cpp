#include "exec_guard.h"

#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "bundle_rewrite.h"
#include "subprocess.h"

namespace krunlet::oci {
namespace {

// `runtime <global options> state <id>`; its stdout, or nothing on failure.
std::string runtime_state(const std::string& runtime, const OciArgs& a) {
    std::vector<std::string> argv = {runtime};
    for (size_t i = 1; i < a.subcommand_index && i < a.forward.size(); ++i) argv.push_back(a.forward[i]);
    argv.push_back("state");
    argv.push_back(a.container_id);
    auto r = run_capture(argv);
    if (!r || !r->succeeded()) return {};
    return r->out;
}

}  // namespace

bool bundle_is_krun(const std::string& bundle) {
    std::ifstream in(bundle + "/config.json", std::ios::binary);
    if (!in) return false;
    nlohmann::json c = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (c.is_discarded() || !c.is_object()) return false;
    auto ann = c.find("annotations");
    return ann != c.end() && ann->is_object() && ann->contains(kRewrittenAnnotation);
}

Result<void> refuse_exec_into_vm(const std::string& runtime, const OciArgs& a) {
    std::string out = runtime_state(runtime, a);
    if (out.empty()) return ok_result();
    nlohmann::json st = nlohmann::json::parse(out, nullptr, false);
    if (st.is_discarded() || !st.is_object() || !st.contains("bundle") || !st["bundle"].is_string())
        return ok_result();
    if (!bundle_is_krun(st["bundle"].get<std::string>())) return ok_result();
    return make_error(ENOTSUP, "exec is not supported in a krun VM: container " + a.container_id +
                                   " runs its processes inside a krunlet microVM, which has no way to start a "
                                   "second process yet; run the command as the container's own process instead");
}

}  // namespace krunlet::oci
