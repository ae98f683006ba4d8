#include "net/slirp_backend.h"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <libslirp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace krunlet::net {

struct SlirpBackend::Timer {
    SlirpTimerId id = SLIRP_TIMER_RA;
    SlirpTimerCb cb = nullptr;  // set for timers made through the pre-v4 timer_new
    void* cb_opaque = nullptr;
    int64_t expire_ms = -1;     // on cb_clock_get_ns()'s clock; -1: not armed
};

namespace {

// libslirp's limits on if_mtu (IF_MTU_MIN / IF_MTU_MAX in its if.h).
constexpr unsigned kMinMtu = 68;
constexpr unsigned kMaxMtu = 65521;

int64_t monotonic_ns() {
    struct timespec ts {};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

Result<in_addr> parse_ipv4(const std::string& text, const char* what) {
    in_addr a{};
    if (::inet_pton(AF_INET, text.c_str(), &a) != 1)
        return make_error(EINVAL, std::string("slirp: ") + what + " '" + text +
                                      "' is not an IPv4 address in dotted form (e.g. 10.0.2.2)");
    return a;
}

short to_poll_events(int slirp_events) {
    short e = 0;
    if (slirp_events & SLIRP_POLL_IN) e |= POLLIN;
    if (slirp_events & SLIRP_POLL_OUT) e |= POLLOUT;
    if (slirp_events & SLIRP_POLL_PRI) e |= POLLPRI;
    // POLLERR and POLLHUP are always reported; nothing to ask for.
    return e;
}

// An IPv4 packet that is a fragment (MF set or a non-zero offset, RFC 791).
// libslirp 4.7.0 (Debian 12) dereferences NULL in ip_reass() when the first
// fragment it sees of a datagram is the last one (MF clear, offset > 0): one
// crafted frame would kill the VMM. So fragments never reach slirp. Linux's
// TCP never fragments (it sets DF and sizes segments to the MTU); what is
// lost is UDP datagrams and pings larger than the MTU.
bool is_ipv4_fragment(std::span<const uint8_t> frame) {
    constexpr size_t kEthType = 12, kIp = 14;
    if (frame.size() < kIp + 20 || frame[kEthType] != 0x08 || frame[kEthType + 1] != 0x00) return false;
    const uint16_t flags_offset = static_cast<uint16_t>(frame[kIp + 6] << 8 | frame[kIp + 7]);
    return (flags_offset & 0x3fff) != 0;  // MF (0x2000) or fragment offset (0x1fff)
}

}  // namespace

// The C callbacks. libslirp keeps a pointer to the table for its lifetime,
// so it is a constant with static storage; `opaque` is the backend.
struct SlirpGlue {
    static SlirpBackend& self(void* opaque) { return *static_cast<SlirpBackend*>(opaque); }

    static ssize_t send_packet(const void* buf, size_t len, void* opaque) {
        SlirpBackend& b = self(opaque);
        if (b.sink_ == nullptr) {
            ++b.stats_.frames_unsunk;
        } else {
            ++b.stats_.frames_to_guest;
            // The sink bounds-checks and copies (and counts what it drops).
            b.sink_->receive(std::span<const uint8_t>(static_cast<const uint8_t*>(buf), len));
        }
        // Always "sent": a frame the guest had no room for is lost like on a
        // real wire, and slirp's TCP resends it.
        return static_cast<ssize_t>(len);
    }
    static void guest_error(const char* msg, void* opaque) {
        SlirpBackend& b = self(opaque);
        ++b.stats_.guest_errors;
        b.stats_.last_guest_error = msg != nullptr ? msg : "";
    }
    static int64_t clock_get_ns(void*) { return monotonic_ns(); }

