// The guest side of the network (lib/net/slirp_backend.h, lib/net/unixstream_backend.h): eth0
// gets a static IPv4 setup from the host's exec message, by default the fixed addresses of
// slirp's network as QEMU's -netdev user hands them out, so no DHCP client is needed.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "init/config.h"

namespace krunlet::init {

// Addresses eth0, brings it up and routes everything through the gateway. Returns false when
// the VM has no eth0 (networking off): nothing to do.
Result<bool> configure_eth0(const NetSettings& net = {});

// The dotted netmask of a prefix length (24 -> "255.255.255.0").
std::string prefix_netmask(unsigned prefix);

// Lets packets addressed to 127.0.0.0/8 arrive on eth0 (net.ipv4.conf.eth0.route_localnet).
// Port mirroring needs it for guest listeners bound to loopback only: the host forwards to
// them at their own address (vmm/port_mirror.h), and eth0 only ever carries the VMM's frames.
Result<void> allow_loopback_on_eth0();

// Whether a resolv.conf text names a server the guest can reach: any "nameserver" line that
// is not a loopback address (127.0.0.0/8, ::1; those are the host's, not the guest's).
bool resolv_conf_usable(std::string_view text);

// Makes sure the guest resolves names through `nameserver` when the image's /etc/resolv.conf
// is missing or unusable. A missing file is created (as podman would give the container one);
// an existing one is left untouched on the host: a file with our line is bind-mounted over it.
Result<void> ensure_resolver(const std::string& nameserver = NetSettings{}.dns);

}  // namespace krunlet::init
