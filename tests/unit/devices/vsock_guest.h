// A scripted vsock guest driver for device tests: sends packets on the tx queue, posts rx
// buffers and reads the device's packets, tracking one connection's credit.
#pragma once

#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "devices/vsock.h"
#include "harness.h"

namespace krunlet::devices::test {

inline constexpr uint64_t kGuestCid = 3;
inline constexpr uint32_t kPort = 1024;
inline constexpr uint32_t kRxBuf = 4096 + vsock::kHeaderSize;  // what Linux posts

struct Pkt {
    VsockHeader h;
    std::string data;
};

// Services are added to `dev` between construction and start().
struct VsockGuest {
    std::unique_ptr<VsockDevice> dev;
    std::unique_ptr<Driver> drv;
    uint32_t buf_alloc = 256 * 1024;
    uint32_t fwd_cnt = 0;

    VsockGuest() {
        auto d = VsockDevice::create(kGuestCid);
        REQUIRE(d.ok());
        dev = std::move(*d);
        drv = std::make_unique<Driver>(*dev, 256);
    }
    void start() { REQUIRE(drv->activate().ok()); }

    VsockHeader hdr(uint16_t op, uint32_t src_port, uint32_t dst_port = kPort) const {
        VsockHeader h{};
        h.src_cid = kGuestCid;
        h.dst_cid = vsock::kHostCid;
        h.src_port = src_port;
        h.dst_port = dst_port;
        h.type = vsock::kTypeStream;
        h.op = op;
        h.buf_alloc = buf_alloc;
        h.fwd_cnt = fwd_cnt;
        return h;
    }
    // Header and payload in separate descriptors, as Linux 6.1 sends them.
    void send(VsockHeader h, std::string_view payload = {}, bool set_len = true) {
        if (set_len) h.len = static_cast<uint32_t>(payload.size());
        std::span<const uint8_t> hb(reinterpret_cast<const uint8_t*>(&h), vsock::kHeaderSize);
        if (payload.empty())
            drv->post_out(VsockDevice::kTxQueue, hb);
        else
            drv->post(VsockDevice::kTxQueue, {hb, bytes_of(payload)}, {});
        REQUIRE(drv->kick(VsockDevice::kTxQueue).ok());
        drv->take_used(VsockDevice::kTxQueue);
    }
    void post_rx(int n, uint32_t size = kRxBuf) {
        for (int i = 0; i < n; ++i) drv->post_in(VsockDevice::kRxQueue, size);
        REQUIRE(drv->kick(VsockDevice::kRxQueue).ok());
    }
    std::vector<Pkt> recv() {
        std::vector<Pkt> out;
        for (auto& u : drv->take_used(VsockDevice::kRxQueue)) {
            REQUIRE(u.len >= vsock::kHeaderSize);
            Pkt p;
            std::memcpy(&p.h, u.data.data(), vsock::kHeaderSize);
            p.data.assign(reinterpret_cast<const char*>(u.data.data()) + vsock::kHeaderSize, u.len - vsock::kHeaderSize);
            REQUIRE(p.h.len == p.data.size());
            out.push_back(std::move(p));
        }
        return out;
    }
    // Connect from guest port `port`; expect a RESPONSE.
    void connect(uint32_t port) {
        post_rx(1);
        send(hdr(vsock::kOpRequest, port));
        auto p = recv();
        for (auto& x : p) if (p.size() != 1) MESSAGE("op " << x.h.op << " to port " << x.h.dst_port);
        REQUIRE(p.size() == 1);
        REQUIRE(p[0].h.op == vsock::kOpResponse);
    }
};

}  // namespace krunlet::devices::test