    static void* timer_new(SlirpTimerCb cb, void* cb_opaque, void* opaque) {
        auto t = std::make_unique<SlirpBackend::Timer>();
        t->cb = cb;
        t->cb_opaque = cb_opaque;
        auto* raw = t.get();
        self(opaque).timers_.push_back(std::move(t));
        return raw;
    }
    static void* timer_new_opaque(SlirpTimerId id, void* cb_opaque, void* opaque) {
        auto t = std::make_unique<SlirpBackend::Timer>();
        t->id = id;
        t->cb_opaque = cb_opaque;
        auto* raw = t.get();
        self(opaque).timers_.push_back(std::move(t));
        return raw;
    }
    static void timer_free(void* timer, void* opaque) {
        auto& timers = self(opaque).timers_;
        std::erase_if(timers, [timer](const auto& t) { return t.get() == timer; });
    }
    static void timer_mod(void* timer, int64_t expire_ms, void* opaque) {
        SlirpBackend& b = self(opaque);
        for (auto& t : b.timers_)
            if (t.get() == timer) t->expire_ms = std::max<int64_t>(expire_ms, 0);
        // Re-arm the timerfd at the end of the cycle this runs in (or of the
        // one the kick starts, when slirp_input() set the timer).
        b.kick();
    }
    // slirp announces each socket it opens or closes. A number it closed
    // may come back as a new socket, which epoll has never seen: forget the
    // registration so the next sync adds it afresh.
    static void register_poll_fd(int fd, void* opaque) { self(opaque).registered_.erase(fd); }
    static void unregister_poll_fd(int fd, void* opaque) { self(opaque).registered_.erase(fd); }
    static void notify(void* opaque) { self(opaque).kick(); }
    static void init_completed(Slirp* slirp, void* opaque) { self(opaque).slirp_ = slirp; }

    static int add_poll(int fd, int events, void* opaque) {
        auto& fds = self(opaque).pollfds_;
        fds.push_back(pollfd{fd, to_poll_events(events), 0});
        return static_cast<int>(fds.size() - 1);
    }
    static int get_revents(int idx, void* opaque) {
        const auto& fds = self(opaque).pollfds_;
        if (idx < 0 || static_cast<size_t>(idx) >= fds.size()) return 0;
        const short r = fds[static_cast<size_t>(idx)].revents;
        int e = 0;
        if (r & POLLIN) e |= SLIRP_POLL_IN;
        if (r & POLLOUT) e |= SLIRP_POLL_OUT;
        if (r & POLLPRI) e |= SLIRP_POLL_PRI;
        if (r & POLLERR) e |= SLIRP_POLL_ERR;
        if (r & POLLHUP) e |= SLIRP_POLL_HUP;
        return e;  // POLLNVAL (a descriptor closed since the fill) reports nothing
    }
};

namespace {

const SlirpCb kCallbacks = {
    .send_packet = SlirpGlue::send_packet,
    .guest_error = SlirpGlue::guest_error,
    .clock_get_ns = SlirpGlue::clock_get_ns,
    .timer_new = SlirpGlue::timer_new,
    .timer_free = SlirpGlue::timer_free,
    .timer_mod = SlirpGlue::timer_mod,
    .register_poll_fd = SlirpGlue::register_poll_fd,
    .unregister_poll_fd = SlirpGlue::unregister_poll_fd,
    .notify = SlirpGlue::notify,
    .init_completed = SlirpGlue::init_completed,
    .timer_new_opaque = SlirpGlue::timer_new_opaque,
};

}  // namespace

Result<std::unique_ptr<SlirpBackend>> SlirpBackend::create(virtio::DeviceEnv& env, const SlirpOptions& o) {
    auto net = parse_ipv4(o.network, "network");
    if (!net.ok()) return net.error();
    auto host = parse_ipv4(o.host, "host address");
    if (!host.ok()) return host.error();
    auto dns = parse_ipv4(o.dns, "DNS address");
    if (!dns.ok()) return dns.error();
    auto guest = parse_ipv4(o.guest, "guest address");
    if (!guest.ok()) return guest.error();
    if (o.prefix_len < 8 || o.prefix_len > 30)
        return make_error(EINVAL, "slirp: network prefix /" + std::to_string(o.prefix_len) +
                                      " is out of range (use /8 .. /30, e.g. 10.0.2.0/24)");
    const uint32_t mask = ~uint32_t{0} << (32 - o.prefix_len);
    const uint32_t n = ntohl(net->s_addr);
    if ((n & ~mask) != 0)
        return make_error(EINVAL, "slirp: network " + o.network + "/" + std::to_string(o.prefix_len) +
                                      " has host bits set (use the network's first address)");
    for (auto [a, what] : {std::pair{*host, "host address"}, {*dns, "DNS address"}, {*guest, "guest address"}}) {
        const uint32_t h = ntohl(a.s_addr);
        if ((h & mask) != n || (h & ~mask) == 0 || (h & ~mask) == ~mask)
            return make_error(EINVAL, std::string("slirp: ") + what + " is not a host address inside " + o.network +
                                          "/" + std::to_string(o.prefix_len));
    }
    if (host->s_addr == guest->s_addr || dns->s_addr == guest->s_addr)
        return make_error(EINVAL, "slirp: the guest address must differ from the host and DNS addresses");
    if (o.mtu < kMinMtu || o.mtu > kMaxMtu)
        return make_error(EINVAL, "slirp: MTU " + std::to_string(o.mtu) + " is out of range (" +
                                      std::to_string(kMinMtu) + " .. " + std::to_string(kMaxMtu) + ")");

    std::unique_ptr<SlirpBackend> b(new SlirpBackend(env));
    b->epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!b->epoll_.valid()) return errno_error("slirp: epoll_create1");
    b->timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!b->timer_.valid()) return errno_error("slirp: timerfd_create");
    b->kick_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!b->kick_.valid()) return errno_error("slirp: eventfd");
    for (int fd : {b->timer_.get(), b->kick_.get()}) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (::epoll_ctl(b->epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return errno_error("slirp: epoll_ctl");
    }

    SlirpConfig cfg{};
    cfg.version = 4;  // libslirp >= 4.7: timer_new_opaque / init_completed
    cfg.restricted = 0;
    cfg.in_enabled = true;
    cfg.vnetwork = *net;
    cfg.vnetmask.s_addr = htonl(mask);
    cfg.vhost = *host;
    cfg.in6_enabled = false;
    cfg.vdhcp_start = *guest;
    cfg.vnameserver = *dns;
    cfg.if_mtu = o.mtu;
    cfg.if_mru = o.mtu;
    cfg.disable_host_loopback = !o.host_loopback;
    cfg.enable_emu = false;  // libslirp: the protocol emulation code is not safe
    b->guest_addr_ = guest->s_addr;
    b->host_addr_ = host->s_addr;
    b->guest_mac_ = o.guest_mac;
    Slirp* s = ::slirp_new(&cfg, &kCallbacks, b.get());
    if (s == nullptr) return make_error(EINVAL, "slirp: slirp_new refused the configuration");
    b->slirp_ = s;
    return b;
}

