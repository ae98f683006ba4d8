// Small one-shot steps of guest bring-up, each a thin wrapper over the system
// calls that do it, with messages that say what failed.
#pragma once

#include <cstddef>
#include <string>

#include "base/result.h"

namespace krunlet::init {

// Writes control::kInitStarted to the debug port so the VMM can timestamp the
// start of user space (DESIGN.md §2). Silent on failure: timing is optional.
void announce_start();
// Writes control::kWorkloadStarting there just before the workload's fork.
void announce_workload();

// Makes /dev/console (or /dev/hvc0 when that fails) fds 0, 1 and 2. The kernel
// found no /dev/console on the virtio-fs root, so init starts without them.
Result<void> open_console();

// Raw mode for the console (no echo, no \n -> \r\n, no signals from ^C),
// for a host console that is a pipe or file rather than a terminal.
Result<void> make_console_raw();

// ioctl(SIOCSIFFLAGS, IFF_UP) on "lo".
Result<void> bring_up_loopback();

Result<void> set_hostname(const std::string& name);

// Reads a whole file. ENOENT comes back as an Error with that code, so callers
// can treat a missing optional file as absent. Files above `limit` bytes are an
// error (EFBIG).
Result<std::string> read_file(const std::string& path, size_t limit);

}  // namespace krunlet::init
