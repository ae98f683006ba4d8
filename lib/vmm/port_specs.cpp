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

}  // namespace krunlet
