// fuzz_passt: the passt/qemu stream framing of net/unixstream_backend.h (a
// 4-byte big-endian length before every Ethernet frame), with the fuzzer as
// the untrusted peer process on the other end of a socketpair.
//
// Input: a program of operations, each one byte plus its arguments:
//   0 the peer writes the next N bytes (N from a u16) of its stream;
//   1 the guest's receive side flips between room and no room (sink_ready()
//     on the way back to room);
//   2 one round of the backend's I/O (run_once());
//   3 the guest sends a frame of N bytes (N from a u16) towards the peer;
//   4 the peer reads what is waiting for it.
// At the end the sink gets room, the backend runs until the socket is empty,
// and the peer reads everything.
//
// Checked against a reference parse of exactly the bytes the peer wrote:
//   - the frames the guest got are the stream's well-formed frames, whole and
//     in order, up to the first length of 0 or above kMaxFrameSize;
//   - runts (shorter than an Ethernet header) were dropped and counted;
//   - a bad length takes the link down with a reason, and nothing else does;
//   - while the link is up, the peer reads exactly the frames send_to_host()
//     accepted, each behind its length, and the host-bound queue stays
//     within kTxLimit plus one frame.
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "fuzz_util.h"
#include "net/unixstream_backend.h"

using namespace krunlet;
using krunlet::fuzz::Input;
using Bytes = std::vector<uint8_t>;

