// The directory krun bind-mounts read-only into a krun container at /.krunlet.
//
// The container's rootfs is an arbitrary image (busybox has no libstdc++, no
// glibc at all), so the launcher brings its whole user space with it:
//   bin/krunlet-launch
//   lib/<the host's ELF interpreter, e.g. ld-linux-x86-64.so.2>
//   lib/libkrun.so.1 and every shared library it and the launcher need
//   lib/krunlet/vmlinux, when the library keeps its kernel next to itself
// and is started through its own loader:
//   /.krunlet/lib/ld-linux-x86-64.so.2 --library-path /.krunlet/lib /.krunlet/bin/krunlet-launch ...
// Dependencies are resolved by the host's own loader (`ld.so --list`), so the
// result is exactly what the host would load: DT_NEEDED, RUNPATH, ld.so.cache
// and all. Files are hard links to the installed ones when the bundle is on the
// same filesystem (no copy, shared page cache), copies otherwise.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace krunlet::oci {

// Where the launch directory appears inside the container.
inline constexpr const char* kLaunchMountPoint = "/.krunlet";

struct InstalledFiles {
    std::string launcher;  // build/bin/krunlet-launch
    std::string libkrun;   // build/lib/libkrun.so.1
};

// Find the launcher and libkrun.so.1 relative to krun's own executable
// (`self_exe`): the launcher next to it, the library in ../lib (or
// `rel_libdir`). KRUNLET_LAUNCHER and KRUNLET_LIBKRUN override either.
Result<InstalledFiles> locate_installed(const std::string& self_exe, const std::string& rel_libdir);

struct LaunchDir {
    std::string dir;          // host path of the directory
    std::string loader_name;  // file name of the ELF interpreter inside lib/
    size_t files = 0;         // how many files it holds (for --debug)
};

// (Re)build the launch directory at `dest` (removed first if it exists).
Result<LaunchDir> build_launch_dir(const InstalledFiles& files, const std::string& dest);

// The PT_INTERP of an ELF executable, e.g. "/lib64/ld-linux-x86-64.so.2".
Result<std::string> elf_interpreter(const std::string& path);

// (name, host path) of every shared library `file` needs, by running
// `interp --list file`. The interpreter itself and the vDSO are not listed.
Result<std::vector<std::pair<std::string, std::string>>> list_dependencies(const std::string& interp,
                                                                           const std::string& file);

}  // namespace krunlet::oci
