// Port mirroring, host side (issue 4): when no port map was given, every TCP
// port the guest listens on is forwarded from the same port on the host, in
// the VMM's network namespace. init reports the guest's listeners over the
// control channel (init/listeners.h, control_protocol.h "listen"/"unlisten");
// this class turns the reports into the user-mode stack's port forwards.
//
// Where the host listens follows where the guest does:
//   guest 0.0.0.0 / :: / a.b.c.d  ->  host 0.0.0.0:P (podman's DNAT into the
//                                      container's namespace reaches it)
//   guest 127.x.y.z only          ->  host 127.0.0.1:P, forwarded to the
//                                      guest's 127.x.y.z (init lets eth0
//                                      accept loopback destinations)
// A host port that cannot be taken (in use, or below 1024 without
// CAP_NET_BIND_SERVICE) is one log line; the guest keeps running with that
// listener unreachable from the host. Reports are guest-controlled: ports
// and addresses are checked by the control channel, and at most
// control::kMaxMirroredPorts forwards exist at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "base/result.h"

namespace krunlet {

namespace net {
class SlirpBackend;
}

// What mirroring needs from the network backend.
class PortForwarder {
public:
    virtual ~PortForwarder() = default;
    virtual Result<void> add(std::string_view host_addr, uint16_t host_port, std::string_view guest_addr,
                             uint16_t guest_port) = 0;
    virtual void remove(std::string_view host_addr, uint16_t host_port) = 0;
};

// The slirp backend's forwards, called with the net device's transport mutex
// held (the control channel runs under the vsock device's mutex; nothing
// takes the two the other way round).
std::unique_ptr<PortForwarder> locked_slirp_forwarder(std::mutex& net_mutex, net::SlirpBackend& slirp);

class PortMirror {
public:
    using Log = std::function<void(const std::string& line)>;

    // `guest_address` is where wildcard listeners are reached (eth0's
    // address). `log_level` is libkrun's: failures are printed from 1
    // (error) on, each mirrored port from 3 (info) on.
    PortMirror(std::unique_ptr<PortForwarder> forwarder, std::string guest_address, int log_level, Log log);

    // control_protocol.h "listen": `addr` is a dotted quad.
    void on_listen(uint16_t port, const std::string& addr);
    // control_protocol.h "unlisten".
    void on_unlisten(uint16_t port);

    // The host address port P is mirrored on, if it is.
    std::optional<std::string> host_address(uint16_t port) const;
    size_t size() const { return active_.size(); }

private:
    struct Forward {
        std::string host_addr;
        std::string guest_addr;
    };

    std::unique_ptr<PortForwarder> forwarder_;
    std::string guest_address_;
    int log_level_;
    Log log_;
    std::map<uint16_t, Forward> active_;
    std::map<uint16_t, std::string> failed_;  // port -> the report already logged as failed
    bool said_too_many_ = false;
};

}  // namespace krunlet
