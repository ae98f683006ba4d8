// The guest side of the user-mode network (lib/net/slirp_backend.h): eth0 gets the fixed
// addresses of slirp's network, as QEMU's -netdev user hands them out, so no DHCP client is
// needed in the image.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace krunlet::init {

inline constexpr const char* kGuestAddress = "10.0.2.15";
inline constexpr const char* kGuestNetmask = "255.255.255.0";
inline constexpr const char* kGateway = "10.0.2.2";  // also reaches the host's loopback
inline constexpr const char* kNameserver = "10.0.2.3";

// Addresses eth0, brings it up and routes everything through kGateway. Returns false when the
// VM has no eth0 (networking off): nothing to do.
Result<bool> configure_eth0();

// Whether a resolv.conf text names a server the guest can reach: any "nameserver" line that
// is not a loopback address (127.0.0.0/8, ::1; those are the host's, not the guest's).
bool resolv_conf_usable(std::string_view text);

// Makes sure the guest resolves names through kNameserver when the image's /etc/resolv.conf is
// missing or unusable. A missing file is created (as podman would give the container one); an
// existing one is left untouched on the host: a file with our line is bind-mounted over it.
Result<void> ensure_resolver();

}  // namespace krunlet::init
