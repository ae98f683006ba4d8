#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vmm/control_channel.h"

using krunlet::ControlChannel;
namespace control = krunlet::control;

namespace {
std::span<const uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
}  // namespace

TEST_CASE("control channel: exec message on connect, exit status back") {
    krunlet::Workload w;
    w.args = {"/bin/sh", "-c", "echo 'a b'"};
    w.env = {"A=1", "B=two words"};
    w.workdir = "/tmp";
    w.rlimits = {"7=1024:4096"};
    std::vector<int> exits;
    ControlChannel ch(w, false, [&](int c) { exits.push_back(c); });
    std::string sent;
    ch.on_connect([&](std::span<const uint8_t> b) {
        sent.append(reinterpret_cast<const char*>(b.data()), b.size());
        return true;
    });
    control::Decoder d;
    d.feed(sent);
    auto msg = d.next();
    REQUIRE(msg);
    auto j = nlohmann::json::parse(*msg);
    CHECK(j["type"] == "exec");
    CHECK(j["args"] == nlohmann::json(w.args));
    CHECK(j["env"] == nlohmann::json(w.env));
    CHECK(j["workdir"] == "/tmp");
    CHECK(j["rlimits"] == nlohmann::json(w.rlimits));
    CHECK(j["tty"] == false);

    // The status may arrive split across packets.
    std::string exit_msg = control::frame(R"({"type":"exit","code":42})");
    ch.on_data(bytes(exit_msg.substr(0, 3)));
    CHECK(exits.empty());
    ch.on_data(bytes(exit_msg.substr(3)));
    REQUIRE(exits.size() == 1);
    CHECK(exits[0] == 42);
    CHECK(ch.exit_code() == 42);
    // Only the first status counts.
    ch.on_data(bytes(control::frame(R"({"type":"exit","code":3})")));
    CHECK(exits.size() == 1);
}

TEST_CASE("control channel: an empty workload sends only type and tty") {
    ControlChannel ch({}, true, nullptr);
    auto j = nlohmann::json::parse(ch.exec_message());
    CHECK(j == nlohmann::json{{"type", "exec"}, {"tty", true}});
}

TEST_CASE("control channel: hostile guest messages are ignored or poison the stream") {
    std::vector<int> exits;
    ControlChannel ch({}, false, [&](int c) { exits.push_back(c); });
    ch.on_connect([](std::span<const uint8_t>) { return true; });
    for (const char* bad : {"not json", "[1,2]", R"({"type":5})", R"({"type":"exit"})",
                            R"({"type":"exit","code":"7"})", R"({"type":"exit","code":1.5})"})
        ch.on_data(bytes(control::frame(bad)));
    CHECK(exits.empty());
    // Out-of-range codes become the VMM-failure code rather than wrapping.
    ch.on_data(bytes(control::frame(R"({"type":"exit","code":1000})")));
    REQUIRE(exits.size() == 1);
    CHECK(exits[0] == krunlet::kExitVmmError);

    // Found by fuzz_control_decoder: codes outside 0..255 that would wrap
    // when narrowed to int must not turn into success.
    for (const char* wrap : {R"({"type":"exit","code":4294967296})", R"({"type":"exit","code":-4294967295})"}) {
        ControlChannel w({}, false, [&](int c) { exits.push_back(c); });
        w.on_connect([](std::span<const uint8_t>) { return true; });
        w.on_data(bytes(control::frame(wrap)));
        REQUIRE(exits.size() >= 2);
        CHECK(exits.back() == krunlet::kExitVmmError);
    }
    exits.resize(1);

    // A length above the limit breaks the decoder for good.
    ControlChannel ch2({}, false, [&](int c) { exits.push_back(c); });
    std::string huge("\xff\xff\xff\x7f", 4);
    ch2.on_data(bytes(huge));
    ch2.on_data(bytes(control::frame(R"({"type":"exit","code":0})")));
    CHECK(exits.size() == 1);
}

TEST_CASE("control channel: signals go out only while connected") {
    ControlChannel ch({}, false, nullptr);
    CHECK_FALSE(ch.send_signal(15));
    std::string sent;
    ch.on_connect([&](std::span<const uint8_t> b) {
        sent.append(reinterpret_cast<const char*>(b.data()), b.size());
        return true;
    });
    CHECK(ch.send_signal(15));
    control::Decoder d;
    d.feed(sent);
    REQUIRE(d.next());  // exec
    auto sig = d.next();
    REQUIRE(sig);
    CHECK(nlohmann::json::parse(*sig) == nlohmann::json{{"type", "signal"}, {"signo", 15}});
    ch.on_close();
    CHECK_FALSE(ch.send_signal(15));
}

TEST_CASE("control channel: volumes travel as \"mounts\", only when there are some") {
    krunlet::Workload w;
    w.mounts = {{"krunlet-vol0", "/data", false}, {"krunlet-vol1", "/srv/ro", true}};
    ControlChannel ch(w, true, nullptr);
    auto j = nlohmann::json::parse(ch.exec_message());
    REQUIRE(j["mounts"].is_array());
    REQUIRE(j["mounts"].size() == 2);
    CHECK(j["mounts"][0] == nlohmann::json{{"tag", "krunlet-vol0"}, {"path", "/data"}, {"read_only", false}});
    CHECK(j["mounts"][1] == nlohmann::json{{"tag", "krunlet-vol1"}, {"path", "/srv/ro"}, {"read_only", true}});
    CHECK_FALSE(nlohmann::json::parse(ControlChannel({}, true, nullptr).exec_message()).contains("mounts"));
}

