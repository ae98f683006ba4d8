// virtio-fs device plumbing: FUSE requests through the request and hiprio
// queues to a real fs::Server over a temporary directory.
#include <doctest/doctest.h>

#include <linux/fuse.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "devices/fs.h"
#include "harness.h"

using namespace krunlet;
using namespace krunlet::devices;
using namespace krunlet::devices::test;

namespace {

constexpr uint16_t kHi = FsDevice::kHiprioQueue;
constexpr uint16_t kReq = FsDevice::kRequestQueue;

struct TempDir {
    std::string path;
    TempDir() {
        char t[] = "/tmp/krunlet-fsdev-XXXXXX";
        REQUIRE(::mkdtemp(t) != nullptr);
        path = t;
    }
    ~TempDir() {
        std::string f = path + "/hello";
        ::unlink(f.c_str());
        ::rmdir(path.c_str());
    }
};

std::unique_ptr<fs::Server> make_server(const std::string& root) {
    fs::ServerConfig cfg;
    cfg.root_dir = root;
    auto s = fs::Server::create(std::move(cfg));
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
    return std::move(*s);
}

template <class T>
std::span<const uint8_t> raw(const T& v) {
    return {reinterpret_cast<const uint8_t*>(&v), sizeof v};
}

fuse_in_header in_header(uint32_t opcode, uint64_t unique, uint64_t nodeid, uint32_t arg_len) {
    fuse_in_header h{};
    h.len = static_cast<uint32_t>(sizeof h + arg_len);
    h.opcode = opcode;
    h.unique = unique;
    h.nodeid = nodeid;
    h.uid = ::getuid();
    h.gid = ::getgid();
    h.pid = 1;
    return h;
}

fuse_out_header out_header(const Used& u) {
    fuse_out_header oh{};
    REQUIRE(u.len >= sizeof oh);
    std::memcpy(&oh, u.data.data(), sizeof oh);
    return oh;
}

}  // namespace

TEST_CASE("virtio-fs: the tag is checked and shows in config space") {
    TempDir dir;
    CHECK_FALSE(FsDevice::create("", make_server(dir.path)).ok());
    auto too_long = FsDevice::create(std::string(37, 't'), make_server(dir.path));
    REQUIRE_FALSE(too_long.ok());
    CHECK(too_long.error().message.find("1 to 36 bytes") != std::string::npos);
    CHECK_FALSE(FsDevice::create("root", nullptr).ok());

    auto full = FsDevice::create(std::string(36, 'x'), make_server(dir.path));
    REQUIRE(full.ok());
    uint8_t cfg[40];
    (*full)->read_config(0, cfg);
    CHECK(std::string(reinterpret_cast<char*>(cfg), 36) == std::string(36, 'x'));  // no NUL at 36

    auto dev = FsDevice::create("/dev/root", make_server(dir.path));
    REQUIRE(dev.ok());
    CHECK((*dev)->device_type() == 26u);
    (*dev)->read_config(0, cfg);
    CHECK(std::string(reinterpret_cast<char*>(cfg)) == "/dev/root");
    for (int i = 9; i < 36; ++i) CHECK(cfg[i] == 0);
    uint32_t nq;
    std::memcpy(&nq, cfg + 36, 4);
    CHECK(nq == 1);
    uint8_t tail[4];
    (*dev)->read_config(38, tail);  // straddles the end of the config
    CHECK(tail[0] == 0);
    CHECK(tail[2] == 0);
}

