// krunlet-vsockstress: the guest half of the vsock integration tests
// (tests/integration/vsock_test.cpp) and of `krunlet-bench net` (docs/bench.md).
//
//   krunlet-vsockstress [--pid1] MODE [--option value | --flag]...
//
// Modes (the protocol is in vsock_stress_proto.h; every mode prints lines starting with its
// own word, one write(2) each, and exits 0 only if everything it checked held):
//
//   connect     --port P [--cid 2] [--conns 1] [--mib 1] [--down-mib 0] [--index-base 0]
//               N concurrent connections to (cid, port); connection i sends M MiB of
//               stream(up_seed(base+i)) and receives D MiB, both hashed and checked.
//   serve       --port P [--conns 1] [--timeout-s 600]
//               Listen on vsock port P, serve N connections concurrently (any mode).
//   flood       --port P [--cid 2] [--conns 1] [--mib 64] [--stall-ms 3000]
//               [--start-file F] [--hold-ms 3000 | --wait-file F]
//               (once F exists, if given) N connections written to as fast as they take
//               bytes, never read, up to M MiB each, until none has taken a byte for
//               --stall-ms; then hold them open for --hold-ms, or until the file --wait-file
//               exists, and close them (orderly). Each connection's first 4 bytes are its
//               index (little-endian); prints what each took.
//   sink        --port P [--conns 1] [--hold-ms 3000 | --wait-file F] [--timeout-s 600]
//               Listen, accept N connections and read nothing for --hold-ms or until the file
//               exists; then read each to its end and print how many bytes it carried, under
//               the index in its first 4 bytes.
// The files let the host pace a test through the shared root file system (vsock_test.cpp).
//   msg-serve   --port P --name NAME [--count 5] [--timeout-s 600]
//   msg-connect --port P --name NAME [--count 5] [--cid 2] [--retry-s 120]
//               Line messages between two guests (inter-VM messaging, see vsock_test.cpp):
//               the client says "hello from NAME", the server answers "hello from NAME";
//               then COUNT times "ping K from NAME" / "pong K from NAME". Each side prints
//               every line it receives. The client retries its connection until the server
//               side answers the hello (the other VM may not be listening yet).
//   bench       the benchmark phases; see vsock_stress_bench.cpp.
//
// --pid1 makes it a whole guest's init (QEMU in krunlet-bench net): it mounts /proc, /sys and
// /dev, configures eth0 as slirp expects, and powers the machine off at the end.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "vsock_stress.h"
#include "vsock_stress_peer.h"
#include "vsock_stress_sys.h"

