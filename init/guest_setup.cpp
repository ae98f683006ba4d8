#include "init/guest_setup.h"

#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <sys/io.h>
#endif

#include <cerrno>
#include <cstring>

#include "base/control_protocol.h"
#include "base/fd.h"

namespace krunlet::init {

namespace {

// One byte to the debug port, which init keeps (ioperm) for itself: ioperm(2)
// rights are not passed on by fork, so the workload never gets the port.
void announce(uint8_t value) {
#if defined(__x86_64__) || defined(__i386__)
    if (::ioperm(control::kDebugPort, 1, 1) == 0) ::outb(value, control::kDebugPort);
#else
    (void)value;
#endif
}

}  // namespace

void announce_start() { announce(control::kInitStarted); }

void announce_workload() { announce(control::kWorkloadStarting); }

Result<void> open_console() {
    int fd = -1;
    Error first;
    for (const char* path : {"/dev/console", "/dev/hvc0"}) {
        // O_NOCTTY: init must not own the console; the workload's session does.
        fd = ::open(path, O_RDWR | O_NOCTTY);
        if (fd >= 0) break;
        if (first.message.empty()) first = errno_error(std::string("opening ") + path);
    }
    if (fd < 0) return first;
    for (int target = 0; target <= 2; ++target) {
        if (fd != target && ::dup2(fd, target) < 0) {
            Error e = errno_error("making the console fd " + std::to_string(target));
            if (fd > 2) ::close(fd);
            return e;
        }
    }
    if (fd > 2) ::close(fd);
    return ok_result();
}

Result<void> bring_up_loopback() {
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) return errno_error("bringing up lo: socket(AF_INET)");
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) < 0) return errno_error("bringing up lo: SIOCGIFFLAGS");
    if (ifr.ifr_flags & IFF_UP) return ok_result();
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) < 0) return errno_error("bringing up lo: SIOCSIFFLAGS");
    return ok_result();
}

Result<void> set_hostname(const std::string& name) {
    if (::sethostname(name.data(), name.size()) < 0) return errno_error("setting the hostname to \"" + name + "\"");
    return ok_result();
}

Result<std::string> read_file(const std::string& path, size_t limit) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return errno_error("opening " + path);
    struct stat st;
    if (::fstat(fd.get(), &st) < 0) return errno_error("stat " + path);
    if (!S_ISREG(st.st_mode)) return make_error(EINVAL, path + " is not a regular file");
    if (static_cast<uint64_t>(st.st_size) > limit)
        return make_error(EFBIG, path + " is " + std::to_string(st.st_size) + " bytes, above the limit of " +
                                     std::to_string(limit));
    std::string out;
    out.reserve(static_cast<size_t>(st.st_size));
    char buf[65536];
    while (true) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_error("reading " + path);
        if (n == 0) break;
        if (out.size() + static_cast<size_t>(n) > limit)
            return make_error(EFBIG, path + " grew above the limit of " + std::to_string(limit) + " bytes");
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

Result<void> make_console_raw() {
    struct termios t{};
    if (::tcgetattr(STDIN_FILENO, &t) != 0) return errno_error("reading the console's termios");
    ::cfmakeraw(&t);
    if (::tcsetattr(STDIN_FILENO, TCSANOW, &t) != 0) return errno_error("making the console raw");
    return {};
}

}  // namespace krunlet::init
