// Writing a file inside a container's root filesystem without following any
// symlink the image may have planted there.
//
// The rootfs belongs to the container image, which is untrusted: a symlink at
// .krun_config.json (or at a directory on the way) pointing at /etc/... would
// make a naive open() as host root overwrite a host file (the crun
// CVE-2025-24965 class). Every component is resolved beneath the rootfs with
// symlinks refused, and the file itself is created fresh with O_EXCL, so no
// existing inode (symlink, FIFO, device node) is ever opened for writing.
#pragma once

#include <string>
#include <string_view>

#include "base/fd.h"
#include "base/result.h"

namespace krunlet::oci {

enum class Resolver {
    kAuto,     // openat2(RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS|...), falling back when the kernel lacks it
    kOpenat2,  // openat2 only (tests)
    kWalk,     // component by component with O_NOFOLLOW (kernels before 5.6; tests)
};

// Open `root` itself: O_PATH|O_DIRECTORY|O_NOFOLLOW.
Result<UniqueFd> open_root(const std::string& root);

// Write `content` to `relpath` (relative, '/'-separated, no "..") beneath the
// directory `root_fd`, mode `mode`. Directories on the way must exist and be
// real directories. An existing regular file is replaced; anything else at
// that name (symlink, directory, FIFO, device) is refused with an error that
// says so. `shown_root` is only used in messages.
Result<void> write_file_beneath(int root_fd, std::string_view relpath, std::string_view content, unsigned mode,
                                const std::string& shown_root, Resolver resolver = Resolver::kAuto);

}  // namespace krunlet::oci
