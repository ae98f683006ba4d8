// krunlet-bench net-host: the host CPU that krunlet's vsock device (lib/devices/vsock.cpp) and
// its unix bridge (vsock_unix.cpp) spend per MiB moved, per round trip and per connection, on
// the real CPU and with no guest: a scripted driver (virtq_driver.h) plays Linux 6.1's
// virtio-vsock driver, and a peer thread is the host application on the unix socket.
//
// What the driver does, as the guest kernel would: 4 KiB receive buffers (header and data in
// two descriptors, VIRTIO_VSOCK_DEFAULT_RX_BUF_SIZE), transmit packets of up to 64 KiB
// (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE) within the host's credit, a 256 KiB receive window with a
// CREDIT_UPDATE once less than 64 KiB of it is free, data consumed as soon as it arrives.
// Only BenchLoop::run_once() runs device code (queue kicks, as ioeventfds, and the bridge's
// socket handlers); its thread CPU time is the measurement. The driver's own work and the peer
// thread are not counted.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "devices/vsock.h"
#include "devices/vsock_unix.h"
#include "net_bench.h"
#include "buffer_slots.h"
#include "net_host_common.h"
#include "virtq_driver.h"

namespace krunlet::bench {
namespace {

using devices::VsockDevice;
using devices::VsockHeader;
namespace vs = devices::vsock;

constexpr uint64_t kGuestCid = 3;
constexpr uint32_t kPort = 7000;
constexpr uint32_t kGuestBufAlloc = 256 * 1024;
constexpr uint32_t kRxData = 4096;
constexpr uint32_t kTxData = 64 * 1024;
constexpr size_t kRxSlots = 128;  // 2 descriptors each: the whole rx ring
constexpr size_t kTxSlots = 64;
constexpr double kMiB = 1048576.0;

// The guest's side of one connection at a time.
class Guest {
public:
    Guest(VirtqDriver& d, BenchLoop& loop) : d_(d), loop_(loop) {}

    Result<void> setup() {
        if (auto r = rx_.allocate(d_, kRxSlots, 64 + kRxData); !r.ok()) return r.error();
        if (auto r = tx_.allocate(d_, kTxSlots, 64 + kTxData); !r.ok()) return r.error();
        fill_rx();
        return ok_result();
    }

    // Device time: the event loop's handlers, on this thread's CPU clock.
    void run_device(int timeout_ms) {
        double t0 = thread_cpu_s();
        loop_.run_once(timeout_ms);
        cpu_s += thread_cpu_s() - t0;
    }

    void open(uint32_t port) {
        c_ = Conn{};
        c_.src_port = port;
        send(vs::kOpRequest, 0);
        flush();
    }
    bool connected() const { return c_.connected; }
    bool closed() const { return c_.closed; }
    bool peer_shutdown() const { return c_.peer_shutdown; }
    uint64_t received() const { return c_.received; }
    uint32_t credit() const {
        uint32_t in_flight = c_.tx_cnt - c_.peer_fwd_cnt;
        return in_flight >= c_.peer_buf_alloc ? 0 : c_.peer_buf_alloc - in_flight;
    }
    bool can_send() const { return tx_.has_free() && d_.free_descriptors(VsockDevice::kTxQueue) >= 2; }

    // Queues one packet (call flush() to kick); `len` bytes of payload for RW.
    void send(uint16_t op, uint32_t len, uint32_t flags = 0) {
        if (!can_send()) {
            // Every slot is in flight: let the device take them (it hands tx buffers back at once).
            flush();
            while (!can_send()) {
                run_device(1);
                reap_tx();
            }
        }
        BufferSlot& s = *tx_.free_slot();
        VsockHeader h{};
        h.src_cid = kGuestCid;
        h.dst_cid = vs::kHostCid;
        h.src_port = c_.src_port;
        h.dst_port = kPort;
        h.type = vs::kTypeStream;
        h.op = op;
        h.len = len;
        h.flags = flags;
        h.buf_alloc = kGuestBufAlloc;
        h.fwd_cnt = c_.fwd_cnt;
        c_.fwd_advertised = c_.fwd_cnt;
        std::memcpy(d_.host(s.gpa, vs::kHeaderSize), &h, vs::kHeaderSize);
        std::vector<Segment> segs{{s.gpa, uint32_t(vs::kHeaderSize), false}};
        if (len > 0) segs.push_back({s.gpa + 64, len, false});
        BufferSlots::posted(s, *d_.post(VsockDevice::kTxQueue, segs));
        if (op == vs::kOpRw) c_.tx_cnt += len;
        tx_posted_ = true;
    }
    void flush() {
        if (tx_posted_) d_.kick(VsockDevice::kTxQueue);
        tx_posted_ = false;
    }

