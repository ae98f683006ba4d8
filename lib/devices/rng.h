// virtio-rng (virtio 1.2 §5.4): one request queue whose device-writable
// buffers the device fills with host entropy.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "base/result.h"
#include "virtio/device.h"

namespace krunlet::devices {

class RngDevice final : public virtio::Device {
public:
    static Result<std::unique_ptr<RngDevice>> create();

    uint32_t device_type() const override { return virtio::kDeviceRng; }
    uint64_t device_features() const override { return 0; }  // §5.4.3: none defined
    std::span<const uint16_t> queue_max_sizes() const override { return kQueueSizes; }
    Result<void> activate(const virtio::ActivateArgs& args) override;
    Result<void> queue_notify(uint16_t index) override;
    void reset() override;

    // The most bytes one chain gets: a guest that posts a huge buffer gets a
    // short fill (the used length says how much) instead of stalling the loop.
    static constexpr size_t kMaxFillPerChain = 64 * 1024;

private:
    RngDevice() = default;
    static constexpr std::array<uint16_t, 1> kQueueSizes{256};

    virtio::Queue* queue_ = nullptr;      // valid between activate() and reset()
    virtio::Interrupt* irq_ = nullptr;
};

}  // namespace krunlet::devices
