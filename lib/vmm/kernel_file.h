// Finding and mapping the guest kernel (an ELF vmlinux).
//
// Order: $KRUNLET_KERNEL, then krunlet/vmlinux next to the library that holds
// this code (build/lib/krunlet/vmlinux in the build tree, <libdir>/krunlet/
// vmlinux when installed). The file is mapped read-only and MAP_PRIVATE, so
// every VM in the process shares its page cache and nothing is copied until
// the ELF loader places the segments.
#pragma once

#include <span>
#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace krunlet {

class KernelFile {
public:
    static Result<KernelFile> open(const std::string& path);
    // $KRUNLET_KERNEL or the file installed next to the library.
    static Result<KernelFile> open_default();
    static std::string default_path();

    std::span<const uint8_t> bytes() const { return {map_.data(), map_.size()}; }
    const std::string& path() const { return path_; }

private:
    KernelFile() = default;
    Mapping map_;
    std::string path_;
};

}  // namespace krunlet
