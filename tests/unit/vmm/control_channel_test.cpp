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
