// Test helpers: build and parse the Ethernet/ARP/IPv4/ICMP/UDP/TCP frames a
// guest would send, with real checksums (RFC 791/792/768/793, RFC 826).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace krunlet::net::test {

using Bytes = std::vector<uint8_t>;
using MacAddr = std::array<uint8_t, 6>;

inline constexpr MacAddr kGuestMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
inline constexpr MacAddr kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
inline constexpr uint16_t kEthIpv4 = 0x0800;
inline constexpr uint16_t kEthArp = 0x0806;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;

constexpr uint32_t ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return uint32_t{a} << 24 | uint32_t{b} << 16 | uint32_t{c} << 8 | d;
}
inline constexpr uint32_t kGuestIp = ip4(10, 0, 2, 15);
inline constexpr uint32_t kHostIp = ip4(10, 0, 2, 2);
inline constexpr uint32_t kDnsIp = ip4(10, 0, 2, 3);

inline void put16(Bytes& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}
inline void put32(Bytes& b, uint32_t v) {
    put16(b, static_cast<uint16_t>(v >> 16));
    put16(b, static_cast<uint16_t>(v));
}
inline void append(Bytes& b, std::span<const uint8_t> s) { b.insert(b.end(), s.begin(), s.end()); }
inline uint16_t get16(std::span<const uint8_t> b, size_t at) { return static_cast<uint16_t>(b[at] << 8 | b[at + 1]); }
inline uint32_t get32(std::span<const uint8_t> b, size_t at) {
    return uint32_t{get16(b, at)} << 16 | get16(b, at + 2);
}
inline Bytes bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }
inline std::string text(std::span<const uint8_t> b) { return std::string(b.begin(), b.end()); }

// The one's complement sum (not yet inverted), 32-bit accumulator.
inline uint32_t sum16(std::span<const uint8_t> b, uint32_t sum = 0) {
    size_t i = 0;
    for (; i + 1 < b.size(); i += 2) sum += get16(b, i);
    if (i < b.size()) sum += uint32_t{b[i]} << 8;
    return sum;
}
inline uint16_t fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}
inline uint16_t checksum(std::span<const uint8_t> b, uint32_t sum = 0) {
    return static_cast<uint16_t>(~fold(sum16(b, sum)));
}
// The TCP/UDP pseudo-header sum.
inline uint32_t pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, size_t len) {
    return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + static_cast<uint32_t>(len);
}

inline Bytes ethernet(const MacAddr& dst, const MacAddr& src, uint16_t type, std::span<const uint8_t> payload) {
    Bytes f(dst.begin(), dst.end());
    f.insert(f.end(), src.begin(), src.end());
    put16(f, type);
    append(f, payload);
    return f;
}

inline Bytes arp(uint16_t op, const MacAddr& sha, uint32_t sip, const MacAddr& tha, uint32_t tip) {
    Bytes a;
    put16(a, 1);        // Ethernet
    put16(a, kEthIpv4);
    a.push_back(6);
    a.push_back(4);
    put16(a, op);
    a.insert(a.end(), sha.begin(), sha.end());
    put32(a, sip);
    a.insert(a.end(), tha.begin(), tha.end());
    put32(a, tip);
    return a;
}
inline Bytes arp_request(uint32_t target, const MacAddr& mac = kGuestMac, uint32_t sender = kGuestIp) {
    return ethernet(kBroadcast, mac, kEthArp, arp(1, mac, sender, MacAddr{}, target));
}

inline Bytes ipv4(uint32_t src, uint32_t dst, uint8_t proto, std::span<const uint8_t> payload, uint16_t id = 1) {
    Bytes h;
    h.push_back(0x45);
    h.push_back(0);
    put16(h, static_cast<uint16_t>(20 + payload.size()));
    put16(h, id);
    put16(h, 0x4000);  // DF
    h.push_back(64);
    h.push_back(proto);
    put16(h, 0);
    put32(h, src);
    put32(h, dst);
    const uint16_t c = checksum(h);
    h[10] = static_cast<uint8_t>(c >> 8);
    h[11] = static_cast<uint8_t>(c);
    append(h, payload);
    return h;
}

