#include <doctest/doctest.h>

#include <array>

#include "base/control_protocol.h"
#include "vmm/legacy_io.h"

using krunlet::LegacyIo;
using krunlet::PortEvent;

TEST_CASE("legacy ports: i8042 reset, debug port, COM1, nothing elsewhere") {
    LegacyIo io(false);
    std::array<uint8_t, 1> b{};

    // reboot=k: wait for the input buffer to be empty, then command 0xFE.
    CHECK(io.access(0x64, false, b) == PortEvent::None);
    CHECK((b[0] & 0x02) == 0);
    b[0] = 0xaa;
    CHECK(io.access(0x64, true, b) == PortEvent::None);
    b[0] = 0xfe;
    CHECK(io.access(0x64, true, b) == PortEvent::Reset);

    b[0] = krunlet::control::kInitStarted;
    CHECK(io.access(krunlet::control::kDebugPort, true, b) == PortEvent::InitStarted);
    b[0] = krunlet::control::kWorkloadStarting;
    CHECK(io.access(krunlet::control::kDebugPort, true, b) == PortEvent::WorkloadStarting);
    CHECK(io.access(krunlet::control::kDebugPort, false, b) == PortEvent::None);  // a read is no event
    b[0] = 0;
    CHECK(io.access(krunlet::control::kDebugPort, true, b) == PortEvent::None);

    // COM1's line status says the transmitter is empty, so earlyprintk never waits.
    CHECK(io.access(0x3fd, false, b) == PortEvent::None);
    CHECK((b[0] & 0x20) != 0);

    // Unknown ports float high.
    std::array<uint8_t, 4> w{};
    CHECK(io.access(0x1234, false, w) == PortEvent::None);
    CHECK(w == std::array<uint8_t, 4>{0xff, 0xff, 0xff, 0xff});
    CHECK(io.access(0x1234, false, std::span<uint8_t>()) == PortEvent::None);
}
