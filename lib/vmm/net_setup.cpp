#include "vmm/net_setup.h"

#include <arpa/inet.h>
#include <fcntl.h>

#include <cstdio>
#include <string>

#include "net/slirp_backend.h"
#include "net/unixstream_backend.h"

namespace krunlet {

Result<NetSetup> make_net_backend(virtio::DeviceEnv& env, const NetConfig& net, int log_level) {
    NetSetup out;
    out.device.mac = net.mac;
    out.device.tx_checksum = net.tx_checksum;

    if (net.backend == NetBackendKind::UnixStream) {
        net::UnixStreamBackend::Options o;
        std::string what = net.unixstream_path.empty() ? "the network fd" : "the network socket " + net.unixstream_path;
        if (log_level >= 1)
            o.on_down = [what](std::string_view why) {
                std::fprintf(stderr, "krunlet: %s: %.*s; the guest's network is down from now on\n", what.c_str(),
                             int(why.size()), why.data());
            };
        Result<std::unique_ptr<net::UnixStreamBackend>> b = make_error(EINVAL, "no network socket");
        if (net.unixstream_fd >= 0) {
            // The caller keeps its descriptor (crun's context may be freed); the VM owns a copy.
            UniqueFd dup(::fcntl(net.unixstream_fd, F_DUPFD_CLOEXEC, 3));
            if (!dup.valid()) return errno_error("duplicating the network fd " + std::to_string(net.unixstream_fd));
            b = net::UnixStreamBackend::adopt(env, std::move(dup), std::move(o));
        } else {
            b = net::UnixStreamBackend::connect(env, net.unixstream_path, std::move(o));
        }
        if (!b.ok()) return b.error();
        out.backend = std::move(b).value();
        return out;
    }

    // slirp's network is the one the guest is told about (exec message "net").
    net::SlirpOptions so;
    so.guest_mac = net.mac;
    so.guest = net.guest_address;
    so.host = net.gateway;
    so.dns = net.dns;
    so.prefix_len = net.guest_prefix;
    in_addr a{};
    if (::inet_pton(AF_INET, net.guest_address.c_str(), &a) == 1 && net.guest_prefix >= 1 && net.guest_prefix <= 32) {
        const uint32_t mask = net.guest_prefix == 32 ? ~uint32_t{0} : ~(~uint32_t{0} >> net.guest_prefix);
        a.s_addr = htonl(ntohl(a.s_addr) & mask);
        char text[INET_ADDRSTRLEN] = {};
        so.network = ::inet_ntop(AF_INET, &a, text, sizeof text);
    }  // else SlirpBackend::create names the bad address
    auto slirp = net::SlirpBackend::create(env, so);
    if (!slirp.ok()) return slirp.error();
    for (const PortForward& f : net.ports) {
        // A port another program holds must not keep the workload from running: say so, go on.
        if (auto r = (*slirp)->add_hostfwd(net.host_addr, f.host, f.guest); !r.ok() && log_level >= 1)
            std::fprintf(stderr, "krunlet: port %u -> guest %u not published: %s\n", f.host, f.guest,
                         r.error().message.c_str());
    }
    out.slirp = slirp->get();
    out.backend = std::move(slirp).value();
    return out;
}

}  // namespace krunlet
