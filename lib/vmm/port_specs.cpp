#include "vmm/port_specs.h"

#include <charconv>
#include <string>

namespace krunlet {

namespace {

// A decimal number in [lo, hi], nothing else.
bool parse_number(std::string_view s, uint64_t lo, uint64_t hi, uint64_t& out) {
    if (s.empty()) return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && out >= lo && out <= hi;
}

}  // namespace

Result<PortForward> parse_port_forward(std::string_view spec) {
    const std::string shown(spec);
    size_t colon = spec.find(':');
    uint64_t host = 0, guest = 0;
    if (colon == std::string_view::npos || !parse_number(spec.substr(0, colon), 1, 65535, host) ||
        !parse_number(spec.substr(colon + 1), 1, 65535, guest))
        return make_error(EINVAL, "port map \"" + shown + "\": use HOST:GUEST with TCP ports 1-65535, e.g. 8080:80");
    return PortForward{static_cast<uint16_t>(host), static_cast<uint16_t>(guest)};
}

Result<VsockPort> parse_vsock_port(std::string_view spec) {
    const std::string shown(spec);
    auto bad = [&](const std::string& why) {
        return make_error(EINVAL, "vsock port \"" + shown + "\": " + why +
                                      "; use PORT:PATH or PORT:PATH:listen, e.g. 5000:/run/app.sock");
    };
    size_t colon = spec.find(':');
    uint64_t port = 0;
    if (colon == std::string_view::npos || !parse_number(spec.substr(0, colon), 1, 0xfffffffe, port))
        return bad("PORT must be a number from 1 to 4294967294");
    std::string_view path = spec.substr(colon + 1);
    bool listen = false;
    if (path.ends_with(":listen")) {
        listen = true;
        path.remove_suffix(7);
    }
    if (path.empty()) return bad("PATH is empty");
    return VsockPort{static_cast<uint32_t>(port), std::string(path), listen};
}

}  // namespace krunlet
