// The control framing (lib/base/control_protocol.h) and init's end of the
// channel (init/control_channel.h) over a real stream socket pair.
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "base/control_protocol.h"
#include "init/config.h"
#include "init/control_channel.h"

using namespace krunlet;
using namespace krunlet::init;
using namespace std::chrono_literals;

namespace {

struct Pair {
    ControlChannel guest;
    UniqueFd host;
};

Pair make_pair() {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    return Pair{ControlChannel::adopt(UniqueFd(sv[0])), UniqueFd(sv[1])};
}

void host_write(const UniqueFd& fd, std::string_view bytes) {
    REQUIRE(write(fd.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
}

std::string le32(uint32_t n) {
    std::string s(4, '\0');
    for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(n >> (8 * i));
    return s;
}

}  // namespace

TEST_CASE("frame: 4-byte little-endian length, then the JSON") {
    std::string f = control::frame(R"({"type":"exit","code":3})");
    REQUIRE(f.size() == 4 + 24);
    CHECK(f.substr(0, 4) == le32(24));
    CHECK(f.substr(4) == R"({"type":"exit","code":3})");
    CHECK(control::frame(std::string(300, 'x')).substr(0, 4) == le32(300));
}

TEST_CASE("Decoder: byte-by-byte, several messages in one read, and a partial tail") {
    std::string a = control::frame(exit_message(1));
    std::string b = control::frame(R"({"type":"signal","signo":2})");
    std::string stream = a + b + a;

    control::Decoder bytewise;
    std::vector<std::string> got;
    for (char c : stream) {
        bytewise.feed(std::string_view(&c, 1));
        while (auto m = bytewise.next()) got.push_back(*m);
    }
    CHECK(got == std::vector<std::string>{exit_message(1), R"({"type":"signal","signo":2})", exit_message(1)});

    control::Decoder whole;
    whole.feed(stream.substr(0, stream.size() - 3));
    CHECK(whole.next().has_value());
    CHECK(whole.next().has_value());
    CHECK_FALSE(whole.next().has_value());  // the third is 3 bytes short
    whole.feed(stream.substr(stream.size() - 3));
    CHECK(*whole.next() == exit_message(1));
    CHECK_FALSE(whole.broken());
}

TEST_CASE("Decoder: a zero or oversized length poisons it") {
    control::Decoder zero;
    zero.feed(le32(0) + "{}");
    CHECK_FALSE(zero.next().has_value());
    CHECK(zero.broken());
    zero.feed(control::frame("{}"));
    CHECK_FALSE(zero.next().has_value());

    control::Decoder big;
    big.feed(le32(control::kMaxControlMessage + 1));
    CHECK_FALSE(big.next().has_value());
    CHECK(big.broken());

    control::Decoder max;
    max.feed(le32(control::kMaxControlMessage));
    CHECK_FALSE(max.next().has_value());
    CHECK_FALSE(max.broken());  // the largest legal frame, still arriving
}

TEST_CASE("ControlChannel: the first message, split across writes") {
    auto [guest, host] = make_pair();
    std::string f = control::frame(R"({"type":"exec","args":["/bin/true"]})");
    host_write(host, f.substr(0, 2));
    host_write(host, f.substr(2, 10));
    host_write(host, f.substr(12));
    auto m = guest.wait_message(2s);
    REQUIRE(m.ok());
    auto parsed = parse_control_message(*m);
    REQUIRE(parsed.ok());
    CHECK(std::get<ExecMessage>(*parsed).args == std::vector<std::string>{"/bin/true"});
}

TEST_CASE("ControlChannel: messages that came with the first stay queued") {
    auto [guest, host] = make_pair();
    host_write(host, control::frame(R"({"type":"exec"})") + control::frame(R"({"type":"signal","signo":15})"));
    auto first = guest.wait_message(2s);
    REQUIRE(first.ok());
    CHECK(*first == R"({"type":"exec"})");
    auto second = guest.next();
    REQUIRE(second.ok());
    REQUIRE(second->has_value());
    CHECK(**second == R"({"type":"signal","signo":15})");
    auto none = guest.next();
    REQUIRE(none.ok());
    CHECK_FALSE(none->has_value());
}

TEST_CASE("ControlChannel: timeout, hang-up and a bad frame are clear errors") {
    {
        auto [guest, host] = make_pair();
        auto start = std::chrono::steady_clock::now();
        auto m = guest.wait_message(100ms);
        REQUIRE_FALSE(m.ok());
        CHECK(m.error().code == ETIMEDOUT);
        CHECK(m.error().message == "no message from the host within 100 ms");
        CHECK(std::chrono::steady_clock::now() - start >= 100ms);
        CHECK(guest.open());
    }
    {
        auto [guest, host] = make_pair();
        host.reset();
        auto m = guest.wait_message(2s);
        REQUIRE_FALSE(m.ok());
        CHECK(m.error().code == ECONNRESET);
        CHECK_FALSE(guest.open());
    }
    {
        // A whole message followed by EOF is still delivered.
        auto [guest, host] = make_pair();
        host_write(host, control::frame(R"({"type":"exec"})"));
        host.reset();
        auto m = guest.wait_message(2s);
        REQUIRE(m.ok());
        CHECK(*m == R"({"type":"exec"})");
    }
    {
        auto [guest, host] = make_pair();
        host_write(host, le32(0));
        auto m = guest.wait_message(2s);
        REQUIRE_FALSE(m.ok());
        CHECK(m.error().code == EPROTO);
        CHECK(m.error().message.find("bad length") != std::string::npos);
        CHECK_FALSE(guest.open());
    }
}

TEST_CASE("ControlChannel: send frames the exit message for the host's decoder") {
    auto [guest, host] = make_pair();
    REQUIRE(guest.send(exit_message(42)).ok());
    char buf[256];
    ssize_t n = read(host.get(), buf, sizeof buf);
    REQUIRE(n > 4);
    control::Decoder d;
    d.feed(std::string_view(buf, static_cast<size_t>(n)));
    auto m = d.next();
    REQUIRE(m.has_value());
    CHECK(*m == R"({"code":42,"type":"exit"})");

    // wait_for_hangup returns as soon as the host closes, well before the timeout.
    host.reset();
    auto start = std::chrono::steady_clock::now();
    guest.wait_for_hangup(5s);
    CHECK(std::chrono::steady_clock::now() - start < 1s);
    // Sending to a closed peer is an error, not a SIGPIPE.
    auto late = guest.send(exit_message(1));
    CHECK_FALSE(late.ok());
}

TEST_CASE("ControlChannel::connect gives up within its budget when there is no host") {
    // Nothing listens on vsock here (no VM): the error must come, and in time.
    auto start = std::chrono::steady_clock::now();
    auto c = ControlChannel::connect(300ms);
    auto took = std::chrono::steady_clock::now() - start;
    if (c.ok()) {
        MESSAGE("a vsock host listener answered on port ", control::kControlPort, "; nothing to check");
        return;
    }
    CHECK(took < 3s);
    const std::string& m = c.error().message;
    if (c.error().code == EAFNOSUPPORT)
        CHECK(m.find("needs CONFIG_VSOCKETS") != std::string::npos);
    else
        CHECK(m.find("attempts over 300 ms") != std::string::npos);
    MESSAGE("without a host: ", m);
}
