// virtio-net and the slirp backend together, as the VMM wires them: the
// scripted driver posts frames on the transmit queue and receive buffers on
// the receive queue; slirp answers, and host sockets on 127.0.0.1 play the
// outside world.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>

#include "../devices/harness.h"
#include "devices/net.h"
#include "frames.h"
#include "net/slirp_backend.h"
#include "net/virtio_net_abi.h"

using namespace krunlet;
using namespace krunlet::net::test;
using krunlet::devices::NetDevice;
using krunlet::devices::test::Driver;
using krunlet::devices::test::LoopEnv;
using krunlet::devices::test::Used;

namespace {

constexpr uint16_t kRx = NetDevice::kRxQueue;
constexpr uint16_t kTx = NetDevice::kTxQueue;
constexpr size_t kHdr = 12;
constexpr MacAddr kGatewayMac{0x52, 0x55, 10, 0, 2, 2};

struct Rig {
    LoopEnv env;
    net::SlirpBackend* slirp = nullptr;  // owned by the device
    std::unique_ptr<NetDevice> dev;
    std::unique_ptr<Driver> drv;

    Rig() {
        auto b = net::SlirpBackend::create(env, net::SlirpOptions{});
        REQUIRE(b.ok());
        slirp = b->get();
        auto d = NetDevice::create(std::move(b).value(), NetDevice::Options{});
        REQUIRE(d.ok());
        dev = std::move(d).value();
        drv = std::make_unique<Driver>(*dev);
        CHECK(env.watch_count() == 0);  // nothing runs before the driver is ready
        REQUIRE(drv->activate(virtio::kFeatureVersion1 | (1ull << VIRTIO_NET_F_MRG_RXBUF) |
                              (1ull << VIRTIO_NET_F_CSUM))
                    .ok());
        CHECK(env.watch_count() == 1);  // slirp's private epoll
        for (int i = 0; i < 16; ++i) drv->post_in(kRx, 1526);
        REQUIRE(drv->kick(kRx).ok());
    }
    void transmit(const Bytes& frame, const Bytes& hdr = Bytes(kHdr, 0)) {
        drv->post(kTx, {hdr, frame}, {});
        REQUIRE(drv->kick(kTx).ok());
        REQUIRE(drv->take_used(kTx).size() == 1);
    }
    // Frames the guest received (headers checked and stripped), running the
    // loop until `want` arrived or 5 s passed.
    std::vector<Bytes> receive(size_t want) {
        std::vector<Bytes> got;
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (got.size() < want && std::chrono::steady_clock::now() < end) {
            for (Used& u : drv->take_used(kRx)) {
                REQUIRE(u.len >= kHdr);
                CHECK(u.data[0] == 0);   // flags: no offloads towards the guest
                CHECK(u.data[10] == 1);  // num_buffers: a 1526-byte buffer holds any 1514-byte frame
                got.emplace_back(u.data.begin() + kHdr, u.data.end());
                drv->post_in(kRx, 1526);  // replenish, as the driver does
            }
            if (got.size() < want) env.run_once(20);
        }
        return got;
    }
};

}  // namespace

TEST_CASE("virtio-net over slirp: ARP, ping, and a UDP exchange with checksum offload") {
    Rig rig;
    rig.transmit(arp_request(kHostIp));
    auto arp = rig.receive(1);
    REQUIRE(arp.size() == 1);
    CHECK(get16(arp[0], 12) == kEthArp);
    CHECK(get32(arp[0], 28) == kHostIp);

    rig.transmit(ethernet(kGatewayMac, kGuestMac, kEthIpv4,
                          ipv4(kGuestIp, kHostIp, kProtoIcmp, icmp_echo(9, 1, bytes("over virtio")))));
    auto echo = rig.receive(1);
    REQUIRE(echo.size() == 1);
    auto ip = parse_ipv4(echo[0]);
    REQUIRE(ip.has_value());
    CHECK(ip->proto == kProtoIcmp);
    CHECK(ip->payload[0] == 0);

    // A UDP datagram whose checksum the guest left to the device. slirp
    // drops datagrams with a bad checksum, so its arrival proves the device
    // completed it correctly.
    UniqueFd host(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(host.valid());
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(host.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t alen = sizeof a;
    REQUIRE(::getsockname(host.get(), reinterpret_cast<sockaddr*>(&a), &alen) == 0);
    const uint16_t port = ntohs(a.sin_port);
    Bytes hdr(kHdr, 0);
    hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    hdr[6] = 34;  // csum_start: the UDP header
    hdr[8] = 6;   // csum_offset: its checksum field
    rig.transmit(ethernet(kGatewayMac, kGuestMac, kEthIpv4,
                          ipv4(kGuestIp, kHostIp, kProtoUdp, udp(kGuestIp, kHostIp, 5555, port, bytes("offloaded"), true))),
                 hdr);
    pollfd p{host.get(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 2000) == 1);
    char buf[32];
    sockaddr_in from{};
    socklen_t flen = sizeof from;
    REQUIRE(::recvfrom(host.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen) == 9);
    CHECK(std::string(buf, 9) == "offloaded");

    REQUIRE(::sendto(host.get(), "back", 4, 0, reinterpret_cast<sockaddr*>(&from), flen) == 4);
    auto back = rig.receive(1);
    REQUIRE(back.size() == 1);
    auto bip = parse_ipv4(back[0]);
    REQUIRE(bip.has_value());
    CHECK(bip->proto == kProtoUdp);
    CHECK(l4_checksum_ok(*bip));
    CHECK(text(std::span<const uint8_t>(bip->payload).subspan(8)) == "back");
    CHECK(rig.dev->stats().tx_frames == 3);
    CHECK(rig.dev->stats().rx_frames == 3);

    // A guest-sent fragment is refused by the backend and counted by the device.
    Bytes frag = ipv4(kGuestIp, kHostIp, kProtoUdp, Bytes(64), 0x99);
    frag[7] = 0x10;
    frag[10] = frag[11] = 0;
    const uint16_t c = checksum(std::span<const uint8_t>(frag).first(20));
    frag[10] = static_cast<uint8_t>(c >> 8);
    frag[11] = static_cast<uint8_t>(c);
    rig.transmit(ethernet(kGatewayMac, kGuestMac, kEthIpv4, frag));
    CHECK(rig.dev->stats().tx_backend_errors == 1);
    CHECK(rig.slirp->stats().fragments_dropped == 1);

    // Device reset and a new driver: slirp keeps running and answers again.
    rig.drv->reset();
    REQUIRE(rig.drv->activate(virtio::kFeatureVersion1).ok());
    CHECK(rig.env.watch_count() == 1);
    rig.drv->post_in(kRx, 1526);
    rig.transmit(arp_request(kDnsIp));
    auto again = rig.receive(1);
    REQUIRE(again.size() == 1);
    CHECK(get32(again[0], 28) == kDnsIp);
}