inline Bytes icmp_echo(uint16_t ident, uint16_t seq, std::span<const uint8_t> data) {
    Bytes m{8, 0, 0, 0};
    put16(m, ident);
    put16(m, seq);
    append(m, data);
    const uint16_t c = checksum(m);
    m[2] = static_cast<uint8_t>(c >> 8);
    m[3] = static_cast<uint8_t>(c);
    return m;
}

// A UDP datagram; `partial` leaves only the pseudo-header sum in the
// checksum field, as a driver does for VIRTIO_NET_HDR_F_NEEDS_CSUM.
inline Bytes udp(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, std::span<const uint8_t> data,
                 bool partial = false) {
    Bytes u;
    put16(u, sport);
    put16(u, dport);
    put16(u, static_cast<uint16_t>(8 + data.size()));
    put16(u, 0);
    append(u, data);
    const uint32_t ps = pseudo_sum(src, dst, kProtoUdp, u.size());
    uint16_t c = partial ? fold(ps) : checksum(u, ps);
    if (!partial && c == 0) c = 0xffff;
    u[6] = static_cast<uint8_t>(c >> 8);
    u[7] = static_cast<uint8_t>(c);
    return u;
}

namespace tcpflag {
inline constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
}

inline Bytes tcp(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                 uint8_t flags, std::span<const uint8_t> data, uint16_t window = 65535) {
    Bytes t;
    put16(t, sport);
    put16(t, dport);
    put32(t, seq);
    put32(t, ack);
    t.push_back(5 << 4);  // 20-byte header, no options
    t.push_back(flags);
    put16(t, window);
    put16(t, 0);  // checksum
    put16(t, 0);  // urgent pointer
    append(t, data);
    const uint16_t c = checksum(t, pseudo_sum(src, dst, kProtoTcp, t.size()));
    t[16] = static_cast<uint8_t>(c >> 8);
    t[17] = static_cast<uint8_t>(c);
    return t;
}

// --- parsing what comes back ---

struct Ip {
    uint32_t src = 0, dst = 0;
    uint8_t proto = 0;
    Bytes payload;
};
// The IPv4 packet in an Ethernet frame, if it is one with a valid header checksum.
inline std::optional<Ip> parse_ipv4(std::span<const uint8_t> frame) {
    if (frame.size() < 14 + 20 || get16(frame, 12) != kEthIpv4) return std::nullopt;
    auto ip = frame.subspan(14);
    const size_t ihl = (ip[0] & 0xf) * 4u;
    const size_t total = get16(ip, 2);
    if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl || total > ip.size()) return std::nullopt;
    if (fold(sum16(ip.first(ihl))) != 0xffff) return std::nullopt;
    Ip out;
    out.src = get32(ip, 12);
    out.dst = get32(ip, 16);
    out.proto = ip[9];
    out.payload.assign(ip.begin() + static_cast<ptrdiff_t>(ihl), ip.begin() + static_cast<ptrdiff_t>(total));
    return out;
}
// Whether a TCP/UDP payload of `ip` carries a valid checksum.
inline bool l4_checksum_ok(const Ip& ip) {
    return fold(sum16(ip.payload, pseudo_sum(ip.src, ip.dst, ip.proto, ip.payload.size()))) == 0xffff;
}

struct Tcp {
    uint16_t sport = 0, dport = 0;
    uint32_t seq = 0, ack = 0;
    uint8_t flags = 0;
    Bytes data;
};
inline std::optional<Tcp> parse_tcp(const Ip& ip) {
    if (ip.proto != kProtoTcp || ip.payload.size() < 20) return std::nullopt;
    const auto& p = ip.payload;
    const size_t off = (p[12] >> 4) * 4u;
    if (off < 20 || off > p.size()) return std::nullopt;
    Tcp t;
    t.sport = get16(p, 0);
    t.dport = get16(p, 2);
    t.seq = get32(p, 4);
    t.ack = get32(p, 8);
    t.flags = p[13];
    t.data.assign(p.begin() + static_cast<ptrdiff_t>(off), p.end());
    return t;
}

}  // namespace krunlet::net::test