namespace krunlet::vsockstress {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

void print_outcome(const char* word, uint32_t index, const Outcome& o) {
    if (o.ok)
        say("%s conn %u ok up=%" PRIu64 " up_hash=%016" PRIx64 " down=%" PRIu64 " down_hash=%016" PRIx64, word,
            index, o.up.bytes, o.up_hash, o.down.bytes, o.down_hash);
    else
        say("%s conn %u FAILED: %s", word, index, o.error.c_str());
}

bool wait_for_file(const std::string& path, int timeout_s) {
    const double until = now_s() + timeout_s;
    struct stat st {};
    while (::stat(path.c_str(), &st) != 0) {
        if (now_s() > until) return false;
        sleep_ms(100);
    }
    return true;
}

// --hold-ms or --wait-file: how long a mode keeps its connections untouched.
struct Hold {
    long ms = 3000;
    std::string file;
};
Hold hold_option(Args& a) {
    Hold h;
    h.ms = a.u32("hold-ms", 3000);
    h.file = a.str("wait-file", "");
    return h;
}
void do_hold(const char* word, const Hold& h) {
    if (h.file.empty()) {
        say("%s holding ms=%ld", word, h.ms);
        sleep_ms(h.ms);
    } else {
        say("%s holding until %s", word, h.file.c_str());
        if (!wait_for_file(h.file, 600)) say("%s: %s did not appear; going on", word, h.file.c_str());
    }
}

// Accepts one connection within `timeout_s`, or returns -1.
int accept_within(int lfd, int timeout_s) {
    pollfd p{lfd, POLLIN, 0};
    int rc;
    do rc = ::poll(&p, 1, timeout_s * 1000);
    while (rc < 0 && errno == EINTR);
    if (rc != 1) {
        if (rc == 0) errno = ETIMEDOUT;
        return -1;
    }
    return ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
}

int mode_connect(Args& a) {
    Target t;
    t.port = a.u32("port");
    t.cid = a.u32("cid", VMADDR_CID_HOST);
    const uint32_t conns = a.u32("conns", 1);
    const uint64_t up = a.u64("mib", 1) * kMiB;
    const uint64_t down = a.u64("down-mib", 0) * kMiB;
    const uint32_t base = a.u32("index-base", 0);
    if (!a.done()) return 2;
    std::vector<Outcome> out(conns);
    std::vector<std::thread> threads;
    const double t0 = now_s();
    for (uint32_t i = 0; i < conns; ++i)
        threads.emplace_back([&, i] {
            int fd = connect_to(t);
            if (fd < 0) {
                out[i].error = "connect " + t.text() + ": " + std::strerror(errno);
            } else {
                set_io_timeout(fd, 300);
                out[i] = client_stream(fd, base + i, up, down, 0);
                ::close(fd);
            }
            print_outcome("stress", base + i, out[i]);
        });
    for (auto& th : threads) th.join();
    const double secs = now_s() - t0;
    uint32_t ok = 0;
    for (auto& o : out) ok += o.ok;
    say("stress connect ok=%u/%u seconds=%.2f mib_per_s=%.2f", ok, conns, secs,
        double(up + down) * conns / kMiB / secs);
    return ok == conns ? 0 : 1;
}

int mode_serve(Args& a) {
    const uint32_t port = a.u32("port");
    const uint32_t conns = a.u32("conns", 1);
    const int timeout = static_cast<int>(a.u32("timeout-s", 600));
    if (!a.done()) return 2;
    int lfd = vsock_listen(port, static_cast<int>(conns));
    if (lfd < 0) {
        say("stress listen on vsock port %u failed: %s", port, std::strerror(errno));
        return 1;
    }
    say("stress listening port=%u", port);
    std::vector<Outcome> out(conns);
    std::vector<std::thread> threads;
    const double t0 = now_s();
    uint32_t accepted = 0;
    for (; accepted < conns; ++accepted) {
        int fd = accept_within(lfd, timeout);
        if (fd < 0) {
            say("stress accept failed after %u connections: %s", accepted, std::strerror(errno));
            break;
        }
        threads.emplace_back([&out, fd, accepted] {
            set_io_timeout(fd, 300);
            out[accepted] = serve_one(fd);
            ::close(fd);
            print_outcome("stress", out[accepted].hello.index, out[accepted]);
        });
    }
    for (auto& th : threads) th.join();
    ::close(lfd);
    const double secs = now_s() - t0;
    uint32_t ok = 0;
    uint64_t bytes = 0;
    for (auto& o : out) {
        ok += o.ok;
        bytes += o.up.bytes + o.down.bytes;
    }
    say("stress serve ok=%u/%u seconds=%.2f mib_per_s=%.2f", ok, conns, secs, double(bytes) / kMiB / secs);
    return ok == conns ? 0 : 1;
}

int mode_flood(Args& a) {
    Target t;
    t.port = a.u32("port");
    t.cid = a.u32("cid", VMADDR_CID_HOST);
    const uint32_t conns = a.u32("conns", 1);
    const uint64_t cap = a.u64("mib", 64) * kMiB;
    const int stall_ms = static_cast<int>(a.u32("stall-ms", 3000));
    const std::string start_file = a.str("start-file", "");
    const Hold hold = hold_option(a);
    if (!a.done()) return 2;
    if (!start_file.empty()) {
        say("flood waiting for %s", start_file.c_str());
        if (!wait_for_file(start_file, 600)) {
            say("flood: %s did not appear", start_file.c_str());
            return 1;
        }
    }
    std::vector<int> fds;
    for (uint32_t i = 0; i < conns; ++i) {
        int fd = connect_to(t);
        if (fd < 0) {
            say("flood connect %u to %s failed: %s", i, t.text().c_str(), std::strerror(errno));
            return 1;
        }
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        fds.push_back(fd);
    }
    say("flood connected conns=%u", conns);
    std::vector<uint8_t> buf(kChunk, 0x5a);
    std::vector<uint64_t> wrote(conns, 0);
    // Each connection starts with its index, so the reader can match its count to ours.
    auto take = [&](uint32_t i) -> ssize_t {
        if (wrote[i] < 4) {
            uint8_t head[4];
            std::memcpy(head, &i, 4);
            return ::send(fds[i], head + wrote[i], 4 - wrote[i], MSG_NOSIGNAL);
        }
        size_t n = std::min<uint64_t>(buf.size(), cap - wrote[i]);
        return ::send(fds[i], buf.data(), n, MSG_NOSIGNAL);
    };
    std::vector<bool> failed(conns, false);
    bool stalled = false;
    for (;;) {
        std::vector<pollfd> pfds;
        std::vector<uint32_t> who;
        for (uint32_t i = 0; i < conns; ++i)
            if (!failed[i] && wrote[i] < cap) {
                pfds.push_back({fds[i], POLLOUT, 0});
                who.push_back(i);
            }
        if (pfds.empty()) break;
        int rc = ::poll(pfds.data(), pfds.size(), stall_ms);
        if (rc < 0 && errno == EINTR) continue;
        if (rc <= 0) {
            stalled = rc == 0;
            break;
        }
        for (size_t k = 0; k < pfds.size(); ++k) {
            uint32_t i = who[k];
            if (pfds[k].revents & (POLLERR | POLLHUP)) {
                failed[i] = true;
                continue;
            }
            if (!(pfds[k].revents & POLLOUT)) continue;
            while (wrote[i] < cap) {
                ssize_t w = take(i);
                if (w > 0) {
                    wrote[i] += static_cast<uint64_t>(w);
                    continue;
                }
                if (w < 0 && (errno == EAGAIN || errno == EINTR)) break;
                failed[i] = true;
                break;
            }
        }
    }
    uint64_t total = 0, most = 0;
    uint32_t errors = 0;
    for (uint32_t i = 0; i < conns; ++i) {
        say("flood conn %u wrote=%" PRIu64 "%s", i, wrote[i], failed[i] ? " FAILED" : "");
        total += wrote[i];
        most = std::max(most, wrote[i]);
        errors += failed[i];
    }
    say("flood %s total=%" PRIu64 " max_conn=%" PRIu64 " errors=%u", stalled ? "stalled" : "finished", total, most,
        errors);
    do_hold("flood", hold);
    // Orderly close: what was written must still reach the host reader once it reads.
    for (int fd : fds) ::close(fd);
    say("flood end");
    return errors == 0 ? 0 : 1;
}

int mode_sink(Args& a) {
    const uint32_t port = a.u32("port");
    const uint32_t conns = a.u32("conns", 1);
    const Hold hold = hold_option(a);
    const int timeout = static_cast<int>(a.u32("timeout-s", 600));
    if (!a.done()) return 2;
    int lfd = vsock_listen(port, static_cast<int>(conns));
    if (lfd < 0) {
        say("sink listen on vsock port %u failed: %s", port, std::strerror(errno));
        return 1;
    }
    say("sink listening port=%u", port);
    std::vector<int> fds;
    for (uint32_t i = 0; i < conns; ++i) {
        int fd = accept_within(lfd, timeout);
        if (fd < 0) {
            say("sink accept failed after %u connections: %s", i, std::strerror(errno));
            return 1;
        }
        fds.push_back(fd);
    }
    say("sink accepted conns=%u", conns);
    do_hold("sink", hold);
    // Now drain: every byte the host wrote must arrive, then the host's end of the stream.
    std::vector<uint64_t> got(conns, 0);
    std::vector<uint32_t> index(conns, 0);
    std::vector<std::thread> threads;
    for (uint32_t i = 0; i < conns; ++i)
        threads.emplace_back([&, i] {
            set_io_timeout(fds[i], 300);
            std::vector<uint8_t> buf(kChunk);
            for (;;) {
                ssize_t n = ::read(fds[i], buf.data(), buf.size());
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) {
                    if (n < 0) say("sink conn %u read failed: %s", i, std::strerror(errno));
                    break;
                }
                for (ssize_t k = 0; k < n && got[i] + static_cast<uint64_t>(k) < 4; ++k)
                    reinterpret_cast<uint8_t*>(&index[i])[got[i] + static_cast<uint64_t>(k)] = buf[static_cast<size_t>(k)];
                got[i] += static_cast<uint64_t>(n);
            }
            ::close(fds[i]);
        });
    for (auto& th : threads) th.join();
    for (uint32_t i = 0; i < conns; ++i) say("sink conn %u received=%" PRIu64, index[i], got[i]);
    say("sink end");
    ::close(lfd);
    return 0;
}

