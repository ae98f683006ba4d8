// The passt-style stream backend (net/unixstream_backend.h), driven through a
// socketpair: the test's end plays passt, writing and reading frames with
// their 4-byte big-endian lengths. Frames go both ways (split, glued,
// maximal), back-pressure holds frames in the socket, the host-bound queue is
// bounded, and a peer that hangs up or sends a bogus length takes the link
// down without harm.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../devices/harness.h"
#include "frames.h"
#include "net/unixstream_backend.h"

using namespace krunlet;
using namespace krunlet::net;
using namespace krunlet::net::test;
using krunlet::devices::test::LoopEnv;

namespace {

class Capture final : public FrameSink {
public:
    void receive(std::span<const uint8_t> frame) override {
        frames.emplace_back(frame.begin(), frame.end());
        if (on_receive) on_receive(frame);
    }
    bool can_receive() const override { return room; }
    std::vector<Bytes> frames;
    bool room = true;
    std::function<void(std::span<const uint8_t>)> on_receive;
};

// An Ethernet frame of `size` bytes whose payload is `seq` repeated.
Bytes frame_of(size_t size, uint8_t seq) {
    Bytes f(size, seq);
    for (size_t i = 0; i < 6; ++i) {
        f[i] = 0xff;  // to everyone
        f[6 + i] = kGuestMac[i];
    }
    f[12] = 0x08;  // IPv4
    f[13] = 0x00;
    return f;
}

Bytes framed(const Bytes& f) {
    Bytes out;
    put32(out, static_cast<uint32_t>(f.size()));
    append(out, f);
    return out;
}

void write_all(int fd, const Bytes& b) {
    size_t done = 0;
    while (done < b.size()) {
        ssize_t n = ::write(fd, b.data() + done, b.size() - done);
        REQUIRE(n > 0);
        done += static_cast<size_t>(n);
    }
}

struct Rig {
    LoopEnv env;
    Capture cap;
    UniqueFd peer;  // "passt"
    std::unique_ptr<UnixStreamBackend> b;
    std::vector<std::string> downs;

    Rig() {
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        peer = UniqueFd(sv[1]);
        UnixStreamBackend::Options o;
        o.on_down = [this](std::string_view why) { downs.emplace_back(why); };
        auto r = UnixStreamBackend::adopt(env, UniqueFd(sv[0]), std::move(o));
        REQUIRE(r.ok());
        b = std::move(r).value();
        b->set_sink(&cap);
        REQUIRE(b->start().ok());
    }
    bool run_until(const std::function<bool()>& done, int ms = 5000) {
        auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        while (!done()) {
            if (std::chrono::steady_clock::now() > end) return false;
            env.run_once(20);
        }
        return true;
    }
    // Reads exactly n bytes from the peer end (the loop runs meanwhile, to flush).
    Bytes peer_read(size_t n) {
        Bytes out;
        ::fcntl(peer.get(), F_SETFL, O_NONBLOCK);
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (out.size() < n && std::chrono::steady_clock::now() < end) {
            uint8_t buf[65536];
            ssize_t k = ::read(peer.get(), buf, std::min(sizeof buf, n - out.size()));
            if (k > 0)
                out.insert(out.end(), buf, buf + k);
            else
                env.run_once(5);
        }
        return out;
    }
};

}  // namespace

TEST_CASE("unixstream: frames arrive whole from the peer, glued or split byte by byte") {
    Rig rig;
    Bytes a = frame_of(60, 1), c = frame_of(1514, 3), d = frame_of(kMaxFrameSize, 4);
    Bytes glued = framed(a);
    append(glued, framed(c));
    write_all(rig.peer.get(), glued);
    REQUIRE(rig.run_until([&] { return rig.cap.frames.size() == 2; }));
    CHECK(rig.cap.frames[0] == a);
    CHECK(rig.cap.frames[1] == c);

    // One byte at a time: nothing is delivered before the frame is complete.
    Bytes split = framed(frame_of(100, 2));
    for (size_t i = 0; i < split.size(); ++i) {
        write_all(rig.peer.get(), Bytes{split[i]});
        rig.env.run_once(0);
        if (i + 1 < split.size()) CHECK(rig.cap.frames.size() == 2);
    }
    REQUIRE(rig.run_until([&] { return rig.cap.frames.size() == 3; }));
    CHECK(rig.cap.frames[2] == frame_of(100, 2));

    // The largest frame there is.
    Bytes big = framed(d);
    std::thread writer([&] { write_all(rig.peer.get(), big); });
    REQUIRE(rig.run_until([&] { return rig.cap.frames.size() == 4; }));
    writer.join();
    CHECK(rig.cap.frames[3] == d);
    CHECK(rig.b->stats().frames_to_guest == 4);
    CHECK(rig.b->link_up());
}

