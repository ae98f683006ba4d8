#include "vmm/port_mirror.h"

#include <cerrno>
#include <cstring>

#include "base/control_protocol.h"
#include "net/slirp_backend.h"

namespace krunlet {
namespace {

class LockedSlirpForwarder final : public PortForwarder {
public:
    LockedSlirpForwarder(std::mutex& mu, net::SlirpBackend& slirp) : mu_(mu), slirp_(slirp) {}
    Result<void> add(std::string_view host_addr, uint16_t host_port, std::string_view guest_addr,
                     uint16_t guest_port) override {
        std::lock_guard lock(mu_);
        return slirp_.add_hostfwd(host_addr, host_port, guest_addr, guest_port);
    }
    void remove(std::string_view host_addr, uint16_t host_port) override {
        std::lock_guard lock(mu_);
        (void)slirp_.remove_hostfwd(host_addr, host_port);  // ENOENT: already gone, nothing to do
    }

private:
    std::mutex& mu_;
    net::SlirpBackend& slirp_;
};

bool is_loopback(std::string_view dotted) { return dotted.starts_with("127."); }

}  // namespace

std::unique_ptr<PortForwarder> locked_slirp_forwarder(std::mutex& net_mutex, net::SlirpBackend& slirp) {
    return std::make_unique<LockedSlirpForwarder>(net_mutex, slirp);
}

PortMirror::PortMirror(std::unique_ptr<PortForwarder> forwarder, std::string guest_address, int log_level, Log log)
    : forwarder_(std::move(forwarder)), guest_address_(std::move(guest_address)), log_level_(log_level),
      log_(std::move(log)) {}

void PortMirror::on_listen(uint16_t port, const std::string& addr) {
    Forward want;
    want.host_addr = is_loopback(addr) ? "127.0.0.1" : "0.0.0.0";
    want.guest_addr = addr == "0.0.0.0" ? guest_address_ : addr;

    auto it = active_.find(port);
    if (it != active_.end()) {
        if (it->second.host_addr == want.host_addr && it->second.guest_addr == want.guest_addr) return;
        // The listener's reach changed (say 127.0.0.1 became 0.0.0.0): move the forward.
        forwarder_->remove(it->second.host_addr, port);
        active_.erase(it);
    } else if (active_.size() >= control::kMaxMirroredPorts) {
        if (!said_too_many_ && log_level_ >= 1 && log_)
            log_("krunlet: the guest listens on more than " + std::to_string(control::kMaxMirroredPorts) +
                 " TCP ports; guest port " + std::to_string(port) +
                 " and later ones are not mirrored to the host (use --publish for the ones you need)");
        said_too_many_ = true;
        return;
    }

    auto r = forwarder_->add(want.host_addr, port, want.guest_addr, port);
    if (r.ok()) {
        failed_.erase(port);
        if (log_level_ >= 3 && log_)
            log_("krunlet: guest TCP port " + std::to_string(port) + " (" + addr + ") mirrored on host " +
                 want.host_addr + ":" + std::to_string(port));
        active_.emplace(port, std::move(want));
        return;
    }
    // One line per port and report, however often the guest re-announces it.
    auto f = failed_.find(port);
    if (f != failed_.end() && f->second == addr) return;
    failed_[port] = addr;
    if (log_level_ < 1 || !log_) return;
    const int e = r.error().code;
    std::string why = e == EADDRINUSE ? "host port " + std::to_string(port) + " is already in use"
                      : e == EACCES   ? "host ports below 1024 need CAP_NET_BIND_SERVICE"
                                      : std::string(std::strerror(e));
    log_("krunlet: guest TCP port " + std::to_string(port) + " is not mirrored: cannot listen on " + want.host_addr +
         ":" + std::to_string(port) + " (" + why +
         "); the guest listener keeps running but stays unreachable from the host (free the host port, or "
         "give an explicit port map such as --publish HOST:" + std::to_string(port) + ", which replaces mirroring)");
}

void PortMirror::on_unlisten(uint16_t port) {
    failed_.erase(port);
    auto it = active_.find(port);
    if (it == active_.end()) return;
    forwarder_->remove(it->second.host_addr, port);
    if (log_level_ >= 3 && log_)
        log_("krunlet: guest TCP port " + std::to_string(port) + " closed; host " + it->second.host_addr + ":" +
             std::to_string(port) + " released");
    active_.erase(it);
}

std::optional<std::string> PortMirror::host_address(uint16_t port) const {
    auto it = active_.find(port);
    if (it == active_.end()) return std::nullopt;
    return it->second.host_addr;
}

}  // namespace krunlet
