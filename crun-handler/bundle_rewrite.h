// Turning an OCI bundle into one whose process is the krunlet microVM.
//
// For a krun bundle krun (before handing `create`/`run` to runc or crun):
//   1. builds the launch directory <bundle>/krunlet-launch (launch_dir.h);
//   2. writes the ORIGINAL config.json to <rootfs>/.krun_config.json, where the
//      guest init reads the workload (args, env, cwd, user, rlimits, hostname),
//      without following symlinks planted in the image (safe_write.h);
//   3. keeps the original as <bundle>/krunlet-original-config.json, so a second
//      `create` of the same bundle (podman restart) starts from it again;
//   4. rewrites config.json: /dev/kvm device and cgroup rule, a read-only bind
//      mount of the launch directory at /.krunlet, and process.args replaced by
//      the launcher (started through its own ELF interpreter).
// Any other bundle is not touched at all.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "base/result.h"
#include "launch_dir.h"
#include "safe_write.h"

namespace krunlet::oci {

inline constexpr const char* kHandlerAnnotation = "run.oci.handler";
inline constexpr const char* kRewrittenAnnotation = "org.krunlet.oci.rewritten";
inline constexpr const char* kOriginalConfigName = "krunlet-original-config.json";
inline constexpr const char* kLaunchDirName = "krunlet-launch";

// Does this (original) config ask for the krun handler?
bool annotated_for_krun(const nlohmann::json& config);

// What the launcher is told on its command line.
struct LauncherSettings {
    std::string loader_name;  // ELF interpreter file name inside /.krunlet/lib
    unsigned log_level = 1;   // krun_set_log_level: 1 error, 2 warn, 4 debug
};

// The pure transformation of step 4 (no I/O): `original` is the bundle's
// config as podman wrote it, `launch_dir` the host path to bind-mount.
// Fails only for unusable annotations (krun.cpus, krun.ram_mib) or a config
// whose shape is not an OCI config object.
Result<nlohmann::json> rewrite_config(const nlohmann::json& original, const std::string& launch_dir,
                                      const LauncherSettings& settings);

struct PrepareOptions {
    bool always = false;            // invoked as `krun`: every bundle runs in a VM
    unsigned log_level = 1;
    // Where the launcher and libkrun.so.1 are; asked only for krun bundles, so
    // pass-through works even where krunlet is not fully installed.
    std::function<Result<InstalledFiles>()> locate;
    Resolver resolver = Resolver::kAuto;
};

enum class Prepared { kPassThrough, kRewritten };

// Steps 1-4 for the bundle directory `bundle`; kPassThrough leaves it
// byte-for-byte as it was.
Result<Prepared> prepare_bundle(const std::string& bundle, const PrepareOptions& options);

}  // namespace krunlet::oci