TEST_CASE("unixstream: frames for the host get their big-endian length") {
    Rig rig;
    Bytes a = frame_of(42, 7), big = frame_of(kMaxFrameSize, 8);
    REQUIRE(rig.b->send_to_host(a).ok());
    Bytes got = rig.peer_read(4 + a.size());
    REQUIRE(got.size() == 4 + a.size());
    CHECK(get32(got, 0) == 42);
    CHECK(Bytes(got.begin() + 4, got.end()) == a);

    REQUIRE(rig.b->send_to_host(big).ok());
    got = rig.peer_read(4 + big.size());
    REQUIRE(got.size() == 4 + big.size());
    CHECK(get32(got, 0) == kMaxFrameSize);
    CHECK(Bytes(got.begin() + 4, got.end()) == big);
    CHECK(rig.b->stats().frames_to_host == 2);

    // Sizes the device never passes on are refused, not framed.
    CHECK_FALSE(rig.b->send_to_host(Bytes(13, 0)).ok());
    CHECK_FALSE(rig.b->send_to_host(Bytes(kMaxFrameSize + 1, 0)).ok());
}

TEST_CASE("unixstream: a peer that does not read fills a bounded queue; what is queued arrives intact, in order") {
    Rig rig;
    int small = 4096;
    ::setsockopt(rig.peer.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const size_t size = 9000;
    size_t accepted = 0, refused = 0;
    for (int i = 0; i < 400; ++i) {
        auto r = rig.b->send_to_host(frame_of(size, static_cast<uint8_t>(accepted)));
        if (r.ok()) {
            ++accepted;
        } else {
            CHECK(r.error().code == ENOBUFS);
            ++refused;
        }
        CHECK(rig.b->tx_queued() <= UnixStreamBackend::kTxLimit + size + 4);
    }
    CHECK(refused > 0);
    CHECK(rig.b->stats().tx_dropped == refused);
    // The peer drains: every accepted frame, whole and in order, the framing intact.
    for (size_t i = 0; i < accepted; ++i) {
        Bytes got = rig.peer_read(4 + size);
        REQUIRE(got.size() == 4 + size);
        REQUIRE(get32(got, 0) == size);
        CHECK(got[4 + 14] == static_cast<uint8_t>(i));
        CHECK(got.back() == static_cast<uint8_t>(i));
    }
    CHECK(rig.b->tx_queued() == 0);
    CHECK(rig.b->link_up());
}

TEST_CASE("unixstream: a sink without room leaves frames in the socket until sink_ready") {
    Rig rig;
    rig.cap.room = false;
    Bytes stream;
    for (uint8_t i = 0; i < 5; ++i) append(stream, framed(frame_of(200, i)));
    write_all(rig.peer.get(), stream);
    for (int i = 0; i < 5; ++i) rig.env.run_once(10);
    CHECK(rig.cap.frames.empty());
    rig.cap.room = true;
    rig.b->sink_ready();
    REQUIRE(rig.run_until([&] { return rig.cap.frames.size() == 5; }));
    for (uint8_t i = 0; i < 5; ++i) CHECK(rig.cap.frames[i] == frame_of(200, i));

    // A sink that answers from inside receive() (an ARP reply, say) is fine.
    rig.cap.on_receive = [&](std::span<const uint8_t>) { REQUIRE(rig.b->send_to_host(frame_of(64, 9)).ok()); };
    write_all(rig.peer.get(), framed(frame_of(64, 1)));
    REQUIRE(rig.run_until([&] { return rig.cap.frames.size() == 6; }));
    Bytes back = rig.peer_read(4 + 64);
    REQUIRE(back.size() == 68);
    CHECK(Bytes(back.begin() + 4, back.end()) == frame_of(64, 9));
}

TEST_CASE("unixstream: runts are dropped and counted; the stream goes on") {
    Rig rig;
    Bytes stream;
    put32(stream, 5);
    append(stream, Bytes(5, 0xee));
    append(stream, framed(frame_of(60, 1)));
    write_all(rig.peer.get(), stream);
    REQUIRE(rig.run_until([&] { return rig.cap.frames.size() == 1; }));
    CHECK(rig.cap.frames[0] == frame_of(60, 1));
    CHECK(rig.b->stats().rx_runts == 1);
    CHECK(rig.b->link_up());
}

TEST_CASE("unixstream: a bogus length takes the link down, once, with the reason") {
    for (uint32_t bad : {0u, uint32_t(kMaxFrameSize + 1), 0xffffffffu}) {
        CAPTURE(bad);
        Rig rig;
        Bytes stream = framed(frame_of(60, 1));
        put32(stream, bad);
        append(stream, Bytes(64, 0x41));
        write_all(rig.peer.get(), stream);
        REQUIRE(rig.run_until([&] { return !rig.b->link_up(); }));
        CHECK(rig.cap.frames.size() == 1);  // what came before is delivered
        REQUIRE(rig.downs.size() == 1);
        CHECK(rig.downs[0].find("frame length of " + std::to_string(bad)) != std::string::npos);
        // The VMM's side is closed: the peer sees EOF, the guest a silent wire.
        char c;
        pollfd p{rig.peer.get(), POLLIN, 0};
        REQUIRE(::poll(&p, 1, 1000) == 1);
        CHECK(::read(rig.peer.get(), &c, 1) == 0);
        auto r = rig.b->send_to_host(frame_of(60, 2));
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == ENOTCONN);
        CHECK(rig.b->stats().tx_dropped == 1);
        for (int i = 0; i < 3; ++i) rig.env.run_once(0);
        CHECK(rig.downs.size() == 1);
    }
}

