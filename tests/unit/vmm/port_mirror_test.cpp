// Port mirroring, host side (vmm/port_mirror.h): which host address each
// guest listener gets, moves and removals, the bound on forwards, and the log
// line for a host port that is taken. The last case drives the real slirp
// backend's listeners.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "../devices/harness.h"
#include "base/control_protocol.h"
#include "net/slirp_backend.h"
#include "vmm/port_mirror.h"

using krunlet::PortForwarder;
using krunlet::PortMirror;
using krunlet::Result;

namespace {

// Records calls; refuses the host ports in `taken` as bind() would.
struct Recorder final : PortForwarder {
    struct Call {
        std::string op, host_addr, guest_addr;
        uint16_t host_port = 0, guest_port = 0;
    };
    std::vector<Call>* calls;
    std::map<uint16_t, int> taken;  // port -> errno
    explicit Recorder(std::vector<Call>* c) : calls(c) {}
    Result<void> add(std::string_view host_addr, uint16_t host_port, std::string_view guest_addr,
                     uint16_t guest_port) override {
        calls->push_back({"add", std::string(host_addr), std::string(guest_addr), host_port, guest_port});
        if (auto it = taken.find(host_port); it != taken.end()) return krunlet::make_error(it->second, "bind");
        return {};
    }
    void remove(std::string_view host_addr, uint16_t host_port) override {
        calls->push_back({"remove", std::string(host_addr), "", host_port, 0});
    }
};

struct Rig {
    std::vector<Recorder::Call> calls;
    std::vector<std::string> log;
    Recorder* rec = nullptr;
    std::unique_ptr<PortMirror> mirror;
    explicit Rig(int level = 1) {
        auto r = std::make_unique<Recorder>(&calls);
        rec = r.get();
        mirror = std::make_unique<PortMirror>(std::move(r), "10.0.2.15", level,
                                              [this](const std::string& l) { log.push_back(l); });
    }
};

bool contains(const std::string& s, const std::string& w) { return s.find(w) != std::string::npos; }

// Whether this process can bind host_addr:port for TCP right now.
bool can_bind(const char* host_addr, uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, host_addr, &a.sin_addr);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd, 1) == 0;
    ::close(fd);
    return ok;
}

uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

}  // namespace

TEST_CASE("port mirror: wildcard and specific listeners bind every host address, loopback ones only 127.0.0.1") {
    Rig rig;
    rig.mirror->on_listen(8080, "0.0.0.0");
    rig.mirror->on_listen(631, "127.0.0.1");
    rig.mirror->on_listen(81, "127.0.0.2");
    rig.mirror->on_listen(9000, "10.0.2.15");
    REQUIRE(rig.calls.size() == 4);
    CHECK(rig.calls[0].host_addr == "0.0.0.0");
    CHECK(rig.calls[0].guest_addr == "10.0.2.15");  // a wildcard is reached at eth0's address
    CHECK(rig.calls[0].host_port == 8080);
    CHECK(rig.calls[0].guest_port == 8080);
    CHECK(rig.calls[1].host_addr == "127.0.0.1");
    CHECK(rig.calls[1].guest_addr == "127.0.0.1");
    CHECK(rig.calls[2].host_addr == "127.0.0.1");
    CHECK(rig.calls[2].guest_addr == "127.0.0.2");
    CHECK(rig.calls[3].host_addr == "0.0.0.0");
    CHECK(rig.calls[3].guest_addr == "10.0.2.15");
    CHECK(rig.mirror->size() == 4);
    CHECK(rig.mirror->host_address(631) == "127.0.0.1");
    CHECK(rig.log.empty());  // success is quiet at the default level
}

TEST_CASE("port mirror: a repeated report is a no-op, a changed one moves the forward, unlisten removes it") {
    Rig rig(3);
    rig.mirror->on_listen(8080, "127.0.0.1");
    rig.mirror->on_listen(8080, "127.0.0.1");
    CHECK(rig.calls.size() == 1);
    rig.mirror->on_listen(8080, "0.0.0.0");
    REQUIRE(rig.calls.size() == 3);
    CHECK(rig.calls[1].op == "remove");
    CHECK(rig.calls[1].host_addr == "127.0.0.1");
    CHECK(rig.calls[2].op == "add");
    CHECK(rig.calls[2].host_addr == "0.0.0.0");
    rig.mirror->on_unlisten(8080);
    REQUIRE(rig.calls.size() == 4);
    CHECK(rig.calls[3].op == "remove");
    CHECK(rig.calls[3].host_addr == "0.0.0.0");
    CHECK(rig.mirror->size() == 0);
    rig.mirror->on_unlisten(8080);  // unknown port: nothing to do
    rig.mirror->on_unlisten(1);
    CHECK(rig.calls.size() == 4);
    // Level 3 (info) tells each step.
    REQUIRE(rig.log.size() == 3);
    CHECK(contains(rig.log[0], "guest TCP port 8080 (127.0.0.1) mirrored on host 127.0.0.1:8080"));
    CHECK(contains(rig.log[2], "released"));
}

