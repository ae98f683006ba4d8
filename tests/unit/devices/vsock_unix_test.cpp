// vsock <-> unix socket bridging (krun_add_vsock_port / krun_add_vsock_port2) and the device's
// host-initiated streams, with a scripted guest and real unix sockets in a temp directory.
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>

#include "devices/vsock_unix.h"
#include "harness.h"
#include "vsock_guest.h"

using namespace krunlet;
using namespace krunlet::devices;
using namespace krunlet::devices::test;
using namespace krunlet::devices::vsock;

namespace {

constexpr uint32_t kGuestListenPort = 5000;

// A DeviceEnv that dispatches readiness with poll(), on the test's thread.
class PollEnv final : public virtio::DeviceEnv {
public:
    Result<void> watch(int fd, uint32_t events, std::function<void(uint32_t)> handler) override {
        if (watches_.contains(fd)) return make_error(EEXIST, "watched twice");
        watches_[fd] = {events, std::move(handler)};
        return {};
    }
    void unwatch(int fd) override { watches_.erase(fd); }
    bool watched(int fd) const { return watches_.contains(fd); }
    size_t count() const { return watches_.size(); }

    // One round: every ready fd's handler once. Returns how many ran.
    int run_once(int timeout_ms = 0) {
        std::vector<pollfd> pfds;
        for (auto& [fd, w] : watches_) {
            short ev = 0;
            if (w.events & EPOLLIN) ev |= POLLIN;
            if (w.events & EPOLLOUT) ev |= POLLOUT;
            pfds.push_back({fd, ev, 0});
        }
        if (::poll(pfds.data(), pfds.size(), timeout_ms) <= 0) return 0;
        int ran = 0;
        for (auto& p : pfds) {
            if (!p.revents) continue;
            auto it = watches_.find(p.fd);
            if (it == watches_.end()) continue;  // unwatched by an earlier handler
            uint32_t ev = ((p.revents & POLLIN) ? EPOLLIN : 0u) | ((p.revents & POLLOUT) ? EPOLLOUT : 0u) |
                          ((p.revents & POLLHUP) ? EPOLLHUP : 0u) | ((p.revents & POLLERR) ? EPOLLERR : 0u);
            auto handler = it->second.handler;  // it may unwatch itself
            handler(ev);
            ++ran;
        }
        return ran;
    }

private:
    struct W {
        uint32_t events;
        std::function<void(uint32_t)> handler;
    };
    std::map<int, W> watches_;
};

struct TempSocketDir {
    std::string dir;
    TempSocketDir() {
        char tmpl[] = "/tmp/krunlet-vsu-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
    }
    ~TempSocketDir() {
        std::string cmd = "rm -rf '" + dir + "'";
        (void)std::system(cmd.c_str());
    }
    std::string path(const char* name) const { return dir + "/" + name; }
};

void write_text_file(const std::string& path, const std::string& text) {
    FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs(text.c_str(), f);
    std::fclose(f);
}

int listen_unix(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(::listen(fd, 8) == 0);
    return fd;
}

int connect_unix(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    return fd;
}

std::string read_some(int fd, size_t max = 65536) {
    std::string s(max, '\0');
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) return {};
    ssize_t n = ::read(fd, s.data(), s.size());
    s.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return s;
}

// The guest's side of one connection: collects RW payloads, answers nothing else.
struct GuestConn {
    uint32_t guest_port = 0;
    uint32_t host_port = 0;
    std::string got;
    std::vector<uint16_t> ops;
    void take(const std::vector<Pkt>& pkts) {
        for (auto& p : pkts) {
            ops.push_back(p.h.op);
            if (p.h.op == kOpRw) got += p.data;
        }
    }
};

// A guest with a connect-mode bridge on kPort to a host listener at `path`, connected from
// guest port `guest_port`; `host` is the host's accepted end.
struct ConnectedBridge {
    TempSocketDir tmp;
    std::string path;
    int lfd = -1;
    PollEnv env;
    VsockGuest g;
    std::shared_ptr<VsockUnixBridge> bridge;
    int host = -1;

    ConnectedBridge(const char* name, uint32_t guest_port, int accept_flags = 0) : path(tmp.path(name)) {
        lfd = listen_unix(path);
        auto b = VsockUnixBridge::connect_to(env, path);
        REQUIRE(b.ok());
        bridge = *b;
        REQUIRE(g.dev->add_service(kPort, bridge).ok());
        g.start();
        g.connect(guest_port);
        host = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | accept_flags);
        REQUIRE(host >= 0);
    }
};

}  // namespace

