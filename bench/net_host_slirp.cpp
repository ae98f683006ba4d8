// krunlet-bench net-host, the slirp part: the host CPU that krunlet's virtio-net device
// (lib/devices/net.cpp) and its libslirp backend (lib/net/slirp_backend.cpp) spend per MiB of
// TCP, per round trip and per connection, on the real CPU with no guest.
//
// A scripted guest (virtq_driver.h) speaks just enough IPv4 to do it: it answers and sends ARP,
// and runs one TCP connection at a time to 10.0.2.2:PORT (slirp's alias of the host's
// 127.0.0.1, where a peer thread listens), like a guest kernel would on the wire (RFC 793):
// MSS 1460, no window scaling, in-order data within the peer's window, an ACK for every
// segment received, a 64 KiB receive window. Nothing is lost on this path, so it never
// retransmits; a stall is reported as an error. Frames go through virtio-net queues with the
// 12-byte virtio_net_hdr_v1 (VIRTIO_F_VERSION_1, no mergeable buffers, no offloads), so the
// device's work is counted too. Only BenchLoop::run_once() runs device and slirp code.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "devices/net.h"
#include "net/slirp_backend.h"
#include "buffer_slots.h"
#include "net_host_common.h"
#include "virtq_driver.h"

namespace krunlet::bench {
namespace {

using devices::NetDevice;

constexpr size_t kNetHdr = 12;  // struct virtio_net_hdr_v1 (virtio 1.2 §5.1.6)
constexpr uint32_t kRxBuf = 2048;
constexpr size_t kRxSlots = 256;
constexpr size_t kTxSlots = 128;
constexpr uint16_t kMss = 1460;
constexpr uint32_t kRcvWindow = 65535;
constexpr uint8_t kGuestMac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
const uint32_t kGuestIp = htonl(0x0a00020f);  // 10.0.2.15
const uint32_t kHostIp = htonl(0x0a000202);   // 10.0.2.2

enum : uint8_t { kFin = 1, kSyn = 2, kRst = 4, kPsh = 8, kAck = 16 };

uint16_t csum_fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}
uint32_t csum_add(uint32_t sum, const uint8_t* p, size_t n) {
    for (; n > 1; n -= 2, p += 2) sum += uint32_t(p[0]) << 8 | p[1];
    if (n) sum += uint32_t(p[0]) << 8;
    return sum;
}
void put16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v >> 8), p[1] = uint8_t(v); }
void put32(uint8_t* p, uint32_t v) { put16(p, uint16_t(v >> 16)), put16(p + 2, uint16_t(v)); }
uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t* p) { return uint32_t(get16(p)) << 16 | get16(p + 2); }

class TcpGuest {
public:
    TcpGuest(VirtqDriver& d, BenchLoop& loop) : d_(d), loop_(loop) {}

    Result<void> setup() {
        if (auto r = rx_.allocate(d_, kRxSlots, kRxBuf); !r.ok()) return r.error();
        if (auto r = tx_.allocate(d_, kTxSlots, kNetHdr + 1600); !r.ok()) return r.error();
        fill_rx();
        return ok_result();
    }

    void run_device(int timeout_ms) {
        double t0 = thread_cpu_s();
        loop_.run_once(timeout_ms);
        cpu_s += thread_cpu_s() - t0;
    }

    // ARP for the gateway (slirp answers for 10.0.2.2).
    void resolve_gateway() {
        uint8_t f[42] = {};
        std::memset(f, 0xff, 6);
        std::memcpy(f + 6, kGuestMac, 6);
        put16(f + 12, 0x0806);
        put16(f + 14, 1), put16(f + 16, 0x0800), f[18] = 6, f[19] = 4, put16(f + 20, 1);
        std::memcpy(f + 22, kGuestMac, 6);
        std::memcpy(f + 28, &kGuestIp, 4);
        std::memcpy(f + 38, &kHostIp, 4);
        send_frame(f, sizeof f);
    }
    bool have_gateway() const { return have_gw_; }