TEST_CASE("unixstream: a peer that hangs up, even mid-frame, takes the link down") {
    Rig rig;
    Bytes partial = framed(frame_of(500, 1));
    partial.resize(100);
    write_all(rig.peer.get(), partial);
    rig.env.run_once(10);
    rig.peer.reset();
    REQUIRE(rig.run_until([&] { return !rig.b->link_up(); }));
    CHECK(rig.cap.frames.empty());
    REQUIRE(rig.downs.size() == 1);
    CHECK(rig.downs[0].find("closed") != std::string::npos);
    CHECK_FALSE(rig.b->send_to_host(frame_of(60, 2)).ok());
}

TEST_CASE("unixstream: a hang-up while the guest has no room does not spin the loop") {
    Rig rig;
    rig.cap.room = false;
    write_all(rig.peer.get(), framed(frame_of(60, 1)));
    rig.env.run_once(10);
    rig.peer.reset();
    // Nothing is ready: the socket left the backend's epoll set while it waits for room.
    int ran = 0;
    for (int i = 0; i < 5; ++i) ran += rig.env.run_once(5);
    CHECK(ran <= 1);
    rig.cap.room = true;
    rig.b->sink_ready();
    REQUIRE(rig.run_until([&] { return !rig.b->link_up(); }));
    CHECK(rig.cap.frames.size() == 1);
}

TEST_CASE("unixstream: only connected stream sockets are taken; a missing socket names passt") {
    LoopEnv env;
    int dg[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg) == 0);
    ::close(dg[1]);
    auto r = UnixStreamBackend::adopt(env, UniqueFd(dg[0]));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == EINVAL);
    CHECK(r.error().message.find("not a stream socket") != std::string::npos);

    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    ::close(p[1]);
    auto pipe_r = UnixStreamBackend::adopt(env, UniqueFd(p[0]));
    REQUIRE_FALSE(pipe_r.ok());
    CHECK(pipe_r.error().code == ENOTSOCK);

    auto c = UnixStreamBackend::connect(env, "/nonexistent/krunlet-passt.sock");
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().code == ENOENT);
    CHECK(c.error().message.find("/nonexistent/krunlet-passt.sock") != std::string::npos);
    CHECK(c.error().message.find("is passt running?") != std::string::npos);
    auto longp = UnixStreamBackend::connect(env, std::string(200, 'x'));
    REQUIRE_FALSE(longp.ok());
    CHECK(longp.error().code == ENAMETOOLONG);
}

TEST_CASE("unixstream: connect() reaches a listening socket by path") {
    LoopEnv env;
    char dir[] = "/tmp/krunlet-us-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    const std::string path = std::string(dir) + "/passt.sock";
    UniqueFd l(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(l.get(), 1) == 0);
    auto b = UnixStreamBackend::connect(env, path);
    REQUIRE(b.ok());
    UniqueFd peer(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
    REQUIRE(peer.valid());
    Capture cap;
    (*b)->set_sink(&cap);
    REQUIRE((*b)->start().ok());
    write_all(peer.get(), framed(frame_of(60, 5)));
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (cap.frames.empty() && std::chrono::steady_clock::now() < end) env.run_once(20);
    REQUIRE(cap.frames.size() == 1);
    CHECK(cap.frames[0] == frame_of(60, 5));
    ::unlink(path.c_str());
    ::rmdir(dir);
}
