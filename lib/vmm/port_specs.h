// The textual form users give for published ports: "HOST:GUEST" (krun_set_port_map; the
// CLI's --publish values reach it unchanged, so both say the same thing about a bad value).
#pragma once

#include <string_view>

#include "base/result.h"
#include "vmm/vm_config.h"

namespace krunlet {

// "8080:80": host TCP port 8080 to guest port 80, both 1..65535.
Result<PortForward> parse_port_forward(std::string_view spec);

}  // namespace krunlet
