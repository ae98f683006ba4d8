// The C API's only global state: a table of configuration contexts, keyed by
// the ids krun_create_ctx hands out (DESIGN.md §5: no global context map
// beyond this one table).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/fd.h"
#include "vmm/fs_cache_knobs.h"
#include "vmm/kernel_file.h"
#include "vmm/vm_config.h"

namespace krunlet::capi {

struct Context {
    VmConfig config;
    std::optional<KernelFile> kernel;  // found at create time (or krun_set_kernel's)
    std::string kernel_error;          // why it was not
    std::string set_kernel_cmdline;    // krun_set_kernel's cmdline (appended)
    UniqueFd console_out_file;         // krun_set_console_output
    std::optional<uid_t> run_as_uid;   // krun_setuid
    std::optional<gid_t> run_as_gid;   // krun_setgid
    UniqueFd net_fd;                   // krun_add_net_unixstream's socket (config.net.unixstream_fd)
    uint64_t created_ns = 0;
    bool boot_trace = false;           // krunlet_set_boot_trace
    FsCacheKnobs fs_cache;             // krunlet_set_fs_cache (checked)
    FsCacheKnobs fs_cache_env;         // KRUNLET_FS_* when the context was created
};

// One line on stderr, "krunlet: MSG", when the log level is at least `level`
// (KRUN_LOG_LEVEL_*). Takes the table's lock: never call inside with().
void log_at(uint32_t level, const std::string& msg);

class ContextTable {
public:
    static ContextTable& instance();

    int32_t create(std::unique_ptr<Context> ctx);
    // Run fn on the context under the table lock; -ENOENT if absent.
    template <class Fn>
    int32_t with(uint32_t id, Fn&& fn) {
        std::lock_guard lock(mu_);
        auto it = ctxs_.find(id);
        if (it == ctxs_.end()) return -ENOENT;
        return fn(*it->second);
    }
    std::unique_ptr<Context> take(uint32_t id);

    uint32_t log_level() const;
    void set_log_level(uint32_t level);

private:
    mutable std::mutex mu_;
    std::map<uint32_t, std::unique_ptr<Context>> ctxs_;
    uint32_t next_id_ = 0;
    uint32_t log_level_ = 1;
};

}  // namespace krunlet::capi
