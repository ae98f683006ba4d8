// krunlet-boot-guest: init of the QEMU guests that bench/compare.sh boots
// against krunlet (docs/performance.md).
//
//   init=/krunlet-boot-guest  or  rdinit=/krunlet-boot-guest   [-- COMMAND ARG...]
//
// It makes the two I/O port writes krunlet's own init makes (DESIGN.md §2,
// lib/base/control_protocol.h), so that the same host-side trace (kvm_pio
// events in the KVM test host) marks the same moments under both VMMs:
//   0x4b to port 0x80  first thing after the kernel started init;
//   0x57 to port 0x80  just before the fork of the workload.
// Then it runs COMMAND (default /bin/true), waits for it and restarts the
// machine: the kernel's reboot=t plus QEMU's -no-reboot make QEMU exit.
//
// It does less than krunlet's init (no /proc, /sys or /dev mounts, no
// control channel, no console set-up), which favours QEMU in the comparison.
// Static, so it runs from a virtio-fs root and from an initramfs alike.
#include <sys/io.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/control_protocol.h"  // the port and the values krunlet's init writes

namespace {

using krunlet::control::kDebugPort;

void mark(uint8_t value, bool have_port) {
    if (have_port) ::outb(value, kDebugPort);
}

[[noreturn]] void restart() {
    ::sync();
    ::reboot(RB_AUTOBOOT);
    // Not reached as PID 1 with CAP_SYS_BOOT; elsewhere say why and stop.
    std::fprintf(stderr, "krunlet-boot-guest: reboot: %s (run it as a guest's init)\n", std::strerror(errno));
    ::_exit(1);
}

}  // namespace

int main(int argc, char** argv) {
    const bool have_port = ::ioperm(kDebugPort, 1, 1) == 0;
    mark(krunlet::control::kInitStarted, have_port);
    if (!have_port) std::fprintf(stderr, "krunlet-boot-guest: ioperm(0x80): %s; no boot marks\n", std::strerror(errno));

    // The kernel passes the words after "--" on its command line as argv[1..].
    int first = 1;
    if (first < argc && std::strcmp(argv[first], "--") == 0) ++first;
    char default_cmd[] = "/bin/true";
    char* fallback[] = {default_cmd, nullptr};
    char** cmd = first < argc ? argv + first : fallback;

    mark(krunlet::control::kWorkloadStarting, have_port);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::execv(cmd[0], cmd);
        std::fprintf(stderr, "krunlet-boot-guest: %s: %s\n", cmd[0], std::strerror(errno));
        ::_exit(127);
    }
    if (pid < 0) {
        std::fprintf(stderr, "krunlet-boot-guest: fork: %s\n", std::strerror(errno));
        restart();
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        std::fprintf(stderr, "krunlet-boot-guest: %s ended with status 0x%x\n", cmd[0], static_cast<unsigned>(status));
    restart();
}
