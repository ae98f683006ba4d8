// krun_set_kernel: a guest kernel chosen by the caller (crun passes
// .krun_vm.json's kernel_path, kernel_format, initrd_path and kernel_cmdline).
// krunlet boots one kind of kernel, an uncompressed ELF vmlinux, and no
// initramfs (the root is virtio-fs): everything else is refused with the reason.
#include <cerrno>
#include <string>

#include "capi/context.h"
#include "libkrun.h"
#include "vmm/kernel_file.h"

extern "C" int32_t krun_set_kernel(uint32_t ctx_id, const char* kernel_path, uint32_t kernel_format,
                                   const char* initramfs, const char* cmdline) {
    using krunlet::capi::Context;
    using krunlet::capi::ContextTable;
    auto log = [](const std::string& msg) { krunlet::capi::log_at(KRUN_LOG_LEVEL_ERROR, "krun_set_kernel: " + msg); };
    try {
        if (ContextTable::instance().with(ctx_id, [](Context&) { return 0; }) != 0) return -ENOENT;
        if (kernel_path == nullptr || *kernel_path == '\0') {
            log("no kernel path");
            return -EINVAL;
        }
        if (kernel_format != KRUN_KERNEL_FORMAT_ELF) {
            log("kernel format " + std::to_string(kernel_format) +
                " is not supported: krunlet boots an uncompressed x86-64 ELF vmlinux (KRUN_KERNEL_FORMAT_ELF = 1)");
            return -ENOTSUP;
        }
        if (initramfs != nullptr && *initramfs != '\0') {
            log(std::string("an initramfs (") + initramfs +
                ") is not supported: krunlet boots straight into its init on the virtio-fs root");
            return -ENOTSUP;
        }
        // Opened now: crun calls this inside the container, where the path is
        // valid, and a bad file should fail here rather than at start.
        auto k = krunlet::KernelFile::open(kernel_path);
        if (!k.ok()) {
            log(k.error().message);
            return -k.error().code;
        }
        std::string words = cmdline != nullptr ? cmdline : "";
        return ContextTable::instance().with(ctx_id, [&](Context& c) {
            c.kernel.emplace(std::move(k).value());
            c.kernel_error.clear();
            c.set_kernel_cmdline = std::move(words);
            return 0;
        });
    } catch (...) {
        return -ENOMEM;
    }
}