SlirpBackend::SlirpBackend(virtio::DeviceEnv& env) : env_(env) {}

SlirpBackend::~SlirpBackend() {
    if (started_) env_.unwatch(epoll_.get());
    // Closes every socket slirp owns; may free timers, so before timers_ goes.
    if (slirp_ != nullptr) ::slirp_cleanup(slirp_);
}

Result<void> SlirpBackend::add_hostfwd(std::string_view host_addr, uint16_t host_port, uint16_t guest_port) {
    in_addr guest{};
    guest.s_addr = guest_addr_;
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &guest, text, sizeof text);
    return add_hostfwd(host_addr, host_port, text, guest_port);
}

Result<void> SlirpBackend::add_hostfwd(std::string_view host_addr, uint16_t host_port, std::string_view guest_addr,
                                       uint16_t guest_port) {
    const std::string addr_text(host_addr);
    auto addr = parse_ipv4(addr_text, "port-forward host address");
    if (!addr.ok()) return addr.error();
    auto guest = parse_ipv4(std::string(guest_addr), "port-forward guest address");
    if (!guest.ok()) return guest.error();
    const std::string what = "port forward " + addr_text + ":" + std::to_string(host_port) + " -> guest " +
                             std::string(guest_addr) + ":" + std::to_string(guest_port);
    if (host_port == 0 || guest_port == 0)
        return make_error(EINVAL, what + ": ports must be 1..65535");
    if (guest->s_addr == 0) return make_error(EINVAL, what + ": the guest address may not be 0.0.0.0");
    if ((ntohl(guest->s_addr) >> 24) == 127) teach_arp(guest->s_addr);
    errno = 0;
    if (::slirp_add_hostfwd(slirp_, 0, *addr, host_port, *guest, guest_port) != 0) {
        // slirp keeps bind()'s errno (EADDRINUSE, EACCES below 1024, ...).
        const int e = errno != 0 ? errno : EADDRINUSE;
        std::string hint = e == EADDRINUSE ? " (host port " + std::to_string(host_port) +
                                                 " is already in use: pick another host port or stop what listens there)"
                           : e == EACCES  ? " (host ports below 1024 need CAP_NET_BIND_SERVICE: use a higher port)"
                                          : "";
        return make_error(e, what + ": cannot listen on " + addr_text + ":" + std::to_string(host_port) + ": " +
                                 std::strerror(e) + hint);
    }
    // The new listener is watched from the next cycle on.
    kick();
    return {};
}

