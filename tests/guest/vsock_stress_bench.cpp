// krunlet-vsockstress bench: the guest half of `krunlet-bench net` (docs/bench.md), and --pid1
// (the program as the init of a QEMU guest).
//
//   bench [--vsock-port P] [--cid 2] [--tcp-port T] [--tcp-host 10.0.2.2] [--mib 64]
//         [--rr-count 2000] [--rr-size 1] [--conn-count 200] [--settle-ms 200] [--phases LIST]
//
// Phases, in this order (a port of 0 skips its transport; --phases, comma-separated, picks):
//   vsock_up, vsock_down   one connection moves --mib MiB guest -> host / host -> guest
//                          (Mode::Stream with kFlagRaw: zeros, counted, not checked)
//   vsock_rr               --rr-count round trips of --rr-size bytes on one connection
//   vsock_conn             --conn-count connections, each connect + hello + 1-byte answer + close
//   tcp_up, tcp_down, tcp_rr, tcp_conn   the same over TCP to --tcp-host:--tcp-port
// Each phase prints, one write(2) per line:
//   netbench begin PHASE      then pauses --settle-ms (the host samples CPU time), then works
//   netbench end PHASE        then pauses --settle-ms again
//   netbench result PHASE key=value...
// and the run ends with "netbench done" or "netbench failed: PHASE: why". Times come from the
// guest's CLOCK_MONOTONIC; a stream's time ends when the receiver's Report (up) or the last
// byte (down) has arrived, so no data is still in flight.
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cinttypes>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "vsock_stress.h"
#include "vsock_stress_peer.h"
#include "vsock_stress_sys.h"

namespace krunlet::vsockstress {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

struct BenchOptions {
    Target vsock, tcp;
    uint64_t mib = 64;
    uint64_t rr_count = 2000;
    uint64_t rr_size = 1;
    uint64_t conn_count = 200;
    long settle_ms = 200;
};

// A phase's numbers as "key=value" words, or an error.
struct PhaseResult {
    std::string error;
    std::string pairs;
};

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

PhaseResult stream_phase(const Target& t, uint64_t mib, bool up) {
    int fd = connect_to(t);
    if (fd < 0) return {"connect " + t.text() + ": " + std::strerror(errno), {}};
    set_io_timeout(fd, 600);
    const uint64_t bytes = mib * 1024 * 1024;
    double t0 = now_s();
    Outcome o = client_stream(fd, 0, up ? bytes : 0, up ? 0 : bytes, kFlagRaw);
    double secs = now_s() - t0;
    ::close(fd);
    if (!o.ok) return {o.error, {}};
    return {{}, "bytes=" + std::to_string(bytes) + " seconds=" + fmt("%.4f", secs) +
                    " mib_per_s=" + fmt("%.3f", double(bytes) / kMiB / secs)};
}

PhaseResult rr_phase(const Target& t, uint64_t size, uint64_t count) {
    int fd = connect_to(t);
    if (fd < 0) return {"connect " + t.text() + ": " + std::strerror(errno), {}};
    set_io_timeout(fd, 600);
    double t0 = now_s();
    Outcome o = client_echo(fd, size, count);
    double secs = now_s() - t0;
    ::close(fd);
    if (!o.ok) return {o.error, {}};
    return {{}, "round_trips=" + std::to_string(count) + " size=" + std::to_string(size) +
                    " seconds=" + fmt("%.4f", secs) + " us_per_rt=" + fmt("%.2f", secs * 1e6 / double(count))};
}

PhaseResult conn_phase(const Target& t, uint64_t count) {
    double t0 = now_s();
    for (uint64_t i = 0; i < count; ++i) {
        int fd = connect_to(t);
        if (fd < 0) return {"connect " + std::to_string(i) + " to " + t.text() + ": " + std::strerror(errno), {}};
        set_io_timeout(fd, 120);
        Outcome o = client_probe(fd);
        ::close(fd);
        if (!o.ok) return {"connection " + std::to_string(i) + ": " + o.error, {}};
    }
    double secs = now_s() - t0;
    return {{}, "conns=" + std::to_string(count) + " seconds=" + fmt("%.4f", secs) +
                    " conns_per_s=" + fmt("%.2f", double(count) / secs) +
                    " us_per_conn=" + fmt("%.1f", secs * 1e6 / double(count))};
}

std::string first_line(const char* path) {
    std::ifstream f(path);
    std::string s;
    std::getline(f, s);
    return s;
}

void print_info() {
    utsname u{};
    ::uname(&u);
    std::string mem = "?";
    std::ifstream m("/proc/meminfo");
    for (std::string line; std::getline(m, line);)
        if (line.rfind("MemTotal:", 0) == 0) {
            std::istringstream in(line.substr(9));
            in >> mem;
        }
    say("netbench info kernel=%s cpus=%ld mem_total_kib=%s", u.release, ::sysconf(_SC_NPROCESSORS_ONLN), mem.c_str());
    say("netbench info cmdline=%s", first_line("/proc/cmdline").c_str());
}

// eth0 as slirp's DHCP would configure it: 10.0.2.15/24 (the gateway 10.0.2.2 is on-link).
bool configure_eth0() {
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    auto set_up = [&](const char* name) {
        ifreq r{};
        std::snprintf(r.ifr_name, IFNAMSIZ, "%s", name);
        if (::ioctl(s, SIOCGIFFLAGS, &r) != 0) return false;
        r.ifr_flags = static_cast<short>(r.ifr_flags | IFF_UP);
        return ::ioctl(s, SIOCSIFFLAGS, &r) == 0;
    };
    auto set_addr = [&](unsigned long req, const char* addr) {
        ifreq r{};
        std::snprintf(r.ifr_name, IFNAMSIZ, "eth0");
        auto* sin = reinterpret_cast<sockaddr_in*>(&r.ifr_addr);
        sin->sin_family = AF_INET;
        ::inet_pton(AF_INET, addr, &sin->sin_addr);
        return ::ioctl(s, req, &r) == 0;
    };
    bool ok = set_up("lo") && set_addr(SIOCSIFADDR, "10.0.2.15") && set_addr(SIOCSIFNETMASK, "255.255.255.0") &&
              set_up("eth0");
    ::close(s);
    return ok;
}

}  // namespace

