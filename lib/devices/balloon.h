// virtio-balloon (virtio 1.2 §5.5), for one purpose: free page reporting
// (VIRTIO_BALLOON_F_REPORTING, §5.5.6.7). The guest's page allocator hands the
// device ranges of free memory it will not touch until the device gives them
// back; the device drops their host pages (MADV_DONTNEED), so memory the
// workload freed leaves the VMM's RSS instead of staying resident for the
// life of the VM.
//
// krunlet never asks the guest to inflate: num_pages stays 0. Pages a driver
// puts in the inflate queue anyway are checked and handed back untouched (a
// guest may only give memory back through reporting, whose pages the guest's
// own allocator has set aside), and deflate has nothing to undo.
//
// Queues, numbered as the Linux driver and QEMU number them when only
// REPORTING is negotiated (absent queues take no index): 0 inflateq,
// 1 deflateq, 2 reporting_vq.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "base/result.h"
#include "virtio/device.h"

namespace krunlet::devices {

class BalloonDevice final : public virtio::Device {
public:
    static Result<std::unique_ptr<BalloonDevice>> create();

    uint32_t device_type() const override { return virtio::kDeviceBalloon; }
    uint64_t device_features() const override;
    std::span<const uint16_t> queue_max_sizes() const override { return kQueueSizes; }
    void read_config(uint32_t offset, std::span<uint8_t> out) const override;
    void write_config(uint32_t offset, std::span<const uint8_t> in) override;
    Result<void> activate(const virtio::ActivateArgs& args) override;
    Result<void> queue_notify(uint16_t index) override;
    void reset() override;

    static constexpr uint16_t kInflateQueue = 0;
    static constexpr uint16_t kDeflateQueue = 1;
    static constexpr uint16_t kReportingQueue = 2;

    struct Stats {
        uint64_t reported_bytes = 0;   // handed back to the host (whole pages)
        uint64_t reports = 0;          // reporting chains served
        uint64_t ignored_inflate_pages = 0;
        uint32_t actual_pages = 0;     // what the driver last wrote to `actual`
    };
    const Stats& stats() const { return stats_; }

private:
    BalloonDevice() = default;
    // The Linux driver reports at most 32 ranges per chain (PAGE_REPORTING_CAPACITY).
    static constexpr std::array<uint16_t, 3> kQueueSizes{256, 256, 64};

    Result<void> serve(uint16_t index);
    void release(const uint8_t* host, uint64_t len);

    std::span<virtio::Queue> queues_;  // valid between activate() and reset()
    virtio::Interrupt* irq_ = nullptr;
    bool reporting_ = false;           // REPORTING was negotiated
    Stats stats_;
};

}  // namespace krunlet::devices