TEST_CASE("port mirror: a taken host port is one clear log line; the next report of it is quiet") {
    Rig rig;
    rig.rec->taken[8080] = EADDRINUSE;
    rig.rec->taken[80] = EACCES;
    rig.mirror->on_listen(8080, "0.0.0.0");
    REQUIRE(rig.log.size() == 1);
    CHECK(contains(rig.log[0], "guest TCP port 8080 is not mirrored"));
    CHECK(contains(rig.log[0], "0.0.0.0:8080"));
    CHECK(contains(rig.log[0], "already in use"));
    CHECK(contains(rig.log[0], "stays unreachable from the host"));
    CHECK(rig.mirror->size() == 0);
    rig.mirror->on_listen(8080, "0.0.0.0");  // re-announced: no second line
    CHECK(rig.log.size() == 1);

    rig.mirror->on_listen(80, "0.0.0.0");
    REQUIRE(rig.log.size() == 2);
    CHECK(contains(rig.log[1], "guest TCP port 80 is not mirrored"));
    CHECK(contains(rig.log[1], "CAP_NET_BIND_SERVICE"));

    // Once the port is free the next report takes it.
    rig.rec->taken.erase(8080);
    rig.mirror->on_unlisten(8080);
    rig.mirror->on_listen(8080, "0.0.0.0");
    CHECK(rig.mirror->host_address(8080) == "0.0.0.0");

    Rig silent(0);  // log level 0: not a word
    silent.rec->taken[8080] = EADDRINUSE;
    silent.mirror->on_listen(8080, "0.0.0.0");
    CHECK(silent.log.empty());
}

TEST_CASE("port mirror: at most kMaxMirroredPorts forwards, said once") {
    Rig rig;
    const size_t max = krunlet::control::kMaxMirroredPorts;
    for (size_t i = 0; i < max + 5; ++i) rig.mirror->on_listen(static_cast<uint16_t>(2000 + i), "0.0.0.0");
    CHECK(rig.mirror->size() == max);
    CHECK(rig.calls.size() == max);
    REQUIRE(rig.log.size() == 1);
    CHECK(contains(rig.log[0], "more than " + std::to_string(max)));
    // A freed slot can be used again; a move of an existing one is not refused.
    rig.mirror->on_unlisten(2000);
    rig.mirror->on_listen(60000, "0.0.0.0");
    CHECK(rig.mirror->host_address(60000).has_value());
    rig.mirror->on_listen(2001, "127.0.0.1");
    CHECK(rig.mirror->host_address(2001) == "127.0.0.1");
}

TEST_CASE("port mirror: on the slirp backend, forwards really listen and really go away") {
    krunlet::devices::test::LoopEnv env;
    auto slirp = krunlet::net::SlirpBackend::create(env, {});
    REQUIRE(slirp.ok());
    std::mutex mu;
    std::vector<std::string> log;
    PortMirror mirror(krunlet::locked_slirp_forwarder(mu, **slirp), "10.0.2.15", 1,
                      [&](const std::string& l) { log.push_back(l); });

    const uint16_t any = free_port(), lo = free_port();
    mirror.on_listen(any, "0.0.0.0");
    mirror.on_listen(lo, "127.0.0.1");
    CHECK(log.empty());
    // 0.0.0.0:any is held, so even 127.0.0.2 cannot take it; lo is held on 127.0.0.1 only.
    CHECK_FALSE(can_bind("127.0.0.2", any));
    CHECK_FALSE(can_bind("127.0.0.1", lo));
    CHECK(can_bind("127.0.0.2", lo));

    mirror.on_unlisten(any);
    mirror.on_unlisten(lo);
    CHECK(can_bind("0.0.0.0", any));
    CHECK(can_bind("0.0.0.0", lo));

    // A host port someone else holds: logged, and the mirror goes on.
    int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    REQUIRE(::bind(holder, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(holder, 1) == 0);
    socklen_t len = sizeof a;
    ::getsockname(holder, reinterpret_cast<sockaddr*>(&a), &len);
    const uint16_t taken = ntohs(a.sin_port);
    mirror.on_listen(taken, "0.0.0.0");
    REQUIRE(log.size() == 1);
    CHECK(contains(log[0], "guest TCP port " + std::to_string(taken) + " is not mirrored"));
    CHECK(contains(log[0], "already in use"));
    CHECK(mirror.size() == 0);
    ::close(holder);
}
