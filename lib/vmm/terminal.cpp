#include "vmm/terminal.h"

#include <unistd.h>

namespace krunlet {

RawTerminal::RawTerminal(int fd) : fd_(fd) {
    if (fd < 0 || ::isatty(fd) == 0 || ::tcgetattr(fd, &saved_) != 0) return;
    struct termios raw = saved_;
    // Fully raw, output included: the guest's own tty already turns \n into
    // \r\n, and doing it again here would print \r\r\n.
    ::cfmakeraw(&raw);
    if (::tcsetattr(fd, TCSANOW, &raw) == 0) active_ = true;
}

RawTerminal::~RawTerminal() {
    if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
}

}  // namespace krunlet
