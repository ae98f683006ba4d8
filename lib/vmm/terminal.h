// Raw mode for the caller's terminal while the guest owns it, restored on
// destruction (the guest's tty does the line editing and echo).
#pragma once

#include <termios.h>

namespace krunlet {

class RawTerminal {
public:
    // Puts `fd` in raw mode if it is a terminal; otherwise does nothing.
    explicit RawTerminal(int fd);
    ~RawTerminal();
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;

private:
    int fd_ = -1;
    struct termios saved_{};
    bool active_ = false;
};

}  // namespace krunlet