    void open(uint16_t port) {
        c_ = Conn{};
        c_.sport = next_sport_++;
        c_.dport = port;
        c_.iss = 1000;
        c_.snd_una = c_.snd_nxt = c_.iss;
        segment(kSyn, nullptr, 0, true);
        c_.snd_nxt = c_.iss + 1;
    }
    bool established() const { return c_.established; }
    bool reset() const { return c_.reset; }
    bool peer_fin() const { return c_.peer_fin; }
    uint64_t received() const { return c_.received; }
    uint64_t acked() const { return c_.snd_una - c_.iss - 1; }
    // Bytes the peer's window lets us send now.
    uint32_t window() const {
        uint32_t in_flight = c_.snd_nxt - c_.snd_una;
        return in_flight >= c_.snd_wnd ? 0 : c_.snd_wnd - in_flight;
    }
    bool can_send() const { return tx_.has_free() && d_.free_descriptors(NetDevice::kTxQueue) >= 1; }

    void send_data(uint32_t n) {
        static const uint8_t zeros[kMss] = {};
        segment(kAck | kPsh, zeros, n, false);
        c_.snd_nxt += n;
    }
    void send_rst() { segment(kRst | kAck, nullptr, 0, false); }
    void flush() {
        if (posted_) d_.kick(NetDevice::kTxQueue);
        posted_ = false;
    }

    void poll() {
        used_.clear();
        d_.take_used(NetDevice::kTxQueue, used_);
        for (auto& u : used_) tx_.complete(u.head);
        used_.clear();
        d_.take_used(NetDevice::kRxQueue, used_);
        for (auto& u : used_)
            if (BufferSlot* s = rx_.complete(u.head))
                if (u.len > kNetHdr) frame(d_.host(s->gpa + kNetHdr, u.len - kNetHdr), u.len - kNetHdr);
        fill_rx();
        flush();
    }

    double cpu_s = 0;

private:
    struct Conn {
        uint16_t sport = 0, dport = 0;
        uint32_t iss = 0, snd_una = 0, snd_nxt = 0, snd_wnd = 0;
        uint32_t rcv_nxt = 0;
        bool established = false, reset = false, peer_fin = false;
        uint64_t received = 0;
    };

