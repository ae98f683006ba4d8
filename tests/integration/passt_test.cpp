// The passt backend (issue 4): krunlet --net passt:PATH sends the guest's frames to a real
// passt (Debian's package) over its stream socket. passt runs in a network namespace of its
// own, made by this test (loopback up, a default route through it: passt insists on a
// "template" interface), next to the test's HTTP server on that namespace's 127.0.0.1, which
// passt maps to the guest's gateway 10.0.2.2. Nothing leaves this machine.
//
// One boot checks: eth0's static address, a small GET, a 2 MiB download and upload with
// content checks, and that passt going away mid-run takes only the network down (logged),
// not the VM. Without /usr/bin/passt the test is reported SKIPPED with the reason.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vm_runner.h"

using krunlet::test::krunlet_run;
using krunlet::test::run_process;
using krunlet::test::ScratchRootfs;

namespace {

constexpr const char* kPasst = "/usr/bin/passt";
constexpr size_t kBigSize = 2u << 20;

// Why the passt test cannot run here, or "" when it can. Printed at start-up, so a skip is
// never silent.
std::string passt_missing() {
    if (::access(kPasst, X_OK) != 0)
        return std::string(kPasst) + " is missing (apt-get install passt; setup.sh lists it)";
    return "";
}
const std::string kPasstMissing = [] {
    std::string why = passt_missing();
    if (!why.empty()) std::fprintf(stderr, "passt_test: SKIPPED: %s\n", why.c_str());
    return why;
}();

std::string dirname_of(const std::string& path) { return path.substr(0, path.rfind('/')); }

// Printable bytes only: busybox wget --post-file sends the file as a C string.
uint8_t big_byte(size_t i) { return static_cast<uint8_t>('a' + ((i * 7) ^ (i >> 12)) % 26); }

bool send_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return false;
        p += k;
        n -= static_cast<size_t>(k);
    }
    return true;
}

// passt and an HTTP server in a network namespace of their own. The namespace belongs to one
// thread of this process (unshare(CLONE_NEWNET) moves only the calling thread); the server
// runs on it and passt is forked from it.
class PasstWorld {
public:
    explicit PasstWorld(std::string socket_path) : socket_(std::move(socket_path)) {
        thread_ = std::thread([this] { main(); });
    }
    ~PasstWorld() {
        stop_ = true;
        thread_.join();
        kill_passt();
    }

    // Waits until passt listens (or failed); false with the reason in `why`.
    bool wait_ready(int seconds, std::string& why) {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, std::chrono::seconds(seconds), [this] { return ready_ || !error_.empty(); });
        why = error_.empty() ? (ready_ ? "" : "passt did not say it listens within the time") : error_;
        return ready_;
    }
    void kill_passt() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }
    uint16_t port() const { return port_; }
    std::string log() {
        std::lock_guard lock(mu_);
        return log_;
    }
    size_t uploads_ok() const { return uploads_ok_; }
    size_t requests() const { return requests_; }