TEST_CASE("control channel: the exec message carries eth0's setup, and mirror_ports only with a handler") {
    krunlet::NetConfig net;
    {
        ControlChannel ch({}, true, nullptr);
        ch.set_network(net, nullptr);
        auto j = nlohmann::json::parse(ch.exec_message());
        CHECK(j["net"] == nlohmann::json{{"address", "10.0.2.15"}, {"prefix", 24}, {"gateway", "10.0.2.2"},
                                         {"dns", "10.0.2.3"}});
        CHECK_FALSE(j.contains("mirror_ports"));
    }
    {
        ControlChannel ch({}, true, nullptr);
        ch.set_network(net, [](const ControlChannel::ListenerEvent&) {});
        CHECK(nlohmann::json::parse(ch.exec_message())["mirror_ports"] == true);
    }
    {
        ControlChannel ch({}, true, nullptr);
        net.enabled = false;  // no eth0: nothing to say
        ch.set_network(net, [](const ControlChannel::ListenerEvent&) {});
        auto j = nlohmann::json::parse(ch.exec_message());
        CHECK_FALSE(j.contains("net"));
        CHECK_FALSE(j.contains("mirror_ports"));
    }
}

TEST_CASE("control channel: the guest's listen/unlisten reports, as init encodes them, reach the handler") {
    std::vector<ControlChannel::ListenerEvent> got;
    ControlChannel ch({}, false, nullptr);
    ch.set_network(krunlet::NetConfig{}, [&](const ControlChannel::ListenerEvent& ev) { got.push_back(ev); });
    ch.on_connect([](std::span<const uint8_t>) { return true; });

    // init's encoders (control_protocol.h), split across packets and glued together.
    std::string stream = control::frame(control::listen_message(8080, "0.0.0.0")) +
                         control::frame(control::listen_message(631, "127.0.0.1")) +
                         control::frame(control::unlisten_message(8080));
    ch.on_data(bytes(stream.substr(0, 5)));
    ch.on_data(bytes(stream.substr(5)));
    REQUIRE(got.size() == 3);
    CHECK(got[0].port == 8080);
    CHECK(got[0].addr == "0.0.0.0");
    CHECK(got[1].port == 631);
    CHECK(got[1].addr == "127.0.0.1");
    CHECK(got[2].port == 8080);
    CHECK(got[2].addr.empty());  // unlisten

    // guest-controlled: bad ports and addresses are dropped, the stream goes on.
    got.clear();
    for (const char* bad : {R"({"type":"listen","port":0,"addr":"0.0.0.0"})",
                            R"({"type":"listen","port":65536,"addr":"0.0.0.0"})",
                            R"({"type":"listen","port":-1,"addr":"0.0.0.0"})",
                            R"({"type":"listen","port":80.5,"addr":"0.0.0.0"})",
                            R"({"type":"listen","port":"80","addr":"0.0.0.0"})",
                            R"({"type":"listen","port":80})",
                            R"({"type":"listen","port":80,"addr":"localhost"})",
                            R"({"type":"listen","port":80,"addr":"1.2.3.4; rm -rf /"})",
                            R"({"type":"listen","port":80,"addr":"300.1.1.1"})",
                            R"({"type":"listen","port":80,"addr":7})",
                            R"({"type":"unlisten"})",
                            R"({"type":"unlisten","port":70000})"})
        ch.on_data(bytes(control::frame(bad)));
    CHECK(got.empty());
    ch.on_data(bytes(control::frame(control::listen_message(65535, "10.0.2.15"))));
    REQUIRE(got.size() == 1);
    CHECK(got[0].port == 65535);

    // Without a handler (a port map was given) reports are ignored.
    ControlChannel quiet({}, false, nullptr);
    quiet.on_data(bytes(control::frame(control::listen_message(80, "0.0.0.0"))));
    CHECK_FALSE(quiet.exit_code().has_value());
}

TEST_CASE("control protocol: dotted quads, as listen and net addresses must be") {
    for (const char* ok : {"0.0.0.0", "127.0.0.1", "10.0.2.15", "255.255.255.255", "1.20.199.0"})
        CHECK_MESSAGE(control::is_dotted_quad(ok), ok);
    for (const char* bad : {"", "1", "1.2.3", "1.2.3.4.", ".1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.04",
                            "1..3.4", "1.2.3.4 ", " 1.2.3.4", "a.b.c.d", "1.2.3.4444", "::1", "1.2.3.-4"})
        CHECK_FALSE_MESSAGE(control::is_dotted_quad(bad), bad);
    CHECK(control::listen_message(80, "0.0.0.0") == R"({"type":"listen","port":80,"addr":"0.0.0.0"})");
    CHECK(control::unlisten_message(65535) == R"({"type":"unlisten","port":65535})");
}