    void fill_rx() {
        bool posted = false;
        for (auto& s : rx_.all()) {
            if (s.busy) continue;
            auto head = d_.post(NetDevice::kRxQueue, {{s.gpa, kRxBuf, true}});
            if (!head) break;
            BufferSlots::posted(s, *head);
            posted = true;
        }
        if (posted) d_.kick(NetDevice::kRxQueue);
    }
    void send_frame(const uint8_t* f, size_t n) {
        while (!can_send()) {
            flush();
            run_device(1);
            poll();
        }
        BufferSlot& s = *tx_.free_slot();
        std::memset(d_.host(s.gpa, kNetHdr), 0, kNetHdr);
        std::memcpy(d_.host(s.gpa + kNetHdr, n), f, n);
        BufferSlots::posted(s, *d_.post(NetDevice::kTxQueue, {{s.gpa, uint32_t(kNetHdr + n), false}}));
        posted_ = true;
    }
    // One IPv4/TCP segment to the peer (checksums complete: no offload negotiated).
    void segment(uint8_t flags, const uint8_t* data, uint32_t n, bool syn_mss) {
        uint8_t f[14 + 20 + 24 + kMss];
        const size_t tcp_len = (syn_mss ? 24 : 20) + n;
        std::memcpy(f, gw_mac_, 6);
        std::memcpy(f + 6, kGuestMac, 6);
        put16(f + 12, 0x0800);
        uint8_t* ip = f + 14;
        std::memset(ip, 0, 20);
        ip[0] = 0x45;
        put16(ip + 2, uint16_t(20 + tcp_len));
        put16(ip + 4, ip_id_++);
        put16(ip + 6, 0x4000);  // DF
        ip[8] = 64;
        ip[9] = IPPROTO_TCP;
        std::memcpy(ip + 12, &kGuestIp, 4);
        std::memcpy(ip + 16, &kHostIp, 4);
        put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
        uint8_t* t = ip + 20;
        std::memset(t, 0, syn_mss ? 24 : 20);
        put16(t, c_.sport);
        put16(t + 2, c_.dport);
        put32(t + 4, c_.snd_nxt);
        put32(t + 8, (flags & kAck) ? c_.rcv_nxt : 0);
        t[12] = uint8_t((syn_mss ? 6 : 5) << 4);
        t[13] = flags;
        put16(t + 14, uint16_t(kRcvWindow));
        if (syn_mss) t[20] = 2, t[21] = 4, put16(t + 22, kMss);
        if (n) std::memcpy(t + (syn_mss ? 24 : 20), data, n);
        uint32_t sum = csum_add(0, ip + 12, 8);  // pseudo-header: addresses, protocol, length
        sum += IPPROTO_TCP + uint32_t(tcp_len);
        put16(t + 16, csum_fold(csum_add(sum, t, tcp_len)));
        send_frame(f, 14 + 20 + tcp_len);
    }
    void frame(const uint8_t* f, size_t n) {
        if (n < 14) return;
        uint16_t type = get16(f + 12);
        if (type == 0x0806 && n >= 42) {
            if (get16(f + 20) == 2) {  // a reply: the gateway's MAC
                std::memcpy(gw_mac_, f + 22, 6);
                have_gw_ = true;
            } else if (get16(f + 20) == 1 && std::memcmp(f + 38, &kGuestIp, 4) == 0) {
                uint8_t r[42];
                std::memcpy(r, f + 6, 6);
                std::memcpy(r + 6, kGuestMac, 6);
                std::memcpy(r + 12, f + 12, 8);
                put16(r + 20, 2);
                std::memcpy(r + 22, kGuestMac, 6);
                std::memcpy(r + 28, &kGuestIp, 4);
                std::memcpy(r + 32, f + 22, 10);
                send_frame(r, sizeof r);
            }
            return;
        }
        if (type != 0x0800 || n < 14 + 40) return;
        const uint8_t* ip = f + 14;
        size_t ihl = size_t(ip[0] & 15) * 4;
        if (ip[9] != IPPROTO_TCP || n < 14 + ihl + 20) return;
        const uint8_t* t = ip + ihl;
        if (get16(t) != c_.dport || get16(t + 2) != c_.sport) return;  // an earlier connection
        size_t doff = size_t(t[12] >> 4) * 4;
        size_t len = std::min<size_t>(get16(ip + 2), n - 14) - ihl - doff;
        uint8_t fl = t[13];
        uint32_t seq = get32(t + 4);
        if (fl & kRst) {
            c_.reset = true;
            return;
        }
        if (fl & kAck) {
            uint32_t ack = get32(t + 8);
            if (int32_t(ack - c_.snd_una) > 0) c_.snd_una = ack;
            c_.snd_wnd = get16(t + 14);
        }
        if ((fl & kSyn) && !c_.established) {
            c_.rcv_nxt = seq + 1;
            c_.established = true;
            segment(kAck, nullptr, 0, false);
            return;
        }
        bool ack_it = false;
        if (len > 0) {
            if (seq == c_.rcv_nxt) {
                c_.rcv_nxt += uint32_t(len);
                c_.received += len;
            }
            ack_it = true;  // in order or not: say where we are
        }
        if ((fl & kFin) && seq + len == c_.rcv_nxt) {
            c_.rcv_nxt += 1;
            c_.peer_fin = true;
            ack_it = true;
        }
        if (ack_it) segment(kAck, nullptr, 0, false);
    }

    VirtqDriver& d_;
    BenchLoop& loop_;
    BufferSlots rx_, tx_;
    std::vector<UsedElem> used_;
    bool posted_ = false;
    uint8_t gw_mac_[6] = {};
    bool have_gw_ = false;
    uint16_t ip_id_ = 1;
    uint16_t next_sport_ = 40000;
    Conn c_;
};


bool connect(TcpGuest& g, uint16_t port) {
    g.open(port);
    g.flush();
    return pump(g, [&] { return g.established() || g.reset(); }) && g.established();
}

void finish(TcpGuest& g) {
    g.send_rst();
    g.flush();
    g.run_device(0);
    g.poll();
}

}  // namespace

