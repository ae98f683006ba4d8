// Short names for the virtio-mmio register offsets (virtio 1.2 §4.2.2), for tests that play
// the driver: the unit tests and fuzz_mmio. The values come from the kernel's uapi header.
#pragma once

#include <linux/virtio_mmio.h>

#include <cstdint>

namespace mmio_regs {
constexpr uint64_t rMagic = VIRTIO_MMIO_MAGIC_VALUE, rVersion = VIRTIO_MMIO_VERSION;
constexpr uint64_t rDeviceId = VIRTIO_MMIO_DEVICE_ID, rVendor = VIRTIO_MMIO_VENDOR_ID;
constexpr uint64_t rDevFeatures = VIRTIO_MMIO_DEVICE_FEATURES, rDevFeaturesSel = VIRTIO_MMIO_DEVICE_FEATURES_SEL;
constexpr uint64_t rDrvFeatures = VIRTIO_MMIO_DRIVER_FEATURES, rDrvFeaturesSel = VIRTIO_MMIO_DRIVER_FEATURES_SEL;
constexpr uint64_t rQueueSel = VIRTIO_MMIO_QUEUE_SEL, rQueueNumMax = VIRTIO_MMIO_QUEUE_NUM_MAX;
constexpr uint64_t rQueueNum = VIRTIO_MMIO_QUEUE_NUM, rQueueReady = VIRTIO_MMIO_QUEUE_READY;
constexpr uint64_t rQueueNotify = VIRTIO_MMIO_QUEUE_NOTIFY, rIntStatus = VIRTIO_MMIO_INTERRUPT_STATUS;
constexpr uint64_t rIntAck = VIRTIO_MMIO_INTERRUPT_ACK, rStatus = VIRTIO_MMIO_STATUS;
constexpr uint64_t rDescLow = VIRTIO_MMIO_QUEUE_DESC_LOW, rDescHigh = VIRTIO_MMIO_QUEUE_DESC_HIGH;
constexpr uint64_t rDriverLow = VIRTIO_MMIO_QUEUE_AVAIL_LOW, rDriverHigh = VIRTIO_MMIO_QUEUE_AVAIL_HIGH;
constexpr uint64_t rDeviceLow = VIRTIO_MMIO_QUEUE_USED_LOW, rDeviceHigh = VIRTIO_MMIO_QUEUE_USED_HIGH;
constexpr uint64_t rShmSel = VIRTIO_MMIO_SHM_SEL, rShmLenLow = VIRTIO_MMIO_SHM_LEN_LOW;
constexpr uint64_t rShmBaseHigh = VIRTIO_MMIO_SHM_BASE_HIGH;
constexpr uint64_t rQueueReset = 0x0c0;  // virtio 1.2; newer than the 6.1 uapi header
constexpr uint64_t rConfigGen = VIRTIO_MMIO_CONFIG_GENERATION, rConfig = VIRTIO_MMIO_CONFIG;
}  // namespace mmio_regs