// Line-oriented reading on a blocking socket; "" at EOF or on an error.
class LineReader {
public:
    explicit LineReader(int fd) : fd_(fd) {}
    std::string next() {
        for (;;) {
            if (auto nl = buf_.find('\n'); nl != std::string::npos) {
                std::string line = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return line;
            }
            char b[512];
            ssize_t n = ::read(fd_, b, sizeof b);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return {};
            buf_.append(b, static_cast<size_t>(n));
        }
    }

private:
    int fd_;
    std::string buf_;
};

bool send_line(int fd, const std::string& s) {
    std::string l = s + "\n";
    return write_all(fd, l.data(), l.size());
}

int mode_msg_serve(Args& a) {
    const uint32_t port = a.u32("port");
    const std::string name = a.str("name");
    const uint32_t count = a.u32("count", 5);
    const int timeout = static_cast<int>(a.u32("timeout-s", 600));
    if (!a.done()) return 2;
    int lfd = vsock_listen(port, 4);
    if (lfd < 0) {
        say("msg listen on vsock port %u failed: %s", port, std::strerror(errno));
        return 1;
    }
    say("msg listening port=%u", port);
    int fd = accept_within(lfd, timeout);
    if (fd < 0) {
        say("msg accept failed: %s", std::strerror(errno));
        return 1;
    }
    set_io_timeout(fd, 120);
    LineReader in(fd);
    std::string hello = in.next();
    say("msg got: %s", hello.c_str());
    if (hello.rfind("hello from ", 0) != 0 || !send_line(fd, "hello from " + name)) return 1;
    for (uint32_t k = 1; k <= count; ++k) {
        std::string line = in.next();
        say("msg got: %s", line.c_str());
        if (line.rfind("ping " + std::to_string(k) + " from ", 0) != 0) return 1;
        if (!send_line(fd, "pong " + std::to_string(k) + " from " + name)) return 1;
    }
    say("msg done count=%u", count);
    ::close(fd);
    ::close(lfd);
    return 0;
}

