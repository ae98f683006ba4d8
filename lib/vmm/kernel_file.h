// Finding the guest kernel (an ELF vmlinux) and keeping its bytes mapped.
//
// open_default()'s order (DESIGN.md §3):
//   1. $KRUNLET_KERNEL, a file (an explicit choice: no fallback when it fails);
//   2. the kernel built into libkrunlet-kernel.so.1 (lib/kernelfw), which the
//      dynamic loader mapped with libkrun.so.1: no fd, no copy, and it works
//      after crun's pivot_root and close_range;
//   3. krunlet/vmlinux next to the library that holds this code
//      (build/lib/krunlet/vmlinux in the build tree, <libdir>/krunlet/vmlinux
//      when installed).
// krun_set_kernel's path (lib/capi) beats all three.
//
// A file is mapped read-only and MAP_PRIVATE, so every VM in the process
// shares its page cache and nothing is copied until the ELF loader places the
// segments.
#pragma once

#include <span>
#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace krunlet {

class KernelFile {
public:
    static Result<KernelFile> open(const std::string& path);
    // The kernel in libkrunlet-kernel.so.1; ENOENT when it was built without one.
    static Result<KernelFile> embedded();
    // $KRUNLET_KERNEL, else the embedded kernel, else the file next to the library.
    static Result<KernelFile> open_default();
    // Where step 3 above looks.
    static std::string default_path();

    std::span<const uint8_t> bytes() const { return bytes_; }
    // The file, or a description of the embedded blob (for messages).
    const std::string& path() const { return path_; }
    bool is_embedded() const { return embedded_; }
    // Once the ELF loader has copied the kernel into guest RAM: drop this
    // process's page-table references to the file's pages (MADV_DONTNEED on a
    // read-only file mapping, never written, so nothing is lost). The pages
    // stay in the page cache, shared, for the next VM; they just stop counting
    // in this VMM's RSS (about 12 MiB for the krunlet kernel).
    void release_pages() const;
    // Whether every page of the bytes is still mapped: a VM that took the
    // kernel's pages (VmConfig::kernel_pages_movable) and then failed to start
    // leaves holes, and nothing may read the bytes after that.
    bool intact() const;

private:
    KernelFile() = default;
    Mapping map_;                     // a file's mapping; empty for the embedded kernel
    std::span<const uint8_t> bytes_;  // into map_ or into libkrunlet-kernel.so.1
    std::string path_;
    bool embedded_ = false;
};

// Why `bytes` cannot be a vmlinux, or nullptr when it may be one (the ELF
// loader checks the rest).
const char* vmlinux_problem(std::span<const uint8_t> bytes);

}  // namespace krunlet