TEST_CASE("virtio-fs: FUSE INIT and GETATTR round-trip through the request queue") {
    TempDir dir;
    auto dev = FsDevice::create("myfs", make_server(dir.path));
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());

    fuse_init_in init{};
    init.major = FUSE_KERNEL_VERSION;
    init.minor = FUSE_KERNEL_MINOR_VERSION;
    init.max_readahead = 128 * 1024;
    auto ih = in_header(FUSE_INIT, 1, 0, sizeof init);
    // Header and arguments in separate descriptors, reply space in two.
    drv.post(kReq, {raw(ih), raw(init)}, {sizeof(fuse_out_header), sizeof(fuse_init_out)});
    REQUIRE(drv.kick(kReq).ok());
    auto used = drv.take_used(kReq);
    REQUIRE(used.size() == 1);
    auto oh = out_header(used[0]);
    CHECK(oh.error == 0);
    CHECK(oh.unique == 1);
    CHECK(oh.len == used[0].len);
    REQUIRE(used[0].len >= sizeof oh + 8);
    fuse_init_out out{};
    std::memcpy(&out, used[0].data.data() + sizeof oh,
                std::min<size_t>(sizeof out, used[0].len - sizeof oh));
    CHECK(out.major == FUSE_KERNEL_VERSION);
    CHECK(drv.irq.used == 1);

    fuse_getattr_in ga{};
    auto gh = in_header(FUSE_GETATTR, 2, FUSE_ROOT_ID, sizeof ga);
    drv.post(kReq, {raw(gh), raw(ga)}, {sizeof(fuse_out_header) + sizeof(fuse_attr_out)});
    REQUIRE(drv.kick(kReq).ok());
    used = drv.take_used(kReq);
    REQUIRE(used.size() == 1);
    oh = out_header(used[0]);
    CHECK(oh.error == 0);
    CHECK(oh.unique == 2);
    REQUIRE(used[0].len == sizeof(fuse_out_header) + sizeof(fuse_attr_out));
    fuse_attr_out ao{};
    std::memcpy(&ao, used[0].data.data() + sizeof oh, sizeof ao);
    CHECK(S_ISDIR(ao.attr.mode));

    // FORGET on the hiprio queue: no reply, the chain comes back empty.
    fuse_forget_in fg{};
    fg.nlookup = 1;
    auto fh = in_header(FUSE_FORGET, 3, 12345, sizeof fg);
    drv.post(kHi, {raw(fh), raw(fg)}, {});
    REQUIRE(drv.kick(kHi).ok());
    used = drv.take_used(kHi);
    REQUIRE(used.size() == 1);
    CHECK(used[0].len == 0);
}

// A live device over a fresh directory, its guest side mounted (INIT done).
struct MountedFs {
    TempDir dir;
    std::unique_ptr<FsDevice> dev = std::move(FsDevice::create("myfs", make_server(dir.path))).value();
    Driver drv{*dev};

    MountedFs() {
        REQUIRE(drv.activate().ok());
        fuse_init_in init{FUSE_KERNEL_VERSION, FUSE_KERNEL_MINOR_VERSION, 0, 0, 0, {}};
        auto ih = in_header(FUSE_INIT, 1, 0, sizeof init);
        REQUIRE(out_header(call({raw(ih), raw(init)}, 256)).error == 0);
    }
    // One request on the request queue, with `reply` bytes of room; its used entry.
    Used call(const std::vector<std::span<const uint8_t>>& in, uint32_t reply) {
        drv.post(kReq, in, {reply});
        REQUIRE(drv.kick(kReq).ok());
        auto used = drv.take_used(kReq);
        REQUIRE(used.size() == 1);
        return used[0];
    }
};