Result<void> SlirpBackend::remove_hostfwd(std::string_view host_addr, uint16_t host_port) {
    const std::string addr_text(host_addr);
    auto addr = parse_ipv4(addr_text, "port-forward host address");
    if (!addr.ok()) return addr.error();
    // slirp finds the listener by getsockname(), so the address must be the
    // one it was added with.
    if (::slirp_remove_hostfwd(slirp_, 0, *addr, host_port) != 0)
        return make_error(ENOENT, "no port forward listens on " + addr_text + ":" + std::to_string(host_port));
    kick();
    return {};
}

void SlirpBackend::teach_arp(uint32_t ip_be) {
    // An ARP reply (RFC 826) "ip_be is at guest_mac_", as if the guest sent
    // it; slirp's arp_input() records the sender of every reply.
    uint8_t f[42] = {};
    std::memset(f, 0xff, 6);                      // destination: broadcast
    std::memcpy(f + 6, guest_mac_.data(), 6);     // source: the guest
    f[12] = 0x08, f[13] = 0x06;                   // ethertype ARP
    f[14] = 0x00, f[15] = 0x01;                   // hardware: Ethernet
    f[16] = 0x08, f[17] = 0x00;                   // protocol: IPv4
    f[18] = 6, f[19] = 4;                         // address lengths
    f[20] = 0x00, f[21] = 0x02;                   // op: reply
    std::memcpy(f + 22, guest_mac_.data(), 6);    // sender MAC
    std::memcpy(f + 28, &ip_be, 4);               // sender IP
    std::memset(f + 32, 0xff, 6);                 // target MAC (slirp does not look)
    std::memcpy(f + 38, &host_addr_, 4);          // target IP: slirp
    ::slirp_input(slirp_, f, sizeof f);
}

Result<void> SlirpBackend::start() {
    if (started_) return {};
    KRUNLET_CHECK(env_.watch(epoll_.get(), EPOLLIN, [this](uint32_t) { poll_once(); }));
    started_ = true;
    // A full cycle, not just a fill: slirp's clock ("curtime") only moves in
    // slirp_pollfds_poll(), and a UDP socket opened while it still reads 0
    // is taken as expired and closed at the next fill.
    poll_once();
    return {};
}

Result<void> SlirpBackend::send_to_host(std::span<const uint8_t> frame) {
    if (frame.size() < kEthHeaderSize || frame.size() > kMaxFrameSize)
        return make_error(EMSGSIZE, "slirp: frame of " + std::to_string(frame.size()) + " bytes");
    if (is_ipv4_fragment(frame)) {
        ++stats_.fragments_dropped;
        return make_error(EMSGSIZE, "slirp: IPv4 fragment dropped (slirp's reassembly is unsafe)");
    }
    ++stats_.frames_to_host;
    // guest-controlled, but only ever used as a destination MAC for the
    // guest itself; a multicast source is not a station address.
    if ((frame[6] & 1) == 0) std::memcpy(guest_mac_.data(), frame.data() + 6, 6);
    // slirp parses the frame (it is guest-controlled) with its own checks;
    // replies it can give at once (ARP, ICMP to 10.0.2.2) reach the sink
    // before this returns.
    ::slirp_input(slirp_, frame.data(), static_cast<int>(frame.size()));
    // It may have opened a socket (a new flow) or queued data for one: run a
    // cycle before the loop sleeps so both are watched.
    kick();
    return {};
}

void SlirpBackend::kick() {
    if (kick_pending_) return;
    uint64_t one = 1;
    // EAGAIN only if the counter is about to overflow: a wake-up is pending anyway.
    if (::write(kick_.get(), &one, sizeof one) == sizeof one) kick_pending_ = true;
}