TEST_CASE("vsock: host-initiated streams: REQUEST, then on_connect on RESPONSE or on_close on RST") {
    VsockGuest g;
    struct Rec : VsockService {
        int connects = 0, closes = 0;
        std::string data;
        void on_connect(VsockStream&) override { ++connects; }
        void on_data(VsockStream&, std::span<const uint8_t> b) override { data += str_of(b); }
        void on_close(VsockStream&) override { ++closes; }
    };
    auto rec = std::make_shared<Rec>();
    CHECK(g.dev->connect(kGuestListenPort, rec).error().code == ENOTCONN);  // no driver yet
    g.start();
    g.post_rx(4);
    auto s = g.dev->connect(kGuestListenPort, rec);
    REQUIRE(s.ok());
    auto pkts = g.recv();
    REQUIRE(pkts.size() == 1);
    CHECK(pkts[0].h.op == kOpRequest);
    CHECK(pkts[0].h.dst_port == kGuestListenPort);
    CHECK(pkts[0].h.src_cid == kHostCid);
    CHECK(pkts[0].h.buf_alloc == VsockDevice::kBufAlloc);
    const uint32_t host_port = pkts[0].h.src_port;
    CHECK(host_port >= (1u << 30));
    CHECK((*s)->send(bytes_of("early")) == false);  // nothing flows before the answer
    CHECK(rec->connects == 0);

    VsockHeader resp = g.hdr(kOpResponse, kGuestListenPort, host_port);
    g.send(resp);
    CHECK(rec->connects == 1);
    REQUIRE((*s)->send(bytes_of("hello guest")));
    pkts = g.recv();
    REQUIRE(pkts.size() == 1);
    CHECK(pkts[0].data == "hello guest");
    g.send(g.hdr(kOpRw, kGuestListenPort, host_port), "hi host");
    CHECK(rec->data == "hi host");

    // A second attempt the guest refuses: on_close without on_connect.
    auto s2 = g.dev->connect(kGuestListenPort, rec);
    REQUIRE(s2.ok());
    pkts = g.recv();
    REQUIRE(pkts.size() == 1);
    REQUIRE(pkts[0].h.op == kOpRequest);
    CHECK(pkts[0].h.src_port != host_port);
    g.send(g.hdr(kOpRst, kGuestListenPort, pkts[0].h.src_port));
    CHECK(rec->connects == 1);
    CHECK(rec->closes == 1);
    CHECK(g.dev->connection_count() == 1);

    // A third, abandoned by the host before any answer: RST, and on_close.
    g.post_rx(2);
    auto s3 = g.dev->connect(kGuestListenPort, rec);
    REQUIRE(s3.ok());
    (*s3)->close();
    pkts = g.recv();
    REQUIRE(pkts.size() == 2);
    CHECK(pkts[0].h.op == kOpRequest);
    CHECK(pkts[1].h.op == kOpRst);
    g.send(g.hdr(kOpRw, kGuestListenPort, host_port), "x");  // poke: delivers the deferred on_close
    CHECK(rec->closes == 2);
}

TEST_CASE("vsock_unix: a guest connection reaches a host unix socket, both ways, and ends cleanly") {
    ConnectedBridge cb("svc.sock", 7000);
    auto& [tmp, path, lfd, env, g, bridge, host] = cb;
    CHECK(bridge->connection_count() == 1);

    g.send(g.hdr(kOpRw, 7000), "hello host");
    CHECK(read_some(host) == "hello host");

    REQUIRE(::write(host, "hello guest", 11) == 11);
    g.post_rx(4);
    GuestConn gc;
    for (int i = 0; i < 10 && gc.got.size() < 11; ++i) {
        env.run_once(100);
        gc.take(g.recv());
    }
    CHECK(gc.got == "hello guest");

    // The host closes: the guest gets SHUTDOWN, answers RST, the bridge forgets the pipe.
    ::close(host);
    for (int i = 0; i < 10 && gc.ops.back() != kOpShutdown; ++i) {
        env.run_once(100);
        gc.take(g.recv());
    }
    CHECK(gc.ops.back() == kOpShutdown);
    g.send(g.hdr(kOpRst, 7000));
    CHECK(bridge->connection_count() == 0);
    CHECK(env.count() == 0);

    // Nobody listening any more: the guest's connection is accepted and shut at once.
    ::close(lfd);
    ::unlink(path.c_str());
    g.post_rx(4);
    g.send(g.hdr(kOpRequest, 7001));
    auto pkts = g.recv();
    REQUIRE(pkts.size() == 2);
    CHECK(pkts[0].h.op == kOpResponse);
    CHECK(pkts[1].h.op == kOpShutdown);
    CHECK(bridge->connection_count() == 0);
}

