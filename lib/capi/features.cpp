// The libkrun calls for features krunlet has not got, and the queries about
// them (DESIGN.md §3: crun and launchers look these symbols up). What krunlet
// lacks is refused with -ENOTSUP and one logged line naming it, never accepted
// and ignored; asking for what krunlet already does succeeds.
#include <cerrno>
#include <string>

#include "capi/context.h"
#include "libkrun.h"

namespace {

using krunlet::capi::Context;
using krunlet::capi::ContextTable;

bool has_ctx(uint32_t ctx_id) {
    return ContextTable::instance().with(ctx_id, [](Context&) { return 0; }) == 0;
}

// -ENOENT for an unknown context, else -ENOTSUP after saying what is missing.
int32_t unsupported(uint32_t ctx_id, const char* call, const char* what) {
    if (!has_ctx(ctx_id)) return -ENOENT;
    krunlet::capi::log_at(KRUN_LOG_LEVEL_ERROR, std::string(call) + ": not supported: " + what);
    return -ENOTSUP;
}

}  // namespace

extern "C" {

int32_t krun_init_log(int target_fd, uint32_t level, uint32_t style, uint32_t options) {
    if (level > KRUN_LOG_LEVEL_TRACE || style > KRUN_LOG_STYLE_NEVER || (options & ~uint32_t{KRUN_LOG_OPTION_NO_ENV}) != 0)
        return -EINVAL;
    if (target_fd != KRUN_LOG_TARGET_DEFAULT) {
        krunlet::capi::log_at(KRUN_LOG_LEVEL_ERROR,
                              "krun_init_log: not supported: logging to fd " + std::to_string(target_fd) +
                                  "; krunlet logs to stderr only (pass KRUN_LOG_TARGET_DEFAULT, or redirect stderr)");
        return -ENOTSUP;
    }
    ContextTable::instance().set_log_level(level);
    return 0;
}

int32_t krun_has_feature(uint64_t feature) {
    switch (feature) {
        case KRUN_FEATURE_NET:        // virtio-net: slirp or passt (krun_add_net_unixstream)
        case KRUN_FEATURE_INIT_BLOB:  // init is built into the library (init/init_blob.S)
            return 1;
        case KRUN_FEATURE_BLK:
        case KRUN_FEATURE_GPU:
        case KRUN_FEATURE_INPUT:
        case KRUN_FEATURE_TEE:
        case KRUN_FEATURE_AMD_SEV:
        case KRUN_FEATURE_INTEL_TDX:
        case KRUN_FEATURE_AWS_NITRO:
        case KRUN_FEATURE_VIRGL_RESOURCE_MAP2:
            return 0;
        default:
            return -EINVAL;
    }
}

// The VM builder leaves x86::CpuidConfig::nested off, so the guest never sees
// VMX or SVM, whatever the host offers.
int32_t krun_check_nested_virt(void) { return 0; }

int32_t krun_set_nested_virt(uint32_t ctx_id, bool enabled) {
    if (!enabled) return has_ctx(ctx_id) ? 0 : -ENOENT;
    return unsupported(ctx_id, "krun_set_nested_virt", "nested virtualization (the guest gets no VMX/SVM)");
}

int32_t krun_set_gpu_options(uint32_t ctx_id, uint32_t) {
    return unsupported(ctx_id, "krun_set_gpu_options", "krunlet has no virtio-gpu device");
}

int32_t krun_set_gpu_options2(uint32_t ctx_id, uint32_t, uint64_t) {
    return unsupported(ctx_id, "krun_set_gpu_options2", "krunlet has no virtio-gpu device");
}

int32_t krun_set_root_disk(uint32_t ctx_id, const char*) {
    return unsupported(ctx_id, "krun_set_root_disk",
                       "krunlet has no virtio-blk device; share a directory as the root with krun_set_root");
}

int32_t krun_set_data_disk(uint32_t ctx_id, const char*) {
    return unsupported(ctx_id, "krun_set_data_disk",
                       "krunlet has no virtio-blk device; share a directory with krun_add_virtiofs");
}

int32_t krun_set_tee_config_file(uint32_t ctx_id, const char*) {
    return unsupported(ctx_id, "krun_set_tee_config_file", "krunlet has no TEE (SEV/TDX) support");
}

int32_t krun_split_irqchip(uint32_t ctx_id, bool enable) {
    if (!enable) return has_ctx(ctx_id) ? 0 : -ENOENT;
    return unsupported(ctx_id, "krun_split_irqchip", "krunlet always uses KVM's full in-kernel irqchip");
}

int32_t krun_set_smbios_oem_strings(uint32_t ctx_id, const char* const oem_strings[]) {
    if (oem_strings == nullptr || oem_strings[0] == nullptr) return has_ctx(ctx_id) ? 0 : -ENOENT;
    return unsupported(ctx_id, "krun_set_smbios_oem_strings", "krunlet gives the guest no SMBIOS tables");
}

int32_t krun_set_snd_device(uint32_t ctx_id, bool enable) {
    if (!enable) return has_ctx(ctx_id) ? 0 : -ENOENT;
    return unsupported(ctx_id, "krun_set_snd_device", "krunlet has no virtio-snd device");
}

int32_t krun_get_shutdown_eventfd(uint32_t ctx_id) {
    return unsupported(ctx_id, "krun_get_shutdown_eventfd",
                       "no shutdown eventfd; send SIGTERM to the VMM process, which forwards it to the workload");
}

}  // extern "C"
