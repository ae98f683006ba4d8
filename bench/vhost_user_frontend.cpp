#include "vhost_user_frontend.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "virtio/device.h"

namespace krunlet::bench {
namespace {

// Request codes of the front-end's messages (vhost-user.rst, "Front-end message types").
enum : uint32_t {
    kGetFeatures = 1,
    kSetFeatures = 2,
    kSetOwner = 3,
    kSetMemTable = 5,
    kSetVringNum = 8,
    kSetVringAddr = 9,
    kSetVringBase = 10,
    kSetVringKick = 12,
    kSetVringCall = 13,
};

constexpr uint32_t kVersion1 = 0x1;    // flags bits 0-1: protocol version
constexpr uint32_t kReplyFlag = 0x4;   // set on the back-end's replies

struct Header {
    uint32_t request;
    uint32_t flags;
    uint32_t size;  // payload bytes that follow
};

struct VringState {  // SET_VRING_NUM, SET_VRING_BASE
    uint32_t index;
    uint32_t num;
};

struct VringAddr {  // SET_VRING_ADDR: addresses in the front-end's own address space
    uint32_t index;
    uint32_t flags;
    uint64_t desc;
    uint64_t used;
    uint64_t avail;
    uint64_t log;
};

struct MemRegion {  // SET_MEM_TABLE, one per fd
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
};

template <class T>
std::span<const uint8_t> bytes_of(const T& v) {
    return {reinterpret_cast<const uint8_t*>(&v), sizeof v};
}

}  // namespace

Result<std::unique_ptr<VhostUserFrontend>> VhostUserFrontend::connect(const std::string& socket_path) {
    std::unique_ptr<VhostUserFrontend> f(new VhostUserFrontend());
    f->sock_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!f->sock_.valid()) return errno_error("socket(AF_UNIX)");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof addr.sun_path) return make_error(ENAMETOOLONG, "socket path too long: " + socket_path);
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    if (::connect(f->sock_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        return errno_error("connect " + socket_path);
    return f;
}

Result<void> VhostUserFrontend::send(uint32_t request, std::span<const uint8_t> payload, std::span<const int> fds) {
    std::vector<uint8_t> msg(sizeof(Header) + payload.size());
    Header h{request, kVersion1, static_cast<uint32_t>(payload.size())};
    std::memcpy(msg.data(), &h, sizeof h);
    if (!payload.empty()) std::memcpy(msg.data() + sizeof h, payload.data(), payload.size());
    iovec iov{msg.data(), msg.size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    // Descriptors ride as SCM_RIGHTS on the message they belong to (vhost-user.rst, "Communication").
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
    if (!fds.empty()) {
        if (fds.size() > 8) return make_error(EINVAL, "vhost-user: more than 8 fds in one message");
        std::memset(control, 0, sizeof control);
        mh.msg_control = control;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = ::sendmsg(sock_.get(), &mh, MSG_NOSIGNAL);
    if (n != static_cast<ssize_t>(msg.size()))
        return n < 0 ? errno_error("vhost-user: sendmsg") : make_error(EIO, "vhost-user: short sendmsg");
    return ok_result();
}

Result<uint64_t> VhostUserFrontend::get_u64(uint32_t request) {
    KRUNLET_CHECK(send(request, {}));
    // The reply is the 12-byte header and the value, with no padding between them.
    uint8_t reply[sizeof(Header) + sizeof(uint64_t)];
    size_t got = 0;
    while (got < sizeof reply) {
        ssize_t n = ::recv(sock_.get(), reply + got, sizeof reply - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_error("vhost-user: recv");
        if (n == 0) return make_error(EIO, "vhost-user: the back-end hung up");
        got += static_cast<size_t>(n);
    }
    Header h;
    uint64_t value;
    std::memcpy(&h, reply, sizeof h);
    std::memcpy(&value, reply + sizeof h, sizeof value);
    if (h.request != request || !(h.flags & kReplyFlag) || h.size != sizeof value)
        return make_error(EPROTO, "vhost-user: unexpected reply to request " + std::to_string(request));
    return value;
}

Result<void> VhostUserFrontend::start(const VirtqDriver& d) {
    KRUNLET_CHECK(send(kSetOwner, {}));
    auto offered = get_u64(kGetFeatures);
    if (!offered.ok()) return offered.error();
    if (!(*offered & virtio::kFeatureVersion1))
        return make_error(EPROTO, "vhost-user back-end does not offer VIRTIO_F_VERSION_1");
    const uint64_t acked = virtio::kFeatureVersion1 | (*offered & virtio::kFeatureEventIdx);
    KRUNLET_CHECK(send(kSetFeatures, bytes_of(acked)));

    struct {
        uint32_t nregions;
        uint32_t padding;
        MemRegion region;
    } table{1, 0, {d.ram_base(), d.ram_size(), reinterpret_cast<uint64_t>(d.ram()), 0}};
    const int memfd = d.memory_fd();
    KRUNLET_CHECK(send(kSetMemTable, bytes_of(table), std::span<const int>(&memfd, 1)));

    // The ring addresses are the front-end's virtual addresses; the back-end translates them
    // through the region's userspace_addr.
    auto va = [&](uint64_t gpa) { return reinterpret_cast<uint64_t>(d.ram()) + (gpa - d.ram_base()); };
    for (uint16_t q = 0; q < d.queue_count(); ++q) {
        const auto l = d.layout(q);
        KRUNLET_CHECK(send(kSetVringNum, bytes_of(VringState{q, l.size})));
        KRUNLET_CHECK(send(kSetVringBase, bytes_of(VringState{q, 0})));
        KRUNLET_CHECK(send(kSetVringAddr, bytes_of(VringAddr{q, 0, va(l.desc), va(l.used), va(l.avail), 0})));
        // The payload names the queue in its low 8 bits; bit 8 clear means an fd comes along.
        const uint64_t index = q;
        const int call = d.interrupt_fd();
        KRUNLET_CHECK(send(kSetVringCall, bytes_of(index), std::span<const int>(&call, 1)));
        const int kick = d.kick_fd(q);
        KRUNLET_CHECK(send(kSetVringKick, bytes_of(index), std::span<const int>(&kick, 1)));
    }
    return ok_result();
}

}  // namespace krunlet::bench