void SlirpBackend::poll_once() {
    ++stats_.cycles;
    // Empty the private epoll's ready list (its members are level-triggered
    // and re-checked below with poll()), and clear the kick and the timer.
    epoll_event evs[64];
    [[maybe_unused]] int n = ::epoll_wait(epoll_.get(), evs, 64, 0);
    uint64_t count;
    while (::read(kick_.get(), &count, sizeof count) == sizeof count) {
    }
    kick_pending_ = false;
    while (::read(timer_.get(), &count, sizeof count) == sizeof count) {
    }
    armed_ns_ = -1;  // a fired timerfd is disarmed; an unfired one is re-armed by refill()

    run_due_timers();
    int select_error = 0;
    if (!pollfds_.empty()) {
        for (auto& p : pollfds_) p.revents = 0;
        int r = ::poll(pollfds_.data(), pollfds_.size(), 0);
        if (r < 0) select_error = 1;  // EINTR/ENOMEM: slirp skips its sockets this time
    }
    ::slirp_pollfds_poll(slirp_, select_error, SlirpGlue::get_revents, this);
    refill();
}

void SlirpBackend::refill() {
    pollfds_.clear();
    uint32_t timeout = UINT32_MAX;
    ::slirp_pollfds_fill(slirp_, &timeout, SlirpGlue::add_poll, this);
    sync_epoll();
    arm_timer(timeout);
}

void SlirpBackend::sync_epoll() {
    // What slirp wants now, merged per fd (one socket appears once, but be safe).
    std::unordered_map<int, uint32_t> want;
    for (const auto& p : pollfds_) {
        uint32_t ev = 0;
        if (p.events & POLLIN) ev |= EPOLLIN;
        if (p.events & POLLOUT) ev |= EPOLLOUT;
        if (p.events & POLLPRI) ev |= EPOLLPRI;
        want[p.fd] |= ev;
    }
    for (auto it = registered_.begin(); it != registered_.end();) {
        if (want.count(it->first) == 0) {
            // ENOENT/EBADF: slirp already closed it, which removed it from epoll.
            ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->first, nullptr);
            it = registered_.erase(it);
        } else {
            ++it;
        }
    }
    for (const auto& [fd, ev] : want) {
        auto it = registered_.find(fd);
        if (it != registered_.end() && it->second == ev) continue;
        epoll_event e{};
        e.events = ev;
        e.data.fd = fd;
        int op = it == registered_.end() ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        int r = ::epoll_ctl(epoll_.get(), op, fd, &e);
        // The table and epoll disagree (a number closed and reused between
        // two cycles): take the other operation.
        if (r != 0 && errno == EEXIST) r = ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &e);
        else if (r != 0 && errno == ENOENT) r = ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &e);
        if (r == 0) {
            registered_[fd] = ev;
        } else {
            // Cannot watch it (should not happen for a socket): the cycle
            // still polls it, at the latest on slirp's next timeout.
            registered_.erase(fd);
        }
    }
}

void SlirpBackend::arm_timer(uint32_t timeout_ms) {
    int64_t deadline = -1;
    if (timeout_ms != UINT32_MAX) deadline = monotonic_ns() + int64_t{timeout_ms} * 1'000'000;
    for (const auto& t : timers_) {
        if (t->expire_ms < 0) continue;
        const int64_t at = t->expire_ms * 1'000'000;
        if (deadline < 0 || at < deadline) deadline = at;
    }
    if (deadline == armed_ns_) return;
    struct itimerspec its {};
    if (deadline >= 0) {
        deadline = std::max<int64_t>(deadline, 1);  // 0 would disarm; a past time fires at once
        its.it_value.tv_sec = deadline / 1'000'000'000;
        its.it_value.tv_nsec = deadline % 1'000'000'000;
    }
    if (::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &its, nullptr) == 0) armed_ns_ = deadline;
}

void SlirpBackend::run_due_timers() {
    const int64_t now_ms = monotonic_ns() / 1'000'000;
    std::vector<Timer*> due;
    for (const auto& t : timers_)
        if (t->expire_ms >= 0 && t->expire_ms <= now_ms) due.push_back(t.get());
    for (Timer* t : due) {
        // A callback may free or re-arm other timers: fire only live ones.
        auto live = std::find_if(timers_.begin(), timers_.end(), [t](const auto& p) { return p.get() == t; });
        if (live == timers_.end() || t->expire_ms < 0) continue;
        t->expire_ms = -1;
        if (t->cb != nullptr)
            t->cb(t->cb_opaque);
        else
            ::slirp_handle_timer(slirp_, t->id, t->cb_opaque);
    }
}

}  // namespace krunlet::net