namespace {

// The backend watches one epoll fd through the env; run_once() is called
// directly here, so registrations need not be dispatched.
class NoLoop final : public virtio::DeviceEnv {
public:
    Result<void> watch(int, uint32_t, std::function<void(uint32_t)>) override { return {}; }
    void unwatch(int) override {}
};

class Sink final : public net::FrameSink {
public:
    void receive(std::span<const uint8_t> frame) override {
        FUZZ_CHECK(room, "a frame was delivered while the sink said it had no room");
        frames.emplace_back(frame.begin(), frame.end());
    }
    bool can_receive() const override { return room; }
    std::vector<Bytes> frames;
    bool room = true;
};

struct Reference {
    std::vector<Bytes> frames;
    uint64_t runts = 0;
    bool broken = false;  // a length of 0 or above kMaxFrameSize
};

FUZZ_NO_COVERAGE Reference parse(const Bytes& s) {
    Reference r;
    size_t pos = 0;
    while (s.size() - pos >= 4) {
        uint32_t len = uint32_t(s[pos]) << 24 | uint32_t(s[pos + 1]) << 16 | uint32_t(s[pos + 2]) << 8 | s[pos + 3];
        if (len == 0 || len > net::kMaxFrameSize) {
            r.broken = true;
            break;
        }
        if (s.size() - pos - 4 < len) break;
        if (len < net::kEthHeaderSize)
            ++r.runts;
        else
            r.frames.emplace_back(s.begin() + static_cast<ptrdiff_t>(pos + 4),
                                  s.begin() + static_cast<ptrdiff_t>(pos + 4 + len));
        pos += 4 + len;
    }
    return r;
}

// Bytes the backend's end has not read yet (SIOCOUTQ on a unix socket counts
// what the other end still holds of ours).
int unread(int peer) {
    int n = 0;
    return ::ioctl(peer, SIOCOUTQ, &n) == 0 ? n : 0;
}

void peer_read(int peer, Bytes& got) {
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = ::recv(peer, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) return;
        got.insert(got.end(), buf, buf + n);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
    UniqueFd peer(sv[1]);
    NoLoop env;
    std::string down;
    net::UnixStreamBackend::Options o;
    o.on_down = [&down](std::string_view why) {
        FUZZ_CHECK(down.empty(), "on_down called twice");
        down = std::string(why);
        FUZZ_CHECK(!down.empty(), "the link went down without a reason");
    };
    auto made = net::UnixStreamBackend::adopt(env, UniqueFd(sv[0]), std::move(o));
    FUZZ_CHECK(made.ok(), "adopt() refused a stream socketpair");
    auto b = std::move(made).value();
    Sink sink;
    b->set_sink(&sink);
    FUZZ_CHECK(b->start().ok(), "start() failed");

    Bytes written;            // every byte the peer's writes got into the socket
    std::vector<Bytes> sent;  // frames send_to_host() accepted
    Bytes host_got;           // what the peer read
    uint8_t pattern = 0;

    auto give_room = [&] {
        if (!sink.room) {
            sink.room = true;
            b->sink_ready();
        }
    };
    for (int ops = 0; !in.empty() && ops < 512; ++ops) {
        switch (in.u8() % 5) {
        case 0: {
            auto chunk = in.bytes(in.u16());
            size_t done = 0;
            for (int spins = 0; done < chunk.size() && spins < 64; ++spins) {
                ssize_t n = ::send(peer.get(), chunk.data() + done, chunk.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n > 0) {
                    written.insert(written.end(), chunk.begin() + static_cast<ptrdiff_t>(done),
                                   chunk.begin() + static_cast<ptrdiff_t>(done) + n);
                    done += static_cast<size_t>(n);
                    continue;
                }
                if (!b->link_up()) break;  // EPIPE: the backend hung up
                give_room();               // the socket is full: let the backend read
                b->run_once();
            }
            break;
        }
        case 1:
            if (sink.room)
                sink.room = false;
            else
                give_room();
            break;
        case 2:
            b->run_once();
            break;
        case 3: {
            Bytes f(in.u16() % (net::kMaxFrameSize + 64), pattern++);
            bool was_up = b->link_up();
            auto r = b->send_to_host(f);
            bool fits = f.size() >= net::kEthHeaderSize && f.size() <= net::kMaxFrameSize;
            if (r.ok()) {
                FUZZ_CHECK(fits && was_up, "send_to_host() accepted a frame it must refuse");
                sent.push_back(std::move(f));
            } else {
                FUZZ_CHECK(!fits || !was_up || r.error().code == ENOBUFS, "a valid frame was refused: " +
                                                                          r.error().message);
            }
            FUZZ_CHECK(b->tx_queued() <= net::UnixStreamBackend::kTxLimit + 4 + net::kMaxFrameSize,
                       "the host-bound queue outgrew its limit");
            break;
        }
        case 4:
            peer_read(peer.get(), host_got);
            break;
        }
    }

    // Drain: room for the guest, the backend reads until the socket is empty
    // and flushes while the peer reads.
    give_room();
    for (int round = 0; round < 4096 && b->link_up(); ++round) {
        b->run_once();
        peer_read(peer.get(), host_got);
        if (unread(peer.get()) == 0 && b->tx_queued() == 0) {
            b->run_once();  // the last bytes read may still sit in the backend's buffer
            break;
        }
    }
    peer_read(peer.get(), host_got);

    const Reference ref = parse(written);
    if (b->link_up()) {
        FUZZ_CHECK(!ref.broken, "a bad frame length did not take the link down");
        FUZZ_CHECK(unread(peer.get()) == 0, "the backend stopped reading with room in the sink");
        FUZZ_CHECK(b->tx_queued() == 0, "frames for the host were never flushed");
        Bytes want;
        for (const auto& f : sent) {
            const uint32_t n = static_cast<uint32_t>(f.size());
            want.insert(want.end(), {uint8_t(n >> 24), uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n)});
            want.insert(want.end(), f.begin(), f.end());
        }
        FUZZ_CHECK(host_got == want, "the peer read " + std::to_string(host_got.size()) + " bytes, not the " +
                                         std::to_string(want.size()) + " of the accepted frames");
        FUZZ_CHECK(b->stats().frames_to_host == sent.size(), "frames_to_host miscounted");
    } else {
        FUZZ_CHECK(ref.broken, "the link went down on a well-formed stream: " + down);
        FUZZ_CHECK(!b->stats().down_reason.empty(), "no reason recorded for the link going down");
    }
    FUZZ_CHECK(sink.frames == ref.frames, "the guest got " + std::to_string(sink.frames.size()) +
                                              " frames; the stream holds " + std::to_string(ref.frames.size()));
    FUZZ_CHECK(b->stats().rx_runts == ref.runts, "runts miscounted");
    FUZZ_CHECK(b->stats().frames_to_guest == ref.frames.size(), "frames_to_guest miscounted");
    return 0;
}