TEST_CASE("vsock_unix: a host client reaches a guest listener (listen mode)") {
    TempSocketDir tmp;
    const std::string path = tmp.path("listen.sock");
    write_text_file(path, "not a socket");
    PollEnv env;
    VsockGuest g;
    auto refused = VsockUnixBridge::listen_on(env, *g.dev, path, kGuestListenPort);
    REQUIRE(!refused.ok());
    CHECK(refused.error().message.find("not a socket") != std::string::npos);
    ::unlink(path.c_str());
    CHECK(VsockUnixBridge::listen_on(env, *g.dev, std::string(200, 'x'), 1).error().code == ENAMETOOLONG);

    g.start();
    g.post_rx(8);
    auto bridge = VsockUnixBridge::listen_on(env, *g.dev, path, kGuestListenPort);
    REQUIRE(bridge.ok());
    int client = connect_unix(path);
    env.run_once(100);  // accept -> REQUEST
    auto pkts = g.recv();
    REQUIRE(pkts.size() == 1);
    REQUIRE(pkts[0].h.op == kOpRequest);
    const uint32_t hp = pkts[0].h.src_port;
    g.send(g.hdr(kOpResponse, kGuestListenPort, hp));

    REQUIRE(::write(client, "ping", 4) == 4);
    GuestConn gc;
    for (int i = 0; i < 10 && gc.got.empty(); ++i) {
        env.run_once(100);
        gc.take(g.recv());
    }
    CHECK(gc.got == "ping");
    g.send(g.hdr(kOpRw, kGuestListenPort, hp), "pong");
    CHECK(read_some(client) == "pong");

    // A guest that refuses: the next client sees EOF.
    int client2 = connect_unix(path);
    env.run_once(100);
    pkts = g.recv();
    REQUIRE(pkts.size() == 1);
    g.send(g.hdr(kOpRst, kGuestListenPort, pkts[0].h.src_port));
    env.run_once(100);
    CHECK(read_some(client2).empty());
    ::close(client);
    ::close(client2);
    // The bridge lives as long as its streams; with the device gone, the socket file goes too.
    bridge->reset();
    CHECK(::access(path.c_str(), F_OK) == 0);
    g.drv.reset();
    g.dev.reset();
    CHECK(::access(path.c_str(), F_OK) != 0);
}

TEST_CASE("vsock_unix: back-pressure both ways keeps host memory bounded and loses nothing") {
    ConnectedBridge cb("bp.sock", 7100, SOCK_NONBLOCK);
    auto& [tmp, path, lfd, env, g, bridge, host] = cb;
    int small = 4096;
    ::setsockopt(host, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));

    // guest -> host while the host does not read: the guest only gets credit for what the
    // socket took, so it can send at most the socket's buffers plus one window.
    std::string chunk(4096, 'g');
    size_t sent = 0;
    uint32_t last_fwd = 0;
    g.post_rx(64);
    for (int i = 0; i < 2000; ++i) {
        auto pk = g.recv();
        for (auto& p : pk) last_fwd = p.h.fwd_cnt;
        if (!pk.empty()) g.post_rx(static_cast<int>(pk.size()));
        if (sent - last_fwd + chunk.size() > VsockDevice::kBufAlloc) break;  // a good guest waits
        g.send(g.hdr(kOpRw, 7100), chunk);
        sent += chunk.size();
        env.run_once(0);
    }
    CHECK(sent - last_fwd <= VsockDevice::kBufAlloc);
    CHECK(sent < 4u << 20);  // it had to stop
    CHECK(g.dev->connection_count() == 1);  // and was not reset for behaving
    // The host now reads everything: all of it arrives, in order.
    size_t got = 0;
    std::string buf(65536, '\0');
    for (int i = 0; i < 2000 && got < sent; ++i) {
        ssize_t n = ::read(host, buf.data(), buf.size());
        if (n > 0) {
            CHECK(buf.substr(0, static_cast<size_t>(n)) == std::string(static_cast<size_t>(n), 'g'));
            got += static_cast<size_t>(n);
        }
        env.run_once(10);
    }
    CHECK(got == sent);

    // host -> guest while the guest posts no rx buffers: the bridge stops reading the socket
    // instead of buffering, and nothing is lost once the guest reads.
    const size_t total = 8u << 20;
    std::string data(total, '\0');
    for (size_t i = 0; i < total; ++i) data[i] = static_cast<char>('a' + (i * 7) % 26);
    size_t written = 0;
    int stalled_rounds = 0;
    for (int i = 0; i < 5000 && written < total && stalled_rounds < 20; ++i) {
        ssize_t n = ::write(host, data.data() + written, total - written);
        if (n > 0) written += static_cast<size_t>(n);
        stalled_rounds = env.run_once(5) == 0 && n <= 0 ? stalled_rounds + 1 : 0;
    }
    CHECK(written < total);  // the host writer was pushed back
    CHECK(g.dev->connection_count() == 1);
    GuestConn gc;
    g.fwd_cnt = 0;
    g.post_rx(32, 65536 + kHeaderSize);
    for (int i = 0; i < 20000 && gc.got.size() < total; ++i) {
        auto pk = g.recv();
        gc.take(pk);
        if (!pk.empty()) g.post_rx(static_cast<int>(pk.size()), 65536 + kHeaderSize);
        g.fwd_cnt = static_cast<uint32_t>(gc.got.size());
        g.send(g.hdr(kOpCreditUpdate, 7100));
        if (written < total) {
            ssize_t n = ::write(host, data.data() + written, total - written);
            if (n > 0) written += static_cast<size_t>(n);
        }
        env.run_once(1);
    }
    CHECK(written == total);
    REQUIRE(gc.got.size() == total);
    CHECK(gc.got == data);
    ::close(host);
    ::close(lfd);
}
