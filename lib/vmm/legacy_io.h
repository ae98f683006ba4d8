// The few x86 I/O ports a microVM guest touches, answered in user space:
//  - 0x60/0x64, the i8042: the kernel's reboot=k path waits for the input
//    buffer to drain (status bit 1 clear), then writes command 0xFE (pulse
//    the reset line). That write ends the VM.
//  - the debug port (control_protocol.h): init's "I have started" timestamp.
//  - COM1 (0x3f8-0x3ff): just enough of a 16550 for earlyprintk=serial
//    (the transmitter is always empty); output goes to stderr at debug level.
// Every other port reads as all-ones (nothing there) and ignores writes.
#pragma once

#include <cstdint>
#include <span>

namespace krunlet {

enum class PortEvent {
    None,
    Reset,        // the guest asked for a reset: the VM ends
    InitStarted,  // init's first write to the debug port
    WorkloadStarting,  // init is about to fork the workload
};

class LegacyIo {
public:
    explicit LegacyIo(bool echo_serial) : echo_serial_(echo_serial) {}
    // `data` is the access (1, 2 or 4 bytes); on a read, fill it in.
    PortEvent access(uint16_t port, bool is_write, std::span<uint8_t> data);

private:
    bool echo_serial_;
    uint8_t serial_lcr_ = 0;
};

}  // namespace krunlet
