// Port mirroring, guest side (init/listeners.h): /proc/net/tcp{,6} parsing, the
// per-port address the host must reach, the listen/unlisten diff, the poll
// schedule, and one round against this machine's real /proc/net/tcp.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "base/control_protocol.h"
#include "base/fd.h"
#include "init/listeners.h"

using namespace krunlet::init;
namespace control = krunlet::control;
using std::chrono::milliseconds;

namespace {

// As Linux 6.1 prints them (net/ipv4/tcp_ipv4.c get_tcp4_sock): x86 is
// little-endian, so 127.0.0.1 reads 0100007F and 10.0.2.15 0F02000A.
const char* kTcp4 =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21354 1 "
    "0000000000000000 100 0 0 10 0\n"
    "   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21000 1 "
    "0000000000000000 100 0 0 10 0\n"
    "   2: 0F02000A:C350 0202000A:1F90 01 00000000:00000000 00:00000000 00000000     0        0 21400 1 "
    "0000000000000000 20 4 30 10 -1\n"
    "   3: 0F02000A:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21401 1 "
    "0000000000000000 100 0 0 10 0\n"
    "   4: 0200007F:0051 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21402 1 "
    "0000000000000000 100 0 0 10 0\n";

// tcp6 prints the four 32-bit words of the address the same way.
const char* kTcp6 =
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
    "tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 "
    "00:00000000 00000000     0        0 3000 1 0000000000000000 100 0 0 10 0\n"
    "   1: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 "
    "00:00000000 00000000     0        0 3001 1 0000000000000000 100 0 0 10 0\n"
    "   2: 0000000000000000FFFF00000100007F:1F93 00000000000000000000000000000000:0000 0A 00000000:00000000 "
    "00:00000000 00000000     0        0 3002 1 0000000000000000 100 0 0 10 0\n";

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/krunlet-listeners-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path_ = tmpl;
    }
    ~TempDir() {
        ::unlink((path_ + "/tcp").c_str());
        ::unlink((path_ + "/tcp6").c_str());
        ::rmdir(path_.c_str());
    }
    void write(const char* name, const std::string& text) const {
        std::ofstream(path_ + "/" + name, std::ios::trunc) << text;
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// A listening TCP socket on `addr` (family from the text), port chosen by the kernel.
krunlet::UniqueFd listen_on(const char* addr, uint16_t& port) {
    sockaddr_storage ss{};
    socklen_t len;
    int family;
    if (std::string(addr).find(':') != std::string::npos) {
        auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
        a6->sin6_family = AF_INET6;
        REQUIRE(::inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1);
        len = sizeof *a6;
        family = AF_INET6;
    } else {
        auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
        a4->sin_family = AF_INET;
        REQUIRE(::inet_pton(AF_INET, addr, &a4->sin_addr) == 1);
        len = sizeof *a4;
        family = AF_INET;
    }
    krunlet::UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return fd;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd.get(), 1) != 0) {
        fd.reset();
        return fd;
    }
    REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
    port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                   : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return fd;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

TEST_CASE("listeners: /proc/net/tcp gives the LISTEN sockets with their address and port") {
    auto l = parse_proc_net_tcp(kTcp4, false);
    REQUIRE(l.size() == 4);  // the established connection (st 01) is not one
    CHECK(l[0].port == 8080);
    CHECK_FALSE(l[0].v6);
    CHECK((l[0].addr[0] | l[0].addr[1] | l[0].addr[2] | l[0].addr[3]) == 0);
    CHECK(l[1].port == 631);
    CHECK(l[1].addr[0] == 127);
    CHECK(l[1].addr[3] == 1);
    CHECK(l[2].port == 80);
    CHECK(l[2].addr[0] == 10);
    CHECK(l[2].addr[3] == 15);
    CHECK(l[3].port == 81);
    CHECK(l[3].addr[3] == 2);  // 127.0.0.2

    auto six = parse_proc_net_tcp(kTcp6, true);
    REQUIRE(six.size() == 3);
    CHECK(six[0].v6);
    CHECK(six[0].port == 8081);
    CHECK(six[1].addr[15] == 1);  // ::1
    CHECK(six[2].addr[10] == 0xff);
    CHECK(six[2].addr[12] == 127);  // ::ffff:127.0.0.1
}