    // Reaps used buffers, handles the device's packets, reposts receive buffers.
    void reap_tx() {
        used_.clear();
        d_.take_used(VsockDevice::kTxQueue, used_);
        for (auto& u : used_) tx_.complete(u.head);
    }

    void poll() {
        reap_tx();
        used_.clear();
        d_.take_used(VsockDevice::kRxQueue, used_);
        for (auto& u : used_) {
            if (BufferSlot* s = rx_.complete(u.head)) {
                VsockHeader h{};
                std::memcpy(&h, d_.host(s->gpa, vs::kHeaderSize), vs::kHeaderSize);
                handle(h);
            }
        }
        fill_rx();
        // Linux 6.1 (virtio_transport_stream_do_dequeue): a credit update once the free part
        // of the window the host knows of falls below one maximum packet.
        if (c_.connected && !c_.closed && kGuestBufAlloc - (c_.rx_cnt - c_.fwd_advertised) < kTxData &&
            c_.fwd_cnt != c_.fwd_advertised && can_send()) {
            send(vs::kOpCreditUpdate, 0);
            flush();
        }
    }

    double cpu_s = 0;

private:
    struct Conn {
        uint32_t src_port = 0;
        bool connected = false, closed = false, peer_shutdown = false;
        uint32_t peer_buf_alloc = 0, peer_fwd_cnt = 0, tx_cnt = 0;
        uint32_t rx_cnt = 0, fwd_cnt = 0, fwd_advertised = 0;
        uint64_t received = 0;
    };

    void fill_rx() {
        bool posted = false;
        for (auto& s : rx_.all()) {
            if (s.busy) continue;
            auto head = d_.post(VsockDevice::kRxQueue,
                                {{s.gpa, uint32_t(vs::kHeaderSize), true}, {s.gpa + 64, kRxData, true}});
            if (!head) break;
            BufferSlots::posted(s, *head);
            posted = true;
        }
        if (posted) d_.kick(VsockDevice::kRxQueue);
    }
    void handle(const VsockHeader& h) {
        if (h.dst_port != c_.src_port) return;  // an earlier connection's last words
        c_.peer_buf_alloc = h.buf_alloc;
        c_.peer_fwd_cnt = h.fwd_cnt;
        switch (h.op) {
        case vs::kOpResponse: c_.connected = true; break;
        case vs::kOpRw:
            c_.rx_cnt += h.len;
            c_.fwd_cnt += h.len;  // the application reads at once
            c_.received += h.len;
            break;
        case vs::kOpShutdown: c_.peer_shutdown = true; break;
        case vs::kOpRst: c_.closed = true; break;
        default: break;
        }
    }