int mode_msg_connect(Args& a) {
    Target t;
    t.port = a.u32("port");
    t.cid = a.u32("cid", VMADDR_CID_HOST);
    const std::string name = a.str("name");
    const uint32_t count = a.u32("count", 5);
    const double retry_s = a.u32("retry-s", 120);
    if (!a.done()) return 2;
    const double until = now_s() + retry_s;
    for (int attempt = 1;; ++attempt) {
        int fd = connect_to(t);
        if (fd >= 0) {
            set_io_timeout(fd, 120);
            LineReader in(fd);
            std::string hello;
            if (send_line(fd, "hello from " + name)) hello = in.next();
            if (!hello.empty()) {
                say("msg got: %s (attempt %d)", hello.c_str(), attempt);
                for (uint32_t k = 1; k <= count; ++k) {
                    if (!send_line(fd, "ping " + std::to_string(k) + " from " + name)) return 1;
                    std::string line = in.next();
                    say("msg got: %s", line.c_str());
                    if (line.rfind("pong " + std::to_string(k) + " from ", 0) != 0) return 1;
                }
                say("msg done count=%u", count);
                ::close(fd);
                return 0;
            }
            ::close(fd);  // the far side is not listening yet: its VMM closed our stream
        }
        if (now_s() > until) {
            say("msg no answer on %s after %d attempts", t.text().c_str(), attempt);
            return 1;
        }
        sleep_ms(200);
    }
}

}  // namespace

