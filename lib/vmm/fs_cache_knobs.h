// The virtio-fs cache knobs (issue 3): a policy and two timeouts for every
// share. A program sets them through krunlet_set_fs_cache (the CLI's
// --fs-cache, --fs-entry-timeout and --fs-attr-timeout); crun cannot pass
// flags, so the environment can set them too:
//
//   KRUNLET_FS_CACHE          never | auto | always   (default auto)
//   KRUNLET_FS_ENTRY_TIMEOUT  seconds, e.g. 0, 1, 0.25 (default: the policy's)
//   KRUNLET_FS_ATTR_TIMEOUT   seconds                  (default: the policy's)
//
// What the program set wins over the environment, knob by knob.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "base/result.h"
#include "vmm/vm_config.h"

namespace krunlet {

inline constexpr const char* kEnvFsCache = "KRUNLET_FS_CACHE";
inline constexpr const char* kEnvFsEntryTimeout = "KRUNLET_FS_ENTRY_TIMEOUT";
inline constexpr const char* kEnvFsAttrTimeout = "KRUNLET_FS_ATTR_TIMEOUT";

// The knobs as text, each unset or as given.
struct FsCacheKnobs {
    std::optional<std::string> policy;
    std::optional<std::string> entry_timeout;
    std::optional<std::string> attr_timeout;
};

// The three variables, read through `get` (getenv by default; tests pass
// their own). An empty value counts as unset.
FsCacheKnobs fs_cache_knobs_from_env(const std::function<const char*(const char*)>& get = {});

// Each knob of `later` that is set replaces the one of `earlier`.
FsCacheKnobs overlay(const FsCacheKnobs& earlier, const FsCacheKnobs& later);

// The program's knobs (already checked by check_program_knob) over the
// environment's, then the defaults. An error names the variable and what it
// accepts, e.g. "KRUNLET_FS_CACHE=sometimes: use never, auto or always".
Result<FsCacheSettings> resolve_fs_cache(const FsCacheKnobs& program, const FsCacheKnobs& env);

// Checks one knob a program passes (krunlet_set_fs_cache): `what` names it in
// the error ("policy", "entry_timeout", "attr_timeout").
Result<void> check_program_knob(const char* what, const std::string& value);

}  // namespace krunlet
