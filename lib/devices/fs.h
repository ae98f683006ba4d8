// virtio-fs (virtio 1.2 §5.11): the transport between the guest's FUSE client
// and krunlet's in-process server (virtiofs/server.h). Queues: hiprio (0,
// FORGET/INTERRUPT) and one request queue (1). No DAX window, no
// notification queue.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "virtio/device.h"
#include "virtiofs/server.h"

namespace krunlet::devices {

class FsDevice final : public virtio::Device {
public:
    // §5.11.4: the tag is UTF-8, at most 36 bytes, NUL-padded (not
    // terminated when it is exactly 36 bytes long).
    static constexpr size_t kMaxTagLen = 36;
    // The most device-readable bytes one request may carry: a 1 MiB WRITE
    // payload plus its headers. Anything larger is refused before it is
    // copied (see FsDevice::serve_chain for the reply it gets).
    static constexpr size_t kMaxRequestBytes = (size_t{1} << 20) + 4096;

    // struct fuse_in_header + struct fuse_write_in: all of a WRITE that is copied.
    static constexpr size_t kWriteHeaders = 40 + 40;

    static constexpr uint16_t kHiprioQueue = 0;
    static constexpr uint16_t kRequestQueue = 1;

    static Result<std::unique_ptr<FsDevice>> create(std::string tag, std::unique_ptr<fs::Server> server);

    uint32_t device_type() const override { return virtio::kDeviceFs; }
    // No VIRTIO_FS_F_NOTIFICATION. EVENT_IDX lets the guest skip kicks while
    // the server is still busy with earlier requests (readahead, writeback).
    uint64_t device_features() const override {
        return virtio::kFeatureEventIdx | virtio::kFeatureIndirectDesc;
    }
    std::span<const uint16_t> queue_max_sizes() const override { return kQueueSizes; }
    void read_config(uint32_t offset, std::span<uint8_t> out) const override;
    Result<void> activate(const virtio::ActivateArgs& args) override;
    Result<void> queue_notify(uint16_t index) override;
    void reset() override;
    bool own_queue_thread() const override { return true; }  // file I/O blocks

    const std::string& tag() const { return tag_; }
    fs::Server& server() { return *server_; }

private:
    FsDevice(std::string tag, std::unique_ptr<fs::Server> server);
    static constexpr std::array<uint16_t, 2> kQueueSizes{128, 1024};

    uint32_t serve_chain(const virtio::DescriptorChain& chain);
    // Appends the chain's readable bytes from `offset` on as iovecs into guest memory.
    static void readable_iovecs_from(const virtio::DescriptorChain& chain, size_t offset, std::vector<iovec>& out);

    // struct virtio_fs_config: u8 tag[36]; le32 num_request_queues.
    std::array<uint8_t, kMaxTagLen + 4> config_{};
    std::string tag_;
    std::unique_ptr<fs::Server> server_;
    std::vector<virtio::Queue*> queues_;  // valid between activate() and reset()
    virtio::Interrupt* irq_ = nullptr;
    std::vector<uint8_t> request_;  // the current request, gathered; reused
    std::vector<iovec> tail_;       // a WRITE payload in guest memory; reused
    std::vector<iovec> out_;        // the reply's buffers in guest memory; reused
};

}  // namespace krunlet::devices
