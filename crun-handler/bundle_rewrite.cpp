#include "bundle_rewrite.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace krunlet::oci {
namespace {

using json = nlohmann::json;

constexpr unsigned kMaxVcpus = 16;  // DESIGN.md §3: krun.cpus is at most 16

// KVM's character device (Documentation/admin-guide/devices.txt: 10:232).
constexpr int kKvmMajor = 10;
constexpr int kKvmMinor = 232;

Result<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return errno_error("read " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return errno_error("read " + path);
    return ss.str();
}

// config.json is replaced atomically: a reader (runc) sees the old or the new
// file, never half of one.
Result<void> replace_file(const std::string& path, const std::string& content) {
    std::string tmp = path + ".krunlet-tmp";
    ::unlink(tmp.c_str());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return errno_error("create " + tmp);
    size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            Error e = errno_error("write " + tmp);
            ::close(fd);
            ::unlink(tmp.c_str());
            return e;
        }
        done += static_cast<size_t>(n);
    }
    if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
        Error e = errno_error("replace " + path);
        ::unlink(tmp.c_str());
        return e;
    }
    return ok_result();
}

// An annotation as an unsigned number; nullopt when absent.
Result<std::optional<unsigned long>> annotation_number(const json& config, const char* key) {
    const auto ann = config.find("annotations");
    if (ann == config.end() || !ann->is_object()) return std::optional<unsigned long>{};
    const auto it = ann->find(key);
    if (it == ann->end()) return std::optional<unsigned long>{};
    if (!it->is_string())
        return make_error(EINVAL, std::string("annotation ") + key + " must be a string holding a number");
    const std::string& s = it->get_ref<const std::string&>();
    char* end = nullptr;
    errno = 0;
    unsigned long v = std::strtoul(s.c_str(), &end, 10);
    if (s.empty() || s[0] == '-' || *end != '\0' || errno != 0)
        return make_error(EINVAL, std::string("annotation ") + key + "=\"" + s + "\" is not a whole number");
    return std::optional<unsigned long>{v};
}

bool has_device(const json& devices, const std::string& path) {
    for (const auto& d : devices)
        if (d.is_object() && d.value("path", "") == path) return true;
    return false;
}

}  // namespace

bool annotated_for_krun(const json& config) {
    if (!config.is_object()) return false;
    const auto ann = config.find("annotations");
    if (ann == config.end() || !ann->is_object()) return false;
    const auto h = ann->find(kHandlerAnnotation);
    return h != ann->end() && h->is_string() && h->get_ref<const std::string&>() == "krun";
}

Result<json> rewrite_config(const json& original, const std::string& launch_dir, const LauncherSettings& settings) {
    try {
        if (!original.is_object()) return make_error(EINVAL, "config.json is not a JSON object");
        if (!original.contains("process") || !original["process"].is_object())
            return make_error(EINVAL, "config.json has no \"process\" object; a krun container needs one");
        json c = original;

        // The launcher's own options, from the annotations crun reads.
        std::vector<std::string> extra;
        auto cpus = annotation_number(original, "krun.cpus");
        if (!cpus.ok()) return cpus.error();
        if (*cpus) {
            if (**cpus < 1 || **cpus > kMaxVcpus)
                return make_error(EINVAL, "annotation krun.cpus=" + std::to_string(**cpus) + " is out of range: "
                                          "use 1 to " + std::to_string(kMaxVcpus));
            extra.insert(extra.end(), {"--cpus", std::to_string(**cpus)});
        }
        auto ram = annotation_number(original, "krun.ram_mib");
        if (!ram.ok()) return ram.error();
        // crun ignores 128 MiB or less; so does krun (the library default applies).
        if (*ram && **ram > 128) {
            if (**ram > UINT32_MAX) return make_error(EINVAL, "annotation krun.ram_mib is too large");
            extra.insert(extra.end(), {"--ram-mib", std::to_string(**ram)});
        }

        const std::string mp = kLaunchMountPoint;
        json args = json::array({mp + "/lib/" + settings.loader_name, "--library-path", mp + "/lib",
                                 mp + "/bin/krunlet-launch", "--log-level", std::to_string(settings.log_level)});
        for (auto& e : extra) args.push_back(e);
        c["process"]["args"] = args;
        // process.cwd, env, user, terminal, capabilities and rlimits stay: the
        // VMM runs with them, and the guest init applies the workload's own
        // copy from .krun_config.json.

        json& linux = c["linux"];
        if (!linux.is_object()) linux = json::object();
        json& devices = linux["devices"];
        if (!devices.is_array()) devices = json::array();
        if (!has_device(devices, "/dev/kvm"))
            devices.push_back({{"path", "/dev/kvm"}, {"type", "c"}, {"major", kKvmMajor}, {"minor", kKvmMinor},
                               {"fileMode", 0666}, {"uid", 0}, {"gid", 0}});
        json& resources = linux["resources"];
        if (!resources.is_object()) resources = json::object();
        json& rules = resources["devices"];
        if (!rules.is_array()) rules = json::array();
        // Appended last so it wins over podman's leading "deny all" rule.
        rules.push_back({{"allow", true}, {"type", "c"}, {"major", kKvmMajor}, {"minor", kKvmMinor},
                         {"access", "rwm"}});

        json& mounts = c["mounts"];
        if (!mounts.is_array()) mounts = json::array();
        json kept = json::array();
        for (auto& m : mounts)
            if (!(m.is_object() && m.value("destination", "") == mp)) kept.push_back(m);
        kept.push_back({{"destination", mp}, {"type", "bind"}, {"source", launch_dir},
                        {"options", json::array({"rbind", "ro", "nosuid", "nodev"})}});
        mounts = kept;

        json& ann = c["annotations"];
        if (!ann.is_object()) ann = json::object();
        ann[kRewrittenAnnotation] = "1";
        return c;
    } catch (const json::exception& e) {
        return make_error(EINVAL, std::string("config.json has an unexpected shape: ") + e.what());
    }
}