// --- Args ---

Args::Args(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
        std::string w = argv[i];
        if (w.rfind("--", 0) != 0) {
            bad_ = "unexpected word '" + w + "'";
            return;
        }
        std::string key = w.substr(2);
        if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0)
            values_[key] = argv[++i];
        else
            values_[key] = "";
    }
}

uint64_t Args::u64(const std::string& key, std::optional<uint64_t> dflt) {
    auto it = values_.find(key);
    if (it == values_.end()) {
        if (!dflt && bad_.empty()) bad_ = "--" + key + " is required";
        return dflt.value_or(0);
    }
    used_.insert(key);
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0' || errno != 0) {
        if (bad_.empty()) bad_ = "--" + key + " needs a number, got '" + it->second + "'";
        return 0;
    }
    return v;
}

uint32_t Args::u32(const std::string& key, std::optional<uint64_t> dflt) {
    uint64_t v = u64(key, dflt);
    if (v > 0xffffffffull && bad_.empty()) bad_ = "--" + key + " is too large";
    return static_cast<uint32_t>(v);
}

std::string Args::str(const std::string& key, std::optional<std::string> dflt) {
    auto it = values_.find(key);
    if (it == values_.end()) {
        if (!dflt && bad_.empty()) bad_ = "--" + key + " is required";
        return dflt.value_or("");
    }
    used_.insert(key);
    return it->second;
}

bool Args::flag(const std::string& key) {
    auto it = values_.find(key);
    if (it == values_.end()) return false;
    used_.insert(key);
    if (!it->second.empty() && bad_.empty()) bad_ = "--" + key + " takes no value";
    return true;
}

bool Args::done() {
    for (auto& [k, v] : values_)
        if (!used_.count(k) && bad_.empty()) bad_ = "unknown option --" + k;
    if (!bad_.empty()) say("krunlet-vsockstress: %s (see the comment at the top of vsock_stress.cpp)", bad_.c_str());
    return bad_.empty();
}

}  // namespace krunlet::vsockstress

int main(int argc, char** argv) {
    using namespace krunlet::vsockstress;
    int first = 1;
    bool pid1 = false;
    if (first < argc && std::string(argv[first]) == "--pid1") {
        pid1 = true;
        ++first;
    }
    if (pid1 || ::getpid() == 1) pid1_setup();
    int rc = 2;
    if (first >= argc) {
        say("usage: krunlet-vsockstress [--pid1] connect|serve|flood|sink|msg-serve|msg-connect|bench [options]");
    } else {
        std::string mode = argv[first];
        Args a(argc, argv, first + 1);
        if (mode == "connect") rc = mode_connect(a);
        else if (mode == "serve") rc = mode_serve(a);
        else if (mode == "flood") rc = mode_flood(a);
        else if (mode == "sink") rc = mode_sink(a);
        else if (mode == "msg-serve") rc = mode_msg_serve(a);
        else if (mode == "msg-connect") rc = mode_msg_connect(a);
        else if (mode == "bench") rc = mode_bench(a);
        else say("krunlet-vsockstress: unknown mode '%s'", mode.c_str());
    }
    if (pid1 || ::getpid() == 1) pid1_finish(rc);
    return rc;
}