TEST_CASE("listeners: junk, a cut last line and the wrong table width are skipped") {
    CHECK(parse_proc_net_tcp("", false).empty());
    CHECK(parse_proc_net_tcp("garbage\n\n   \n", false).empty());
    // Truncated in the middle of the local address, the state, or the port.
    CHECK(parse_proc_net_tcp("   0: 0000000", false).empty());
    CHECK(parse_proc_net_tcp("   0: 00000000:1F90 00000000:0000 0", false).empty());
    CHECK(parse_proc_net_tcp("   0: 00000000:1F9 00000000:0000 0A\n", false).empty());
    CHECK(parse_proc_net_tcp("   0: 00000000:0000 00000000:0000 0A\n", false).empty());  // port 0
    CHECK(parse_proc_net_tcp("   0: 0000000G:1F90 00000000:0000 0A\n", false).empty());
    // An IPv4 line read as tcp6 (and the other way round) does not fit.
    CHECK(parse_proc_net_tcp(kTcp4, true).empty());
    CHECK(parse_proc_net_tcp(kTcp6, false).empty());
    // Lower-case hex and tabs are fine.
    auto l = parse_proc_net_tcp("\t0:\t0100007f:1f90\t00000000:0000\t0A\n", false);
    REQUIRE(l.size() == 1);
    CHECK(l[0].port == 8080);
}

TEST_CASE("listeners: each port is reached through its widest listener; v6-only addresses are left out") {
    auto all = parse_proc_net_tcp(kTcp4, false);
    auto six = parse_proc_net_tcp(kTcp6, true);
    all.insert(all.end(), six.begin(), six.end());
    auto ports = reachable_ports(all);
    CHECK(ports == std::map<uint16_t, std::string>{{80, "10.0.2.15"},
                                                  {81, "127.0.0.2"},
                                                  {631, "127.0.0.1"},
                                                  {8080, "0.0.0.0"},
                                                  {8081, "0.0.0.0"},  // "::" (dual-stack)
                                                  {8083, "127.0.0.1"}});  // ::ffff:127.0.0.1; ::1 (8082) has no IPv4 path

    // Several listeners on one port: wildcard beats specific beats loopback, lowest address first.
    auto merged = reachable_ports(parse_proc_net_tcp(
        "0: 0100007F:0050 00000000:0000 0A\n"
        "1: 0F02000A:0050 00000000:0000 0A\n"
        "2: 0E02000A:0050 00000000:0000 0A\n"
        "3: 0200007F:0051 00000000:0000 0A\n"
        "4: 0100007F:0051 00000000:0000 0A\n"
        "5: 0F02000A:0052 00000000:0000 0A\n"
        "6: 00000000:0052 00000000:0000 0A\n",
        false));
    CHECK(merged == std::map<uint16_t, std::string>{{80, "10.0.2.14"}, {81, "127.0.0.1"}, {82, "0.0.0.0"}});
}

TEST_CASE("listeners: at most kMaxMirroredPorts ports, the lowest kept") {
    std::vector<TcpListener> many;
    for (uint16_t p = 1000; p < 1000 + control::kMaxMirroredPorts + 10; ++p) many.push_back(TcpListener{false, {}, p});
    auto ports = reachable_ports(many);
    CHECK(ports.size() == control::kMaxMirroredPorts);
    CHECK(ports.begin()->first == 1000);
    CHECK(ports.rbegin()->first == 1000 + control::kMaxMirroredPorts - 1);
}