TEST_CASE_FIXTURE(MountedFs, "virtio-fs: a WRITE payload goes from guest buffers to the file, split anywhere") {

    fuse_create_in ci{};
    ci.flags = O_WRONLY;
    ci.mode = S_IFREG | 0644;
    const char name[] = "hello";
    auto ch = in_header(FUSE_CREATE, 2, FUSE_ROOT_ID, sizeof ci + sizeof name);
    Used created = call({raw(ch), raw(ci), std::span(reinterpret_cast<const uint8_t*>(name), sizeof name)}, 256);
    REQUIRE(out_header(created).error == 0);
    fuse_open_out oo{};
    std::memcpy(&oo, created.data.data() + sizeof(fuse_out_header) + sizeof(fuse_entry_out), sizeof oo);
    const uint64_t node = [&] {
        fuse_entry_out eo{};
        std::memcpy(&eo, created.data.data() + sizeof(fuse_out_header), sizeof eo);
        return eo.nodeid;
    }();

    auto write_req = [&](uint64_t unique, uint64_t off, uint32_t size, uint32_t payload) {
        struct {
            fuse_in_header h;
            fuse_write_in w;
        } req{in_header(FUSE_WRITE, unique, node, sizeof(fuse_write_in) + payload), {}};
        req.w.fh = oo.fh;
        req.w.offset = off;
        req.w.size = size;
        return req;
    };
    auto bytes = [](const char* p) { return std::span(reinterpret_cast<const uint8_t*>(p), std::strlen(p)); };

    // Headers alone in the first buffer, the payload in two more.
    auto w1 = write_req(3, 0, 8, 8);
    Used u = call({raw(w1), bytes("abc"), bytes("defgh")}, 64);
    REQUIRE(out_header(u).error == 0);
    fuse_write_out wo{};
    std::memcpy(&wo, u.data.data() + sizeof(fuse_out_header), sizeof wo);
    CHECK(wo.size == 8);

    // Headers and the first payload bytes share a buffer.
    auto w2 = write_req(4, 8, 3, 3);
    std::vector<uint8_t> head(sizeof w2 + 2);
    std::memcpy(head.data(), &w2, sizeof w2);
    std::memcpy(head.data() + sizeof w2, "XY", 2);
    REQUIRE(out_header(call({head, bytes("Z")}, 64)).error == 0);

    // A payload shorter than fuse_write_in.size is garbled: EINVAL, nothing written.
    auto w3 = write_req(5, 0, 10, 8);
    CHECK(out_header(call({raw(w3), bytes("12345678")}, 64)).error == -EINVAL);

    int fd = ::open((dir.path + "/hello").c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    char buf[32] = {};
    CHECK(::read(fd, buf, sizeof buf) == 11);
    ::close(fd);
    CHECK(std::string(buf) == "abcdefghXYZ");
}

TEST_CASE("virtio-fs: an oversized request gets an EINVAL reply without being copied") {
    TempDir dir;
    auto dev = FsDevice::create("myfs", make_server(dir.path));
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());

    auto wh = in_header(FUSE_WRITE, 77, FUSE_ROOT_ID, 0);
    std::vector<uint8_t> big(FsDevice::kMaxRequestBytes, 0xab);
    std::memcpy(big.data(), &wh, sizeof wh);
    drv.post(kReq, {big}, {sizeof(fuse_out_header) + sizeof(fuse_write_out)});
    REQUIRE(drv.kick(kReq).ok());
    auto used = drv.take_used(kReq);
    REQUIRE(used.size() == 1);
    // Exactly the limit is still served (the server answers whatever it is).
    CHECK(out_header(used[0]).unique == 77);

    big.push_back(0);  // one byte over
    drv.post(kReq, {big}, {sizeof(fuse_out_header) + sizeof(fuse_write_out)});
    REQUIRE(drv.kick(kReq).ok());
    used = drv.take_used(kReq);
    REQUIRE(used.size() == 1);
    REQUIRE(used[0].len == sizeof(fuse_out_header));
    auto oh = out_header(used[0]);
    CHECK(oh.error == -EINVAL);
    CHECK(oh.unique == 77);
    CHECK(oh.len == sizeof(fuse_out_header));
}

TEST_CASE("virtio-fs: a broken request ring is reported, kicks after reset are ignored") {
    TempDir dir;
    auto dev = FsDevice::create("myfs", make_server(dir.path));
    REQUIRE(dev.ok());
    Driver drv(**dev);
    REQUIRE(drv.activate().ok());
    uint16_t head = drv.post_in(kReq, 64);
    drv.ram().put<uint64_t>(drv.desc_gpa(kReq) + 16ull * head, 0xdead0000000ull);
    auto r = drv.kick(kReq);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("virtio-fs: request queue") != std::string::npos);
    drv.reset();
    CHECK((*dev)->queue_notify(kReq).ok());
    CHECK((*dev)->queue_notify(7).ok());
}