private:
    void fail(const std::string& e) {
        std::lock_guard lock(mu_);
        error_ = e;
        cv_.notify_all();
    }

    void main() {
        if (::unshare(CLONE_NEWNET) != 0) return fail(std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno));
        // Loopback up, and a default route through it so passt has an interface to copy.
        int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ifreq ifr{};
        std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
        ::ioctl(s, SIOCGIFFLAGS, &ifr);
        ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
        if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) return fail(std::string("lo up: ") + std::strerror(errno));
        rtentry rt{};
        reinterpret_cast<sockaddr_in*>(&rt.rt_dst)->sin_family = AF_INET;
        reinterpret_cast<sockaddr_in*>(&rt.rt_genmask)->sin_family = AF_INET;
        rt.rt_flags = RTF_UP;
        char lo[] = "lo";
        rt.rt_dev = lo;
        if (::ioctl(s, SIOCADDRT, &rt) != 0) return fail(std::string("default route via lo: ") + std::strerror(errno));
        ::close(s);

        int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l, 8) != 0)
            return fail(std::string("server socket: ") + std::strerror(errno));
        ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);

        int err[2];
        if (::pipe2(err, O_CLOEXEC) != 0) return fail("pipe");
        // As documented in docs/networking.md: slirp's layout, so init's static setup fits.
        // -1: quit when the VM disconnects. lo has no MAC, hence --mac-addr for passt's side.
        std::vector<std::string> argv{kPasst, "-f", "-e", "-1", "-4", "--mac-addr", "02:00:00:00:00:02",
                                      "-a", "10.0.2.15", "-n", "24", "-g", "10.0.2.2", "--dns-forward", "10.0.2.3",
                                      "-s", socket_};
        std::vector<char*> args;
        for (auto& x : argv) args.push_back(x.data());
        args.push_back(nullptr);
        // passt sandboxes itself with pivot_root(), which the kernel refuses while the root
        // is the initramfs (the KVM test host's): the child first moves into a mount
        // namespace whose root is a bind mount of the old one, as switch_root does.
        const std::string newroot = std::string(dirname_of(socket_)) + "/root";
        ::mkdir(newroot.c_str(), 0755);
        pid_ = ::fork();
        if (pid_ == 0) {
            if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
                ::mount("/", newroot.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0 || ::chdir(newroot.c_str()) != 0 ||
                ::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0 || ::chroot(".") != 0 || ::chdir("/") != 0)
                ::_exit(126);
            int null = ::open("/dev/null", O_RDWR);
            ::dup2(null, 0);
            ::dup2(null, 1);
            ::dup2(err[1], 2);
            ::execv(kPasst, args.data());
            ::_exit(127);
        }
        ::close(err[1]);
        ::fcntl(err[0], F_SETFL, O_NONBLOCK);

        // Serve until told to stop, draining passt's log all along.
        while (!stop_) {
            pollfd p[2] = {{l, POLLIN, 0}, {err[0], POLLIN, 0}};
            if (::poll(p, 2, 200) <= 0) continue;
            if (p[1].revents != 0) {
                char buf[4096];
                ssize_t n = ::read(err[0], buf, sizeof buf);
                if (n > 0) {
                    std::lock_guard lock(mu_);
                    log_.append(buf, static_cast<size_t>(n));
                    // Printed after listen() (passt's tap.c).
                    if (!ready_ && log_.find("You can now start qemu") != std::string::npos) {
                        ready_ = true;
                        cv_.notify_all();
                    }
                } else if (n == 0) {
                    std::lock_guard lock(mu_);
                    if (!ready_ && error_.empty()) {
                        error_ = "passt exited before it listened; its log:\n" + log_;
                        cv_.notify_all();
                    }
                    ::close(err[0]);
                    err[0] = -1;
                }
            }
            if (p[0].revents != 0) {
                int c = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
                if (c >= 0) {
                    serve(c);
                    ::close(c);
                }
            }
        }
        ::close(l);
        if (err[0] >= 0) ::close(err[0]);
    }

    // One request: GET /hello, GET /big (kBigSize pattern bytes), POST /upload (checked
    // against the same pattern).
    void serve(int c) {
        timeval tv{30, 0};
        ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        std::string req;
        char buf[65536];
        size_t head_end;
        while ((head_end = req.find("\r\n\r\n")) == std::string::npos && req.size() < 65536) {
            ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0) return;
            req.append(buf, static_cast<size_t>(n));
        }
        if (head_end == std::string::npos) return;
        ++requests_;
        auto reply = [&](const std::string& body) {
            std::string r = "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
            send_all(c, r.data(), r.size());
        };
        if (req.starts_with("GET /hello ")) {
            reply("hello-through-passt\n");
        } else if (req.starts_with("GET /big ")) {
            std::string body(kBigSize, '\0');
            for (size_t i = 0; i < kBigSize; ++i) body[i] = static_cast<char>(big_byte(i));
            reply(body);
        } else if (req.starts_with("POST /upload ")) {
            size_t want = 0;
            auto cl = req.find("Content-Length: ");
            if (cl == std::string::npos) cl = req.find("content-length: ");
            if (cl != std::string::npos) want = std::strtoul(req.c_str() + cl + 16, nullptr, 10);
            std::string body = req.substr(head_end + 4);
            while (body.size() < want) {
                ssize_t n = ::recv(c, buf, sizeof buf, 0);
                if (n <= 0) break;
                body.append(buf, static_cast<size_t>(n));
            }
            bool same = body.size() == kBigSize;
            for (size_t i = 0; same && i < kBigSize; ++i) same = static_cast<uint8_t>(body[i]) == big_byte(i);
            if (same) ++uploads_ok_;
            reply(same ? "upload-intact " + std::to_string(body.size()) + "\n"
                       : "upload-damaged " + std::to_string(body.size()) + "\n");
        } else {
            reply("unknown\n");
        }
    }

    std::string socket_;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<uint16_t> port_{0};
    std::atomic<size_t> uploads_ok_{0}, requests_{0};
    pid_t pid_ = -1;
    std::mutex mu_;
    std::condition_variable cv_;
    bool ready_ = false;
    std::string error_;
    std::string log_;
};