Result<std::vector<HostRow>> run_slirp_rows(const NetHostOptions& o) {
    auto loop = BenchLoop::create();
    if (!loop.ok()) return loop.error();
    auto backend = net::SlirpBackend::create(**loop, net::SlirpOptions{});
    if (!backend.ok()) return backend.error();
    NetDevice::Options opts;
    opts.mergeable_rx = false;
    opts.tx_checksum = false;
    auto dev = NetDevice::create(std::move(backend).value(), opts);
    if (!dev.ok()) return dev.error();
    auto drv = VirtqDriver::create(**dev, **loop, 256, 16u << 20);
    if (!drv.ok()) return drv.error();
    KRUNLET_CHECK((*drv)->activate(virtio::kFeatureVersion1));
    TcpGuest g(**drv, **loop);
    KRUNLET_CHECK(g.setup());
    g.resolve_gateway();
    g.flush();
    if (!pump(g, [&] { return g.have_gateway(); })) return make_error(EIO, "slirp: no ARP reply for 10.0.2.2");

    auto peer = StreamPeer::tcp_loopback();
    if (!peer.ok()) return peer.error();
    StreamPeer& p = **peer;
    const uint64_t bytes = o.mib << 20;
    p.bytes = 0;
    std::vector<HostRow> rows{{"slirp TCP guest->host", "MiB", {}, {}},
                              {"slirp TCP host->guest", "MiB", {}, {}},
                              {"slirp TCP round trip", "round trip", {}, {}},
                              {"slirp TCP connect+close", "connection", {}, {}}};
    for (int round = 0; round < o.rounds; ++round) {
        // guest -> host
        p.bytes = 0;
        p.start(1, [&p](int c) { p.drain(c); });
        if (!connect(g, p.port())) return make_error(EIO, "slirp: no SYN-ACK (guest->host)");
        g.cpu_s = 0;
        auto t0 = std::chrono::steady_clock::now();
        uint64_t sent = 0;
        if (!pump(g, [&] {
                while (sent < bytes && g.window() > 0 && g.can_send()) {
                    uint32_t n = uint32_t(std::min<uint64_t>({kMss, g.window(), bytes - sent}));
                    g.send_data(n);
                    sent += n;
                }
                g.flush();
                return g.acked() >= bytes && p.bytes >= bytes;
            }))
            return make_error(ETIMEDOUT, "slirp: guest->host stalled after " + std::to_string(p.bytes) + " bytes");
        rows[0].add(g.cpu_s, std::chrono::steady_clock::now() - t0, double(bytes) / (1 << 20));
        finish(g);
        p.join();
        // host -> guest
        p.start(1, [bytes](int c) { StreamPeer::write_n(c, bytes); });
        if (!connect(g, p.port())) return make_error(EIO, "slirp: no SYN-ACK (host->guest)");
        g.cpu_s = 0;
        t0 = std::chrono::steady_clock::now();
        if (!pump(g, [&] { return g.received() >= bytes; }))
            return make_error(ETIMEDOUT, "slirp: host->guest stalled after " + std::to_string(g.received()) + " bytes");
        rows[1].add(g.cpu_s, std::chrono::steady_clock::now() - t0, double(bytes) / (1 << 20));
        pump(g, [&] { return g.peer_fin(); });
        finish(g);
        p.join();
        // round trips of one byte
        p.start(1, StreamPeer::echo);
        if (!connect(g, p.port())) return make_error(EIO, "slirp: no SYN-ACK (round trips)");
        g.cpu_s = 0;
        t0 = std::chrono::steady_clock::now();
        for (uint64_t i = 0; i < o.conns; ++i) {
            uint64_t want = g.received() + 1;
            g.send_data(1);
            g.flush();
            if (!pump(g, [&] { return g.received() >= want; })) return make_error(ETIMEDOUT, "slirp: round trip lost");
        }
        rows[2].add(g.cpu_s, std::chrono::steady_clock::now() - t0, double(o.conns));
        finish(g);
        p.join();
        // connections: SYN, SYN-ACK, ACK, the peer's accept, RST
        p.start(int(o.conns), [&p](int c) { p.drain(c); });
        g.cpu_s = 0;
        t0 = std::chrono::steady_clock::now();
        const int base = p.accepted;
        for (uint64_t i = 0; i < o.conns; ++i) {
            if (!connect(g, p.port()) || !pump(g, [&] { return p.accepted > base + int(i); }))
                return make_error(EIO, "slirp: connection " + std::to_string(i) + " failed");
            finish(g);
        }
        rows[3].add(g.cpu_s, std::chrono::steady_clock::now() - t0, double(o.conns));
        p.join();
    }
    return rows;
}

}  // namespace krunlet::bench
