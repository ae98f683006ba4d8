#include "vmm/legacy_io.h"

#include <unistd.h>

#include "base/control_protocol.h"

namespace krunlet {

namespace {
constexpr uint16_t kI8042Data = 0x60;
constexpr uint16_t kI8042Command = 0x64;
constexpr uint8_t kI8042ResetCommand = 0xfe;  // pulse output line 0: CPU reset
constexpr uint16_t kCom1 = 0x3f8;
constexpr uint8_t kLsrThrEmpty = 0x60;        // THRE | TEMT
}  // namespace

PortEvent LegacyIo::access(uint16_t port, bool is_write, std::span<uint8_t> data) {
    if (data.empty()) return PortEvent::None;
    if (!is_write) {
        for (auto& b : data) b = 0xff;
    }
    switch (port) {
    case kI8042Command:
        if (is_write) return data[0] == kI8042ResetCommand ? PortEvent::Reset : PortEvent::None;
        data[0] = 0;  // status: no data, input buffer empty
        return PortEvent::None;
    case kI8042Data:
        if (!is_write) data[0] = 0;
        return PortEvent::None;
    case control::kDebugPort:
        if (!is_write) return PortEvent::None;
        if (data[0] == control::kInitStarted) return PortEvent::InitStarted;
        if (data[0] == control::kWorkloadStarting) return PortEvent::WorkloadStarting;
        return PortEvent::None;
    default:
        break;
    }
    if (port >= kCom1 && port < kCom1 + 8) {
        uint16_t reg = port - kCom1;
        bool dlab = (serial_lcr_ & 0x80) != 0;
        if (is_write) {
            if (reg == 3) serial_lcr_ = data[0];
            if (reg == 0 && !dlab && echo_serial_) [[maybe_unused]] ssize_t n = ::write(2, data.data(), 1);
        } else {
            data[0] = reg == 5 ? kLsrThrEmpty : reg == 3 ? serial_lcr_ : 0;
        }
    }
    return PortEvent::None;
}

}  // namespace krunlet
