#include "vmm/terminal.h"

#include <unistd.h>

namespace krunlet {

RawTerminal::RawTerminal(int fd) : fd_(fd) {
    if (fd < 0 || ::isatty(fd) == 0 || ::tcgetattr(fd, &saved_) != 0) return;
    struct termios raw = saved_;
    ::cfmakeraw(&raw);
    // Keep output post-processing as it was: the guest already sends \r\n.
    raw.c_oflag = saved_.c_oflag;
    if (::tcsetattr(fd, TCSANOW, &raw) == 0) active_ = true;
}

RawTerminal::~RawTerminal() {
    if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
}

}  // namespace krunlet
