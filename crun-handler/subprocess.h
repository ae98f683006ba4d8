// Running a helper program and reading what it prints: the low-level
// runtime's `state` and `--version`, and the host loader's `--list`.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "base/result.h"

namespace krunlet::oci {

struct Captured {
    int status = 0;   // as waitpid(2) reports it
    std::string out;  // stdout, at most the limit asked for

    bool succeeded() const;  // exited, with 0
};

// Runs argv[0] (a path) with `argv`, stdin and stderr on /dev/null and stdout
// captured (up to `limit` bytes; the rest is read and dropped so the child
// never blocks). With `clean_env` the child gets an empty environment.
// Errors are only for what keeps the child from being started or waited for.
Result<Captured> run_capture(const std::vector<std::string>& argv, bool clean_env = false,
                             size_t limit = size_t{1} << 20);

}  // namespace krunlet::oci