    VirtqDriver& d_;
    BenchLoop& loop_;
    BufferSlots rx_, tx_;
    std::vector<UsedElem> used_;
    bool tx_posted_ = false;
    Conn c_;
};


uint32_t next_port = 50000;

bool connect(Guest& g) {
    g.open(next_port++);
    return pump(g, [&] { return g.connected() || g.closed(); }) && g.connected();
}

bool close_conn(Guest& g) {
    g.send(vs::kOpShutdown, 0, vs::kShutdownRcv | vs::kShutdownSend);
    g.flush();
    return pump(g, [&] { return g.closed(); });
}

using Clock = std::chrono::steady_clock;

Result<void> guest_to_host(Guest& g, StreamPeer& p, uint64_t bytes, HostRow& row) {
    p.bytes = 0;
    p.start(1, [&p](int c) { p.drain(c); });
    if (!connect(g)) return make_error(EIO, "guest->host: no RESPONSE");
    g.cpu_s = 0;
    auto t0 = Clock::now();
    uint64_t sent = 0;
    auto deadline = t0 + std::chrono::seconds(120);
    while (p.bytes < bytes) {
        if (Clock::now() > deadline) return make_error(ETIMEDOUT, "guest->host stalled");
        while (sent < bytes && g.credit() > 0 && g.can_send()) {
            uint32_t n = uint32_t(std::min<uint64_t>({kTxData, g.credit(), bytes - sent}));
            g.send(vs::kOpRw, n);
            sent += n;
        }
        g.flush();
        g.run_device(sent < bytes && g.credit() > 0 ? 0 : 5);
        g.poll();
    }
    row.add(g.cpu_s, Clock::now() - t0, double(bytes) / kMiB);
    if (!close_conn(g)) return make_error(EIO, "guest->host: no RST after SHUTDOWN");
    p.join();
    return ok_result();
}

Result<void> host_to_guest(Guest& g, StreamPeer& p, uint64_t bytes, HostRow& row) {
    std::atomic<bool> go{false};
    p.start(1, [&go, bytes](int c) {
        while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        StreamPeer::write_n(c, bytes);
    });
    if (!connect(g)) return make_error(EIO, "host->guest: no RESPONSE");
    g.cpu_s = 0;
    auto t0 = Clock::now();
    go = true;
    if (!pump(g, [&] { return g.received() >= bytes; })) return make_error(ETIMEDOUT, "host->guest stalled");
    row.add(g.cpu_s, Clock::now() - t0, double(bytes) / kMiB);
    if (!pump(g, [&] { return g.peer_shutdown(); }) || !close_conn(g))
        return make_error(EIO, "host->guest: no orderly end");
    p.join();
    return ok_result();
}

Result<void> round_trips(Guest& g, StreamPeer& p, uint64_t count, HostRow& row) {
    p.start(1, StreamPeer::echo);
    if (!connect(g)) return make_error(EIO, "round trips: no RESPONSE");
    g.cpu_s = 0;
    auto t0 = Clock::now();
    for (uint64_t i = 0; i < count; ++i) {
        uint64_t want = g.received() + 1;
        g.send(vs::kOpRw, 1);
        g.flush();
        if (!pump(g, [&] { return g.received() >= want; })) return make_error(ETIMEDOUT, "round trip lost");
    }
    row.add(g.cpu_s, Clock::now() - t0, double(count));
    if (!close_conn(g)) return make_error(EIO, "round trips: no RST after SHUTDOWN");
    p.join();
    return ok_result();
}

Result<void> connections(Guest& g, StreamPeer& p, uint64_t count, HostRow& row) {
    p.start(int(count), [&p](int c) { p.drain(c); });
    g.cpu_s = 0;
    auto t0 = Clock::now();
    const int base = p.accepted;
    for (uint64_t i = 0; i < count; ++i) {
        // One at a time: the bridge's connect(2) fails with EAGAIN once the peer's listen backlog
        // is full, and a loaded machine can leave the peer thread that far behind.
        if (!connect(g) || !pump(g, [&] { return p.accepted > base + int(i); }) || !close_conn(g))
            return make_error(EIO, "connection " + std::to_string(i) + " failed");
    }
    row.add(g.cpu_s, Clock::now() - t0, double(count));
    p.join();
    return ok_result();
}

Result<std::vector<HostRow>> run_vsock_rows(const NetHostOptions& o, const std::string& path) {
    auto loop = BenchLoop::create();
    if (!loop.ok()) return loop.error();
    auto dev = VsockDevice::create(kGuestCid);
    if (!dev.ok()) return dev.error();
    auto bridge = devices::VsockUnixBridge::connect_to(**loop, path);
    if (!bridge.ok()) return bridge.error();
    KRUNLET_CHECK((*dev)->add_service(kPort, *bridge));
    auto drv = VirtqDriver::create(**dev, **loop, 256, 32u << 20);
    if (!drv.ok()) return drv.error();
    KRUNLET_CHECK((*drv)->activate(virtio::kFeatureVersion1 | vs::kFeatureStream));
    Guest g(**drv, **loop);
    KRUNLET_CHECK(g.setup());
    auto peer = StreamPeer::unix_socket(path);
    if (!peer.ok()) return peer.error();
    StreamPeer& p = **peer;
    const uint64_t bytes = o.mib << 20;
    std::vector<HostRow> rows{{"vsock guest->host", "MiB", {}, {}},
                              {"vsock host->guest", "MiB", {}, {}},
                              {"vsock round trip", "round trip", {}, {}},
                              {"vsock connect+close", "connection", {}, {}}};
    for (int round = 0; round < o.rounds; ++round) {
        KRUNLET_CHECK(guest_to_host(g, p, bytes, rows[0]));
        KRUNLET_CHECK(host_to_guest(g, p, bytes, rows[1]));
        KRUNLET_CHECK(round_trips(g, p, o.conns, rows[2]));
        KRUNLET_CHECK(connections(g, p, o.conns, rows[3]));
    }
    return rows;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

CLI::App* add_net_host_command(CLI::App& app, NetHostOptions& o) {
    auto* c = app.add_subcommand("net-host", "host CPU of krunlet's vsock device and unix bridge per MiB, round trip "
                                             "and connection, with a scripted guest driver (no guest)");
    c->add_option("--mib", o.mib, "MiB per direction and round")->check(CLI::Range(1, 1 << 20))->capture_default_str();
    c->add_option("--rounds", o.rounds, "rounds; the table shows medians")->check(CLI::Range(1, 100))->capture_default_str();
    c->add_option("--conns", o.conns, "connections (and round trips) per round")
        ->check(CLI::Range(1, 1000000))->capture_default_str();
    return c;
}

int run_net_host(const NetHostOptions& o) {
    auto fail = [](const std::string& m) {
        std::fprintf(stderr, "krunlet-bench net-host: %s\n", m.c_str());
        return 1;
    };
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/krunlet-nethost-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) return fail("mkdtemp: " + std::string(std::strerror(errno)));
    struct Cleanup {
        std::string d;
        ~Cleanup() { ::rmdir(d.c_str()); }
    } cleanup{dir};

    auto vsock = run_vsock_rows(o, dir + "/peer.sock");
    if (!vsock.ok()) return fail("vsock: " + vsock.error().message);
    auto slirp = run_slirp_rows(o);
    if (!slirp.ok()) return fail("slirp: " + slirp.error().message);
    std::vector<HostRow> rows = std::move(vsock).value();
    for (auto& r : *slirp) rows.push_back(std::move(r));

    std::printf("krunlet-bench net-host: scripted Linux-like drivers, %llu MiB per stream, %llu round trips and "
                "connections, %d round(s) (medians)\n",
                (unsigned long long)o.mib, (unsigned long long)o.conns, o.rounds);
    std::printf("\n%-24s | %-10s | %18s | %14s\n", "what", "per", "event-loop CPU, us", "per s (wall)");
    std::printf("%s\n", std::string(24 + 3 + 10 + 3 + 18 + 3 + 14, '-').c_str());
    for (auto& row : rows)
        std::printf("%-24s | %-10s | %18.2f | %14.1f\n", row.name.c_str(), row.unit.c_str(), median(row.cpu_us),
                    median(row.rate));
    std::printf("\nper round (event-loop CPU, us):\n");
    for (auto& row : rows) {
        std::printf("  %-24s", row.name.c_str());
        for (double v : row.cpu_us) std::printf(" %10.2f", v);
        std::printf("\n");
    }
    std::printf("vsock: VsockDevice + VsockUnixBridge to a unix socket. slirp: NetDevice (virtio-net) + SlirpBackend "
                "to TCP on 127.0.0.1.\nCPU: the thread CPU time of the loop that runs the devices' queue kicks "
                "(eventfd reads, as the VMM's ioeventfds),\nthe bridge's and slirp's socket handlers and slirp's "
                "timers; interrupts are eventfd writes (irqfd). The wall rates include the\nscripted driver and the "
                "peer thread, on a shared machine.\n");
    return 0;
}

}  // namespace krunlet::bench