Result<Prepared> prepare_bundle(const std::string& bundle_arg, const PrepareOptions& o) {
    char real[PATH_MAX];
    if (::realpath(bundle_arg.c_str(), real) == nullptr) {
        // Let the runtime report a missing bundle in its own words.
        if (!o.always) return Prepared::kPassThrough;
        return errno_error("bundle directory " + bundle_arg);
    }
    const std::string bundle = real;
    const std::string config_path = bundle + "/config.json";
    auto text = read_file(config_path);
    if (!text.ok()) {
        if (!o.always) return Prepared::kPassThrough;
        return text.error();
    }
    json config = json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded()) {
        if (!o.always) return Prepared::kPassThrough;
        return make_error(EINVAL, config_path + " is not valid JSON");
    }

    // A bundle krun already rewrote (podman restart creates it again): start
    // over from the saved original, never from our own output.
    std::string original_text = *text;
    const std::string saved_path = bundle + "/" + kOriginalConfigName;
    bool already = config.is_object() && config.contains("annotations") && config["annotations"].is_object() &&
                   config["annotations"].contains(kRewrittenAnnotation);
    if (already) {
        auto saved = read_file(saved_path);
        if (!saved.ok())
            return make_error(saved.error().code, config_path + " was rewritten by krun but its original " +
                                                      saved_path + " is gone: recreate the container");
        original_text = *saved;
        config = json::parse(original_text, nullptr, false);
        if (config.is_discarded()) return make_error(EINVAL, saved_path + " is not valid JSON");
    } else if (!o.always && !annotated_for_krun(config)) {
        return Prepared::kPassThrough;
    }

    if (!o.locate) return make_error(ENOENT, "krun does not know where krunlet-launch and libkrun.so.1 are");
    auto installed = o.locate();
    if (!installed.ok()) return installed.error();
    auto ld = build_launch_dir(*installed, bundle + "/" + kLaunchDirName);
    if (!ld.ok()) return ld.error();

    auto rewritten = rewrite_config(config, ld->dir, LauncherSettings{ld->loader_name, o.log_level});
    if (!rewritten.ok()) return make_error(rewritten.error().code, config_path + ": " + rewritten.error().message);

    // The workload's config, for the guest init, inside the rootfs.
    std::string rootfs;
    try {
        rootfs = config.at("root").at("path").get<std::string>();
    } catch (const json::exception&) {
        return make_error(EINVAL, config_path + " has no root.path; a krun container needs a rootfs");
    }
    if (rootfs.empty()) return make_error(EINVAL, config_path + ": root.path is empty");
    if (rootfs[0] != '/') rootfs = bundle + "/" + rootfs;
    auto root_fd = open_root(rootfs);
    if (!root_fd.ok()) return root_fd.error();
    // 0644: the VMM may run as a non-root container user and must read it.
    KRUNLET_CHECK(write_file_beneath(root_fd->get(), ".krun_config.json", original_text, 0644, rootfs, o.resolver));

    if (!already) KRUNLET_CHECK(replace_file(saved_path, original_text));
    std::string out;
    try {
        out = rewritten->dump(2);
    } catch (const json::exception& e) {
        return make_error(EINVAL, std::string("serialize the rewritten config: ") + e.what());
    }
    KRUNLET_CHECK(replace_file(config_path, out));
    return Prepared::kRewritten;
}

}  // namespace krunlet::oci