int mode_bench(Args& a) {
    BenchOptions o;
    o.vsock.port = a.u32("vsock-port", 0);
    o.vsock.cid = a.u32("cid", VMADDR_CID_HOST);
    o.tcp.tcp = true;
    o.tcp.port = a.u32("tcp-port", 0);
    o.tcp.host = a.str("tcp-host", "10.0.2.2");
    o.mib = a.u64("mib", 64);
    o.rr_count = a.u64("rr-count", 2000);
    o.rr_size = a.u64("rr-size", 1);
    o.conn_count = a.u64("conn-count", 200);
    o.settle_ms = a.u32("settle-ms", 200);
    std::string phases = a.str("phases", "");
    if (!a.done()) return 2;
    if (o.rr_size == 0 || o.rr_size > kMaxEchoSize || o.mib == 0 || o.rr_count == 0 || o.conn_count == 0) {
        say("netbench failed: options: --mib, --rr-count, --conn-count must be positive, --rr-size 1..%" PRIu64,
            kMaxEchoSize);
        return 2;
    }
    print_info();
    struct Phase {
        std::string name;
        std::function<PhaseResult()> run;
    };
    std::vector<Phase> all;
    for (const Target* t : {&o.vsock, &o.tcp}) {
        if (t->port == 0) continue;
        std::string p = t->tcp ? "tcp_" : "vsock_";
        all.push_back({p + "up", [&o, t] { return stream_phase(*t, o.mib, true); }});
        all.push_back({p + "down", [&o, t] { return stream_phase(*t, o.mib, false); }});
        all.push_back({p + "rr", [&o, t] { return rr_phase(*t, o.rr_size, o.rr_count); }});
        all.push_back({p + "conn", [&o, t] { return conn_phase(*t, o.conn_count); }});
    }
    for (const auto& ph : all) {
        if (!phases.empty() && ("," + phases + ",").find("," + ph.name + ",") == std::string::npos) continue;
        say("netbench begin %s", ph.name.c_str());
        sleep_ms(o.settle_ms);
        PhaseResult r = ph.run();
        say("netbench end %s", ph.name.c_str());
        sleep_ms(o.settle_ms);
        if (!r.error.empty()) {
            say("netbench failed: %s: %s", ph.name.c_str(), r.error.c_str());
            return 1;
        }
        say("netbench result %s %s", ph.name.c_str(), r.pairs.c_str());
    }
    say("netbench done");
    return 0;
}

void pid1_setup() {
    ::mkdir("/proc", 0555);
    ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    ::mkdir("/sys", 0555);
    ::mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    ::mkdir("/dev", 0755);
    ::mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    // The kernel gave init the console only if the initramfs had /dev/console.
    if (::fcntl(1, F_GETFD) < 0) {
        int fd = ::open("/dev/console", O_RDWR | O_NOCTTY);
        if (fd >= 0) {
            for (int i = 0; i < 3; ++i) ::dup2(fd, i);
            if (fd > 2) ::close(fd);
        }
    }
    if (!configure_eth0()) say("netbench info eth0 setup failed: %s", std::strerror(errno));
}

void pid1_finish(int rc) {
    say("vsockstress exit=%d", rc);
    ::sync();
    // reboot=t on the kernel command line plus QEMU's -no-reboot turn this into QEMU exiting.
    ::reboot(RB_AUTOBOOT);
    for (;;) ::pause();
}

}  // namespace krunlet::vsockstress
