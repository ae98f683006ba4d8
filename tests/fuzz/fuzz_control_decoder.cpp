// fuzz_control_decoder: the control channel between the VMM and the guest
// init (lib/base/control_protocol.h).
//
// Input: a workload (args, env, workdir, rlimits as raw byte strings, so
// invalid UTF-8 and NULs occur), a tty flag, a signal number, a chunk size,
// and then a byte stream. The stream is fed, chunk by chunk, to
//   - control::Decoder, compared with a one-shot reference decoder written
//     from the framing rules (4-byte LE length 1..kMaxControlMessage);
//   - the host's ControlChannel::on_data() (lib/vmm/control_channel.h), whose
//     exit code must be that of the first well-formed exit message, clamped
//     to kExitVmmError outside 0..255, reported once;
//   - the guest's init::ControlChannel over a socketpair (receive()/next()),
//     which must hand out the same messages and report a bad frame as EPROTO.
// The host's exec and signal messages are decoded and parsed by the guest's
// parse_control_message(): a workload the guest would accept must arrive
// unchanged, and any workload must at least produce valid JSON.
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/control_protocol.h"
#include "fuzz_util.h"
#include "init/config.h"
#include "init/control_channel.h"
#include "vmm/control_channel.h"

using namespace krunlet;
using krunlet::fuzz::Input;
using nlohmann::json;