TEST_CASE("listeners: only changes are sent, removals first") {
    std::map<uint16_t, std::string> before{{80, "0.0.0.0"}, {81, "127.0.0.1"}, {82, "0.0.0.0"}};
    std::map<uint16_t, std::string> after{{80, "0.0.0.0"}, {81, "0.0.0.0"}, {9000, "10.0.2.15"}};
    auto m = listener_changes(before, after);
    REQUIRE(m.size() == 3);
    CHECK(m[0] == R"({"type":"unlisten","port":82})");
    CHECK(m[1] == R"({"type":"listen","port":81,"addr":"0.0.0.0"})");
    CHECK(m[2] == R"({"type":"listen","port":9000,"addr":"10.0.2.15"})");
    CHECK(listener_changes(after, after).empty());
    CHECK(listener_changes({}, {}).empty());
}

TEST_CASE("listeners: the watcher polls fast at first, then slowly, and reports changes only") {
    TempDir dir;
    dir.write("tcp", kTcp4);
    dir.write("tcp6", kTcp6);
    const auto t0 = ListenerWatcher::Clock::now();
    ListenerWatcher w(dir.path(), t0);
    CHECK(w.timeout_ms(t0) == 0);
    auto first = w.poll_if_due(t0);
    CHECK(first.size() == 6);
    CHECK(has(first, R"({"type":"listen","port":8080,"addr":"0.0.0.0"})"));
    CHECK(w.timeout_ms(t0) == 100);
    CHECK(w.timeout_ms(t0 + milliseconds(40)) == 60);

    // Not due yet: nothing is read, even though the table changed.
    dir.write("tcp", "");
    CHECK(w.poll_if_due(t0 + milliseconds(50)).empty());
    CHECK(w.reported().size() == 6);
    // Due: port 8080, 631, 80 and 81 are gone (tcp6 still has the others).
    auto second = w.poll_if_due(t0 + milliseconds(100));
    CHECK(sorted(second) == sorted({R"({"type":"unlisten","port":80})", R"({"type":"unlisten","port":81})",
                                    R"({"type":"unlisten","port":631})", R"({"type":"unlisten","port":8080})"}));
    CHECK(w.poll_if_due(t0 + milliseconds(200)).empty());  // nothing changed

    // After the fast period, every 500 ms.
    const auto late = t0 + milliseconds(3500);
    CHECK(w.poll_if_due(late).empty());
    CHECK(w.timeout_ms(late) == 500);
    dir.write("tcp", kTcp4);
    CHECK(w.poll_if_due(late + milliseconds(499)).empty());
    CHECK(w.poll_if_due(late + milliseconds(500)).size() == 4);
}

TEST_CASE("listeners: a kernel without IPv6 has no tcp6 (fine); without /proc/net/tcp the watcher gives up") {
    TempDir dir;
    dir.write("tcp", kTcp4);
    ListenerWatcher w(dir.path());
    CHECK(w.poll().size() == 4);
    CHECK_FALSE(w.broken());

    TempDir empty;
    ListenerWatcher none(empty.path());
    CHECK(none.poll().empty());
    CHECK(none.broken());
    CHECK(none.timeout_ms() == -1);  // the supervisor then waits without a timeout
    CHECK(none.poll_if_due().empty());
}

TEST_CASE("listeners: this machine's /proc/net/tcp, read the way init reads it") {
    ListenerWatcher w;  // /proc/net
    w.poll();           // whatever already listens here
    uint16_t lo = 0, any = 0;
    krunlet::UniqueFd a = listen_on("127.0.0.1", lo);
    krunlet::UniqueFd b = listen_on("0.0.0.0", any);
    REQUIRE(a.valid());
    REQUIRE(b.valid());
    auto m = w.poll();
    CHECK(has(m, control::listen_message(lo, "127.0.0.1")));
    CHECK(has(m, control::listen_message(any, "0.0.0.0")));

    uint16_t v6 = 0;
    krunlet::UniqueFd c = listen_on("::", v6);
    if (c.valid()) {  // a host with IPv6: the tcp6 table counts too
        CHECK(has(w.poll(), control::listen_message(v6, "0.0.0.0")));
        c.reset();
        CHECK(has(w.poll(), control::unlisten_message(v6)));
    }

    a.reset();
    auto gone = w.poll();
    CHECK(has(gone, control::unlisten_message(lo)));
    CHECK_FALSE(has(gone, control::unlisten_message(any)));
}
