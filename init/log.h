// Messages from init go to the console (fd 2) as one write each, prefixed
// "krunlet-init: " so they stand out from the workload's output.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>

namespace krunlet::init {

inline void log_line(std::string_view message) {
    std::string line = "krunlet-init: ";
    line.append(message);
    line += '\n';
    // Nothing sensible to do when the console itself fails.
    size_t done = 0;
    while (done < line.size()) {
        ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<size_t>(n);
    }
}

inline void log_warning(std::string_view message) { log_line("warning: " + std::string(message)); }

}  // namespace krunlet::init