namespace {

struct Reference {
    std::vector<std::string> messages;
    bool broken = false;
};

Reference reference_decode(std::string_view s) {
    Reference r;
    size_t pos = 0;
    while (s.size() - pos >= 4) {
        uint32_t n = 0;
        for (int i = 0; i < 4; ++i) n |= uint32_t(uint8_t(s[pos + i])) << (8 * i);
        if (n == 0 || n > control::kMaxControlMessage) {
            r.broken = true;
            break;
        }
        if (s.size() - pos - 4 < n) break;
        r.messages.emplace_back(s.substr(pos + 4, n));
        pos += 4 + n;
    }
    return r;
}

// Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF), as JSON needs.
bool valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            ++i;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (s.size() - i - 1 < n) return false;
        for (size_t k = 1; k <= n; ++k) {
            auto d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xc0) != 0x80) return false;
            cp = cp << 6 | (d & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

// Would the guest accept this workload as sent? (init/config.cpp's rules.)
bool guest_accepts(const Workload& w) {
    auto utf8 = [](const std::vector<std::string>& v) {
        for (const auto& s : v)
            if (!valid_utf8(s)) return false;
        return true;
    };
    if (!utf8(w.args) || !utf8(w.env) || !utf8(w.rlimits) || !valid_utf8(w.workdir)) return false;
    for (const auto& a : w.args)
        if (a.find('\0') != std::string::npos) return false;
    for (const auto& e : w.env) {
        auto eq = e.find('=');
        if (eq == std::string::npos || eq == 0 || e.find('\0') != std::string::npos) return false;
    }
    if (!w.workdir.empty() && w.workdir.front() != '/') return false;
    for (const auto& r : w.rlimits)
        if (!init::parse_rlimit_spec(r)) return false;
    return true;
}

std::vector<std::string> strings(Input& in) {
    std::vector<std::string> v(in.u8() % 4);
    for (auto& s : v) s = in.str8();
    return v;
}

// The single framed message in `bytes` (a host -> guest send).
std::string one_message(std::string_view bytes) {
    control::Decoder d;
    d.feed(bytes);
    auto m = d.next();
    FUZZ_CHECK(m.has_value(), "the host sent a frame the decoder cannot read");
    FUZZ_CHECK(!d.next().has_value() && !d.broken(), "the host sent more than one frame");
    return *m;
}

void check_host_messages(const Workload& w, bool tty, int signo) {
    std::string sent;
    std::optional<int> reported;
    ControlChannel ch(w, tty, [&](int code) {
        FUZZ_CHECK(!reported, "on_exit called twice");
        reported = code;
    });
    FUZZ_CHECK(!ch.send_signal(1), "send_signal() succeeded before anyone connected");
    ch.on_connect([&](std::span<const uint8_t> b) {
        sent.append(reinterpret_cast<const char*>(b.data()), b.size());
        return true;
    });
    std::string exec_text = one_message(sent);
    auto j = json::parse(exec_text, nullptr, false);
    FUZZ_CHECK(!j.is_discarded() && j.is_object() && j.value("type", "") == "exec",
               "the exec message is not a JSON object of type exec: " + exec_text);
    auto parsed = init::parse_control_message(exec_text);
    if (guest_accepts(w)) {
        FUZZ_CHECK(parsed.ok(), "the guest rejects a valid workload: " + (parsed ? "" : parsed.error().message));
        auto* e = std::get_if<init::ExecMessage>(&*parsed);
        FUZZ_CHECK(e != nullptr, "the exec message parsed as another type");
        FUZZ_CHECK(e->args == w.args && e->env == w.env && e->workdir == w.workdir && e->tty == tty,
                   "the workload changed on its way to the guest");
        FUZZ_CHECK(e->rlimits.size() == w.rlimits.size(), "rlimits lost on the way to the guest");
        for (size_t i = 0; i < w.rlimits.size(); ++i) {
            auto r = init::parse_rlimit_spec(w.rlimits[i]);
            FUZZ_CHECK(e->rlimits[i].resource == r->resource && e->rlimits[i].soft == r->soft &&
                           e->rlimits[i].hard == r->hard,
                       "an rlimit changed on its way to the guest");
        }
    }

    sent.clear();
    FUZZ_CHECK(ch.send_signal(signo), "send_signal() failed while connected");
    auto sig = init::parse_control_message(one_message(sent));
    if (signo >= 1 && signo <= SIGRTMAX) {
        FUZZ_CHECK(sig.ok() && std::holds_alternative<init::SignalMessage>(*sig) &&
                       std::get<init::SignalMessage>(*sig).signo == signo,
                   "a signal message did not arrive as sent");
    }
    ch.on_close();
    FUZZ_CHECK(!ch.connected() && !ch.send_signal(1), "still connected after on_close()");
}

// The exit code the host must take from these guest messages.
std::optional<int> expected_exit(const std::vector<std::string>& messages) {
    for (const std::string& m : messages) {
        auto j = json::parse(m, nullptr, false);
        if (j.is_discarded() || !j.is_object()) continue;
        auto t = j.find("type");
        if (t == j.end() || !t->is_string() || *t != "exit") continue;
        auto c = j.find("code");
        if (c == j.end() || !c->is_number_integer()) continue;
        // The rule (control_protocol.h): 0..255 is the workload's status, anything else is a VMM error.
        if (c->is_number_unsigned()) {
            uint64_t v = c->get<uint64_t>();
            return v <= 255 ? static_cast<int>(v) : kExitVmmError;
        }
        int64_t v = c->get<int64_t>();
        return v >= 0 && v <= 255 ? static_cast<int>(v) : kExitVmmError;
    }
    return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    uint8_t flags = in.u8();
    Workload w;
    w.args = strings(in);
    w.env = strings(in);
    w.workdir = in.str8();
    w.rlimits = strings(in);
    int signo = static_cast<int8_t>(in.u8());
    size_t chunk = in.u8();
    if (chunk == 0) chunk = size;
    auto stream_bytes = in.rest();
    std::string_view stream(reinterpret_cast<const char*>(stream_bytes.data()), stream_bytes.size());
    const Reference ref = reference_decode(stream);

    // 1. The decoder, chunk by chunk, against the reference.
    control::Decoder d;
    std::vector<std::string> got;
    for (size_t pos = 0; pos < stream.size(); pos += chunk) {
        d.feed(stream.substr(pos, chunk));
        while (auto m = d.next()) got.push_back(std::move(*m));
    }
    FUZZ_CHECK(got == ref.messages, "the decoder disagrees with the framing rules");
    FUZZ_CHECK(d.broken() == ref.broken, "the decoder's broken() disagrees with the framing rules");

    // 2. The host end: exec/signal messages out, exit status in.
    check_host_messages(w, flags & 1, signo);
    std::optional<int> reported;
    ControlChannel host(w, flags & 1, [&](int code) {
        FUZZ_CHECK(!reported, "on_exit called twice");
        reported = code;
    });
    host.on_connect([](std::span<const uint8_t>) { return true; });
    for (size_t pos = 0; pos < stream.size(); pos += chunk)
        host.on_data(stream_bytes.subspan(pos, std::min(chunk, stream.size() - pos)));
    const std::optional<int> want = expected_exit(ref.messages);
    FUZZ_CHECK(host.exit_code() == want && reported == want,
               "exit status " + std::to_string(host.exit_code().value_or(-1)) + ", expected " +
                   std::to_string(want.value_or(-1)));

    // 3. The guest end, over a real socket.
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
    UniqueFd peer(sv[1]);
    auto guest = init::ControlChannel::adopt(UniqueFd(sv[0]));
    std::vector<std::string> guest_got;
    bool eproto = false;
    for (size_t pos = 0; pos < stream.size() && !eproto; pos += chunk) {
        std::string_view piece = stream.substr(pos, chunk);
        FUZZ_CHECK(::send(peer.get(), piece.data(), piece.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(piece.size()),
                   "socketpair send");
        FUZZ_CHECK(guest.receive().ok(), "receive() failed on an open channel");
        for (;;) {
            auto m = guest.next();
            if (!m) {
                FUZZ_CHECK(m.error().code == EPROTO, "next() failed with something other than EPROTO");
                eproto = true;
                break;
            }
            if (!m->has_value()) break;
            (void)init::parse_control_message(**m);
            guest_got.push_back(std::move(**m));
        }
    }
    FUZZ_CHECK(guest_got == ref.messages, "the guest channel disagrees with the framing rules");
    FUZZ_CHECK(eproto == ref.broken, "the guest channel's EPROTO disagrees with the framing rules");
    FUZZ_CHECK(guest.open() == !eproto, "the guest channel stays open after a bad frame");
    if (!eproto) {
        FUZZ_CHECK(guest.send(stream.substr(0, std::min<size_t>(stream.size(), 64))).ok(), "send() failed");
        peer.reset();
        auto r = guest.receive();
        FUZZ_CHECK(!r && r.error().code == ECONNRESET && !guest.open(), "a hang-up was not reported as ECONNRESET");
    }
    return 0;
}
