// The textual forms users give for ports: "HOST:GUEST" (krun_set_port_map, --publish) and
// "PORT:PATH[:listen]" (--vsock-port). Shared by the C API and the CLI so both say the same
// thing about a bad value.
#pragma once

#include <string_view>

#include "base/result.h"
#include "vmm/vm_config.h"

namespace krunlet {

// "8080:80": host TCP port 8080 to guest port 80, both 1..65535.
Result<PortForward> parse_port_forward(std::string_view spec);

// "5000:/run/app.sock" (guest connects out) or "5000:/run/app.sock:listen" (host clients in).
Result<VsockPort> parse_vsock_port(std::string_view spec);

}  // namespace krunlet