#define PASST_RUN_INFO(r) INFO("status=" << (r).status << "\nstdout:\n" << (r).out << "\nstderr:\n" << (r).err)

}  // namespace

TEST_CASE("passt: the guest reaches a host server through passt; passt going away takes only the network down" *
          doctest::skip(!kPasstMissing.empty())) {
    char dir[] = "/tmp/krunlet-passt-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    ::chmod(dir, 0777);  // passt drops to "nobody" when started as root
    const std::string sock = std::string(dir) + "/passt.sock";
    ScratchRootfs fs;
    {
        PasstWorld world(sock);
        std::string why;
        bool ready = world.wait_ready(60, why);
        INFO("passt log:\n" << world.log());
        REQUIRE_MESSAGE(ready, why);

        // The content the guest must see, hashed with the host's md5sum.
        const std::string big_path = std::string(dir) + "/big";
        {
            std::ofstream f(big_path, std::ios::binary);
            for (size_t i = 0; i < kBigSize; ++i) f.put(static_cast<char>(big_byte(i)));
        }
        auto md5 = run_process({"/usr/bin/md5sum", big_path});
        REQUIRE(md5.status == 0);
        const std::string want_md5 = md5.out.substr(0, 32);

        const std::string base = "http://10.0.2.2:" + std::to_string(world.port());
        const std::string script =
            "ip -4 addr show dev eth0 | grep -o 'inet [0-9./]*'; "
            "ip route | grep -o 'default via [0-9.]*'; "
            "wget -q -O - " + base + "/hello || echo hello-failed; "
            "wget -q -O /tmp/big " + base + "/big && echo size=$(wc -c < /tmp/big) && md5sum /tmp/big; "
            "wget -q -O - --post-file /tmp/big " + base + "/upload || echo upload-failed; "
            "trap 'timeout 5 wget -q -O - " + base + "/hello || echo network-down-as-expected; exit 3' USR1; "
            "echo phase1-done; while :; do sleep 30 & wait $!; done";
        bool killed = false;
        auto hook = [&](pid_t pid, const std::string& out) {
            if (killed || out.find("phase1-done") == std::string::npos) return;
            killed = true;
            world.kill_passt();  // the peer goes away under a running VM
            ::usleep(300 * 1000);
            ::kill(pid, SIGUSR1);
        };
        auto r = krunlet_run(fs.path(), {"--net", "passt:" + sock}, {"/bin/sh", "-c", script}, 300, hook);
        PASST_RUN_INFO(r);
        CHECK(r.out.find("inet 10.0.2.15/24") != std::string::npos);
        CHECK(r.out.find("default via 10.0.2.2") != std::string::npos);
        CHECK(r.out.find("hello-through-passt") != std::string::npos);
        CHECK(r.out.find("size=" + std::to_string(kBigSize)) != std::string::npos);
        CHECK(r.out.find(want_md5 + "  /tmp/big") != std::string::npos);
        CHECK(r.out.find("upload-intact " + std::to_string(kBigSize)) != std::string::npos);
        CHECK(world.uploads_ok() == 1);
        // After passt died: the VM lived on, said why its network is down, and the workload
        // ended its own way.
        CHECK(killed);
        CHECK(r.out.find("network-down-as-expected") != std::string::npos);
        CHECK(r.err.find("the guest's network is down") != std::string::npos);
        CHECK(r.status == 3);
    }
    {
        // No passt at the path: a clear error before any boot.
        auto r = krunlet_run(fs.path(), {"--net", "passt:" + std::string(dir) + "/none.sock"}, {"/bin/true"}, 120);
        PASST_RUN_INFO(r);
        CHECK(r.status == 125);
        CHECK(r.err.find("none.sock") != std::string::npos);
        CHECK(r.err.find("is passt running?") != std::string::npos);
    }
    ::unlink((std::string(dir) + "/big").c_str());
    ::unlink(sock.c_str());
    ::rmdir((std::string(dir) + "/root").c_str());
    ::rmdir(dir);
}
